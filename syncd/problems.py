"""Problems by file: what keeps each file out of the project, and what the operator can do.

Public names: FileProblem, CONTENT_VERDICTS, TAG_CONFLICT, advice_for, apply_verdicts,
rejection_detail, file_problems, conflict_problems.

A problem is always named by its path (issue 15): a file the scan refused (not an image, too big,
unreadable, a symlink...), a file whose bytes the service refused (a content verdict, remembered
by hash in the ledger so the same bytes are not sent again until they change), and each file of
a tag conflict (the same bytes asked to carry tags an image cannot carry together).

Only verdicts on the content are remembered (CONTENT_VERDICTS). The other refusals of an upload
say nothing about the bytes: ErrorStorage and ErrorUnknown are the service's trouble (try again),
ErrorLimitExceed is the project's quota (frees up when images go), ErrorTagLimitExceed and
ErrorNegativeAndRegularTagOnSameImage are about the tags asked for (they change with the folder),
ErrorSource concerns URL sources, which syncd never sends, and ErrorRegionLimitExceed the boxes
sent (a detection mirror refuses more than 300 before sending: syncd.detection).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from syncd.core.model import LocalSnapshot, Problem, ProblemKind
from syncd.core.planner import Conflict, ConflictKind

# ImageCreateStatus values that judge the bytes themselves (docs/spec/DIGEST.md §3, «Supported
# formats are JPEG, GIF, PNG, and BMP. Supports images up to 6MB.»), with what each means.
CONTENT_VERDICTS: Mapping[str, str] = {
    "ErrorImageFormat": "the service cannot decode it as an image",
    "ErrorImageSize": "the service refused its size: over 6 MB, or over 10,240 px a side",
}
# The same verdicts when a one-image call is refused as a whole (CustomVisionError codes).
CONTENT_ERROR_CODES = frozenset(
    {"BadRequestImageFormat", "BadRequestImageSizeBytes", "BadRequestImageDimensions"}
)

TAG_CONFLICT = "tag_conflict"  # the kind of a file in a blocking planner Conflict

_EXCLUDE = "or exclude it (files.exclude)"
# What to do about each kind of problem (the operator reads it in the summary, status and log).
_ADVICE: Mapping[str, str] = {
    ProblemKind.SYMLINK: "copy the file into the tree, or set files.follow_symlinks",
    ProblemKind.SYMLINK_LOOP: f"remove the link, {_EXCLUDE}",
    ProblemKind.SYMLINK_OUTSIDE_ROOT: "syncd never leaves the root: copy the file into the tree",
    ProblemKind.NON_UTF8_NAME: "rename it (names become tags: they must be UTF-8 text)",
    ProblemKind.UNREADABLE: f"let syncd's user read it (check its permissions), {_EXCLUDE}",
    ProblemKind.CHANGED_WHILE_READING: "nothing: it is read again next run",
    ProblemKind.EMPTY: f"remove it or put an image in it, {_EXCLUDE}",
    ProblemKind.TOO_LARGE: f"shrink it under 6 MB (resize or re-encode it), {_EXCLUDE}",
    ProblemKind.NOT_AN_IMAGE: f"replace it with a JPEG, PNG, BMP or GIF, {_EXCLUDE}",
    ProblemKind.NOT_DECODABLE: f"re-save it with an image editor or replace it, {_EXCLUDE}",
    ProblemKind.TOO_MANY_PIXELS: f"resize it to at most 10,240 px a side, {_EXCLUDE}",
    ProblemKind.ASPECT_RATIO: f"crop or pad it to at most 25:1, {_EXCLUDE}",
    ProblemKind.BAD_TAG_NAME: "rename the folder (it becomes a tag name)",
    ProblemKind.NEGATIVE_AND_REGULAR: "move it out of the negative folder or out of the tagged one",
    ProblemKind.ROOT_FILE_SKIPPED: "move it into a folder (its tag), or set tags.root_files",
    ProblemKind.BAD_ANNOTATION: "fix the annotation named (its boxes in the project are left as "
    "they are until then), or remove it to sync the image without boxes",
    ProblemKind.REJECTED_BY_SERVICE: "re-save it with an image editor or replace it (it is sent "
    f"again once its bytes change), {_EXCLUDE}",
    ConflictKind.MULTICLASS_TAGS: "keep these bytes in one folder only (a Multiclass image "
    "carries one tag)",
    ConflictKind.NEGATIVE_AND_REGULAR: "keep these bytes in the negative folder or a tagged one, "
    "not both",
    ConflictKind.TOO_MANY_TAGS: "keep these bytes in fewer folders",
    ConflictKind.TAG_TYPE: "rename the folder, or change the tag's type in the portal",
    ConflictKind.REGIONS_DIFFER: "give the copies the same boxes, or keep one copy",
}
_DEFAULT_ADVICE = "see the reason"


def advice_for(kind: str) -> str:
    """What to do about a problem of `kind` (a ProblemKind or ConflictKind value)."""
    return _ADVICE.get(kind, _DEFAULT_ADVICE)


@dataclass(frozen=True)
class FileProblem:
    """One path's problem: its kind, the reason in words, and what to do about it."""

    path: str
    kind: str
    detail: str
    advice: str

    def to_json(self) -> dict[str, str]:
        return {"path": self.path, "kind": self.kind, "detail": self.detail, "advice": self.advice}

    def row(self) -> tuple[str, str, str, str]:
        return (self.path, self.kind, self.detail, self.advice)


