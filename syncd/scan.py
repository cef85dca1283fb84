"""Walk a root folder into a LocalSnapshot: stat every candidate, hash only what changed.

Public names: walk_tree, check_tree, Walked, read_marker, write_marker, MARKER_NAME,
HASH_CHUNK_BYTES, RACY_WINDOW_NS.

- Candidates: regular files whose extension is allowed (case-insensitive), matching an include
  glob and no exclude glob (syncd.core.globs: posix paths relative to the root; `**` spans
  folders). Hidden files and folders (a leading `.`, the marker among them) are skipped silently.
- A file whose (size, mtime_ns, inode) matches the ledger's cache, under its path or (moved) any
  other, keeps its cached sha256; others are hashed (sha256, streamed in 1 MiB chunks). A cached
  hash taken within RACY_WINDOW_NS of the file's mtime is not trusted (a write in the same clock
  tick would not change the stat).
- Each candidate is checked: non-empty, within 6 MB (syncd.core.limits), readable, a
  JPEG/PNG/BMP/GIF by its magic bytes (syncd.core.imageformat), decodable in full within the
  service's pixel and aspect-ratio limits (syncd.decode), a legal tag path (syncd.core.mapping).
  A failure is recorded on the file, never raised. The decode's verdict is cached with the hash
  (CachedFile.content_checked): only new or changed content is decoded.
- With `files.prepare` (syncd.prepare), the formats it converts are candidates too, files up to
  MAX_PREPARE_SOURCE_BYTES are read, and the decode keeps the image's facts (format, size,
  transparency, orientation) with the hash: each scan judges from them, reading nothing, what the
  file needs, and a file with a recipe gets its prepared content's key as its `sha256` (the
  file's own in `source_sha256`).
- Symlinks are reported and skipped unless `files.follow_symlinks`; then a link back to a folder
  already walked is reported as a loop, and a link whose target (at the end of any chain of links)
  is outside the root is reported and skipped: following never leaves the root. Names that are
  not UTF-8 are reported and skipped.
- The root marker `.syncd-root` (like Syncthing's `.stfolder`) holds the mirror's project id.
- Two halves: `walk_tree` lists and stats (no file opened) and digests the result; `check_tree`
  hashes and checks. A run that finds the digest its predecessor left when it ended in sync
  stops after the walk (syncd.reconcile).

Folders are opened, files opened and re-stat'ed, and the clock read through the injected
`open_folder`, `open_file`, `stat` and `clock_ns`, so tests can stage failures that a real disk
will not produce on demand. The entries of an open folder are listed and stat'ed relative to its
descriptor directly (POSIX: Linux, macOS).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from array import array
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from stat import S_ISDIR, S_ISLNK, S_ISREG
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

from syncd.config import MirrorConfig
from syncd.core.globs import compile_glob
from syncd.core.imageformat import UNACCEPTED_IMAGE_SUFFIXES, sniff_image_format
from syncd.core.limits import MAX_BYTES_RULE, MAX_IMAGE_BYTES
from syncd.core.mapping import TagAssignment, TagMapper
from syncd.core.model import (
    CachedFile,
    LocalFile,
    LocalSnapshot,
    MarkerState,
    Problem,
    ProblemKind,
    Skipped,
)
from syncd.core.policy import ANNOTATION_SUFFIXES, AnnotationFormat
from syncd.decode import content_problem
from syncd.prepare import (
    MAX_PREPARE_SOURCE_BYTES,
    ImageFacts,
    content_key,
    convertible_suffixes,
    inspect,
    judge,
)

MARKER_NAME = ".syncd-root"
HASH_CHUNK_BYTES = 1024 * 1024
# Two seconds covers the coarsest mtime clocks in use (FAT: 2 s; ext4/APFS: ns).
RACY_WINDOW_NS = 2_000_000_000
# A hash is dated by the clock read after it, or by an earlier reading less than this old: files
# hashed in the same few ms share one int (a 100k first sync held 3.4 MB of them at its peak).
# Dated earlier than it was taken, a hash is only ever distrusted more by the racy-mtime guard.
HASH_CLOCK_SHARE_NS = 10_000_000
# Images are decoded on other threads while this one reads the next file (Pillow's decoders
# release the GIL): bench F measured a serial decode at half of a cold first scan. One core is
# left for reading and hashing; at most DECODE_IN_FLIGHT read files (6 MB each at most) wait.
DECODE_THREADS = max(1, min(4, (os.cpu_count() or 2) - 1))
DECODE_IN_FLIGHT = 2 * DECODE_THREADS + 1


# --- the root marker --------------------------------------------------------------------------


def read_marker(root: Path, project_id: str) -> MarkerState:
    """Return whether the root's marker names `project_id` (unreadable counts as foreign)."""
    try:
        text = (root / MARKER_NAME).read_text(encoding="utf-8")
    except FileNotFoundError:
        return MarkerState.ABSENT
    except (OSError, UnicodeDecodeError):
        return MarkerState.FOREIGN
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    if lines and lines[0].lower() == project_id.lower():
        return MarkerState.PRESENT
    return MarkerState.FOREIGN


