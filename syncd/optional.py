"""Import a library without the optional extras it picks up when they happen to be installed.

Public names: without_optional.

Some libraries import other packages at their own import whenever those are installed, for
features syncd never uses: sqlite-utils loads numpy and pandas (their scalar types), structlog
loads rich (pretty tracebacks; syncd formats exceptions as plain text before rendering), httpx
loads its command line (rich, pygments, click). In a venv that holds them for something else (the
`export` extra brings rich), every run paid for them: memory, and time before the first request
(bench A2 and B). Within `without_optional(...)`, an import of a hidden name fails as if the
package were not installed; after the block it imports as ever.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

__all__ = ["without_optional"]


@contextlib.contextmanager
def without_optional(*names: str) -> Iterator[None]:
    """Within the block, `import name` (or any of its submodules) raises ImportError for each of
    `names` not imported yet; a name already imported stays usable. Put back after the block, so
    a later import of one (pull's COCO export imports numpy) works."""
    hidden = [name for name in names if name not in sys.modules]
    sys.modules.update(dict.fromkeys(hidden))  # type: ignore[arg-type]  # None: "not installed"
    try:
        yield
    finally:
        for name in hidden:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]
