"""Config: the example stays in step with the schema; every problem is reported at once."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from syncd.config import (
    ConfigError,
    DeletePolicy,
    TagMode,
    load_config,
    parse_config,
    schema_keys,
)
from syncd.credentials import TrainingKey

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "config.example.yaml"
PID = "11111111-2222-3333-4444-555555555555"
PID2 = "66666666-2222-3333-4444-555555555555"


def _keys_in(node: object, prefix: str = "") -> set[str]:
    out: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{prefix}{key}"
            out.add(path)
            out |= _keys_in(value, f"{path}.")
    elif isinstance(node, list):
        for item in node:
            out |= _keys_in(item, prefix)
    return out


def test_example_loads_and_documents_every_key() -> None:
    config = load_config(EXAMPLE, environ={})
    assert config.mirrors[0].root == REPO / "examples" / "dataset"
    data = yaml.safe_load(EXAMPLE.read_text())
    present = {k.replace("mirrors.", "mirror.") for k in _keys_in(data)}
    commented = set(re.findall(r"^\s*#\s*([a-z_]+):", EXAMPLE.read_text(), re.MULTILINE))
    missing = [
        key
        for key in schema_keys()
        if key not in present and key.rsplit(".", 1)[-1] not in commented
    ]
    assert missing == []


def test_minimal_shorthand_gets_documented_defaults(tmp_path: Path) -> None:
    source = tmp_path / "syncd.yaml"
    source.write_text(f"mirror:\n  root: data\n  project_id: {PID}\n")
    config = load_config(source, environ={"XDG_STATE_HOME": str(tmp_path / "state")})
    (mirror,) = config.mirrors
    assert mirror.root == tmp_path / "data"  # relative to the config file
    assert mirror.ledger == tmp_path / "state" / "syncd" / "default.ledger.sqlite"
    assert mirror.delete is DeletePolicy.KEEP and not mirror.adopt_foreign_images
    assert mirror.tags.mode is TagMode.TOP and mirror.tags.negative_folder == "_negative"
    assert (mirror.guard.max_delete, mirror.guard.max_delete_fraction) == (50, 0.25)
    service = config.service
    assert (service.rate_per_second, service.max_concurrency, service.max_attempts) == (10, 8, 8)
    assert service.is_embedded and service.emulator_dir == tmp_path / "state/syncd/emulator"
    assert config.warnings == ()


def test_every_problem_is_reported_at_once_with_file_and_line(tmp_path: Path) -> None:
    source = tmp_path / "bad.yaml"
    source.write_text(
        "service:\n"
        "  endpoint: ftp://example\n"  # 2
        "  rate_per_second: fast\n"  # 3
        "  max_concurency: 4\n"  # 4 (typo)
        "mirrors:\n"
        "  - root: a\n"  # 6: project_id missing
        "    tags: {mode: sideways}\n"  # 7
        f"  - root: b\n    project_id: {PID}\n"
        "    guard: {max_delete_fraction: 2}\n"  # 10
    )
    with pytest.raises(ConfigError) as caught:
        load_config(source, environ={})
    lines = str(caught.value).splitlines()
    assert lines == [
        f"{source}:2: service.endpoint: expected 'embedded' or an http(s) URL, got 'ftp://example'",
        f"{source}:3: service.rate_per_second: expected a number, got 'fast'",
        f"{source}:4: service.max_concurency: unknown key (known keys: endpoint, emulator_dir, "
        "training_key, rate_per_second, max_concurrency, max_attempts, connect_timeout, "
        "read_timeout, request_deadline, max_retry_after)",
        f"{source}:6: mirrors[0].project_id: missing (required)",
        f"{source}:7: mirrors[0].tags.mode: expected one of 'top', 'leaf', 'all', got 'sideways'",
        f"{source}:10: mirrors[1].guard.max_delete_fraction: must be between 0 and 1, got 2.0",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        ("mirror: [\n", "not valid YAML"),
        ("state_dir: /x\n", "mirror: missing (required)"),
        (f"mirror: {{root: a, project_id: {PID}}}\nmirrors: []\n", "not both"),
        (f"mirror: {{root: a, project_id: {PID}, delete: never}}\n", "'mirror', 'keep'"),
        (f"mirror: {{root: a, project_id: {PID}, max_tags_per_project: true}}\n", "an integer"),
        (f"mirror: {{root: a, project_id: {PID}, ledger: a/l.sqlite}}\n", "inside the root"),
        (f"mirror: {{root: a, project_id: {PID}, name: 'a b'}}\n", "mirror.name"),
        (f"mirror: {{root: a, project_id: {PID}, files: {{exclude: ['/x']}}}}\n", "relative"),
        (f"mirror: {{root: a, project_id: {PID}, files: {{extensions: [jpg]}}}}\n", "'.jpg'"),
        (f"mirror: {{root: a, project_id: {PID}, tags: {{rename: {{a: ' b'}}}}}}\n", "whitespace"),
        (
            f"mirrors:\n  - {{root: a, project_id: {PID}}}\n  - {{root: b, project_id: {PID}}}\n",
            "mirrors[1].project_id: same as mirrors[0].project_id",
        ),
        (
            f"mirrors:\n  - {{root: a, project_id: {PID}}}\n"
            f"  - {{root: a/b, project_id: {PID2}, name: two}}\n",
            "overlaps",
        ),
    ],
)
def test_bad_configs_fail_with_a_clear_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source=tmp_path / "c.yaml", environ={})
    assert message in str(caught.value)


def test_environment_overrides_and_is_named_when_wrong(tmp_path: Path) -> None:
    text = f"mirror: {{root: a, project_id: {PID}}}\n"
    env = {"SYNCD_ENDPOINT": "http://127.0.0.1:5000", "SYNCD_STATE_DIR": str(tmp_path / "s")}
    config = parse_config(text, source=tmp_path / "c.yaml", environ=env)
    assert config.service.endpoint == "http://127.0.0.1:5000"
    assert config.mirrors[0].ledger == tmp_path / "s" / "default.ledger.sqlite"
    with pytest.raises(
        ConfigError, match=r"environment variable SYNCD_ENDPOINT: service\.endpoint"
    ):
        parse_config(text, source=tmp_path / "c.yaml", environ={"SYNCD_ENDPOINT": "nope"})


def test_key_in_the_file_is_accepted_with_a_warning_and_never_shown(tmp_path: Path) -> None:
    secret = "k-SECRET-in-yaml-0123"
    text = (
        f"service: {{training_key: {{value: {secret}}}}}\nmirror: {{root: a, project_id: {PID}}}\n"
    )
    config = parse_config(text, source=tmp_path / "c.yaml", environ={})
    assert config.service.training_key.load() == TrainingKey(secret)
    assert len(config.warnings) == 1 and secret not in config.warnings[0]
    assert secret not in repr(config)
    # a wrong key value is reported without echoing it
    bad = (
        f"service: {{training_key: {{value: [{secret}]}}}}\nmirror: {{root: a, project_id: {PID}}}"
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(bad, source=tmp_path / "c.yaml", environ={})
    assert secret not in str(caught.value)


def test_key_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("from-file\n")
    key_file.chmod(0o600)
    text = f"service: {{training_key: {{file: key}}}}\nmirror: {{root: a, project_id: {PID}}}\n"
    config = parse_config(text, source=tmp_path / "c.yaml", environ={})
    assert config.service.training_key.load() == TrainingKey("from-file")
    monkeypatch.setenv("MY_KEY", "from-env")
    text = f"service: {{training_key: {{env: MY_KEY}}}}\nmirror: {{root: a, project_id: {PID}}}\n"
    config = parse_config(text, source=tmp_path / "c.yaml", environ={})
    assert config.service.training_key.load() == TrainingKey("from-env")


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("request_deadline", 0, "1 to 3600 seconds"),
        ("request_deadline", 100000, "1 to 3600 seconds"),
        ("max_retry_after", 0, "0.1 to 600 seconds"),
        ("max_retry_after", 1e9, "0.1 to 600 seconds"),
    ],
)
def test_deadline_and_retry_after_cap_are_refused_outside_their_range(
    tmp_path: Path, key: str, value: float, allowed: str
) -> None:
    text = f"service: {{{key}: {value}}}\nmirror: {{root: a, project_id: {PID}}}\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source=tmp_path / "c.yaml", environ={})
    assert f"service.{key}" in str(caught.value) and allowed in str(caught.value)


def test_deadline_and_retry_after_cap_defaults_are_the_clients() -> None:
    from syncd.api import ClientSettings, limits
    from syncd.sync import client_settings

    settings = client_settings(parse_config(f"mirror: {{root: a, project_id: {PID}}}\n").service)
    assert settings.request_deadline_s == ClientSettings().request_deadline_s
    assert settings.max_retry_after_s == limits.MAX_RETRY_AFTER_S
    assert limits.MAX_RETRY_AFTER_S <= 600 == limits.MAX_RETRY_AFTER_LIMIT_S
