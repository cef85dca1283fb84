"""Every limit the emulator enforces, each with the spec's words: per-call limits (batch sizes,
paging, metadata lengths), request body caps, and the per-account quotas.

Public names: `Quotas`, `DEFAULT_QUOTAS`, `DEFAULT_TRAINING_SECONDS`, `MAX_IMAGES_PER_BATCH`,
`MAX_TAGS_PER_BATCH`, `MAX_IDS`, `MAX_TAKE`, `DEFAULT_TAKE`, `MAX_TAG_PAIRS`, `MAX_UNTAG_IMAGES`,
`MAX_METADATA_IDS`, `MAX_PERFORMANCE_TAGS`, `METADATA_MAX_PAIRS`, `METADATA_MAX_KEY`,
`METADATA_MAX_VALUE`, `MAX_IMAGE_SIDE_PX`, `MAX_ASPECT_RATIO`, `MAX_REGIONS_PER_IMAGE`,
`MAX_REGIONS_PER_BATCH`, `MAX_REGION_IDS`, `REGION_EDGE_TOLERANCE`, `MAX_JSON_BODY_BYTES`,
`IMAGE_FRAMING_BYTES`, `upload_body_limits`, `Tier`, `TIERS`.

The emulator reads the spec on its own (see design.md): nothing here comes from `syncd.api`.
Standard library only, so that `syncd --help` (options.py reads the quota defaults) stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass

# --- per call ---------------------------------------------------------------------------------

MAX_IMAGES_PER_BATCH = 64  # «with a maximum of 64 files» / «limit of 64 images and 20 tags»
MAX_TAGS_PER_BATCH = 20  # «Limited to 20.» (tagIds on create and list calls)
MAX_IDS = 256  # GetImagesByIds, DeleteImages: maxItems 256
MAX_TAKE = 256  # take: «Defaults to 50, limited to 256.»
DEFAULT_TAKE = 50
MAX_TAG_PAIRS = 128  # CreateImageTags: «Limited to 128 tags per batch.»
MAX_UNTAG_IMAGES = 64  # DeleteImageTags imageIds: maxItems 64
MAX_METADATA_IDS = 64  # UpdateImageMetadata: «There is a limit of 64 images.» (schema says 256)
MAX_PERFORMANCE_TAGS = 20  # GetImagePerformances tagIds: «Limited to 20.» (count: no limit)
METADATA_MAX_PAIRS = 50  # «Limited to 50 key-value pairs per image.»
METADATA_MAX_KEY = 256  # «The length of key is limited to 256.»
METADATA_MAX_VALUE = 512  # «The length of value is limited to 512.»

# --- regions (object detection; docs/spec/REGIONS.md) ------------------------------------------

# An image the service refuses for its shape (limits and quotas, DIGEST.md §6). The per-image
# status has no dimension code, so both answer ErrorImageSize, the one status about size.
MAX_IMAGE_SIDE_PX = 10_240  # «Max image height/width | 10,240 px»
MAX_ASPECT_RATIO = 25  # «Aspect ratio shouldn't be larger than 25:1»
MAX_REGIONS_PER_IMAGE = 300  # «Max regions per image, training | 300» (limits and quotas [D])
MAX_REGIONS_PER_BATCH = 64  # CreateImageRegions: «There is a limit of 64 entries in the batch.»
MAX_REGION_IDS = 64  # DeleteImageRegions regionIds: «Limited to 64.» (maxItems 64)
# Regions are normalized to the image ([0, 1]); a box may pass an edge by this much, so that a
# client's float rounding (x / width + w / width) does not turn an edge-touching box into a
# refusal. The service stores float32 (~7 digits), so it cannot tell such boxes apart either.
REGION_EDGE_TOLERANCE = 1e-6

# --- request bodies ---------------------------------------------------------------------------
# The service documents no request size limit (docs/spec/DIGEST.md has none), so each cap is
# the largest legal request of its route plus room for framing: a body over it is refused with
# 413 before it is read if its Content-Length says so, else as soon as it streams past the cap.

MAX_JSON_BODY_BYTES = 1024 * 1024  # the largest legal JSON call (not a create) is ~0.3 MB
BATCH_FRAMING_BYTES = 1024 * 1024  # a create batch's own fields: 20 tag ids, 50 metadata pairs
IMAGE_FRAMING_BYTES = 16 * 1024  # one image's multipart headers, or its JSON name and tag ids


def upload_body_limits(max_image_bytes: int) -> tuple[int, int]:
    """Return the body caps of CreateImagesFromData (raw images) and CreateImagesFromFiles (base64
    in JSON): a full batch of images of max_image_bytes, with its framing."""
    base64_bytes = 4 * -(-max_image_bytes // 3)
    return (
        BATCH_FRAMING_BYTES + MAX_IMAGES_PER_BATCH * (max_image_bytes + IMAGE_FRAMING_BYTES),
        BATCH_FRAMING_BYTES + MAX_IMAGES_PER_BATCH * (base64_bytes + IMAGE_FRAMING_BYTES),
    )


# --- per account --------------------------------------------------------------------------------

DEFAULT_TRAINING_SECONDS = 2.0  # not a limit: how long the simulated training takes


@dataclass(frozen=True)
class Quotas:
    """Per-account limits; the defaults are the S0 tier's, from the service's "limits and quotas"
    table (docs/spec/DIGEST.md §6)."""

    max_projects: int = 100  # «Projects | 2 | 100»
    max_images_per_project: int = 100_000  # «Training images per project | 5,000 | 100,000»
    max_tags_per_project: int = 500  # «Tags / project | 50 | 500»
    max_tags_per_image: int = 100  # «Max tags per image (classification) | 100 | 100»
    max_image_bytes: int = 6 * 1024 * 1024  # «Max image size, training upload | 6 MB»
    max_iterations_per_project: int = 20  # «Iterations | 20 | 20»
    # Custom Vision asks for at least 5 images per tag before it trains a classifier.
    min_images_per_tag: int = 5
    # ... and 15 per tag before it trains a detector: «BadRequestDetectionTrainingValidationFailed
    # / Not enough images for training» below that (MicrosoftLearning/AI-102-AIEngineer #173).
    min_images_per_detection_tag: int = 15


DEFAULT_QUOTAS = Quotas()


@dataclass(frozen=True)
class Tier:
    """A pricing tier: its quotas and its call rates (docs/spec/DIGEST.md §6)."""

    quotas: Quotas
    tps: float  # «Other API calls (transactions per second) | 10 | 10»
    train_tps: float  # «TrainProject (API calls per second) | 2 | 10»
    # Image-creating calls: the table gives no figure; F0 users report 429s on
    # CreateImagesFromData near 2 per second (DIGEST §6, «Anecdotal»), so F0 holds them to 2.
    upload_tps: float | None


TIERS = {
    "F0": Tier(
        quotas=Quotas(max_projects=2, max_images_per_project=5_000, max_tags_per_project=50),
        tps=10.0,
        train_tps=2.0,
        upload_tps=2.0,
    ),
    "S0": Tier(quotas=Quotas(), tps=10.0, train_tps=10.0, upload_tps=None),
}
