"""The training key: loaded from the environment or a file, and never shown.

Public names: TrainingKey, CredentialsError, DEFAULT_KEY_ENV.

A `TrainingKey` is deliberately not a `str`: its repr and str are `TrainingKey('***')`, so it cannot
slip into a log line, an f-string or an exception text by accident. The one way to the secret is
`reveal()`, which the API client calls when it sets the `Training-Key` header and nowhere else.
Every key made is also registered with the scrubber (`syncd.redact`), which the API client runs
over everything the service says and the log runs over every line.

A key is refused where it is loaded if it is empty or holds anything but printable ASCII: a line
break (two keys pasted on two lines), a carriage return, a tab, a space, a NUL or another control
character. A key file may end with one newline (`\n` or `\r\n`), which is not part of the key;
an environment variable's surrounding blanks are dropped. The message names the source (the
variable or the file) and the problem, never the key or any piece of it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from syncd.errors import SyncdError
from syncd.redact import mask_key_like, register_secret

DEFAULT_KEY_ENV = "SYNCD_TRAINING_KEY"


class CredentialsError(SyncdError):
    """The training key is missing, empty, malformed or unreadable (the message never holds it)."""


# Shorter than this, the text is no key (Custom Vision's are 32 characters): scrubbing it from
# every answer and log (syncd.redact) would mangle ordinary words, e.g. a key "k" turned "OK" into
# "O***". The redactor's shortest piece is also 8 characters.
MIN_KEY_CHARS = 8
_NAMED = {"\n": "a line break", "\r": "a carriage return (CR)", "\t": "a tab", " ": "a space"}


def key_problem(secret: str) -> str | None:
    """Return what is wrong with a key's text (never quoting it), or None if it may be a key."""
    if not secret:
        return "the key is empty"
    for index, char in enumerate(secret, start=1):
        if char.isascii() and char.isprintable() and char != " ":
            continue
        if char in _NAMED:
            what = _NAMED[char]
            if char == "\n":
                what += " (two keys on two lines?)"
        elif char.isascii() or not char.isprintable():
            what = f"a control character (U+{ord(char):04X})"
        else:
            what = "a character that is not printable ASCII"
        return f"the key holds {what} at character {index} of {len(secret)}"
    if len(secret) < MIN_KEY_CHARS:
        plural = "s" if len(secret) > 1 else ""
        return (
            f"the key is {len(secret)} character{plural} long, too short to be a training key"
            " (Custom Vision's are 32)"
        )
    return None


class TrainingKey:
    """A Custom Vision training key that never shows itself in repr, str or format."""

    __slots__ = ("_secret",)

    def __init__(self, secret: str, source: str = "the training key") -> None:
        problem = key_problem(secret)
        if problem:
            raise CredentialsError(f"{source}: {problem}")
        self._secret = secret
        register_secret(secret)

    @classmethod
    def from_env(cls, var: str = DEFAULT_KEY_ENV) -> TrainingKey:
        """Return the key held in environment variable `var`; raise CredentialsError if unset."""
        value = os.environ.get(var)
        if value is None or not value.strip():
            raise CredentialsError(f"environment variable {var} is not set or empty")
        return cls(value.strip(), source=f"environment variable {var}")

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> TrainingKey:
        """Return the key in a file (trailing newline stripped); warn if others can read it."""
        key_path = Path(path)
        shown = mask_key_like(str(key_path))  # a key pasted as the path is not printed back
        try:
            mode = key_path.stat().st_mode
            data = key_path.read_bytes()  # bytes: a stray CR must stay a CR to be seen
        except OSError as exc:
            # exc.strerror only: the OSError's own text names nothing secret, but stay minimal.
            raise CredentialsError(f"cannot read key file {shown}: {exc.strerror}") from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise CredentialsError(f"key file {shown}: not UTF-8 text") from None
        if mode & (stat.S_IRGRP | stat.S_IROTH):
            # structlog here, not at the top: the config imports this module, and a reconcile's
            # early walk (syncd.earlywalk) starts before the logging's imports.
            import structlog

            structlog.get_logger(component="credentials").warning(
                "key_file_readable_by_others",
                path=shown,
                mode=oct(stat.S_IMODE(mode)),
                fix=f"chmod 600 {shown}",
            )
        for newline in ("\r\n", "\n"):  # the one a file usually ends with
            if text.endswith(newline):
                text = text[: -len(newline)]
                break
        return cls(text, source=f"key file {shown}")

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
