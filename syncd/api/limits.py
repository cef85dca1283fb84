"""Every documented limit of the Custom Vision Training API v3.3, and the batching that obeys them.

Public names: the limit constants below (each with the spec's wording; the two the scanner and
planner share come from syncd.core.limits), `chunked`, `region_batches`, `upload_batches`,
`UploadFormat`, `encoded_size`, `tag_pair_batches`, `tag_removal_batches`.

The constants are the one place the client learns a limit; every method that takes many items
splits them here, so callers never chunk. Quotes are from customvision-training-v3.3.json
(«…» spec text, [S] schema keyword) or the Microsoft docs ([D]); see
docs/spec/DIGEST.md §4.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TypeVar
from uuid import UUID

from syncd.core.limits import MAX_IMAGE_BYTES as MAX_IMAGE_BYTES
from syncd.core.limits import MAX_REGIONS_PER_IMAGE as MAX_REGIONS_PER_IMAGE
from syncd.core.limits import MAX_TAGS_PER_IMAGE as MAX_TAGS_PER_IMAGE

# --- Image creation -------------------------------------------------------------------------
# «When using multipart multiple image files can be sent at once, with a maximum of 64 files.»
MAX_IMAGES_PER_UPLOAD = 64
# «The tags ids with which to tag each image. Limited to 20.» / «limit of 64 images and 20 tags»
MAX_TAGS_PER_UPLOAD = 20
# MAX_IMAGE_BYTES («… Supports images up to 6MB.», read as 6 MiB) and MAX_TAGS_PER_IMAGE ([D]
# «Max number of tags per image (classification) 100») are imported above from syncd.core.limits:
# the scanner and the planner obey the same two, written down once.

# --- Image tags -----------------------------------------------------------------------------
# CreateImageTags body: «Batch of image tags. Limited to 128 tags per batch.» (prose only)
MAX_TAG_PAIRS_PER_ADD = 128
# DeleteImageTags imageIds: «Image ids. Limited to 64 images.» [S maxItems 64]
MAX_IMAGES_PER_TAG_REMOVAL = 64
# DeleteImageTags tagIds: «Tags to be deleted from the specified images. Limited to 20 tags.»
MAX_TAGS_PER_TAG_REMOVAL = 20

# --- Image regions (object detection; docs/spec/REGIONS.md) ---------------------------------
# CreateImageRegions: «There is a limit of 64 entries in the batch.» (no maxItems in the schema)
MAX_REGIONS_PER_CREATE = 64
# DeleteImageRegions regionIds: «Regions to delete. Limited to 64.» [S maxItems 64]
MAX_REGION_IDS_PER_DELETE = 64
# MAX_REGIONS_PER_IMAGE (300, [D] «Max regions per image, training (OD)») is imported above from
# syncd.core.limits: the planner reports an annotation over it before anything is sent.

# --- Deletion, lookup, metadata -------------------------------------------------------------
# DeleteImages imageIds: «Ids of the images to be deleted. Limited to 256 images per batch.»
MAX_IMAGES_PER_DELETE = 256
# GetImagesByIds imageIds: «The list of image ids to retrieve. Limited to 256.»
MAX_IDS_PER_LOOKUP = 256
# UpdateImageMetadata: «There is a limit of 64 images.» (schema says maxItems 256; the text wins)
MAX_IMAGES_PER_METADATA_UPDATE = 64
# Metadata: «Limited to 50 key-value pairs per image.»
MAX_METADATA_PAIRS = 50
# Metadata: «The length of key is limited to 256.»
MAX_METADATA_KEY_LENGTH = 256
# Metadata: «The length of value is limited to 512.»
MAX_METADATA_VALUE_LENGTH = 512

# --- Listing --------------------------------------------------------------------------------
# take: «Maximum number of images to return. Defaults to 50, limited to 256.» [S maximum 256]
MAX_TAKE = 256
# take default [S default 50]
DEFAULT_TAKE = 50
# GetImages/GetTaggedImages tagIds: «A list of tags ids to filter the images. … Limited to 20.»
MAX_TAG_FILTER_IDS = 20

# --- What an answer can make syncd do: its own bounds (the spec sets none) -------------------
# [D] «Training images per project: 5,000 (F0), 100,000 (S0)». No count, listing or walk of one
# project can legitimately go past it, so one that does is a broken answer, not a big project.
MAX_IMAGES_PER_PROJECT = 100_000
# The longest one Retry-After (or retry-after-ms, or «retry after N seconds») may hold requests
# back: the default of `service.max_retry_after`. The service asks ~1 s; a bigger ask is cut.
MAX_RETRY_AFTER_S = 60.0
# The most `service.max_retry_after` may be set to, and the Pacer's own hard cap on any block.
MAX_RETRY_AFTER_LIMIT_S = 600.0
# The biggest JSON answer read. The largest legitimate one is a page of 256 image performances
# in a project at the 500-tag quota: per image ~2 KB of id, dates and URIs, up to 100 own tags
# and a prediction per project tag (500), each ~330 bytes with a 256-character name: ~200 KB,
# so ~51 MB a page. (A page of 256 images: 100 tags and 50 metadata pairs of 256 + 512 characters
# each, ~75 KB an image, ~19 MB.) 64 MiB leaves some room above that; real answers are far smaller.
MAX_JSON_RESPONSE_BYTES = 64 * 1024 * 1024
# The biggest original image downloaded: the 6 MB upload limit plus 1 MiB of margin.
MAX_DOWNLOAD_BYTES = MAX_IMAGE_BYTES + 1024 * 1024

T = TypeVar("T")


def chunked(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Yield consecutive slices of at most `size` items (none for an empty input)."""
    if size < 1:
        raise ValueError(f"chunk size must be positive, got {size}")
    for start in range(0, len(items), size):
        yield items[start : start + size]


