"""The values the store takes and returns, its refusal (`ApiError`), and the domain catalogue.

Public names: `ApiError`, `not_found_project`, `Domain`, `DOMAINS`, `DEFAULT_DOMAIN`,
`TAGGING_STATUSES`, `Project`, `Tag`, `ImageTag`, `Image`, `Upload`, `CreateResult`, `TagPairs`,
`MetadataResult`, `Iteration`, `Prediction`, `ImagePerformance`.
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


# Real domain ids, from the Custom Vision "select a domain" documentation page.
DOMAINS = (
    Domain("ee85a74c-405e-4adc-bb47-ffa8ca0c9f31", "General", "Classification", False),
    Domain("a8e3c40f-fb4a-466f-832a-5e457ae4a344", "General [A1]", "Classification", False),
    Domain("2e37d7fb-3a54-486a-b4d6-cfc369af0018", "General [A2]", "Classification", False),
    Domain("c151d5b5-dd07-472a-acc8-15d29dea8518", "Food", "Classification", False),
    Domain("ca455789-012d-4b50-9fec-5bb63841c793", "Landmarks", "Classification", False),
    Domain("b30a91ae-e3c1-4f73-a81e-c270bff27c39", "Retail", "Classification", False),
    Domain("0732100f-1a38-4e49-a514-c9b44c697ab5", "General (compact)", "Classification", True),
    Domain("da2e3a8a-40a5-4171-82f4-58522f70fbc1", "General", "ObjectDetection", False),
    Domain("1d8ffafe-ec40-4fb2-8f90-72b3b6cecea4", "Logo", "ObjectDetection", False),
    Domain("a27d5ca5-bb19-49d8-a70a-fec086c47f5b", "General (compact)", "ObjectDetection", True),
)
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


@dataclass(frozen=True)
class Image:
    id: str
    created: str
    width: int
    height: int
    token: str  # the unguessable part of the image's URIs
    tags: tuple[ImageTag, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Upload:
    """One image of a create batch: where it came from (sourceUrl), its bytes, its own tags."""

    source: str
    data: bytes
    tag_ids: tuple[str, ...] = ()


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
