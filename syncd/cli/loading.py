"""The config a command works on: `--config` loaded, `--mirror` picked.

Public names: load, Mirrors.

Apart from `commands` so that `syncd reconcile` can load its config (and start its early walks,
syncd.earlywalk) before it imports the client, the ledger and the engine.
"""

from __future__ import annotations

import argparse
import sys

from syncd.cli import render
from syncd.config import Config, MirrorConfig, load_config
from syncd.errors import UsageError

Mirrors = tuple[MirrorConfig, ...]


def load(args: argparse.Namespace) -> tuple[Config, Mirrors]:
    """The config `--config` names and the mirrors `--mirror` picks (all by default)."""
    config = load_config(args.config)
    render.warnings(config.warnings, sys.stderr)
    mirrors = config.mirrors
    if args.mirror is not None:
        mirrors = tuple(m for m in mirrors if m.name == args.mirror)
        if not mirrors:
            names = ", ".join(m.name for m in config.mirrors)
            raise UsageError(f"--mirror {args.mirror}: no such mirror (have: {names})")
    return config, mirrors
