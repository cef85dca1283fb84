"""The vendored spec is the official one, byte for byte."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

VENDORED = Path(__file__).parent / "spec" / "customvision-training-v3.3.json"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "spec" / "customvision-training-v3.3.json"
SHA256 = "3173e420d5a9de29ccb810f99135bd90e1585496edfad2f560bffe42397503c4"


def test_vendored_spec_has_the_official_digest() -> None:
    assert hashlib.sha256(VENDORED.read_bytes()).hexdigest() == SHA256


def test_vendored_spec_equals_the_shared_copy() -> None:
    if not SHARED.exists():
        pytest.skip(f"no shared spec at {SHARED}")
    assert VENDORED.read_bytes() == SHARED.read_bytes()
