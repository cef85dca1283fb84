"""Config: the example stays in step with the schema; every problem is reported at once."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from syncd.config import (
    ConfigError,
    load_config,
    parse_config,
    schema_keys,
)
from syncd.core.policy import DeletePolicy, TagMode
from syncd.credentials import TrainingKey

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "config.example.yaml"
PID = "11111111-2222-3333-4444-555555555555"
EMBEDDED = "service: {endpoint: embedded}\n"
MIRROR = f"mirror: {{root: a, project_id: {PID}}}\n"
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
    source.write_text(
        f"service:\n  endpoint: embedded\nmirror:\n  root: data\n  project_id: {PID}\n"
    )
    config = load_config(source, environ={"XDG_STATE_HOME": str(tmp_path / "state")})
    (mirror,) = config.mirrors
    assert mirror.root == tmp_path / "data"  # relative to the config file
    assert mirror.ledger == tmp_path / "state" / "syncd" / "default.ledger.sqlite"
    assert mirror.delete is DeletePolicy.KEEP and not mirror.adopt_foreign_images
    assert mirror.tags.mode is TagMode.TOP and mirror.tags.negative_folder == "_negative"
    assert (mirror.guard.max_delete, mirror.guard.max_delete_fraction) == (50, 0.25)
    service = config.service
    assert (service.rate_per_second, service.max_concurrency, service.max_attempts) == (10, 10, 8)
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
        f"{source}:2: service.endpoint: expected 'embedded' or an http(s) URL (the value is not "
        "shown: a key pasted here by mistake would be)",
        f"{source}:3: service.rate_per_second: expected a number, got 'fast'",
        f"{source}:4: service.max_concurency: unknown key (known keys: endpoint, "
        "allow_insecure_http, emulator_dir, "
        "training_key, rate_per_second, upload_rate_per_second, max_concurrency, max_attempts, "
        "connect_timeout, "
        "read_timeout, request_deadline, max_retry_after, uplink_mbps)",
        f"{source}:6: mirrors[0].project_id: missing (required)",
        f"{source}:7: mirrors[0].tags.mode: expected one of 'top', 'leaf', 'all', got 'sideways'",
        f"{source}:10: mirrors[1].guard.max_delete_fraction: expected a number from 0 to 1, got 2",
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
        f"service: {{endpoint: embedded, training_key: {{value: {secret}}}}}\n"
        f"mirror: {{root: a, project_id: {PID}}}\n"
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
    text = f"service: {{endpoint: embedded, training_key: {{file: key}}}}\n{MIRROR}"
    config = parse_config(text, source=tmp_path / "c.yaml", environ={})
    assert config.service.training_key.load() == TrainingKey("from-file")
    monkeypatch.setenv("MY_KEY", "from-env")
    text = f"service: {{endpoint: embedded, training_key: {{env: MY_KEY}}}}\n{MIRROR}"
    config = parse_config(text, source=tmp_path / "c.yaml", environ={})
    assert config.service.training_key.load() == TrainingKey("from-env")


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_config(tmp_path / "nope.yaml")


def test_trash_dir_is_off_by_default_and_must_not_be_inside_the_root(tmp_path: Path) -> None:
    source = tmp_path / "syncd.yaml"
    source.write_text(f"{EMBEDDED}mirror:\n  root: data\n  project_id: {PID}\n")
    assert load_config(source, environ={}).mirrors[0].trash_dir is None
    source.write_text(f"{EMBEDDED}mirror:\n  root: data\n  project_id: {PID}\n  trash_dir: trash\n")
    assert load_config(source, environ={}).mirrors[0].trash_dir == tmp_path / "trash"
    # inside the root, the trashed files would be scanned and uploaded again
    source.write_text(
        f"{EMBEDDED}mirror:\n  root: data\n  project_id: {PID}\n  trash_dir: data/.trash\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(source, environ={})
    assert "mirror.trash_dir" in str(caught.value)
    assert "must not be inside the root" in str(caught.value)


@pytest.mark.parametrize(
    "text",
    [
        "mirror: " + "[" * 20_000 + "]" * 20_000 + "\n",  # flow style
        "mirror:\n" + "".join(" " * i + "a:\n" for i in range(1, 3_000)),  # block style
    ],
)
@pytest.mark.slow
def test_deeply_nested_yaml_is_a_config_error_naming_the_file(tmp_path: Path, text: str) -> None:
    source = tmp_path / "deep.yaml"
    source.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(source, environ={})
    assert str(caught.value) == f"{source}: not valid YAML: nested too deeply"


# key -> (section, a value under the range, one over it, the range as the message gives it)
RANGES = {
    "service.rate_per_second": ("0.01", "1.0e+9", "a number from 0.1 to 1000"),
    "service.max_concurrency": ("0", "1000", "an integer from 1 to 256"),
    "service.max_attempts": ("0", "1000", "an integer from 1 to 100"),
    "service.connect_timeout": ("0", "1.0e+6", "a number from 0.1 to 86400"),
    "service.read_timeout": ("0", "1.0e+6", "a number from 0.1 to 86400"),
    "service.uplink_mbps": ("0.01", "1.0e+9", "a number from 0.1 to 100000"),
    "daemon.settle_seconds": ("0", "86400", "a number from 0.01 to 3600"),
    "daemon.max_delay_seconds": ("0", "86400", "a number from 0.01 to 3600"),
    "daemon.full_reconcile_seconds": ("0.5", "1.0e+9", "a number from 1 to 604800"),
    "daemon.rescan_seconds": ("0.5", "1.0e+9", "a number from 1 to 86400"),
    "daemon.shutdown_timeout_seconds": ("0.5", "86400", "a number from 1 to 3600"),
    "daemon.count_check_seconds": ("-1", "86400", "a number from 0 to 3600"),
    "mirror.guard.max_delete_fraction": ("-0.1", "1.5", "a number from 0 to 1"),
}
_FLOATS = {key for key, (_, _, expected) in RANGES.items() if "a number" in expected}


def _config_with(key: str, value: str) -> str:
    *sections, name = key.split(".")
    text = f"mirror: {{root: a, project_id: {PID}}}\n"
    if sections == ["mirror", "guard"]:
        return f"{EMBEDDED}mirror: {{root: a, project_id: {PID}, guard: {{{name}: {value}}}}}\n"
    if sections == ["service"]:
        return text + f"service:\n  endpoint: embedded\n  {name}: {value}\n"
    return EMBEDDED + text + f"{sections[0]}:\n  {name}: {value}\n"


@pytest.mark.parametrize(
    ("key", "value"),
    [(key, low) for key, (low, _, _) in RANGES.items()]
    + [(key, high) for key, (_, high, _) in RANGES.items()]
    + [(key, special) for key in sorted(_FLOATS) for special in (".nan", ".inf", "-.inf")],
)
def test_values_outside_their_range_are_refused_naming_key_and_range(
    tmp_path: Path, key: str, value: str
) -> None:
    source = tmp_path / "c.yaml"
    source.write_text(_config_with(key, value), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(source, environ={})
    (problem,) = caught.value.problems
    expected = RANGES[key][2]
    assert problem.key == key
    assert problem.message.startswith(f"expected {expected}, got "), problem.message
    assert problem.file == str(source) and problem.line is not None


@pytest.mark.parametrize("key", sorted(RANGES))
def test_the_ends_of_each_range_are_accepted(tmp_path: Path, key: str) -> None:
    low, high = re.findall(r"from (\S+) to (\S+)", RANGES[key][2])[0]
    for value in (low, high):
        parse_config(_config_with(key, value), source=tmp_path / "c.yaml", environ={})


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("request_deadline", 0, "from 1 to 3600"),
        ("request_deadline", 100000, "from 1 to 3600"),
        ("max_retry_after", 0, "from 0.1 to 600"),
        ("max_retry_after", 1e9, "from 0.1 to 600"),
    ],
)
def test_deadline_and_retry_after_cap_are_refused_outside_their_range(
    tmp_path: Path, key: str, value: float, allowed: str
) -> None:
    text = f"service: {{endpoint: embedded, {key}: {value}}}\n{MIRROR}"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source=tmp_path / "c.yaml", environ={})
    assert f"service.{key}" in str(caught.value) and allowed in str(caught.value)


def test_deadline_and_retry_after_cap_defaults_are_the_clients() -> None:
    from syncd.api import ClientSettings, limits
    from syncd.reconcile import client_settings

    settings = client_settings(parse_config(EMBEDDED + MIRROR).service)
    assert settings.request_deadline_s == ClientSettings().request_deadline_s
    assert settings.max_retry_after_s == limits.MAX_RETRY_AFTER_S
    assert limits.MAX_RETRY_AFTER_S <= 600 == limits.MAX_RETRY_AFTER_LIMIT_S


def test_the_uplink_sets_what_a_call_is_worth_when_choosing_an_upload_format() -> None:
    from syncd.api import ClientSettings
    from syncd.reconcile import client_settings

    default = client_settings(parse_config(EMBEDDED + MIRROR).service)
    assert default.uplink_bytes_per_s == ClientSettings().uplink_bytes_per_s == 100e6 / 8
    text = "service: {endpoint: embedded, uplink_mbps: 20, rate_per_second: 2}\n" + MIRROR
    settings = client_settings(parse_config(text).service)
    assert settings.uplink_bytes_per_s == 2.5e6
    assert settings.call_cost() == 1.25e6  # 20 Mbit/s for the half second one call takes at 2/s


def test_the_endpoint_is_required_and_the_problem_says_what_to_write(tmp_path: Path) -> None:
    # No `service:` at all used to mean the embedded emulator: a silent local "in sync".
    for text in (MIRROR, "service: {rate_per_second: 5}\n" + MIRROR):
        with pytest.raises(ConfigError) as caught:
            parse_config(text, source=tmp_path / "c.yaml", environ={})
        (problem,) = caught.value.problems
        assert problem.key == "service.endpoint"
        assert problem.message.startswith("missing (required)")
        assert "endpoint: embedded" in problem.message
        assert "https://<resource>.cognitiveservices.azure.com" in problem.message
    # the environment may give it instead
    config = parse_config(MIRROR, environ={"SYNCD_ENDPOINT": "embedded"})
    assert config.service.is_embedded


def test_the_example_leaves_state_dir_at_the_xdg_default_it_describes(tmp_path: Path) -> None:
    # Copied as it is (the install step does), the example must not pin ~/.local/state over
    # $XDG_STATE_HOME: its comment says the default applies.
    config = load_config(EXAMPLE, environ={"XDG_STATE_HOME": str(tmp_path)})
    assert config.state_dir == tmp_path / "syncd"


# --- annotations (object detection) -------------------------------------------------------------


def test_annotations_default_to_none_and_coco_file_is_relative_to_the_config(
    tmp_path: Path,
) -> None:
    from syncd.core.policy import AnnotationFormat

    source = tmp_path / "syncd.yaml"
    source.write_text(f"{EMBEDDED}mirror:\n  root: data\n  project_id: {PID}\n")
    mirror = load_config(source, environ={}).mirrors[0]
    assert mirror.annotations.format is AnnotationFormat.NONE
    assert not mirror.annotations.detection and mirror.annotations.coco_file is None
    source.write_text(
        f"{EMBEDDED}mirror:\n  root: data\n  project_id: {PID}\n"
        "  annotations:\n    format: coco\n    coco_file: labels/instances.json\n"
    )
    config = load_config(source, environ={})
    annotations = config.mirrors[0].annotations
    assert annotations.format is AnnotationFormat.COCO and annotations.detection
    assert annotations.coco_file == tmp_path / "labels" / "instances.json"
    assert config.warnings == ()


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        ("{format: coco}", "mirror.annotations.coco_file: missing (required with format: coco)"),
        (
            "{format: yolo, coco_file: a.json}",
            "mirror.annotations.coco_file: only used with format: coco (format is yolo)",
        ),
        (
            "{coco_file: a.json}",
            "mirror.annotations.coco_file: only used with format: coco (format is none)",
        ),
        (
            "{format: tensorflow}",
            "mirror.annotations.format: expected one of 'none', 'yolo', 'voc', 'coco', "
            "got 'tensorflow'",
        ),
        ("{format: voc, classes: x}", "mirror.annotations.classes: unknown key"),
    ],
)
def test_bad_annotations_are_refused_naming_the_key(
    tmp_path: Path, annotations: str, expected: str
) -> None:
    text = f"{EMBEDDED}mirror:\n  root: a\n  project_id: {PID}\n  annotations: {annotations}\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source=tmp_path / "c.yaml", environ={})
    assert expected in str(caught.value)
    assert f"{tmp_path / 'c.yaml'}:" in str(caught.value)


def test_folder_tag_keys_in_a_detection_mirror_get_a_warning_naming_key_and_line(
    tmp_path: Path,
) -> None:
    text = (
        f"{EMBEDDED}mirrors:\n"
        f"  - root: a\n    project_id: {PID}\n"
        "    annotations: {format: yolo}\n"
        "    tags:\n"
        "      mode: leaf\n"  # line 7
        "      rename: {cat: Cat}\n"  # still applies to class names: no warning
        "      negative_folder: _neg\n"  # line 9
        f"  - root: b\n    project_id: {PID2}\n    name: two\n"
        "    tags: {mode: leaf}\n"  # a classification mirror: no warning
    )
    source = tmp_path / "c.yaml"
    config = parse_config(text, source=source, environ={})
    assert config.warnings == (
        f"{source}:7: mirrors[0].tags.mode is ignored in a detection mirror (annotations.format: "
        "yolo): folders carry no tags there, the boxes' class names are the tags",
        f"{source}:9: mirrors[0].tags.negative_folder is ignored in a detection mirror "
        "(annotations.format: yolo): folders carry no tags there, the boxes' class names are the "
        "tags",
    )


def test_prepare_is_off_by_default_and_a_mapping_turns_it_on_with_its_defaults(
    tmp_path: Path,
) -> None:
    (off,) = parse_config(EMBEDDED + MIRROR, source=tmp_path / "c.yaml").mirrors
    assert off.files.prepare is None
    text = EMBEDDED + f"mirror: {{root: a, project_id: {PID}, files: {{prepare: {{}}}}}}\n"
    (on,) = parse_config(text, source=tmp_path / "c.yaml").mirrors
    prepare = on.files.prepare
    assert prepare is not None
    assert prepare.formats == ("webp", "tiff", "heif", "avif")
    assert (prepare.downscale, prepare.orient, prepare.jpeg_quality) == (True, True, 90)


@pytest.mark.parametrize(
    ("value", "key", "message"),
    [
        ("{formats: [webp, jxl]}", "files.prepare.formats", "expected some of webp, tiff"),
        ("{jpeg_quality: 100}", "files.prepare.jpeg_quality", "from 50 to 95, got 100"),
        ("{jpeg_quality: 49}", "files.prepare.jpeg_quality", "from 50 to 95, got 49"),
        ("{resize: true}", "files.prepare.resize", "unknown key"),
        ("yes", "files.prepare", "expected a mapping"),
    ],
)
def test_bad_prepare_settings_are_refused_naming_the_key(
    tmp_path: Path, value: str, key: str, message: str
) -> None:
    text = EMBEDDED + f"mirror: {{root: a, project_id: {PID}, files: {{prepare: {value}}}}}\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source=tmp_path / "c.yaml")
    (problem,) = caught.value.problems
    assert problem.key == f"mirror.{key}" and message in problem.message, str(problem)
