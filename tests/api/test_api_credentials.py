"""TrainingKey: from the environment or a file, and never shown."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import structlog

from syncd.credentials import DEFAULT_KEY_ENV, CredentialsError, TrainingKey

SECRET = "tk-CREDENTIALS-TEST-5f0e9c"


def test_the_key_never_shows_in_repr_str_or_format() -> None:
    key = TrainingKey(SECRET)
    assert repr(key) == str(key) == f"{key}" == f"{key!r}" == "TrainingKey('***')"
    assert SECRET not in repr([key, {"k": key}])
    assert key.reveal() == SECRET
    with pytest.raises(TypeError):
        pickle.dumps(key)


def test_from_env_uses_the_default_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DEFAULT_KEY_ENV, f"  {SECRET}\n")
    assert TrainingKey.from_env().reveal() == SECRET
    monkeypatch.setenv("OTHER_KEY", SECRET)
    assert TrainingKey.from_env("OTHER_KEY") == TrainingKey(SECRET)


@pytest.mark.parametrize("value", [None, "", "   \n"])
def test_a_missing_or_empty_variable_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv(DEFAULT_KEY_ENV, raising=False)
    else:
        monkeypatch.setenv(DEFAULT_KEY_ENV, value)
    with pytest.raises(CredentialsError, match=DEFAULT_KEY_ENV):
        TrainingKey.from_env()


def test_from_file_strips_the_trailing_newline_and_is_quiet_when_private(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_text(SECRET + "\n")
    path.chmod(0o600)
    with structlog.testing.capture_logs() as logs:
        key = TrainingKey.from_file(path)
    assert key.reveal() == SECRET
    assert logs == []


def test_from_file_warns_when_others_can_read_it(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_text(SECRET + "\r\n")
    path.chmod(0o644)
    with structlog.testing.capture_logs() as logs:
        key = TrainingKey.from_file(path)
    assert key.reveal() == SECRET
    assert [e["event"] for e in logs] == ["key_file_readable_by_others"]
    assert logs[0]["mode"] == "0o644" and "chmod 600" in logs[0]["fix"]
    assert SECRET not in repr(logs)


def test_an_unreadable_or_empty_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match="cannot read key file"):
        TrainingKey.from_file(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.write_text("\n")
    empty.chmod(0o600)
    with pytest.raises(CredentialsError, match="empty"):
        TrainingKey.from_file(empty)