def write_marker(root: Path, project_id: str) -> None:
    """Write the marker naming `project_id` into `root` (atomically, via a rename)."""
    tmp = root / f"{MARKER_NAME}.tmp"
    try:
        tmp.write_text(
            "# syncd: this folder is mirrored to the Custom Vision project below.\n"
            "# Without this file syncd refuses to delete anything from the project.\n"
            f"{project_id}\n",
            encoding="utf-8",
        )
        os.replace(tmp, root / MARKER_NAME)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()  # a disk that filled up mid-write leaves no half marker behind
        raise


# --- the walk ---------------------------------------------------------------------------------


def _printable(name: str) -> str:
    """Return a name with undecodable bytes escaped (`\\xff`), safe to print and log."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def _open_folder(path: str) -> int:
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY)


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # surrogateescape'd bytes from a non-UTF-8 name
        return False
    return True


@dataclass(frozen=True, slots=True)
class Walked:
    """A tree's candidate names and stat data, before any file is read: scan's first half.

    `found` holds (path, size, mtime_ns, inode) per candidate in walk order (each folder sorted by
    name, so the order only changes when the names do). `digest` identifies exactly that list,
    and is None when something was skipped: a tree with the digest of a run that ended in sync
    has not changed in any way its stat can show. `unaccepted` counts image files of a format
    the service refuses, by suffix (LocalSnapshot.unaccepted).
    """

    root: str
    root_exists: bool
    marker: MarkerState
    found: tuple[tuple[str, int, int, int], ...] = ()
    skipped: tuple[Skipped, ...] = ()
    digest: str | None = None
    unaccepted: tuple[tuple[str, int], ...] = ()

    def unchanged(self) -> LocalSnapshot:
        """The snapshot of a tree known to be as the ledger has it: counted, not loaded."""
        return LocalSnapshot(
            root=self.root,
            root_exists=self.root_exists,
            marker=self.marker,
            digest=self.digest,
            unchanged_files=len(self.found),
            unaccepted=self.unaccepted,
        )


def _stat_digest(found: list[tuple[str, int, int, int]]) -> str:
    """Identify the list exactly: the paths (NUL never occurs in one), then each stat field as
    one packed array, in order (a field at a time is a third of the cost of a row at a time)."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update("\0".join(map(itemgetter(0), found)).encode("utf-8"))
    for column, kind in ((1, "Q"), (2, "q"), (3, "Q")):  # size, mtime_ns (may be < 0), inode
        digest.update(array(kind, map(itemgetter(column), found)).tobytes())
    return digest.hexdigest()


