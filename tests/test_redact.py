"""syncd.redact: the key is scrubbed out of text in every form a server could echo it in."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote, quote_plus

import pytest

from syncd.redact import (
    REDACTED,
    encoded_forms,
    looks_like_key,
    mask_key_like,
    scrub,
    scrub_json,
)

KEY = "tk-TEST-0123456789abcdef-SECRET"
AZURE_KEY = "0123456789abcdef0123456789abcdef"


def _percent_every_char(text: str, *, upper: bool) -> str:
    out = "".join(f"%{b:02X}" for b in text.encode())
    return out if upper else out.lower()


FORMS: dict[str, str] = {
    "raw": KEY,
    "upper case": KEY.upper(),
    "json": json.dumps(KEY)[1:-1],
    "json \\u escapes": "".join(f"\\u{ord(c):04x}" for c in KEY),
    "json \\u escapes, upper hex": "".join(f"\\u{ord(c):04X}" for c in KEY),
    "json twice": json.dumps(json.dumps("".join(f"\\u{ord(c):04x}" for c in KEY)))[1:-1],
    "backslash \\x": "".join(f"\\x{ord(c):02x}" for c in KEY),
    "backslash before each char": "".join(f"\\{c}" for c in KEY),
    "percent, as quote() does": quote(KEY, safe=""),
    "percent, as quote_plus() does": quote_plus(KEY),
    "percent every char, upper": _percent_every_char(KEY, upper=True),
    "percent every char, lower": _percent_every_char(KEY, upper=False),
    "percent twice": quote(_percent_every_char(KEY, upper=True), safe=""),
    "percent, mixed with raw": KEY[:10] + _percent_every_char(KEY[10:20], upper=False) + KEY[20:],
    "html entities": "".join(f"&#{ord(c)};" for c in KEY),
    "base64": base64.b64encode(KEY.encode()).decode(),
    "base64 urlsafe": base64.urlsafe_b64encode(KEY.encode()).decode(),
    "base64 inside a Basic header": base64.b64encode(f"user:{KEY}".encode()).decode(),
    "base64 at offset 2": base64.b64encode(f"ab{KEY}xyz".encode()).decode(),
}


@pytest.mark.parametrize("form", list(FORMS))
def test_every_form_of_the_key_is_scrubbed_from_the_middle_of_a_text(form: str) -> None:
    leaked = FORMS[form]
    text = f"Access denied for key '{leaked}', try again."

    scrubbed = scrub(text, (KEY,))

    assert leaked not in scrubbed
    assert REDACTED in scrubbed
    assert scrubbed.startswith("Access denied for key '")
    assert scrubbed.endswith("', try again.")


@pytest.mark.parametrize("cut", [8, 12, 20, len(KEY) - 1])
def test_a_text_cut_inside_the_key_loses_the_prefix_left_at_its_end(cut: int) -> None:
    text = "bad key: " + KEY[:cut]
    assert scrub(text, (KEY,)) == "bad key: " + REDACTED
    percent = "bad key: " + _percent_every_char(KEY, upper=True)[: 3 * cut]
    assert scrub(percent, (KEY,)) == "bad key: " + REDACTED


def test_a_text_that_starts_inside_the_key_loses_the_suffix_at_its_start() -> None:
    assert scrub(KEY[-10:] + "' refused", (KEY,)) == REDACTED + "' refused"


def test_a_beginning_or_end_of_the_key_is_scrubbed_anywhere_in_the_text() -> None:
    text = f"key '{KEY[:12]}...' or '...{KEY[-9:]}' is invalid"
    assert scrub(text, (KEY,)) == f"key '{REDACTED}...' or '...{REDACTED}' is invalid"


def test_short_pieces_and_ordinary_text_are_left_alone() -> None:
    text = f"Not found: project tk-TEST, tag {KEY[:5]}, id 0123 ok"
    assert scrub(text, (KEY,)) == text
    assert scrub("", (KEY,)) == ""
    assert scrub("anything", ()) == "anything"


def test_scrub_json_cleans_every_string_key_and_value_and_keeps_the_rest() -> None:
    body = {
        "name": f"tag {KEY}",
        KEY: [1, 2.5, None, True, {"nested": quote_plus(KEY)}],
        "ok": "plain",
    }
    cleaned = scrub_json(body, (KEY,))
    text = json.dumps(cleaned)
    assert KEY not in text and quote_plus(KEY) not in text
    assert cleaned["ok"] == "plain" and cleaned["name"] == f"tag {REDACTED}"
    assert cleaned[REDACTED][:4] == [1, 2.5, None, True]


def test_the_encoded_forms_include_the_raw_key_and_its_base64() -> None:
    forms = encoded_forms(KEY)
    assert KEY in forms and base64.b64encode(KEY.encode()).decode() in forms
    assert all(f for f in forms)


@pytest.mark.parametrize(
    "value", [AZURE_KEY, AZURE_KEY.upper(), KEY, "Ab3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF"]
)
def test_key_like_values_are_recognised(value: str) -> None:
    assert looks_like_key(value)
    assert value not in mask_key_like(f"got {value!r} here")


@pytest.mark.parametrize(
    "value",
    [
        "https://myresource.cognitiveservices.azure.com/",
        "SYNCD_TRAINING_KEY",
        "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0",
        "/home/user/photos/2024/summer",
        "Negative",
        "my-mirror.v2",
    ],
)
def test_ordinary_values_do_not_look_like_keys(value: str) -> None:
    assert not looks_like_key(value)
    assert mask_key_like(f"got {value!r}") == f"got {value!r}"


def test_the_log_processor_scrubs_every_form_from_values_and_the_rendered_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import structlog

    from syncd.log import configure_logging, redact_secret

    saved = structlog.get_config()
    try:
        redact_secret(KEY)
        configure_logging(json=True)
        log = structlog.get_logger(component="test")

        class Leaky:
            def __repr__(self) -> str:
                return f"Leaky({quote_plus(KEY)})"

        log.warning("echo", **{name.replace(" ", "_"): f"x {f} y" for name, f in FORMS.items()})
        log.warning("object", thing=Leaky(), cut="ends with " + KEY[:15])
        err = capsys.readouterr().err
    finally:
        structlog.configure(**saved)
    assert err.count("\n") == 2
    for name, form in FORMS.items():
        assert form not in err and json.dumps(form)[1:-1] not in err, name
    assert KEY[:12] not in err and "***" in err
