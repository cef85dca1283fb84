"""The client's TLS context, built on a thread while the command starts up.

Public names: start_building, take_prepared, verifying_context.

httpx builds a verifying context for every client it makes: OpenSSL parses certifi's CA bundle,
~25-35 ms on this machine, paid when the client was made, right before the first request
(bench A2). OpenSSL reads the bundle without holding the GIL, so `syncd reconcile` starts building
it on a thread as soon as its early walks have forked (syncd.earlywalk), beside the imports; the
first client made after takes it. A context serves one client, as httpx's own would: a client
made with none prepared lets httpx build one, as before. Apart from syncd.api, whose package
imports the client (and httpx) with it: this module imports nothing but the standard library.
"""

from __future__ import annotations

import os
import ssl
import threading

__all__ = ["start_building", "take_prepared", "verifying_context"]

_lock = threading.Lock()
_building: threading.Thread | None = None
_prepared: ssl.SSLContext | None = None


def start_building() -> None:
    """Start building a context on a thread (unless one is built or being built)."""
    global _building
    with _lock:
        if _building is not None or _prepared is not None:
            return
        _building = threading.Thread(target=_build, name="syncd-tls", daemon=True)
        _building.start()


def take_prepared() -> ssl.SSLContext | None:
    """The context start_building made (waiting for its thread), once; None if none was started
    or it could not be built (httpx then builds its own and says why)."""
    global _building, _prepared
    with _lock:
        thread = _building
    if thread is not None:
        thread.join()
    with _lock:
        context, _prepared, _building = _prepared, None, None
    return context


def _build() -> None:
    global _prepared
    try:
        context = verifying_context()
    except (OSError, ssl.SSLError, ImportError):
        return
    with _lock:
        _prepared = context


def verifying_context() -> ssl.SSLContext:
    """The context httpx makes by default (`httpx.create_ssl_context()`: verify=True,
    trust_env=True): SSL_CERT_FILE or SSL_CERT_DIR if set, else certifi's bundle."""
    if os.environ.get("SSL_CERT_FILE"):
        return ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    if os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
    import certifi  # httpx's own dependency, imported on this thread

    return ssl.create_default_context(cafile=certifi.where())