class UploadFormat(enum.StrEnum):
    """The two ways to create images from bytes."""

    # POST /images: multipart/form-data, raw bytes, one tag set per call (tagIds query), no metadata
    MULTIPART = "multipart"
    # POST /images/files: JSON ImageFileCreateBatch, base64, per-entry tagIds, batch-level metadata
    FILES = "files"


def encoded_size(data_len: int, upload_format: UploadFormat) -> int:
    """Return roughly how many bytes one image of `data_len` bytes costs on the wire."""
    if upload_format is UploadFormat.FILES:
        # base64: 4 characters per 3 bytes, plus the entry's JSON (name, tagIds) ~ 120 bytes.
        return 4 * ((data_len + 2) // 3) + 120
    # multipart part headers (boundary, Content-Disposition, Content-Type) ~ 160 bytes.
    return data_len + 160


def upload_batches(
    items: Sequence[T],
    *,
    size_of: Callable[[T], int],
    tags_of: Callable[[T], Iterable[UUID]],
    upload_format: UploadFormat,
    max_batch_bytes: int,
) -> list[list[T]]:
    """Split upload items into legal create calls; raise ValueError for an item no call can carry.

    Every batch holds at most MAX_IMAGES_PER_UPLOAD items and, past its first item, stays within
    max_batch_bytes on the wire. A multipart batch shares one tag set (the query's tagIds), so items
    are grouped by tag set first; a files batch carries per-entry tags and mixes freely. Only the
    first MAX_TAGS_PER_UPLOAD tags of an item travel with it (the client adds the rest afterwards).
    """
    groups: dict[tuple[UUID, ...], list[T]] = {}
    for item in items:
        if size_of(item) > MAX_IMAGE_BYTES:
            raise ValueError(f"an image of {size_of(item)} bytes is over {MAX_IMAGE_BYTES}")
        if len(set(tags_of(item))) > MAX_TAGS_PER_IMAGE:
            raise ValueError(f"an image with over {MAX_TAGS_PER_IMAGE} tags")
        key = upload_tags(tags_of(item)) if upload_format is UploadFormat.MULTIPART else ()
        groups.setdefault(key, []).append(item)
    batches: list[list[T]] = []
    for group in groups.values():
        batch: list[T] = []
        batch_bytes = 0
        for item in group:
            cost = encoded_size(size_of(item), upload_format)
            full = len(batch) >= MAX_IMAGES_PER_UPLOAD or (
                batch and batch_bytes + cost > max_batch_bytes
            )
            if full:
                batches.append(batch)
                batch, batch_bytes = [], 0
            batch.append(item)
            batch_bytes += cost
        if batch:
            batches.append(batch)
    return batches


def upload_tags(tag_ids: Iterable[UUID]) -> tuple[UUID, ...]:
    """Return the (sorted, distinct) tag ids that travel with an upload: at most 20."""
    return tuple(sorted(set(tag_ids)))[:MAX_TAGS_PER_UPLOAD]


def extra_tags(tag_ids: Iterable[UUID]) -> tuple[UUID, ...]:
    """Return the tag ids past the upload's 20, to be added by CreateImageTags afterwards."""
    return tuple(sorted(set(tag_ids)))[MAX_TAGS_PER_UPLOAD:]


def tag_pair_batches(pairs: Iterable[T]) -> list[list[T]]:
    """Split (image, tag) pairs, duplicates dropped, into CreateImageTags calls of <= 128 pairs."""
    distinct = list(dict.fromkeys(pairs))
    return [list(chunk) for chunk in chunked(distinct, MAX_TAG_PAIRS_PER_ADD)]


def region_batches(items: Iterable[T], size: int) -> list[list[T]]:
    """Split regions (entries to create, or ids to delete), repeats dropped, into calls of at
    most `size` (MAX_REGIONS_PER_CREATE or MAX_REGION_IDS_PER_DELETE)."""
    distinct = list(dict.fromkeys(items))
    return [list(chunk) for chunk in chunked(distinct, size)]


def tag_removal_batches(
    image_ids: Iterable[UUID], tag_ids: Iterable[UUID]
) -> list[tuple[tuple[UUID, ...], tuple[UUID, ...]]]:
    """Split a removal of tags x images into DeleteImageTags calls (<= 64 images x <= 20 tags)."""
    images = tuple(dict.fromkeys(image_ids))
    tags = tuple(dict.fromkeys(tag_ids))
    return [
        (tuple(image_chunk), tuple(tag_chunk))
        for image_chunk in chunked(images, MAX_IMAGES_PER_TAG_REMOVAL)
        for tag_chunk in chunked(tags, MAX_TAGS_PER_TAG_REMOVAL)
    ]


def check_metadata(metadata: Mapping[str, str] | None) -> None:
    """Raise ValueError if a metadata map breaks the per-image pair, key or value limits."""
    if metadata is None:
        return
    if len(metadata) > MAX_METADATA_PAIRS:
        raise ValueError(f"{len(metadata)} metadata pairs, the limit is {MAX_METADATA_PAIRS}")
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ValueError("metadata keys and values must be strings")
        if not key or len(key) > MAX_METADATA_KEY_LENGTH:
            raise ValueError(f"metadata key {key[:40]!r} must be 1..{MAX_METADATA_KEY_LENGTH} long")
        if len(value) > MAX_METADATA_VALUE_LENGTH:
            raise ValueError(
                f"metadata value for {key[:40]!r} is over {MAX_METADATA_VALUE_LENGTH} characters"
            )
