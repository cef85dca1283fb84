"""Folder path <-> tag names, both directions: the one rule that turns a tree into labels. Pure.

Public names: TagMapper, TagAssignment, tag_key, normalise_tag_name, tag_name_problem, placement.

Rules (config `tags:`, read through syncd.core.policy.TagPolicy):
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

The reverse (`placement`, for `syncd pull` and the trash): where an image goes given its tags,
checked against `TagMapper` so the tree maps back to the same tags. A regular tag's images go into
a folder named after the tag (or the folder a `tags.rename` entry maps to it), the Negative tag's
into `tags.negative_folder`, untagged images directly under the root (nowhere with
`tags.root_files: skip`). An image with several tags follows `pull.multi_tag` (`first`: the first
tag by name only). A tag that cannot be a folder name (a `/` in it, a leading `.`, ...), a
GeneralProduct tag, or a Negative tag without a negative folder gives the reason instead.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from syncd.core.limits import MAX_TAG_NAME_LENGTH
from syncd.core.model import Problem, ProblemKind, RemoteTag, TagType
from syncd.core.policy import MirrorPolicy, MultiTag, RootFiles, TagMode, TagPolicy


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

    def __init__(self, config: TagPolicy) -> None:
        self._mode = config.mode
        self._skip_root_files = config.root_files is RootFiles.SKIP
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
        if self._mode is TagMode.TOP:
            chosen = folders[:1]
        elif self._mode is TagMode.LEAF:
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


# --- the reverse: tags -> folders ------------------------------------------------------------


def _folder_problem(folder: str) -> str | None:
    if not folder or folder in (".", ".."):
        return "is not a usable folder name"
    if "/" in folder or "\\" in folder or "\0" in folder:
        return "contains a path separator"
    if folder.startswith("."):
        return "would be a hidden folder (syncd skips those)"
    if len(folder.encode()) > 255:
        return "is longer than a file name may be"
    return None


def placement(
    tags: list[RemoteTag], mirror: MirrorPolicy, mapper: TagMapper | None = None
) -> tuple[str, ...] | str:
    """Return the folders (relative to the root, "" = the root) an image with `tags` goes
    into, or why it cannot be placed. Each folder is checked to map back to its tag."""
    mapper = mapper or TagMapper(mirror.tags)
    if not tags:
        if mirror.tags.root_files is RootFiles.SKIP:
            return "untagged, and tags.root_files is skip"
        return ("",)
    odd = [t.name for t in tags if t.type is TagType.GENERAL_PRODUCT]
    if odd:
        return f"GeneralProduct tag {odd[0]!r} has no folder"
    negative = [t for t in tags if t.type is TagType.NEGATIVE]
    if negative:
        if len(tags) > 1:
            return "carries the Negative tag and a regular one"
        folder = mirror.tags.negative_folder
        if not folder:
            return "Negative tag, and tags.negative_folder is null"
        wanted = [(folder, TagAssignment(negative=True))]
    else:
        folder_of = {tag_key(tag): folder for folder, tag in mirror.tags.rename.items()}
        ordered = sorted(tags, key=lambda t: (tag_key(t.name), t.name))
        wanted = [
            (folder_of.get(tag_key(t.name), t.name), TagAssignment(tags=(t.name,))) for t in ordered
        ]
        if mirror.pull.multi_tag is MultiTag.FIRST:
            wanted = wanted[:1]
    folders = []
    for folder, expected in wanted:
        problem = _folder_problem(folder)
        got = mapper.assign(f"{folder}/x.jpg") if problem is None else None
        if problem is None and not (
            isinstance(got, TagAssignment)
            and got.negative == expected.negative
            and [tag_key(n) for n in got.tags] == [tag_key(n) for n in expected.tags]
        ):
            problem = "does not map back to the same tag under the tags: rules"
        if problem is not None:
            return f"folder {folder!r} {problem}"
        folders.append(folder)
    return tuple(folders)


def folder_name_problem(name: str) -> str | None:
    """Why `name` (a tag's name) cannot be one folder or file name, or None: the rule placement
    applies, for `pull --format` layouts that name folders or files after tags."""
    return _folder_problem(name)