class _Walker:
    """One walk of one root: candidates with their stat, and the entries skipped."""

    def __init__(
        self,
        mirror: MirrorConfig,
        open_folder: Callable[[str], int],
        stat: Callable[[str], os.stat_result],
    ) -> None:
        self.follow = mirror.files.follow_symlinks
        self.extensions = {e.lower() for e in mirror.files.extensions}
        self.include = [compile_glob(p) for p in mirror.files.include]
        self.include_all = "**" in mirror.files.include  # the default: no regex per file
        self.exclude = [compile_glob(p) for p in mirror.files.exclude]
        self.by_extension_only = self.include_all and not self.exclude
        self.open_folder, self.stat = open_folder, stat
        self.found: list[tuple[str, int, int, int]] = []
        self.skipped: list[Skipped] = []
        # Image suffixes the service refuses, unless the config asks for them anyway.
        self.unaccepted_suffixes = UNACCEPTED_IMAGE_SUFFIXES - self.extensions
        # ... and those files.prepare converts are candidates like any image.
        self.extensions |= convertible_suffixes(mirror.files.prepare)
        self.unaccepted_suffixes -= self.extensions
        self.unaccepted: dict[str, int] = {}
        self.real_root = ""  # the root with every link resolved, set by walk()
        # A detection mirror's annotation files: not candidates, but their stat is part of the
        # tree's digest, so an edited label file is never taken for an unchanged tree.
        self.annotation_suffixes = ANNOTATION_SUFFIXES.get(mirror.annotations.format, frozenset())
        self.annotation_stats: list[tuple[str, int, int, int]] = []

    def globs_allow(self, rel: str) -> bool:
        if not self.include_all and not any(p.match(rel) for p in self.include):
            return False
        return not any(p.match(rel) for p in self.exclude)

    def skip(self, rel: str, kind: ProblemKind, detail: str = "") -> None:
        self.skipped.append(Skipped(_printable(rel), Problem(kind, detail)))

    def walk(self, root: str) -> None:
        self.real_root = os.path.realpath(root)
        root_stat = self.stat(root)
        seen_dirs = {(root_stat.st_dev, root_stat.st_ino)}
        stack = [("", root)]
        while stack:
            rel_dir, abs_dir = stack.pop()
            try:
                fd = self.open_folder(abs_dir)
                try:
                    subdirs = self.folder(rel_dir, abs_dir, fd, seen_dirs)
                finally:
                    os.close(fd)
            except OSError as exc:
                reason = f"cannot list folder: {exc.strerror}"
                self.skip(rel_dir or ".", ProblemKind.UNREADABLE, reason)
                continue
            stack.extend(reversed(subdirs))

    def inside_root(self, link: str) -> bool:
        """True if the link's final target (every link on the way resolved) is under the root."""
        target = os.path.realpath(link)
        return os.path.commonpath((self.real_root, target)) == self.real_root

    def folder(
        self, rel_dir: str, abs_dir: str, fd: int, seen_dirs: set[tuple[int, int]]
    ) -> list[tuple[str, str]]:
        """Take in one folder, open as `fd`; return its subfolders (relative and absolute paths).

        Each name is stat'ed relative to the open folder (the kernel resolves one name, not the
        whole path again): this loop is most of a 100k-file no-op run, and so kept short."""
        prefix = f"{rel_dir}/" if rel_dir else ""
        subdirs = []
        found, extensions, by_extension_only = self.found, self.extensions, self.by_extension_only
        for name in sorted(os.listdir(fd)):
            if name.startswith("."):
                continue
            rel = prefix + name
            if not name.isascii() and not _is_utf8(name):
                self.skip(rel, ProblemKind.NON_UTF8_NAME, "the name is not UTF-8")
                continue
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if S_ISLNK(st.st_mode):
                    if not self.follow:
                        self.skip(rel, ProblemKind.SYMLINK, "symlinks are not followed")
                        continue
                    try:
                        st = os.stat(name, dir_fd=fd)
                    except OSError:
                        self.skip(rel, ProblemKind.SYMLINK, "a broken symlink")
                        continue
                    if not self.inside_root(f"{abs_dir}/{name}"):
                        kind, detail = ProblemKind.SYMLINK_OUTSIDE_ROOT, "points outside the root"
                        self.skip(rel, kind, detail)
                        continue
            except OSError as exc:
                self.skip(rel, ProblemKind.UNREADABLE, exc.strerror or "cannot stat")
                continue
            mode = st.st_mode
            if S_ISREG(mode):
                # No dot: rfind gives -1 and the last character, never an extension.
                suffix = name[name.rfind(".") :].lower()
                if suffix in extensions:
                    if by_extension_only or self.globs_allow(rel):
                        found.append((rel, st.st_size, st.st_mtime_ns, st.st_ino))
                elif suffix in self.unaccepted_suffixes and (
                    by_extension_only or self.globs_allow(rel)
                ):
                    self.unaccepted[suffix] = self.unaccepted.get(suffix, 0) + 1
                elif suffix in self.annotation_suffixes:
                    self.annotation_stats.append((rel, st.st_size, st.st_mtime_ns, st.st_ino))
            elif S_ISDIR(mode):
                key = (st.st_dev, st.st_ino)
                if key in seen_dirs:
                    self.skip(rel, ProblemKind.SYMLINK_LOOP, "leads to a folder already scanned")
                    continue
                seen_dirs.add(key)
                subdirs.append((rel, f"{abs_dir}/{name}"))
        return subdirs


