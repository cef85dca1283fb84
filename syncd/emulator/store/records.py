"""The values the store takes and returns, its refusal (`ApiError`), and the domain catalogue.

Public names: `ApiError`, `not_found_project`, `Domain`, `DOMAINS`, `DEFAULT_DOMAIN`,
`TAGGING_STATUSES`, `Project`, `Tag`, `ImageTag`, `Box`, `Region`, `ImageRegion`, `Image`, `Upload`,
`CreateResult`, `TagPairs`, `RegionEntry`, `RegionResults`, `MetadataResult`, `Iteration`,
`Prediction`, `ImagePerformance`, `TagPerformance`, `IterationPerformance`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

TAGGING_STATUSES = ("All", "Tagged", "Untagged")


class ApiError(Exception):
    """A refusal the API reports as {code, message} with an HTTP status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


def not_found_project() -> ApiError:
    return ApiError(404, "NotFoundProject", "Project not found.")


@dataclass(frozen=True)
class Domain:
    id: str
    name: str
    type: str
    exportable: bool


# Real domain ids, from the Custom Vision "select a domain" documentation page (its image
# classification, object detection and compact tables).
DOMAINS = (
    Domain("ee85a74c-405e-4adc-bb47-ffa8ca0c9f31", "General", "Classification", False),
    Domain("a8e3c40f-fb4a-466f-832a-5e457ae4a344", "General [A1]", "Classification", False),
    Domain("2e37d7fb-3a54-486a-b4d6-cfc369af0018", "General [A2]", "Classification", False),
    Domain("c151d5b5-dd07-472a-acc8-15d29dea8518", "Food", "Classification", False),
    Domain("ca455789-012d-4b50-9fec-5bb63841c793", "Landmarks", "Classification", False),
    Domain("b30a91ae-e3c1-4f73-a81e-c270bff27c39", "Retail", "Classification", False),
    Domain("0732100f-1a38-4e49-a514-c9b44c697ab5", "General (compact)", "Classification", True),
    Domain("da2e3a8a-40a5-4171-82f4-58522f70fbc1", "General", "ObjectDetection", False),
    Domain("9c616dff-2e7d-ea11-af59-1866da359ce6", "General [A1]", "ObjectDetection", False),
    Domain("1d8ffafe-ec40-4fb2-8f90-72b3b6cecea4", "Logo", "ObjectDetection", False),
    Domain("3780a898-81c3-4516-81ae-3a139614e1f3", "Products on shelves", "ObjectDetection", False),
    Domain("a27d5ca5-bb19-49d8-a70a-fec086c47f5b", "General (compact)", "ObjectDetection", True),
    Domain(
        "7ec2ac80-887b-48a6-8df9-8b1357765430", "General (compact) [S1]", "ObjectDetection", True
    ),
)
DETECTION = "ObjectDetection"  # Domain.type of the object detection domains
DEFAULT_DOMAIN = DOMAINS[0]  # «Defaults to General.»


@dataclass(frozen=True)
class Project:
    id: str
    name: str
    description: str | None
    domain_id: str
    classification_type: str | None
    export_platforms: tuple[str, ...]
    created: str
    last_modified: str


@dataclass(frozen=True)
class Tag:
    id: str
    name: str
    description: str | None
    type: str
    image_count: int


@dataclass(frozen=True)
class ImageTag:
    tag_id: str
    tag_name: str | None  # None in create results, as the service echoes them
    created: str


Box = tuple[float, float, float, float]  # left, top, width, height, normalized to the image


@dataclass(frozen=True)
class Region:
    """A tagged box as a client sends it (Region, or ImageRegionCreateEntry less its image)."""

    tag_id: str
    box: Box


@dataclass(frozen=True)
class ImageRegion:
    """A region of an image as the store keeps it (ImageRegion / ImageRegionCreateResult)."""

    region_id: str
    tag_id: str
    tag_name: str
    created: str
    box: Box


@dataclass(frozen=True)
class Image:
    id: str
    created: str
    width: int
    height: int
    token: str  # the unguessable part of the image's URIs
    tags: tuple[ImageTag, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)
    regions: tuple[ImageRegion, ...] = ()


@dataclass(frozen=True)
class Upload:
    """One image of a create batch: where it came from (sourceUrl), its bytes, its own tags and
    regions."""

    source: str
    data: bytes
    tag_ids: tuple[str, ...] = ()
    regions: tuple[Region, ...] = ()


@dataclass(frozen=True)
class CreateResult:
    source: str
    status: str  # an ImageCreateStatus
    image: Image | None


@dataclass(frozen=True)
class TagPairs:
    created: list[tuple[str, str]]
    duplicated: list[tuple[str, str]]
    exceeded: list[tuple[str, str]]


@dataclass(frozen=True)
class RegionEntry:
    """One entry of CreateImageRegions: a region for an image."""

    image_id: str
    region: Region


@dataclass(frozen=True)
class RegionResults:
    """CreateImageRegions' answer: created regions (with their image id), and the entries that
    were duplicates or past the per-image limit."""

    created: list[tuple[str, ImageRegion]]
    duplicated: list[RegionEntry]
    exceeded: list[RegionEntry]


@dataclass(frozen=True)
class MetadataResult:
    image_id: str
    status: str  # an ImageMetadataUpdateStatus
    metadata: dict[str, str] | None


@dataclass(frozen=True)
class Iteration:
    """A trained (or training) model of a project; status follows the simulated clock."""

    id: str
    project_id: str
    name: str
    status: str  # Training | Completed
    created: str
    last_modified: str
    trained_at: str | None
    training_type: str
    reserved_budget: int
    domain_id: str
    classification_type: str | None


@dataclass(frozen=True)
class Prediction:
    tag_id: str
    tag_name: str
    tag_type: str
    probability: float
    bounding_box: Box | None = None  # object detection only


@dataclass(frozen=True)
class ImagePerformance:
    """One training image of an iteration, with its tags then and the simulated predictions."""

    id: str
    created: str
    width: int
    height: int
    token: str
    tags: tuple[ImageTag, ...]
    predictions: tuple[Prediction, ...]
    regions: tuple[ImageRegion, ...] = ()


@dataclass(frozen=True)
class TagPerformance:
    id: str
    name: str
    precision: float
    recall: float
    average_precision: float | None  # object detection only


@dataclass(frozen=True)
class IterationPerformance:
    per_tag: list[TagPerformance]
    precision: float
    recall: float
    average_precision: float | None  # object detection only: the mean of the tags' (mAP)
