"""The client's limits match the spec, and its batching never builds an illegal request."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.api import limits
from syncd.api.limits import UploadFormat

SPEC = json.loads(
    (Path(__file__).parents[2] / "docs" / "spec" / "customvision-training-v3.3.json").read_text()
)


def _operation(operation_id: str) -> dict[str, Any]:
    for methods in SPEC["paths"].values():
        for op in methods.values():
            if isinstance(op, dict) and op.get("operationId") == operation_id:
                return op
    raise KeyError(operation_id)


def _parameter(operation_id: str, name: str) -> dict[str, Any]:
    return next(p for p in _operation(operation_id)["parameters"] if p["name"] == name)


@pytest.mark.parametrize(
    ("operation_id", "parameter", "keyword", "constant"),
    [
        ("CreateImagesFromData", "tagIds", "maxItems", limits.MAX_TAGS_PER_UPLOAD),
        ("DeleteImages", "imageIds", "maxItems", limits.MAX_IMAGES_PER_DELETE),
        ("GetImagesByIds", "imageIds", "maxItems", limits.MAX_IDS_PER_LOOKUP),
        ("DeleteImageTags", "imageIds", "maxItems", limits.MAX_IMAGES_PER_TAG_REMOVAL),
        ("DeleteImageTags", "tagIds", "maxItems", limits.MAX_TAGS_PER_TAG_REMOVAL),
        ("GetImages", "tagIds", "maxItems", limits.MAX_TAG_FILTER_IDS),
        ("GetImages", "take", "maximum", limits.MAX_TAKE),
        ("GetImages", "take", "default", limits.DEFAULT_TAKE),
    ],
)
def test_limit_constants_match_the_spec_schema(
    operation_id: str, parameter: str, keyword: str, constant: int
) -> None:
    assert _parameter(operation_id, parameter)[keyword] == constant


def test_prose_only_limits_match_the_spec_text() -> None:
    files = _operation("CreateImagesFromData")["description"]
    assert f"maximum of {limits.MAX_IMAGES_PER_UPLOAD} files" in files
    batch = next(p for p in _operation("CreateImageTags")["parameters"] if p["in"] == "body")
    assert f"Limited to {limits.MAX_TAG_PAIRS_PER_ADD} tags per batch" in batch["description"]
    # UpdateImageMetadata: the text says 64 while the schema says 256; the client keeps to 64.
    metadata = _operation("UpdateImageMetadata")
    assert f"limit of {limits.MAX_IMAGES_PER_METADATA_UPDATE} images" in metadata["description"]
    assert _parameter("UpdateImageMetadata", "imageIds")["maxItems"] == 256
    assert limits.MAX_IMAGES_PER_METADATA_UPDATE < 256


# --- batching properties ----------------------------------------------------------------------

TAG_POOL = [UUID(int=n) for n in range(1, 131)]
tag_sets = st.lists(st.sampled_from(TAG_POOL), max_size=limits.MAX_TAGS_PER_IMAGE).map(tuple)
# (index, size, tags): sizes up to the image limit, so byte-bounded batches get exercised.
upload_items = st.lists(
    st.tuples(st.integers(0, limits.MAX_IMAGE_BYTES), tag_sets), max_size=400
).map(lambda xs: [(n, size, tags) for n, (size, tags) in enumerate(xs)])


@settings(max_examples=150, deadline=None)
@given(
    items=upload_items,
    upload_format=st.sampled_from(UploadFormat),
    max_batch_bytes=st.sampled_from([1, 1 << 20, 16 << 20, 64 << 20]),
)
@pytest.mark.slow
def test_upload_batches_are_always_legal(
    items: list[tuple[int, int, tuple[UUID, ...]]],
    upload_format: UploadFormat,
    max_batch_bytes: int,
) -> None:
    batches = limits.upload_batches(
        items,
        size_of=lambda item: item[1],
        tags_of=lambda item: item[2],
        upload_format=upload_format,
        max_batch_bytes=max_batch_bytes,
    )
    # Every item goes exactly once.
    assert sorted(n for batch in batches for n, _, _ in batch) == list(range(len(items)))
    for batch in batches:
        assert 1 <= len(batch) <= limits.MAX_IMAGES_PER_UPLOAD
        for _, _, tags in batch:
            sent = limits.upload_tags(tags)
            assert len(sent) <= limits.MAX_TAGS_PER_UPLOAD
            # What is not sent is added afterwards: nothing is lost, nothing twice.
            assert set(sent) | set(limits.extra_tags(tags)) == set(tags)
            assert not set(sent) & set(limits.extra_tags(tags))
        if upload_format is UploadFormat.MULTIPART:
            # One query tagIds per call: every item of the batch must share it.
            assert len({limits.upload_tags(tags) for _, _, tags in batch}) == 1
        wire = sum(limits.encoded_size(size, upload_format) for _, size, _ in batch)
        assert len(batch) == 1 or wire <= max_batch_bytes


def test_upload_batches_reject_what_no_call_can_carry() -> None:
    with pytest.raises(ValueError, match="bytes"):
        limits.upload_batches(
            [limits.MAX_IMAGE_BYTES + 1],
            size_of=lambda size: size,
            tags_of=lambda _: (),
            upload_format=UploadFormat.FILES,
            max_batch_bytes=1 << 30,
        )


def test_multipart_splits_by_tag_set_and_files_mixes_them() -> None:
    items = [(n, 100, (TAG_POOL[n % 3],)) for n in range(30)]
    kwargs: dict[str, Any] = {
        "size_of": lambda item: item[1],
        "tags_of": lambda item: item[2],
        "max_batch_bytes": 1 << 20,
    }
    assert len(limits.upload_batches(items, upload_format=UploadFormat.MULTIPART, **kwargs)) == 3
    assert len(limits.upload_batches(items, upload_format=UploadFormat.FILES, **kwargs)) == 1


ids = st.lists(st.integers(0, 2000).map(lambda n: UUID(int=n)), max_size=700)


@settings(max_examples=150, deadline=None)
@given(images=ids, tags=ids)
def test_tag_pair_batches_are_legal_and_complete(images: list[UUID], tags: list[UUID]) -> None:
    pairs = list(zip(images, tags, strict=False))
    batches = limits.tag_pair_batches(pairs)
    assert all(1 <= len(b) <= limits.MAX_TAG_PAIRS_PER_ADD for b in batches)
    flat = [p for b in batches for p in b]
    assert len(flat) == len(set(flat)) and set(flat) == set(pairs)


@settings(max_examples=150, deadline=None)
@given(images=ids, tags=st.lists(st.sampled_from(TAG_POOL), max_size=60))
def test_tag_removal_batches_are_legal_and_complete(images: list[UUID], tags: list[UUID]) -> None:
    batches = limits.tag_removal_batches(images, tags)
    covered: list[tuple[UUID, UUID]] = []
    for image_chunk, tag_chunk in batches:
        assert 1 <= len(image_chunk) <= limits.MAX_IMAGES_PER_TAG_REMOVAL
        assert 1 <= len(tag_chunk) <= limits.MAX_TAGS_PER_TAG_REMOVAL
        covered.extend((i, t) for i in image_chunk for t in tag_chunk)
    assert len(covered) == len(set(covered))
    assert set(covered) == {(i, t) for i in images for t in tags}


@given(items=st.lists(st.integers(), max_size=600), size=st.integers(1, 300))
def test_chunked_keeps_order_and_size(items: list[int], size: int) -> None:
    chunks = list(limits.chunked(items, size))
    assert [x for c in chunks for x in c] == items
    assert all(1 <= len(c) <= size for c in chunks)


@pytest.mark.parametrize(
    "metadata",
    [
        {f"k{n}": "v" for n in range(limits.MAX_METADATA_PAIRS + 1)},
        {"k" * (limits.MAX_METADATA_KEY_LENGTH + 1): "v"},
        {"k": "v" * (limits.MAX_METADATA_VALUE_LENGTH + 1)},
        {"": "v"},
    ],
)
def test_metadata_over_the_limits_is_refused_before_sending(metadata: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        limits.check_metadata(metadata)


def test_metadata_at_the_limits_is_accepted() -> None:
    limits.check_metadata(
        {
            f"{n:0{limits.MAX_METADATA_KEY_LENGTH}d}": "v" * limits.MAX_METADATA_VALUE_LENGTH
            for n in range(limits.MAX_METADATA_PAIRS)
        }
    )
