"""The Custom Vision Training API client: everything syncd changes remotely goes through it.

Public names (re-exported): TrainingClient, ClientSettings, Pacer, RetryPolicy, the models
(Project, Tag, TagType, Image, TaggingStatus, Order, UploadItem, UploadResult, UploadStatus,
TagPair, TagAddResult, MetadataResult, MetadataStatus) and the errors (ApiError and subclasses).
Modules: limits (documented limits + batching), errors (the tree), pacer (rate, retries),
models (records), client (the endpoints).
"""

from syncd.api.client import ClientSettings, TrainingClient, choose_upload_format
from syncd.api.errors import (
    ApiConnectionError,
    ApiError,
    AuthenticationError,
    BadRequestError,
    ImageNotFoundError,
    LimitExceededError,
    NotFoundError,
    ProjectNotFoundError,
    ServiceUnavailableError,
    TagNotFoundError,
    ThrottledError,
    UnexpectedResponseError,
)
from syncd.api.models import (
    Image,
    MetadataResult,
    MetadataStatus,
    Order,
    Project,
    Tag,
    TagAddResult,
    TaggingStatus,
    TagPair,
    TagType,
    UploadItem,
    UploadResult,
    UploadStatus,
)
from syncd.api.pacer import Pacer, RetryPolicy, shared_pacer

__all__ = [
    "ApiConnectionError",
    "ApiError",
    "AuthenticationError",
    "BadRequestError",
    "ClientSettings",
    "Image",
    "ImageNotFoundError",
    "LimitExceededError",
    "MetadataResult",
    "MetadataStatus",
    "NotFoundError",
    "Order",
    "Pacer",
    "Project",
    "ProjectNotFoundError",
    "RetryPolicy",
    "ServiceUnavailableError",
    "Tag",
    "TagAddResult",
    "TagNotFoundError",
    "TagPair",
    "TagType",
    "TaggingStatus",
    "ThrottledError",
    "TrainingClient",
    "UnexpectedResponseError",
    "UploadItem",
    "UploadResult",
    "UploadStatus",
    "choose_upload_format",
    "shared_pacer",
]
