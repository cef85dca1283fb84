"""The vendored spec (docs/spec/) is the official one, byte for byte, and so is its digest."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

DOCS_SPEC = Path(__file__).resolve().parents[1] / "docs" / "spec"
SHARED_SPEC = Path(__file__).resolve().parents[2] / "shared" / "spec"
VENDORED = DOCS_SPEC / "customvision-training-v3.3.json"
SHARED = SHARED_SPEC / "customvision-training-v3.3.json"
SHA256 = "3173e420d5a9de29ccb810f99135bd90e1585496edfad2f560bffe42397503c4"


def test_vendored_spec_has_the_official_digest() -> None:
    assert hashlib.sha256(VENDORED.read_bytes()).hexdigest() == SHA256


def test_vendored_spec_equals_the_shared_copy() -> None:
    if not SHARED.exists():
        pytest.skip(f"no shared spec at {SHARED}")
    assert VENDORED.read_bytes() == SHARED.read_bytes()


@pytest.mark.parametrize("name", ["DIGEST.md", "SOURCES.md"])
def test_vendored_digest_equals_the_shared_copy(name: str) -> None:
    """Comments cite docs/spec/DIGEST.md; it must say what the shared digest says."""
    if not (SHARED_SPEC / name).exists():
        pytest.skip(f"no shared {name} at {SHARED_SPEC}")
    assert (DOCS_SPEC / name).read_bytes() == (SHARED_SPEC / name).read_bytes()
