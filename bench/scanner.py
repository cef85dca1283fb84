"""Time syncd's scanner alone on a tree: `python -m bench.scanner CONFIG` prints one JSON line.

Every file is hashed and decoded (an empty cache, as on a first sync: issue 18's local checks
decode each new image with Pillow). The time covers the scan only, not the interpreter's start;
`decode_seconds` is the part of it spent decoding (timed around syncd.decode.content_problem, which
the scanner calls once per image read), so the report can say what Pillow costs. `digest` is the
sha256 of the sorted "sha256  path" lines, so the benchmark can check the scanner and sha256sum
read the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time

import syncd.scan
from syncd.config import load_config
from syncd.core.model import Problem
from syncd.scan import check_tree, walk_tree


def main() -> int:
    mirror = load_config(sys.argv[1]).mirrors[0]
    decode = syncd.scan.content_problem
    decode_seconds = 0.0

    def timed_decode(data: bytes) -> Problem | None:
        nonlocal decode_seconds
        began = time.perf_counter()
        try:
            return decode(data)
        finally:
            decode_seconds += time.perf_counter() - began

    syncd.scan.content_problem = timed_decode  # type: ignore[assignment]  # timing only
    start = time.perf_counter()
    snapshot = check_tree(walk_tree(mirror), mirror, {})
    seconds = time.perf_counter() - start
    lines = sorted(f"{f.sha256}  {mirror.root / f.path}" for f in snapshot.files)
    print(
        json.dumps(
            {
                "files": len(snapshot.files),
                "hashed": snapshot.hashed,
                "decoded": snapshot.decoded,
                "decode_seconds": decode_seconds,
                "problems": sum(f.problem is not None for f in snapshot.files),
                "bytes": sum(f.size for f in snapshot.files),
                "seconds": seconds,
                "digest": hashlib.sha256("\n".join(lines).encode()).hexdigest(),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