def rejection_detail(code: str, message: str = "") -> str:
    """The reason shown for bytes the service refused with `code`."""
    meaning = CONTENT_VERDICTS.get(code) or message or "the service refused these bytes"
    return f"{code}: {meaning}"


def apply_verdicts(local: LocalSnapshot, rejected: Mapping[str, tuple[str, str]]) -> LocalSnapshot:
    """Return `local` with every good file whose bytes the service refused (sha256 -> (code,
    message)) turned into a REJECTED_BY_SERVICE problem: the planner then neither uploads it nor
    deletes its content, and it is listed by path like any other problem file."""
    if not rejected or not any(f.ok and f.sha256 in rejected for f in local.files):
        return local
    files = []
    for f in local.files:
        verdict = rejected.get(f.sha256) if f.ok and f.sha256 is not None else None
        if verdict is not None:
            code, message = verdict
            problem = Problem(ProblemKind.REJECTED_BY_SERVICE, rejection_detail(code, message))
            f = dataclasses.replace(f, problem=problem)
        files.append(f)
    # Not a clean tree any more: the next run must not skip loading it (LocalSnapshot.digest).
    return dataclasses.replace(local, files=tuple(files), digest=None)


def file_problems(local: LocalSnapshot) -> list[FileProblem]:
    """Every problem the scan found (files and skipped entries), by path."""
    found = [(f.path, f.problem) for f in local.files if f.problem is not None]
    found += [(s.path, s.problem) for s in local.skipped]
    return [
        FileProblem(path, str(p.kind), p.detail, advice_for(p.kind))
        for path, p in sorted(found, key=lambda item: item[0])
    ]


def conflict_problems(conflicts: Iterable[Conflict]) -> list[FileProblem]:
    """One problem per file of each blocking conflict (a note, such as merged spellings, is not
    a problem: the file is mirrored)."""
    out = []
    for conflict in conflicts:
        if not conflict.kind.blocking:
            continue
        for path in conflict.paths:
            others = [p for p in conflict.paths if p != path]
            also = f"; the same bytes as {', '.join(others)}" if others else ""
            detail = f"{conflict.kind}: {conflict.detail}{also}"
            out.append(FileProblem(path, TAG_CONFLICT, detail, advice_for(conflict.kind)))
    return out
