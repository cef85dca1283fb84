"""The training key: loaded from the environment or a file, and never shown.

Public names: TrainingKey, CredentialsError, DEFAULT_KEY_ENV.

A `TrainingKey` is deliberately not a `str`: its repr and str are `TrainingKey('***')`, so it cannot
slip into a log line, an f-string or an exception text by accident. The one way to the secret is
`reveal()`, which the API client calls when it sets the `Training-Key` header and nowhere else.
Every key made is also registered with the logging scrubber (`syncd.log.redact_secret`) as a last
line of defence.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import structlog

from syncd.log import redact_secret

DEFAULT_KEY_ENV = "SYNCD_TRAINING_KEY"

_log = structlog.get_logger(component="credentials")


class CredentialsError(Exception):
    """The training key is missing, empty or unreadable (the message never holds the key)."""


class TrainingKey:
    """A Custom Vision training key that never shows itself in repr, str or format."""

    __slots__ = ("_secret",)

    def __init__(self, secret: str) -> None:
        secret = secret.strip()
        if not secret:
            raise CredentialsError("the training key is empty")
        self._secret = secret
        redact_secret(secret)

    @classmethod
    def from_env(cls, var: str = DEFAULT_KEY_ENV) -> TrainingKey:
        """Return the key held in environment variable `var`; raise CredentialsError if unset."""
        value = os.environ.get(var)
        if value is None or not value.strip():
            raise CredentialsError(f"environment variable {var} is not set or empty")
        return cls(value)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> TrainingKey:
        """Return the key in a file (trailing newline stripped); warn if others can read it."""
        key_path = Path(path)
        try:
            mode = key_path.stat().st_mode
            text = key_path.read_text(encoding="utf-8")
        except OSError as exc:
            # exc.strerror only: the OSError's own text names nothing secret, but stay minimal.
            raise CredentialsError(f"cannot read key file {key_path}: {exc.strerror}") from None
        if mode & (stat.S_IRGRP | stat.S_IROTH):
            _log.warning(
                "key_file_readable_by_others",
                path=str(key_path),
                mode=oct(stat.S_IMODE(mode)),
                fix=f"chmod 600 {key_path}",
            )
        return cls(text.rstrip("\r\n"))

    def reveal(self) -> str:
        """Return the secret itself; only for the Training-Key header."""
        return self._secret

    def __repr__(self) -> str:
        return "TrainingKey('***')"

    __str__ = __repr__

    def __format__(self, format_spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TrainingKey):
            return NotImplemented
        return self._secret == other._secret

    def __hash__(self) -> int:
        return hash(self._secret)

    def __reduce__(self) -> tuple[object, ...]:
        # Refuse pickling: a pickle is one more place a key could be written out.
        raise TypeError("TrainingKey cannot be pickled")
