"""`python -m syncd` (and the `syncd` script) leaves its process without the interpreter's teardown
once the command is done (syncd.cli.main.entry_point): its output and atexit hooks intact, its
ledger closed, the exit code the command's; with a thread still running, it exits as usual.

Run as a user runs it, in its own process: a small wrapper starts `syncd` as `python -m syncd`
does (runpy), with an object whose __del__ reports the teardown and an atexit hook of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.e2e.support import REPO, STANDARD_TREE, Run, Sandbox, write_tree

# argv: a file the wrapper reports to, "thread" or "", then syncd's arguments.
_AS_PYTHON_M_SYNCD = """
import atexit, os, runpy, sys, threading, time

report = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)

class Teardown:
    def __del__(self, write=os.write, report=report):  # runs only when the interpreter tears down
        write(report, b"torn down\\n")

kept_until_teardown = Teardown()
atexit.register(lambda: os.write(report, b"atexit hook ran\\n"))
if sys.argv[2] == "thread":
    import syncd.cli.main as cli
    main, done = cli.main, threading.Event()

    def main_then_done(*args):
        try:
            return main(*args)
        finally:
            done.set()

    def late_worker():
        done.wait()
        time.sleep(0.2)  # still running when the command returns
        os.write(report, b"thread finished\\n")

    cli.main = main_then_done
    threading.Thread(target=late_worker).start()
sys.argv = ["syncd", *sys.argv[3:]]
runpy.run_module("syncd", run_name="__main__", alter_sys=True)
"""


def _run(sandbox: Sandbox, *args: str, mode: str = "") -> tuple[Run, list[str]]:
    report = sandbox.tmp / f"report-{len(list(sandbox.tmp.glob('report-*')))}.txt"
    report.write_text("")
    proc = subprocess.run(
        [sys.executable, "-c", _AS_PYTHON_M_SYNCD, str(report), mode, *args],
        cwd=REPO,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    document = json.loads(proc.stdout) if "--json" in args and proc.stdout.strip() else None
    return Run(proc.returncode, proc.stdout, proc.stderr, document), report.read_text().split("\n")


def _reconcile_args(sandbox: Sandbox) -> tuple[str, ...]:
    return ("reconcile", "--config", str(sandbox.config_path), "--json")


def test_a_reconcile_leaves_without_the_teardown_with_its_output_and_ledger_whole(
    sandbox: Sandbox,
) -> None:
    write_tree(sandbox.root, STANDARD_TREE)

    run, reported = _run(sandbox, *_reconcile_args(sandbox))

    assert run.exit_code == 0, str(run)
    assert run.mirror["done"]["uploads"] == len(STANDARD_TREE)  # the whole JSON document
    assert "atexit hook ran" in reported
    assert "torn down" not in reported
    # The ledger was closed as the run ended: the next run finds everything in sync.
    again = sandbox.reconcile()
    assert again.exit_code == 0 and again.mirror["planned"]["uploads"] == 0, str(again)


def test_the_exit_code_is_the_commands(sandbox: Sandbox) -> None:
    write_tree(sandbox.root, STANDARD_TREE)
    missing = sandbox.tmp / "missing.yaml"

    run, reported = _run(sandbox, "status", "--config", str(missing), "--json")

    assert run.exit_code == 2, str(run)  # a config error, said in the JSON document
    assert run.document is not None and run.document["exit_code"] == 2
    assert "atexit hook ran" in reported and "torn down" not in reported


def test_a_thread_still_running_is_waited_for(sandbox: Sandbox) -> None:
    write_tree(sandbox.root, STANDARD_TREE)

    run, reported = _run(sandbox, *_reconcile_args(sandbox), mode="thread")

    assert run.exit_code == 0, str(run)
    assert run.mirror["done"]["uploads"] == len(STANDARD_TREE)
    assert "thread finished" in reported  # joined, as the interpreter's own exit does
    assert "atexit hook ran" in reported


def test_the_script_and_python_m_use_the_same_entry_point() -> None:
    pyproject = (Path(REPO) / "pyproject.toml").read_text(encoding="utf-8")
    assert 'syncd = "syncd.cli.main:entry_point"' in pyproject
    main_module = (Path(REPO) / "syncd" / "__main__.py").read_text(encoding="utf-8")
    assert "entry_point()" in main_module
