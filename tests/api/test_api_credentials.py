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


# A key with whitespace or a control character inside is refused where it is loaded: the message
# names the source and the problem, and holds no piece of the key.
MALFORMED = {
    "two keys on two lines": f"{SECRET}\n{SECRET[::-1]}",
    "a stray CR": f"{SECRET[:10]}\r{SECRET[10:]}",
    "a tab": f"{SECRET[:10]}\t{SECRET[10:]}",
    "a space": f"{SECRET[:10]} {SECRET[10:]}",
    "a NUL": f"{SECRET[:10]}\0{SECRET[10:]}",
    "an escape character": f"{SECRET[:10]}\x1b{SECRET[10:]}",
    "a character that is not ASCII": f"{SECRET[:10]}\u00e9{SECRET[10:]}",
    # Scrubbed from every answer, a 1-character key would turn each "k" of them into "***"
    # (an "OK" status became "O***" and every upload looked refused).
    "too short to be a key": SECRET[:3],
}
PROBLEMS = {
    "two keys on two lines": "line break",
    "a stray CR": "carriage return",
    "a tab": "tab",
    "a space": "space",
    "a NUL": "control character",
    "an escape character": "control character",
    "a character that is not ASCII": "not printable ASCII",
    "too short to be a key": "3 characters long",
}


def _assert_hides_the_key(message: str) -> None:
    for piece in (SECRET, SECRET[:6], SECRET[-6:], SECRET[::-1][:6]):
        assert piece not in message, message


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_key_file_is_refused_naming_the_file_and_the_problem(
    tmp_path: Path, case: str
) -> None:
    path = tmp_path / "training.key"
    path.write_text(MALFORMED[case] + "\n", encoding="utf-8", newline="")
    path.chmod(0o600)
    with pytest.raises(CredentialsError) as caught:
        TrainingKey.from_file(path)
    message = str(caught.value)
    assert str(path) in message and PROBLEMS[case] in message
    _assert_hides_the_key(message)


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_key_in_the_environment_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    monkeypatch.setenv("SYNCD_SOME_KEY", MALFORMED[case].replace("\0", "\x01"))
    with pytest.raises(CredentialsError) as caught:
        TrainingKey.from_env("SYNCD_SOME_KEY")
    message = str(caught.value)
    assert "SYNCD_SOME_KEY" in message
    assert PROBLEMS[case] in message or case == "a NUL"
    _assert_hides_the_key(message)


@pytest.mark.parametrize("text", ["\n", "\r\n", "", " \n", "\n\n"])
def test_a_key_file_empty_but_for_a_newline_or_blanks_is_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "training.key"
    path.write_text(text, encoding="utf-8", newline="")
    path.chmod(0o600)
    with pytest.raises(CredentialsError, match=str(path)):
        TrainingKey.from_file(path)


def test_only_the_one_trailing_newline_of_a_file_is_forgiven(tmp_path: Path) -> None:
    path = tmp_path / "training.key"
    for text in (SECRET, SECRET + "\n", SECRET + "\r\n"):
        path.write_text(text, encoding="utf-8", newline="")
        path.chmod(0o600)
        assert TrainingKey.from_file(path).reveal() == SECRET
    path.write_text(SECRET + "\n\n", encoding="utf-8", newline="")
    with pytest.raises(CredentialsError, match="line break"):
        TrainingKey.from_file(path)


def test_a_key_pasted_as_the_key_file_path_is_not_echoed(tmp_path: Path) -> None:
    pasted = "9f8e7d6c5b4a39281706f5e4d3c2b1a0"  # an Azure-shaped key, given as `file:`
    with pytest.raises(CredentialsError) as caught:
        TrainingKey.from_file(tmp_path / pasted)
    assert "cannot read key file" in str(caught.value) and str(tmp_path) in str(caught.value)
    assert pasted[:8] not in str(caught.value)
