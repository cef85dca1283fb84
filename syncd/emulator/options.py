"""The `syncd emulator` command line, apart from the server: building `syncd --help` must not
import the web stack (uvicorn, Starlette) that only `syncd emulator` runs.

Public names: add_arguments, add_line_arguments, tier_settings, bandwidth, KEY_ENV.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path
from typing import Any

from syncd.emulator.limits import DEFAULT_TRAINING_SECONDS, TIERS, Quotas

KEY_ENV = "SYNCD_EMULATOR_TRAINING_KEY"


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


_BANDWIDTH_UNITS = {
    "": 1.0,
    "k": 1e3,
    "m": 1e6,
    "g": 1e9,
    "kbit": 1e3 / 8,
    "mbit": 1e6 / 8,
    "gbit": 1e9 / 8,
}


def bandwidth(text: str) -> float:
    """Bytes per second from `12500000`, `12.5M` (bytes) or `100Mbit` (bits); more than 0."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).lower().removesuffix("/s") if match else ""
    if match is None or unit not in _BANDWIDTH_UNITS:
        raise argparse.ArgumentTypeError(
            "must be bytes per second: a number, optionally with k, M or G (bytes) or kbit, Mbit"
            " or Gbit (bits), e.g. 100Mbit"
        )
    value = float(match.group(1)) * _BANDWIDTH_UNITS[unit]
    if value <= 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def add_line_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--bandwidth and --tier, shared by `syncd emulator` and `python -m bench.emulator`."""
    parser.add_argument(
        "--bandwidth",
        type=bandwidth,
        metavar="RATE",
        help=(
            "bytes per second each way, shared by all connections: request bodies up, responses"
            " (image downloads) down; e.g. 12.5M or 100Mbit (default: no limit)"
        ),
    )
    parser.add_argument(
        "--tier",
        choices=sorted(TIERS),
        help=(
            "a pricing tier's quotas and rates: F0 = 2 projects, 5,000 images and 50 tags per"
            " project, 10 calls/s, TrainProject and image uploads 2/s; S0 = 100 projects,"
            " 100,000 images, 500 tags, 10 calls/s. Options given explicitly win"
        ),
    )


def tier_settings(args: argparse.Namespace) -> tuple[Quotas, dict[str, Any]]:
    """The quotas and the Faults keyword arguments of args' --tier, overridden by the options
    given (--tps, --max-images-per-project, ...), and --bandwidth."""
    tier = TIERS.get(args.tier) if getattr(args, "tier", None) else None
    quotas = tier.quotas if tier is not None else Quotas()
    overrides = {
        name: getattr(args, name)
        for name in ("max_images_per_project", "max_tags_per_project", "min_images_per_tag")
        if getattr(args, name, None) is not None
    }
    quotas = dataclasses.replace(quotas, **overrides)
    rates: dict[str, Any] = {"bandwidth": getattr(args, "bandwidth", None)}
    if tier is not None:
        rates.update(
            tps=tier.tps, train_tps=tier.train_tps, upload_tps=tier.upload_tps, tier=args.tier
        )
    if getattr(args, "tps", None) is not None:
        rates["tps"] = args.tps
    return quotas, rates


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `syncd emulator` options to parser."""
    parser.description = (
        "Serve a local stand-in for the Custom Vision Training API v3.3 (also under the"
        " v3.4-preview path the official SDK calls). The endpoint to configure is the printed URL."
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (127.0.0.1); any but loopback needs a training key",
    )
    parser.add_argument("--port", type=int, default=8080, help="port to listen on (8080; 0 = any)")
    parser.add_argument(
        "--data",
        type=Path,
        metavar="DIR",
        help="keep state in DIR (SQLite + image blobs); default: in memory, lost on exit",
    )
    parser.add_argument(
        "--training-key",
        metavar="KEY",
        help=(
            f"the only Training-Key accepted; prefer the {KEY_ENV} environment variable, as a key"
            " on the command line is visible to other users in `ps`. Without a key any non-empty"
            " Training-Key header is accepted"
        ),
    )
    faults = parser.add_argument_group("fault injection (all off by default)")
    faults.add_argument(
        "--tps", type=_positive, help="answer 429 + Retry-After past N requests per second"
    )
    faults.add_argument(
        "--fail-rate", type=_rate, default=0.0, metavar="P", help="answer 500/503 with prob. P"
    )
    faults.add_argument(
        "--drop-rate",
        type=_rate,
        default=0.0,
        metavar="P",
        help="with prob. P, do the work then close the connection without a full response",
    )
    faults.add_argument(
        "--latency", type=_non_negative, default=0.0, metavar="MS", help="add MS ms per request"
    )
    faults.add_argument("--seed", type=int, help="seed for a reproducible fault sequence")
    faults.add_argument(
        "--duplicate-without-image",
        action="store_true",
        help="omit `image` from OKDuplicate results (the spec does not promise it)",
    )
    faults.add_argument(
        "--blob-latency",
        type=_non_negative,
        default=0.0,
        metavar="MS",
        help="add MS ms to each image-URI download (a slow blob store)",
    )
    line = parser.add_argument_group("the line and the tier (default: no limit; S0 quotas)")
    add_line_arguments(line)
    quotas = parser.add_argument_group("quotas (defaults: the --tier's, else the S0 tier's)")
    quotas.add_argument(
        "--max-images-per-project",
        type=_count,
        help=f"({Quotas.max_images_per_project:,} on S0)",
    )
    quotas.add_argument(
        "--max-tags-per-project", type=_count, help=f"({Quotas.max_tags_per_project} on S0)"
    )
    quotas.add_argument(
        "--min-images-per-tag",
        type=_count,
        help=(
            f"images each tag needs before TrainProject trains ({Quotas.min_images_per_tag}, as"
            " the service asks)"
        ),
    )
    training = parser.add_argument_group("simulated training")
    training.add_argument(
        "--training-seconds",
        type=_non_negative,
        default=DEFAULT_TRAINING_SECONDS,
        metavar="S",
        help="seconds an iteration stays `Training` before it completes (%(default)s)",
    )
