"""Prometheus metrics of `syncd run`, served on localhost when `daemon.metrics_address` is set.

Public names: Metrics, parse_address, metric_code, KNOWN_CODES.

One registry per daemon process (not prometheus_client's global one, so tests can make several).
Reconcile results, pending paths and every API request (by operation and status, 429s included)
are counted here; the daemon and the client call in, nothing here calls out but the HTTP server.

No label comes from the service as it is: a service error code or an HTTP status becomes a label
only if it is in KNOWN_CODES (the spec's error codes, upload and metadata statuses, transport
errors' names) or is a 3-digit status; anything else is `other`. So a server cannot put the key,
or unbounded junk, into the metrics page.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from syncd.api.errors import SERVICE_ERROR_CODES
from syncd.api.models import MetadataStatus, UploadStatus
from syncd.config import parse_host_port as parse_address

if TYPE_CHECKING:
    from syncd.reconcile import MirrorReport


def _names(cls: type[object]) -> set[str]:
    names = {cls.__name__}
    for sub in cls.__subclasses__():
        names |= _names(sub)
    return names


KNOWN_CODES: frozenset[str] = frozenset(
    SERVICE_ERROR_CODES
    | {s.value for s in UploadStatus}
    | {s.value for s in MetadataStatus}
    | _names(httpx.TransportError)  # ApiConnectionError's code: the exception's class name
)
OTHER = "other"
_STATUS = re.compile(r"[1-5][0-9][0-9]")


def metric_code(code: str | None) -> str:
    """The label for a service code or HTTP status: itself if known, `other` if not, "" if none."""
    if not code:
        return ""
    return code if code in KNOWN_CODES or _STATUS.fullmatch(code) else OTHER


class Metrics:
    """The daemon's counters and gauges."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.files = Gauge(
            "syncd_files",
            "Files under the root, by state (ok or with a problem)",
            ["mirror", "state"],
            registry=r,
        )
        self.pending = Gauge(
            "syncd_pending_paths",
            "Changed paths waiting to settle or to be sent",
            ["mirror"],
            registry=r,
        )
        self.actions = Counter(
            "syncd_actions", "Actions applied to the project", ["mirror", "action"], registry=r
        )
        self.failures = Counter(
            "syncd_failures",
            "Items that failed, by operation and service code",
            ["mirror", "operation", "code"],
            registry=r,
        )
        self.reconciles = Counter(
            "syncd_reconciles", "Reconciles run, by outcome", ["mirror", "outcome"], registry=r
        )
        self.api_calls = Counter(
            "syncd_api_calls",
            "Training API requests, by operation and HTTP status",
            ["operation", "status"],
            registry=r,
        )
        self.throttled = Counter(
            "syncd_throttled", "Requests the service answered with 429", registry=r
        )
        self.last_sync = Gauge(
            "syncd_last_sync_timestamp_seconds",
            "When the last reconcile succeeded",
            ["mirror"],
            registry=r,
        )
        self.last_full = Gauge(
            "syncd_last_full_reconcile_timestamp_seconds",
            "When the last full reconcile (whole project listed) succeeded",
            ["mirror"],
            registry=r,
        )
        self._server: Any = None

    def serve(self, address: str) -> None:
        """Serve /metrics on address (host:port) from a daemon thread."""
        host, port = parse_address(address)
        self._server, _thread = start_http_server(port, addr=host, registry=self.registry)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    def observe_call(self, operation: str, status: str) -> None:
        """Count one API request (status: the HTTP status, or the transport error's name)."""
        self.api_calls.labels(operation, metric_code(status)).inc()
        if status == "429":
            self.throttled.inc()

    def observe_reconcile(self, mirror: str, report: MirrorReport, *, full: bool) -> None:
        local = report.local
        self.files.labels(mirror, "ok").set(local.ok_count)
        self.files.labels(mirror, "problem").set(local.file_count - local.ok_count)
        if report.execution is not None:
            for action, n in report.execution.done.items():
                self.actions.labels(mirror, action).inc(n)
        for failure in report.failures:
            code = metric_code(failure["code"])
            self.failures.labels(mirror, failure["operation"], code).inc()
        outcome = "in_sync" if report.in_sync else "not_in_sync"
        self.reconciles.labels(mirror, outcome).inc()
        now = time.time()
        self.last_sync.labels(mirror).set(now)
        if full or report.remote.listing == "full":
            self.last_full.labels(mirror).set(now)

    def observe_failed_reconcile(self, mirror: str) -> None:
        self.reconciles.labels(mirror, "failed").inc()

    def set_pending(self, mirror: str, paths: int) -> None:
        self.pending.labels(mirror).set(paths)
