"""The layers hold: the pure core loads no I/O library and nothing of syncd outside itself.

Each import runs in a fresh interpreter (this one has loaded everything already), and reports
what it pulled into sys.modules.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

import syncd.core

CORE_MODULES = sorted(
    f"syncd.core.{p.stem}"
    for p in Path(syncd.core.__file__).parent.glob("*.py")
    if p.stem != "__init__"
)
# Libraries that do I/O (network, database, logging sinks, file watching) or parse files.
IO_LIBRARIES = ("httpx", "structlog", "sqlite3", "sqlite_utils", "watchdog", "yaml")


def loaded_by(module: str) -> set[str]:
    """Return the names in sys.modules after a fresh interpreter imports `module`."""
    code = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return set(json.loads(out.stdout))


def test_the_planner_loads_no_io_library() -> None:
    # The check, word for word.
    code = (
        "import syncd.core.planner, sys; "
        "print('httpx' in sys.modules, 'structlog' in sys.modules, 'sqlite3' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.split() == ["False", "False", "False"]


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_modules_stay_pure(module: str) -> None:
    loaded = loaded_by(module)
    assert not {lib for lib in IO_LIBRARIES if lib in loaded}
    outside = {m for m in loaded if m.startswith("syncd.") and not m.startswith("syncd.core")}
    assert not outside


def test_config_does_not_import_the_scanner() -> None:
    # config validates globs and tag names with core's functions; the scanner imports config,
    # never the reverse (the old config <-> mapping <-> scan cycle).
    loaded = loaded_by("syncd.config")
    assert "syncd.scan" not in loaded
    assert "syncd.api" not in loaded


@pytest.mark.skipif(importlib.util.find_spec("numpy") is None, reason="numpy is not installed")
def test_the_ledger_does_not_load_numpy_though_it_is_installed() -> None:
    # sqlite-utils imports numpy when it can, for nothing the ledger stores: ~12 MB of every
    # run's memory (bench E) and ~80 ms of its start (bench B).
    assert "numpy" not in loaded_by("syncd.ledger")
    # ... and a later `import numpy` in the same process still works (syncd pull's COCO export).
    assert "numpy" in loaded_by("syncd.ledger, numpy")


# What a reconcile imports before its first request (syncd.log, then the client): nothing of the
# extras its libraries load when installed and syncd never uses (syncd.optional; bench A2, B).
_UNUSED_EXTRAS = ("rich", "pygments", "better_exceptions", "httpx._main")


@pytest.mark.skipif(importlib.util.find_spec("rich") is None, reason="rich is not installed")
@pytest.mark.parametrize("modules", ["syncd.log, syncd.cli.commands", "syncd.cli.commands"])
def test_the_start_does_not_load_rich_though_it_is_installed(modules: str) -> None:
    loaded = loaded_by(modules)
    assert "structlog" in loaded and "httpx" in loaded
    assert not {name for name in _UNUSED_EXTRAS if name in loaded}
    # ... and a later `import rich` in the same process still works.
    assert "rich" in loaded_by(f"{modules}, rich")


def test_a_terminal_log_line_shows_an_exception_without_rich() -> None:
    # structlog's console renderer loaded without rich: the exception (already plain text,
    # format_exc_info) is shown as it is, with no warning about pretty tracebacks.
    code = (
        "import sys, warnings; warnings.simplefilter('error')\n"
        "from syncd.log import configure_logging; import structlog\n"
        "configure_logging(json=False)\n"
        "try:\n    1 / 0\n"
        "except ZeroDivisionError:\n    structlog.get_logger().exception('failed')\n"
        "print('rich' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.split() == ["False"]
    assert "failed" in out.stderr and "ZeroDivisionError: division by zero" in out.stderr
    assert "Warning" not in out.stderr
