"""`syncd reconcile` builds its client's TLS context on a thread while it starts up (syncd.tls).

Run in its own process, as a user runs it: a wrapper records every TLS context built (on which
thread), then runs the command.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import httpx

from syncd import tls
from tests.e2e.support import REPO, STANDARD_TREE, Sandbox, write_tree

# argv: a record file, then syncd's arguments.
_RECORDED = """
import json, ssl, sys, threading

record = sys.argv[1]
create_default_context = ssl.create_default_context

def recorded(*args, **kwargs):
    with open(record, "a") as out:
        out.write(json.dumps(threading.current_thread().name) + "\\n")
    return create_default_context(*args, **kwargs)

ssl.create_default_context = recorded
from syncd.cli.main import main
sys.exit(main(sys.argv[2:]))
"""


def test_a_reconcile_builds_its_tls_context_on_a_thread_beside_the_imports(
    sandbox: Sandbox,
) -> None:
    write_tree(sandbox.root, STANDARD_TREE)
    record = sandbox.tmp / "contexts.jsonl"
    args = ["reconcile", "--config", str(sandbox.config_path), "--json"]

    proc = subprocess.run(
        [sys.executable, "-c", _RECORDED, str(record), *args],
        cwd=REPO,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["mirrors"][0]["done"]["uploads"] == len(STANDARD_TREE)
    built = [json.loads(line) for line in record.read_text().splitlines()]
    assert built == ["syncd-tls"]  # one context, not built again by httpx on the main thread


def _ca_names(context: ssl.SSLContext) -> list[str]:
    return sorted(json.dumps(cert, sort_keys=True) for cert in context.get_ca_certs())


def test_the_context_is_the_one_httpx_would_build() -> None:
    ours, theirs = tls.verifying_context(), httpx.create_ssl_context()
    assert ours.verify_mode == theirs.verify_mode == ssl.CERT_REQUIRED
    assert ours.check_hostname and theirs.check_hostname
    assert _ca_names(ours) == _ca_names(theirs) != []


def test_a_prepared_context_serves_one_client() -> None:
    tls.start_building()
    first = tls.take_prepared()
    assert isinstance(first, ssl.SSLContext)
    assert tls.take_prepared() is None  # the next client lets httpx build its own
    assert not any(t.name == "syncd-tls" for t in threading.enumerate())


def test_a_context_that_cannot_be_built_leaves_it_to_httpx(tmp_path: Path) -> None:
    env = {**os.environ, "SSL_CERT_FILE": str(tmp_path / "missing.pem")}
    code = "from syncd import tls; tls.start_building(); print(tls.take_prepared())"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["None"]
