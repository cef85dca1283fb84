"""Config and secrets: a key in the wrong place is never echoed, a malformed key is refused,
plain http:// leaves this machine only when the user says so, and metrics off loopback warn."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.config import ConfigError, parse_config

PID = "11111111-2222-3333-4444-555555555555"
# Shaped like Azure keys: 32 hex characters, and a longer base62 one.
HEX_KEY = "9f8e7d6c5b4a39281706f5e4d3c2b1a0"
LONG_KEY = "7Qz3Kd9LmN2pR5sT8vW1xY4aB6cD0eFgH2jK5mN8pQ1rS4tV7wX0yZ3bC6dE9f"
KEY_PIECES = (HEX_KEY, HEX_KEY[:10], HEX_KEY[-10:], LONG_KEY, LONG_KEY[:10], LONG_KEY[-10:])


def _problems(text: str, tmp_path: Path, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source=tmp_path / "c.yaml", environ=environ or {})
    return str(caught.value)


def _assert_not_echoed(message: str) -> None:
    for piece in KEY_PIECES:
        assert piece not in message, message


@pytest.mark.parametrize("key", [HEX_KEY, LONG_KEY])
@pytest.mark.parametrize(
    ("where", "yaml_text"),
    [
        ("mirror.project_id", "mirror: {{root: a, project_id: {key}}}\n"),
        (
            "service.endpoint",
            "service: {{endpoint: {key}}}\nmirror: {{root: a, project_id: PID}}\n",
        ),
        (
            "service.endpoint",
            "service: {{endpoint: 'https://x:{key}@h/'}}\nmirror: {{root: a, project_id: PID}}\n",
        ),
        (
            "service.training_key.env",
            "service: {{training_key: {{env: {key}}}}}\nmirror: {{root: a, project_id: PID}}\n",
        ),
        (
            "mirror.tags.negative_tag_name",
            "mirror: {{root: a, project_id: PID, tags: {{negative_tag_name: ' {key}'}}}}\n",
        ),
        (
            "mirror.tags.rename",
            "mirror: {{root: a, project_id: PID, tags: {{rename: {{x: ' {key}'}}}}}}\n",
        ),
        ("mirror.name", "mirror: {{root: a, project_id: PID, name: '{key} x'}}\n"),
        ("service.", "service: {{{key}: 1}}\nmirror: {{root: a, project_id: PID}}\n"),
        (
            "service.training_key.value",
            "service: {{training_key: {{value: '{key} {key}'}}}}\n"
            "mirror: {{root: a, project_id: PID}}\n",
        ),
    ],
)
def test_a_key_pasted_into_the_wrong_field_is_refused_without_being_echoed(
    tmp_path: Path, where: str, yaml_text: str, key: str
) -> None:
    message = _problems(yaml_text.format(key=key).replace("PID", PID), tmp_path)
    assert where in message
    _assert_not_echoed(message)


def test_a_project_id_must_be_a_uuid_with_dashes_so_a_hex_key_is_no_project_id(
    tmp_path: Path,
) -> None:
    message = _problems(f"mirror: {{root: a, project_id: {HEX_KEY}}}\n", tmp_path)
    assert "mirror.project_id: expected a project id" in message
    _assert_not_echoed(message)
    ok = parse_config(
        f"service: {{endpoint: embedded}}\nmirror: {{root: a, project_id: '{PID.upper()}'}}\n",
        environ={},
    )
    assert ok.mirrors[0].project_id == PID.upper()


def test_a_malformed_key_value_in_the_yaml_is_a_config_problem_not_a_crash(tmp_path: Path) -> None:
    text = (
        f'service: {{training_key: {{value: "{HEX_KEY}\\n{HEX_KEY}"}}}}\n'
        f"mirror: {{root: a, project_id: {PID}}}\n"
    )
    message = _problems(text, tmp_path)
    assert "service.training_key.value" in message and "line break" in message
    _assert_not_echoed(message)


# --- plain http -----------------------------------------------------------------------------


def _config(endpoint: str, extra: str = "") -> str:
    return f"service: {{endpoint: '{endpoint}'{extra}}}\nmirror: {{root: a, project_id: {PID}}}\n"


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://example.com",
        "http://10.0.0.5:5000/",
        "http://[2001:db8::1]:80",
        "http://localhost.example.com",
        "HTTP://example.com",
    ],
)
def test_plain_http_to_another_host_is_refused_naming_the_key_that_allows_it(
    tmp_path: Path, endpoint: str
) -> None:
    message = _problems(_config(endpoint), tmp_path)
    assert "service.endpoint" in message and "service.allow_insecure_http" in message
    assert "https" in message
    config = parse_config(_config(endpoint, ", allow_insecure_http: true"), environ={})
    assert config.service.endpoint == endpoint


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://127.0.0.1:5000",
        "http://127.9.8.7",
        "http://localhost:8080/",
        "http://[::1]:5000",
        "https://example.com",
        "embedded",
    ],
)
def test_loopback_https_and_embedded_endpoints_are_fine(endpoint: str) -> None:
    assert parse_config(_config(endpoint), environ={}).service.endpoint == endpoint


def test_the_environment_override_goes_through_the_same_check(tmp_path: Path) -> None:
    message = _problems(
        _config("embedded"), tmp_path, environ={"SYNCD_ENDPOINT": "http://192.168.1.9"}
    )
    assert "environment variable SYNCD_ENDPOINT" in message
    assert "service.allow_insecure_http" in message


# --- metrics address --------------------------------------------------------------------------


@pytest.mark.parametrize("address", ["0.0.0.0:9464", "192.168.1.9:9464", "[::]:9464"])
def test_a_metrics_address_off_loopback_warns_what_it_exposes(address: str) -> None:
    text = (
        f"service: {{endpoint: embedded}}\ndaemon: {{metrics_address: '{address}'}}\n"
        f"mirror: {{root: a, project_id: {PID}}}\n"
    )
    config = parse_config(text, environ={})
    (warning,) = config.warnings
    assert "daemon.metrics_address" in warning and "not a loopback address" in warning
    assert "no authentication" in warning


@pytest.mark.parametrize("address", ["127.0.0.1:9464", ":9464", "localhost:9464", "[::1]:9464"])
def test_a_loopback_metrics_address_does_not_warn(address: str) -> None:
    text = (
        f"service: {{endpoint: embedded}}\ndaemon: {{metrics_address: '{address}'}}\n"
        f"mirror: {{root: a, project_id: {PID}}}\n"
    )
    assert parse_config(text, environ={}).warnings == ()


def test_the_endpoint_flag_goes_through_the_plain_http_check() -> None:
    from syncd.config import check_value

    problem = check_value("service.endpoint", "http://example.com")
    assert problem is not None and "service.allow_insecure_http" in problem
    assert check_value("service.endpoint", "http://example.com", allow_insecure_http=True) is None
    assert check_value("service.endpoint", "http://127.0.0.1:5000") is None
