"""Small frozen records for what the Training API takes and returns, parsed from its JSON.

Public names: Project, Tag, TagType, Image, TaggingStatus, Order, UploadItem, UploadStatus,
UploadResult, TagPair, TagAddResult, MetadataStatus, MetadataResult, Iteration, IterationStatus,
TrainingType, Prediction, ImagePerformance, DomainType, Domain, BoundingBox, ImageRegion,
NewRegion, RegionEntry, RegionAddResult, parse_project, parse_tag, parse_image, parse_domain,
parse_iteration, parse_image_performance.

Object detection (docs/spec/REGIONS.md): an image's `regions` ([ImageRegion]: regionId, tagId,
tagName, left/top/width/height, fractions of the stored image), a new image's regions on an
UploadItem (ImageFileCreateEntry.regions), CreateImageRegions' entries and summary, a domain's
type, and a prediction's `boundingBox`. The service echoes coordinates through float32 and sends
`tagName: null` in create answers [R]; both are read as they come (comparison with a tolerance is
syncd.core.regions' job).

Parsing is tolerant of what the real service sends (docs/spec/DIGEST.md §2-3, [R]): `tags`
absent on an untagged image, `tagName` null in create answers, `metadata` absent when none was
set, `description` null, unknown enum strings (the spec's enums are `modelAsString`, so new
values may appear). Anything the daemon does not use is left out.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any
from uuid import UUID


class TagType(enum.StrEnum):
    """Tag.type [S enum]."""

    REGULAR = "Regular"
    NEGATIVE = "Negative"
    GENERAL_PRODUCT = "GeneralProduct"


class TaggingStatus(enum.StrEnum):
    """taggingStatus query parameter of GetImages / GetImageCount."""

    ALL = "All"
    TAGGED = "Tagged"
    UNTAGGED = "Untagged"


class Order(enum.StrEnum):
    """orderBy query parameter; the service defaults to newest first."""

    NEWEST = "Newest"
    OLDEST = "Oldest"


class UploadStatus(enum.StrEnum):
    """ImageCreateStatus [S enum], per image of a create call."""

    OK = "OK"
    OK_DUPLICATE = "OKDuplicate"
    ERROR_SOURCE = "ErrorSource"
    ERROR_IMAGE_FORMAT = "ErrorImageFormat"
    ERROR_IMAGE_SIZE = "ErrorImageSize"
    ERROR_STORAGE = "ErrorStorage"
    ERROR_LIMIT_EXCEED = "ErrorLimitExceed"
    ERROR_TAG_LIMIT_EXCEED = "ErrorTagLimitExceed"
    ERROR_REGION_LIMIT_EXCEED = "ErrorRegionLimitExceed"
    ERROR_UNKNOWN = "ErrorUnknown"
    ERROR_NEGATIVE_AND_REGULAR_TAG_ON_SAME_IMAGE = "ErrorNegativeAndRegularTagOnSameImage"

    @classmethod
    def parse(cls, value: object) -> UploadStatus:
        """Return the status for a wire value; an unknown one counts as ErrorUnknown."""
        try:
            return cls(str(value))
        except ValueError:
            return cls.ERROR_UNKNOWN


class MetadataStatus(enum.StrEnum):
    """ImageMetadataUpdateEntry.status [S enum]."""

    OK = "OK"
    ERROR_IMAGE_NOT_FOUND = "ErrorImageNotFound"
    ERROR_LIMIT_EXCEED = "ErrorLimitExceed"
    ERROR_UNKNOWN = "ErrorUnknown"

    @classmethod
    def parse(cls, value: object) -> MetadataStatus:
        """Return the status for a wire value; an unknown one counts as ErrorUnknown."""
        try:
            return cls(str(value))
        except ValueError:
            return cls.ERROR_UNKNOWN


class DomainType(enum.StrEnum):
    """Domain.type [S enum DomainType]: what kind of project a domain makes."""

    CLASSIFICATION = "Classification"
    OBJECT_DETECTION = "ObjectDetection"


@dataclass(frozen=True)
class Domain:
    """A domain of the resource (GetDomains); `type` is a DomainType value, or whatever new
    string the service sends (the enum is modelAsString)."""

    id: UUID
    name: str
    type: str

    @property
    def detection(self) -> bool:
        return self.type == DomainType.OBJECT_DETECTION


@dataclass(frozen=True)
class BoundingBox:
    """A box as fractions of the stored image: left, top, width, height [S BoundingBox]."""

    left: float
    top: float
    width: float
    height: float


@dataclass(frozen=True)
class ImageRegion:
    """One region of an image as listings show it [S ImageRegion]."""

    region_id: UUID
    tag_id: UUID
    tag_name: str
    box: BoundingBox


@dataclass(frozen=True)
class NewRegion:
    """A region to create: a tag and a box [S Region]."""

    tag_id: UUID
    box: BoundingBox

    def wire(self) -> dict[str, Any]:
        return {"tagId": str(self.tag_id), **_box_wire(self.box)}


@dataclass(frozen=True)
class RegionEntry:
    """A region to add to an existing image [S ImageRegionCreateEntry]."""

    image_id: UUID
    region: NewRegion

    def wire(self) -> dict[str, Any]:
        return {"imageId": str(self.image_id), **self.region.wire()}


@dataclass(frozen=True)
class RegionAddResult:
    """One CreateImageRegions batch [S ImageRegionCreateSummary]: each created region with its
    image id, the entries the image already had (duplicated), those over the 300 per image."""

    created: tuple[tuple[UUID, ImageRegion], ...]
    duplicated: tuple[RegionEntry, ...]
    exceeded: tuple[RegionEntry, ...]


@dataclass(frozen=True)
class Project:
    """A training project."""

    id: UUID
    name: str
    description: str
    classification_type: str | None
    domain_id: UUID | None
    created: datetime | None


@dataclass(frozen=True)
class Tag:
    """A tag of a project; image_count as the service counted it when it answered."""

    id: UUID
    name: str
    type: TagType
    image_count: int
    description: str = ""


@dataclass(frozen=True)
class Image:
    """An image of a project; URIs are pre-signed and expire (~24 h)."""

    id: UUID
    created: datetime | None
    width: int
    height: int
    tag_ids: frozenset[UUID]
    metadata: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    original_uri: str | None = None
    thumbnail_uri: str | None = None
    regions: tuple[ImageRegion, ...] = ()


@dataclass(frozen=True)
class UploadItem:
    """One image to create: `key` is the caller's name for it (e.g. a relative path). Regions
    travel in the create call itself (only the files format carries them)."""

    key: str
    data: bytes = field(repr=False)
    tag_ids: tuple[UUID, ...] = ()
    regions: tuple[NewRegion, ...] = ()


@dataclass(frozen=True)
class UploadResult:
    """What became of one UploadItem. `image` is None on errors and may be None on OKDuplicate
    (the spec does not promise the existing image comes back; callers resolve it)."""

    key: str
    status: UploadStatus
    image: Image | None = None

    @property
    def ok(self) -> bool:
        """True if the image is in the project now (created, or already there)."""
        return self.status in (UploadStatus.OK, UploadStatus.OK_DUPLICATE)

    @property
    def image_id(self) -> UUID | None:
        return self.image.id if self.image else None


@dataclass(frozen=True)
class TagPair:
    """One (image, tag) association, as CreateImageTags takes it."""

    image_id: UUID
    tag_id: UUID


@dataclass(frozen=True)
class TagAddResult:
    """One CreateImageTags batch: pairs created, already present (duplicated), or over a limit."""

    created: tuple[TagPair, ...]
    duplicated: tuple[TagPair, ...]
    exceeded: tuple[TagPair, ...]


@dataclass(frozen=True)
class MetadataResult:
    """What became of one image in UpdateImageMetadata."""

    image_id: UUID
    status: MetadataStatus
    metadata: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), hash=False)


# --- parsing --------------------------------------------------------------------------------


def parse_time(value: Any) -> datetime | None:
    """Return a datetime for an ISO 8601 string (the service's 'Z' suffix included), else None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _uuid(value: Any) -> UUID | None:
    try:
        return UUID(str(value)) if value else None
    except ValueError:
        return None


def _metadata(value: Any) -> Mapping[str, str]:
    if not isinstance(value, dict):
        return MappingProxyType({})
    return MappingProxyType({str(k): str(v) for k, v in value.items()})


def _box_wire(box: BoundingBox) -> dict[str, float]:
    return {"left": box.left, "top": box.top, "width": box.width, "height": box.height}


def parse_box(body: Mapping[str, Any]) -> BoundingBox:
    """Return a BoundingBox from left/top/width/height (ValueError if they are not numbers)."""
    values = [body[name] for name in ("left", "top", "width", "height")]
    if any(isinstance(v, bool) or not isinstance(v, int | float) for v in values):
        raise ValueError("a box coordinate is not a number")
    return BoundingBox(*(float(v) for v in values))


def parse_region(body: Mapping[str, Any]) -> ImageRegion:
    """Return an ImageRegion from its JSON (tagName may be null in create answers [R])."""
    return ImageRegion(
        region_id=UUID(body["regionId"]),
        tag_id=UUID(body["tagId"]),
        tag_name=str(body.get("tagName") or ""),
        box=parse_box(body),
    )


def parse_region_entry(body: Mapping[str, Any]) -> RegionEntry:
    """Return a RegionEntry (an ImageRegionCreateEntry) from its JSON."""
    return RegionEntry(UUID(body["imageId"]), NewRegion(UUID(body["tagId"]), parse_box(body)))


def parse_domain(body: Mapping[str, Any]) -> Domain:
    """Return a Domain from its JSON."""
    return Domain(id=UUID(body["id"]), name=str(body.get("name") or ""), type=str(body["type"]))


def parse_project(body: Mapping[str, Any]) -> Project:
    """Return a Project from its JSON (KeyError/ValueError if the id or name is missing)."""
    settings = body.get("settings") or {}
    return Project(
        id=UUID(body["id"]),
        name=str(body["name"]),
        description=body.get("description") or "",
        classification_type=settings.get("classificationType"),
        domain_id=_uuid(settings.get("domainId")),
        created=parse_time(body.get("created")),
    )


def parse_tag(body: Mapping[str, Any]) -> Tag:
    """Return a Tag from its JSON."""
    try:
        tag_type = TagType(body.get("type") or "Regular")
    except ValueError:
        tag_type = TagType.REGULAR
    return Tag(
        id=UUID(body["id"]),
        name=str(body["name"]),
        type=tag_type,
        image_count=int(body.get("imageCount") or 0),
        description=body.get("description") or "",
    )


def parse_image(body: Mapping[str, Any]) -> Image:
    """Return an Image from its JSON; absent tags/metadata read as empty."""
    tags = body.get("tags") or []
    return Image(
        id=UUID(body["id"]),
        created=parse_time(body.get("created")),
        width=int(body.get("width") or 0),
        height=int(body.get("height") or 0),
        tag_ids=frozenset(UUID(t["tagId"]) for t in tags if isinstance(t, dict) and t.get("tagId")),
        metadata=_metadata(body.get("metadata")),
        original_uri=body.get("originalImageUri"),
        thumbnail_uri=body.get("thumbnailUri"),
        regions=tuple(parse_region(r) for r in body.get("regions") or [] if isinstance(r, dict)),
    )


# --- training -------------------------------------------------------------------------------


class IterationStatus(enum.StrEnum):
    """Iteration.status: the spec types it as a plain string; these are the values seen."""

    TRAINING = "Training"
    COMPLETED = "Completed"
    FAILED = "Failed"


class TrainingType(enum.StrEnum):
    """TrainProject trainingType [S enum] («default: Regular»)."""

    REGULAR = "Regular"
    ADVANCED = "Advanced"


@dataclass(frozen=True)
class Iteration:
    """A trained model of a project (or one still training)."""

    id: UUID
    name: str
    status: str  # an IterationStatus value, kept as a string (the spec gives no enum)
    created: datetime | None
    trained_at: datetime | None
    training_type: str

    @property
    def finished(self) -> bool:
        """True once training has ended, well or badly (no longer `Training`)."""
        return self.status != IterationStatus.TRAINING

    @property
    def completed(self) -> bool:
        return self.status == IterationStatus.COMPLETED


@dataclass(frozen=True)
class Prediction:
    """One tag's probability for an image, as a trained iteration scored it."""

    tag_id: UUID
    tag_name: str
    probability: float
    # Object detection only: where the iteration saw the tag (None for classification).
    bounding_box: BoundingBox | None = None


@dataclass(frozen=True)
class ImagePerformance:
    """One training image of an iteration: its tags then, and the iteration's predictions
    (best first)."""

    id: UUID
    created: datetime | None
    tag_ids: frozenset[UUID]
    tag_names: tuple[str, ...]
    predictions: tuple[Prediction, ...]
    image_uri: str | None = None
    # Object detection only: the image's boxes when the iteration trained.
    regions: tuple[ImageRegion, ...] = ()


def parse_iteration(body: Mapping[str, Any]) -> Iteration:
    """Return an Iteration from its JSON."""
    return Iteration(
        id=UUID(body["id"]),
        name=str(body.get("name") or ""),
        status=str(body.get("status") or ""),
        created=parse_time(body.get("created")),
        trained_at=parse_time(body.get("trainedAt")),
        training_type=str(body.get("trainingType") or TrainingType.REGULAR),
    )


def parse_image_performance(body: Mapping[str, Any]) -> ImagePerformance:
    """Return an ImagePerformance; predictions are sorted best first whatever the wire order."""
    tags = [t for t in body.get("tags") or [] if isinstance(t, dict) and t.get("tagId")]
    predictions = sorted(
        (
            Prediction(
                UUID(p["tagId"]),
                str(p.get("tagName") or ""),
                float(p["probability"]),
                parse_box(p["boundingBox"]) if isinstance(p.get("boundingBox"), dict) else None,
            )
            for p in body.get("predictions") or []
            if isinstance(p, dict) and p.get("tagId")
        ),
        key=lambda p: (-p.probability, p.tag_name),
    )
    return ImagePerformance(
        id=UUID(body["id"]),
        created=parse_time(body.get("created")),
        tag_ids=frozenset(UUID(t["tagId"]) for t in tags),
        tag_names=tuple(str(t.get("tagName") or "") for t in tags),
        predictions=tuple(predictions),
        image_uri=body.get("imageUri"),
        regions=tuple(parse_region(r) for r in body.get("regions") or [] if isinstance(r, dict)),
    )