class _Checker:
    """Turns each walked candidate into a LocalFile: its hash (reused or read) and its problems."""

    def __init__(
        self,
        mirror: MirrorConfig,
        cache: Mapping[str, CachedFile],
        stat: Callable[[str], os.stat_result],
        open_file: Callable[[str], IO[bytes]],
        clock_ns: Callable[[], int],
    ) -> None:
        self.cache = cache
        # A moved file keeps its inode, size and mtime: find its hash without its old path, so a
        # renamed folder costs no reads (as git's index matches stat data, not only names).
        self.by_stat = {(c.inode, c.size, c.mtime_ns): c for c in cache.values()}
        self.mapper = TagMapper(mirror.tags)
        # A detection mirror's folders carry no tags (its boxes' classes are the tags), so the
        # negative folder and root_files do not apply: every file is assigned no tag.
        self.detection = mirror.annotations.detection
        self.stat, self.open_file, self.clock_ns = stat, open_file, clock_ns
        self.last_clock: int | None = None  # the reading that dates hashes (hashed_at)
        self.hashed = 0
        self.decoded = 0
        self.pool: ThreadPoolExecutor | None = None
        self.prepare = mirror.files.prepare
        # files.prepare.downscale reads a file over 6 MB (up to a bound) to scale it down.
        self.max_read = MAX_IMAGE_BYTES
        if self.prepare is not None and self.prepare.downscale:
            self.max_read = MAX_PREPARE_SOURCE_BYTES

    def check(
        self, rel: str, path: str, size: int, mtime_ns: int, inode: int
    ) -> LocalFile | Future[LocalFile]:
        """The file's LocalFile, or its future when its image is being decoded (check_tree)."""

        def result(problem: Problem | None, sha256: str | None = None, **found: Any) -> LocalFile:
            # One construction per file (dataclasses.replace chains cost seconds at 100k files).
            return LocalFile(rel, size, mtime_ns, inode, sha256, problem=problem, **found)

        assignment = TagAssignment() if self.detection else self.mapper.assign(rel)
        if isinstance(assignment, Problem) and assignment.kind is ProblemKind.ROOT_FILE_SKIPPED:
            return result(assignment)
        if size == 0:
            return result(Problem(ProblemKind.EMPTY, "the file is empty"))
        if size > self.max_read:
            detail = f"{size} bytes, over {MAX_IMAGE_BYTES}; {MAX_BYTES_RULE}"
            if self.max_read > MAX_IMAGE_BYTES:
                detail += f" (files.prepare reads at most {self.max_read} bytes)"
            # Prepared and sent before (files.prepare since turned off)? The file still stands
            # for that image, which no plan may delete: keep its key, as the ledger has it.
            was = self.cache.get(rel)
            stat_now = (size, mtime_ns, inode)
            if was is not None and was.source_sha256 is not None and _stat_of(was) == stat_now:
                kept = {"sha256": was.sha256, "source_sha256": was.source_sha256}
                return result(Problem(ProblemKind.TOO_LARGE, detail), **kept)
            return result(Problem(ProblemKind.TOO_LARGE, detail))

        def finish(verdict: Problem | None, facts: str | None = None) -> LocalFile:
            """The LocalFile of a file read now or before, given its decode's verdict (and,
            decoded under files.prepare, its facts: "" when it did not decode)."""
            hashed: dict[str, Any] = {
                "sha256": sha256,
                "image_format": fmt,
                "hashed_at_ns": hashed_at,
                "content_checked": True,
            }
            if facts is not None:
                verdict, recipe = self.judged(verdict, facts, size)
                hashed["facts"] = facts
                if recipe is not None and sha256 is not None:
                    hashed.update(
                        sha256=content_key(sha256, recipe), source_sha256=sha256, recipe=recipe
                    )
                if verdict is not None:
                    if prepared_key is not None and sha256 is not None:
                        # Refused now (files.prepare off, or changed), prepared and sent before:
                        # the file still stands for that image, which no plan may delete.
                        hashed.update(sha256=prepared_key, source_sha256=sha256)
                    return result(verdict, **hashed)
                if facts:  # decoded: a WEBP to convert has no JPEG/PNG/BMP/GIF magic bytes
                    return _assigned(assignment, result, hashed)
            if fmt is None:
                detail = "not a JPEG, PNG, BMP or GIF file (by its first bytes)"
                return result(Problem(ProblemKind.NOT_AN_IMAGE, detail), **hashed)
            if verdict is not None:  # before the tags: the cache reads it back from `problem`
                return result(verdict, **hashed)
            if isinstance(assignment, Problem):
                return result(assignment, **hashed)
            return result(None, tags=assignment.tags, negative=assignment.negative, **hashed)

        sha256: str | None
        fmt: str | None
        hashed_at: int | None
        facts: str | None = None
        prepared_key: str | None = None  # the key of the content prepared from it last time
        cached = self.cache.get(rel)
        if cached is None or (cached.size, cached.mtime_ns, cached.inode) != (
            size,
            mtime_ns,
            inode,
        ):
            cached = self.by_stat.get((inode, size, mtime_ns))
        if (
            cached is not None
            and cached.sha256 is not None
            and (cached.size, cached.mtime_ns, cached.inode) == (size, mtime_ns, inode)
            and cached.hashed_at_ns is not None
            and cached.hashed_at_ns - mtime_ns > RACY_WINDOW_NS
            and cached.content_checked  # a row from before decoding: read (and decode) it once
            and (self.prepare is None or cached.facts is not None)  # decoded for files.prepare
        ):
            sha256, fmt, hashed_at = cached.file_sha256, cached.image_format, cached.hashed_at_ns
            verdict, facts = cached.content_problem, cached.facts
            if cached.source_sha256 is not None:
                prepared_key = cached.sha256
        else:
            try:
                sha256, fmt, data = self.read(path)
                after = self.stat(path)
            except OSError as exc:
                return result(Problem(ProblemKind.UNREADABLE, exc.strerror or "cannot read"))
            self.hashed += 1
            hashed_at = self.hashed_at()
            if (after.st_size, after.st_mtime_ns, after.st_ino) != (size, mtime_ns, inode):
                detail = "the file changed while it was read; it is read again next run"
                return result(Problem(ProblemKind.CHANGED_WHILE_READING, detail))
            verdict = None
            if self.prepare is not None:
                self.decoded += 1
                prepare = self.prepare

                def inspected(image: bytes = data) -> LocalFile:
                    found = inspect(image, prepare)
                    if isinstance(found, Problem):
                        return finish(found, "")
                    return finish(None, found.to_text())

                return self.decoders().submit(inspected)
            if fmt is not None:
                self.decoded += 1

                def decoded(image: bytes = data) -> LocalFile:
                    return finish(content_problem(image))

                return self.decoders().submit(decoded)  # this thread goes on to the next file
        return finish(verdict, facts)

    def hashed_at(self) -> int:
        """The clock for a hash just taken: this reading, or the last one if it is at most
        HASH_CLOCK_SHARE_NS older (never a later one: a clock may step back)."""
        now = self.clock_ns()
        last = self.last_clock
        if last is None or not 0 <= now - last < HASH_CLOCK_SHARE_NS:
            self.last_clock = last = now
        return last

    def judged(
        self, verdict: Problem | None, facts: str, size: int
    ) -> tuple[Problem | None, str | None]:
        """The verdict and recipe for a file decoded under files.prepare (syncd.prepare.judge):
        from its facts, so a changed setting needs no read."""
        known = ImageFacts.from_text(facts) if facts else None
        if known is None:
            return verdict, None
        judged = judge(known, size, self.prepare)
        if isinstance(judged, Problem):
            return judged, None
        return None, judged

    def decoders(self) -> ThreadPoolExecutor:
        """The decode threads, started on the first decode (a no-op run starts none)."""
        if self.pool is None:
            from concurrent.futures import ThreadPoolExecutor  # (its module loads on first use)

            self.pool = ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="syncd-decode")
        return self.pool

    def read(self, path: str) -> tuple[str, str | None, bytes]:
        """Return the file's sha256, its format by its first bytes, and its bytes (at most
        6 MB: a bigger file is refused before it is read), read once for the hash and the decode."""
        digest = hashlib.sha256()
        fmt: str | None = None
        chunks = []
        with self.open_file(path) as f:
            for i, chunk in enumerate(_chunks(f)):
                if i == 0:
                    fmt = sniff_image_format(chunk)
                digest.update(chunk)
                chunks.append(chunk)
        return digest.hexdigest(), fmt, b"".join(chunks)


