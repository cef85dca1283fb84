"""Folder path -> tag names: the one rule that turns a tree into labels. Pure.

Public names: TagMapper, TagAssignment, tag_key, normalise_tag_name, tag_name_problem,
MAX_TAG_NAME_LENGTH.

Rules (config `tags:`):
- mode `top` (default): the first folder under the root is the tag; `leaf`: the innermost folder;
  `all`: every folder on the path (multilabel).
- Files directly under the root are uploaded untagged, or skipped with `root_files: skip`.
- `rename` maps a folder name to a tag name (matched case-insensitively).
- The negative folder (default `_negative`) maps to the project's Negative tag. A path that asks
  for both the Negative tag and a regular one (mode `all`) is a problem: the service refuses it
  (ErrorNegativeAndRegularTagOnSameImage).
- Tag names are NFC-normalised and compare case-insensitively (`Dog/` and `dog/` are one tag), as
  the service treats tag names; `tag_key` is that comparison key.
- A folder name that is not a legal tag name is reported (with the reason), never uploaded.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING

from syncd.model import Problem, ProblemKind

if TYPE_CHECKING:
    from syncd.config import TagConfig

# The spec gives CreateTag's `name` no maxLength and documents only the error BadRequestTagName.
# 256 is our choice: the longest string the same API documents for a name-like field (a metadata
# key, «The length of key is limited to 256.»). A stricter service costs one reported CreateTag
# error for that folder, nothing else.
MAX_TAG_NAME_LENGTH = 256


def normalise_tag_name(name: str) -> str:
    """Return the name in Unicode NFC (macOS writes NFD file names; the service sees text)."""
    return unicodedata.normalize("NFC", name)


def tag_key(name: str) -> str:
    """Return the case-insensitive comparison key of a tag name (NFC, casefolded)."""
    return unicodedata.normalize("NFC", normalise_tag_name(name).casefold())


def tag_name_problem(name: str) -> str | None:
    """Return why `name` is not a legal tag name, or None when it is."""
    if not name.strip():
        return "a tag name cannot be empty or only whitespace"
    if name != name.strip():
        return "a tag name cannot start or end with whitespace"
    if len(name) > MAX_TAG_NAME_LENGTH:
        return f"a tag name is limited to {MAX_TAG_NAME_LENGTH} characters, this has {len(name)}"
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        return "a tag name cannot contain control characters (newline, tab, ...)"
    return None


@dataclass(frozen=True)
class TagAssignment:
    """The tags one file wants: regular tag names (sorted by key) or the Negative tag alone."""

    tags: tuple[str, ...] = ()
    negative: bool = False


class TagMapper:
    """Applies one mirror's tag rules to relative posix paths."""

    def __init__(self, config: TagConfig) -> None:
        self._mode = str(config.mode)
        self._skip_root_files = str(config.root_files) == "skip"
        self._rename = {tag_key(k): normalise_tag_name(v) for k, v in config.rename.items()}
        self._negative_key = tag_key(config.negative_folder) if config.negative_folder else None
        self._negative_tag_key = tag_key(config.negative_tag_name)
        # Tags depend on the folder alone: one answer per folder, not per file (100k-file scans).
        self._by_folder: dict[str, TagAssignment | Problem] = {}

    def assign(self, rel_path: str) -> TagAssignment | Problem:
        """Return the tags for a file at `rel_path` (relative, posix), or the Problem with it."""
        folder = rel_path.rpartition("/")[0]
        found = self._by_folder.get(folder)
        if found is None:
            found = self._by_folder[folder] = self._assign(folder)
        return found

    def _assign(self, folder_path: str) -> TagAssignment | Problem:
        folders = (
            [normalise_tag_name(part) for part in folder_path.split("/")] if folder_path else []
        )
        if not folders:
            if self._skip_root_files:
                return Problem(ProblemKind.ROOT_FILE_SKIPPED, "directly under the root")
            return TagAssignment()
        if self._mode == "top":
            chosen = folders[:1]
        elif self._mode == "leaf":
            chosen = folders[-1:]
        else:
            chosen = folders
        negative = False
        names: dict[str, str] = {}
        for folder in chosen:
            key = tag_key(folder)
            if key == self._negative_key:
                negative = True
                continue
            name = self._rename.get(key, folder)
            reason = tag_name_problem(name)
            if reason is None and tag_key(name) == self._negative_tag_key:
                reason = f"{name!r} is the name of the Negative tag"
            if reason is not None:
                return Problem(ProblemKind.BAD_TAG_NAME, f"folder {folder!r}: {reason}")
            names.setdefault(tag_key(name), name)
        if negative and names:
            return Problem(
                ProblemKind.NEGATIVE_AND_REGULAR,
                f"the path asks for the Negative tag and {sorted(names.values())}",
            )
        return TagAssignment(tags=tuple(names[k] for k in sorted(names)), negative=negative)
