"""Time syncd's scanner alone on a tree: `python -m bench.scanner CONFIG` prints one JSON line.

Every file is hashed (an empty cache, as on a first sync). The time covers the scan only, not the
interpreter's start; `digest` is the sha256 of the sorted "sha256  path" lines, so the benchmark
can check the scanner and sha256sum read the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time

from syncd.config import load_config
from syncd.scan import check_tree, walk_tree


def main() -> int:
    mirror = load_config(sys.argv[1]).mirrors[0]
    start = time.perf_counter()
    snapshot = check_tree(walk_tree(mirror), mirror, {})
    seconds = time.perf_counter() - start
    lines = sorted(f"{f.sha256}  {mirror.root / f.path}" for f in snapshot.files)
    print(
        json.dumps(
            {
                "files": len(snapshot.files),
                "hashed": snapshot.hashed,
                "bytes": sum(f.size for f in snapshot.files),
                "seconds": seconds,
                "digest": hashlib.sha256("\n".join(lines).encode()).hexdigest(),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