def _stat_of(cached: CachedFile) -> tuple[int, int, int]:
    return cached.size, cached.mtime_ns, cached.inode


def _assigned(
    assignment: Any, result: Callable[..., LocalFile], hashed: dict[str, Any]
) -> LocalFile:
    """A decoded, acceptable file's LocalFile: its tags, or the problem of its path."""
    if isinstance(assignment, Problem):
        return result(assignment, **hashed)
    return result(None, tags=assignment.tags, negative=assignment.negative, **hashed)


def _chunks(f: IO[bytes]) -> Iterator[bytes]:
    while chunk := f.read(HASH_CHUNK_BYTES):
        yield chunk


def _ignore(_: LocalFile) -> None:
    pass


def _open_binary(path: str) -> IO[bytes]:
    return open(path, "rb")  # the caller closes it (a with-block in _Checker.read)


def _annotation_stats(walker: _Walker, mirror: MirrorConfig) -> list[tuple[str, int, int, int]]:
    """The stat of a detection mirror's annotation files (the COCO file may be outside the
    root), for the digest; a missing COCO file counts as its own state."""
    stats = list(walker.annotation_stats)
    coco = mirror.annotations.coco_file
    if mirror.annotations.format is AnnotationFormat.COCO and coco is not None:
        try:
            st = os.stat(coco)
            stats.append((f"\0coco:{coco}", st.st_size, st.st_mtime_ns, st.st_ino))
        except OSError:
            stats.append((f"\0coco:{coco}", 0, -1, 0))
    return stats


