"""Command line: `syncd reconcile | run | status | emulator`.

The one place that turns errors into messages and exit codes (see README, "Exit codes").
"""

from __future__ import annotations

import argparse
import sys

from syncd import __version__

EXIT_OK = 0
EXIT_ITEMS_FAILED = 1
EXIT_USAGE = 2
EXIT_SERVICE = 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="syncd", description=__doc__)
    parser.add_argument("--version", action="version", version=f"syncd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    from syncd.emulator.server import add_arguments as add_emulator_arguments

    emu = sub.add_parser("emulator", help="run the local Custom Vision Training API emulator")
    add_emulator_arguments(emu)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "emulator":
        from syncd.emulator.server import run_from_args

        return run_from_args(args)
    parser.error(f"unknown command {args.command!r}")
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
