"""The `syncd emulator` command line, apart from the server: building `syncd --help` must not
import the web stack (uvicorn, Starlette) that only `syncd emulator` runs.

Public names: add_arguments, KEY_ENV.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from syncd.emulator.limits import DEFAULT_TRAINING_SECONDS, Quotas

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
    quotas = parser.add_argument_group("quotas (defaults: the S0 tier)")
    quotas.add_argument(
        "--max-images-per-project", type=_count, default=Quotas.max_images_per_project
    )
    quotas.add_argument("--max-tags-per-project", type=_count, default=Quotas.max_tags_per_project)
    quotas.add_argument(
        "--min-images-per-tag",
        type=_count,
        default=Quotas.min_images_per_tag,
        help="images each tag needs before TrainProject trains (5, as the service asks)",
    )
    training = parser.add_argument_group("simulated training")
    training.add_argument(
        "--training-seconds",
        type=_non_negative,
        default=DEFAULT_TRAINING_SECONDS,
        metavar="S",
        help="seconds an iteration stays `Training` before it completes (%(default)s)",
    )
