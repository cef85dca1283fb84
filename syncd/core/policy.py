"""What a mirror's configuration decides, as the pure layer reads it: the choices and their shape.

Public names: TagMode, RootFiles, MultiTag, DeletePolicy, AnnotationFormat, ANNOTATION_SUFFIXES,
TagPolicy, GuardPolicy, PullPolicy, MirrorPolicy.

The enums are the values of config keys (`tags.mode`, `tags.root_files`, `pull.multi_tag`,
`delete`, `annotations.format`); syncd.config builds its schema from them. The protocols name only
the keys the mapping and the planner read, so core depends on no loader: syncd.config's frozen
dataclasses (MirrorConfig, TagConfig, GuardConfig, PullConfig) satisfy them as they are, and a test
can pass any object of the same shape.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from pathlib import PurePath
from typing import Protocol


class TagMode(enum.StrEnum):
    """`tags.mode`: which folders on a file's path become its tags."""

    TOP = "top"  # the first folder under the root
    LEAF = "leaf"  # the innermost folder
    ALL = "all"  # every folder on the path (multilabel)


class RootFiles(enum.StrEnum):
    """`tags.root_files`: what becomes of a file directly under the root."""

    UNTAGGED = "untagged"
    SKIP = "skip"


class MultiTag(enum.StrEnum):
    """`syncd pull`: where an image with several tags goes."""

    LINK = "link"  # into each tag's folder, as hard links of one file (copies where impossible)
    COPY = "copy"  # into each tag's folder, as separate copies
    FIRST = "first"  # into the first tag's folder only (by name); the other tags are dropped


class DeletePolicy(enum.StrEnum):
    """`delete`: whether a remote image with no local file goes."""

    MIRROR = "mirror"  # a remote image with no local file is deleted
    KEEP = "keep"  # nothing is ever deleted from the project


class AnnotationFormat(enum.StrEnum):
    """`annotations.format`: where an image's boxes come from (none: a classification mirror)."""

    NONE = "none"  # classification: folders are tags, no boxes
    YOLO = "yolo"  # a .txt label file per image, beside it or under labels/ for images/
    VOC = "voc"  # a Pascal VOC .xml beside each image
    COCO = "coco"  # one COCO JSON file (annotations.coco_file)


# The suffixes of each format's files under the root, YOLO's class names (data.yaml, classes.txt)
# included: the walk folds their stat into the tree's digest, the daemon watches them. COCO's one
# file is given by path (annotations.coco_file).
# YOLO's class names at the root, in the order they are looked for (data.yaml's `names:`, then
# classes.txt): every label's meaning depends on them.
YOLO_NAMES_FILES = ("data.yaml", "classes.txt")
ANNOTATION_SUFFIXES: Mapping[AnnotationFormat, frozenset[str]] = {
    AnnotationFormat.YOLO: frozenset({".txt", ".yaml", ".yml"}),
    AnnotationFormat.VOC: frozenset({".xml"}),
}


# Read-only properties, not plain attributes: a frozen dataclass satisfies them.


class TagPolicy(Protocol):
    """How folders become tags (config `tags:`)."""

    @property
    def mode(self) -> TagMode: ...
    @property
    def root_files(self) -> RootFiles: ...
    @property
    def rename(self) -> Mapping[str, str]: ...
    @property
    def negative_folder(self) -> str | None: ...
    @property
    def negative_tag_name(self) -> str: ...
    @property
    def delete_empty_tags(self) -> bool: ...


class GuardPolicy(Protocol):
    """The mass-delete guard's limits (config `guard:`)."""

    @property
    def max_delete(self) -> int: ...
    @property
    def max_delete_fraction(self) -> float: ...


class PullPolicy(Protocol):
    """How `syncd pull` writes a project out (config `pull:`)."""

    @property
    def multi_tag(self) -> MultiTag: ...


class MirrorPolicy(Protocol):
    """One mirror as the planner and the reversed mapping see it (config `mirror:`)."""

    @property
    def root(self) -> PurePath: ...
    @property
    def project_id(self) -> str: ...
    @property
    def delete(self) -> DeletePolicy: ...
    @property
    def adopt_foreign_images(self) -> bool: ...
    @property
    def max_tags_per_project(self) -> int: ...
    @property
    def tags(self) -> TagPolicy: ...
    @property
    def guard(self) -> GuardPolicy: ...
    @property
    def pull(self) -> PullPolicy: ...