def walk_tree(
    mirror: MirrorConfig,
    *,
    open_folder: Callable[[str], int] = _open_folder,
    stat: Callable[[str], os.stat_result] = os.stat,
) -> Walked:
    """Return the candidates under `mirror.root` with their stat data; no file is opened.

    A missing root gives `root_exists=False` and nothing found."""
    root = Path(mirror.root)
    if not root.is_dir():
        return Walked(root=str(root), root_exists=False, marker=MarkerState.ABSENT)
    walker = _Walker(mirror, open_folder, stat)
    walker.walk(str(root))
    return Walked(
        root=str(root),
        root_exists=True,
        marker=read_marker(root, mirror.project_id),
        found=tuple(walker.found),
        skipped=tuple(sorted(walker.skipped, key=lambda s: s.path)),
        digest=None
        if walker.skipped
        else _stat_digest(walker.found + _annotation_stats(walker, mirror)),
        unaccepted=tuple(sorted(walker.unaccepted.items(), key=lambda item: (-item[1], item[0]))),
    )


def check_tree(
    walked: Walked,
    mirror: MirrorConfig,
    cache: Mapping[str, CachedFile] | None = None,
    *,
    stat: Callable[[str], os.stat_result] = os.stat,
    open_file: Callable[[str], IO[bytes]] = _open_binary,
    clock_ns: Callable[[], int] = time.time_ns,
    on_checked: Callable[[], None] | None = None,
    on_file: Callable[[LocalFile], None] | None = None,
) -> LocalSnapshot:
    """Return the LocalSnapshot of a walked tree, reusing `cache` hashes whose stat still matches.

    Never raises for a file problem (it is recorded on the file). `on_checked` is called after
    each file (the daemon's heartbeat: hashing a large new tree takes a while); `on_file` with
    each file's LocalFile as soon as it is known (a first sync uploads them as they come:
    syncd.firstsync), in walk order except that a file not decoded may pass one being decoded."""
    tell = on_file or _ignore
    if not walked.root_exists:
        return LocalSnapshot(root=walked.root, root_exists=False, marker=walked.marker)
    checker = _Checker(mirror, cache or {}, stat, open_file, clock_ns)
    done: list[LocalFile | None] = []
    # (index in `done`, its pending decode): at most DECODE_IN_FLIGHT, which bounds both the bytes
    # held for the decoders and the futures alive (a first sync of 100k files decodes them all).
    decoding: deque[tuple[int, Future[LocalFile]]] = deque()
    try:
        for rel, size, mtime_ns, inode in walked.found:
            outcome = checker.check(rel, os.path.join(walked.root, rel), size, mtime_ns, inode)
            if isinstance(outcome, Future):
                decoding.append((len(done), outcome))
                done.append(None)
                if len(decoding) > DECODE_IN_FLIGHT:
                    index, oldest = decoding.popleft()
                    done[index] = checked = oldest.result()
                    tell(checked)
            else:
                done.append(outcome)
                tell(outcome)
            if on_checked is not None:
                on_checked()
        for index, pending in decoding:
            done[index] = checked = pending.result()
            tell(checked)
    finally:
        if checker.pool is not None:
            checker.pool.shutdown(cancel_futures=True)
    files = sorted((f for f in done if f is not None), key=lambda f: f.path)
    # The digest vouches for the tree only if the next run could reuse every hash as it is.
    clean = walked.digest is not None and all(
        f.ok and f.hashed_at_ns is not None and f.hashed_at_ns - f.mtime_ns > RACY_WINDOW_NS
        for f in files
    )
    return LocalSnapshot(
        root=walked.root,
        root_exists=True,
        marker=walked.marker,
        files=tuple(files),
        skipped=walked.skipped,
        hashed=checker.hashed,
        decoded=checker.decoded,
        digest=walked.digest if clean else None,
        unaccepted=walked.unaccepted,
    )
