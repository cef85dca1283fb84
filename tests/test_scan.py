"""The scanner on real folders of real images: tags, hashes, checks, filters, awkward names."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pytest

from syncd.config import FileConfig, MirrorConfig, TagConfig
from syncd.core.globs import compile_glob
from syncd.core.imageformat import sniff_image_format
from syncd.core.limits import MAX_IMAGE_BYTES
from syncd.core.model import CachedFile, LocalSnapshot, MarkerState, ProblemKind
from syncd.core.policy import RootFiles
from syncd.scan import (
    MARKER_NAME,
    check_tree,
    read_marker,
    walk_tree,
    write_marker,
)
from tests.support.images import image_bytes, write_image

PID = "11111111-2222-3333-4444-555555555555"
LATER = 10**19  # a clock far after every mtime: cached hashes are trusted


def mirror(root: Path, **files: object) -> MirrorConfig:
    return MirrorConfig(root=root, project_id=PID, files=dataclasses.replace(FileConfig(), **files))


def scan(
    mirror: MirrorConfig,
    cache: dict[str, CachedFile] | None = None,
    *,
    open_folder: Callable[[str], int] | None = None,
    stat: Callable[[str], os.stat_result] = os.stat,
    open_file: Callable[[str], IO[bytes]] | None = None,
    clock_ns: Callable[[], int] = time.time_ns,
) -> LocalSnapshot:
    """Both halves at once, as a reconcile runs them: walk_tree, then check_tree."""
    walk: dict[str, Any] = {"stat": stat}
    check: dict[str, Any] = {"stat": stat, "clock_ns": clock_ns}
    if open_folder is not None:
        walk["open_folder"] = open_folder
    if open_file is not None:
        check["open_file"] = open_file
    return check_tree(walk_tree(mirror, **walk), mirror, cache, **check)


def cache_of(snapshot: LocalSnapshot) -> dict[str, CachedFile]:
    """What the ledger would hand back after recording this snapshot."""
    return {
        f.path: CachedFile(
            f.size,
            f.mtime_ns,
            f.inode,
            f.sha256,
            f.image_format,
            f.hashed_at_ns,
            f.content_checked,
            f.problem if f.problem is not None and f.problem.kind.is_content_check else None,
        )
        for f in snapshot.files
    }


def by_path(snapshot: LocalSnapshot) -> dict[str, object]:
    return {f.path: f for f in snapshot.files}


def test_sample_tree_tags_and_hashes(tmp_path: Path) -> None:
    dog = write_image(tmp_path / "Dog" / "a.jpg", 1)
    write_image(tmp_path / "Cat" / "b.PNG", 2)
    write_image(tmp_path / "_negative" / "n.gif", 3)
    write_image(tmp_path / "root.bmp", 4)
    snapshot = scan(mirror(tmp_path), clock_ns=lambda: LATER)
    files = by_path(snapshot)
    assert list(files) == ["Cat/b.PNG", "Dog/a.jpg", "_negative/n.gif", "root.bmp"]
    assert files["Dog/a.jpg"].tags == ("Dog",)
    assert files["Dog/a.jpg"].sha256 == hashlib.sha256(dog).hexdigest()
    assert files["Cat/b.PNG"].image_format == "png"  # extension matched case-insensitively
    assert files["_negative/n.gif"].negative and files["_negative/n.gif"].tags == ()
    assert files["root.bmp"].tags == () and files["root.bmp"].ok
    assert snapshot.hashed == 4 and snapshot.root_exists
    assert snapshot.marker is MarkerState.ABSENT


def test_only_changed_files_are_hashed_again(tmp_path: Path) -> None:
    for n in range(5):
        write_image(tmp_path / "Dog" / f"{n}.jpg", n)
    first = scan(mirror(tmp_path), clock_ns=lambda: LATER)
    assert first.hashed == 5
    second = scan(mirror(tmp_path), cache_of(first), clock_ns=lambda: LATER)
    assert second.hashed == 0
    assert second.files == first.files
    changed = write_image(tmp_path / "Dog" / "2.jpg", 99)
    third = scan(mirror(tmp_path), cache_of(second), clock_ns=lambda: LATER)
    assert third.hashed == 1
    assert by_path(third)["Dog/2.jpg"].sha256 == hashlib.sha256(changed).hexdigest()


def test_moved_files_and_renamed_folders_are_not_read_again(tmp_path: Path) -> None:
    for n in range(3):
        write_image(tmp_path / "Cat" / f"{n}.jpg", n)
    first = scan(mirror(tmp_path), clock_ns=lambda: LATER)
    (tmp_path / "Cat").rename(tmp_path / "Dog")
    (tmp_path / "Dog" / "0.jpg").rename(tmp_path / "Dog" / "zero.jpg")
    second = scan(mirror(tmp_path), cache_of(first), clock_ns=lambda: LATER)
    assert second.hashed == 0
    assert {f.sha256 for f in second.files} == {f.sha256 for f in first.files}
    assert all(f.tags == ("Dog",) for f in second.files)
    # Same inode, new bytes (rewritten in place under its new name): read again.
    changed = write_image(tmp_path / "Dog" / "zero.jpg", 9)
    third = scan(mirror(tmp_path), cache_of(second), clock_ns=lambda: LATER)
    assert third.hashed == 1
    assert by_path(third)["Dog/zero.jpg"].sha256 == hashlib.sha256(changed).hexdigest()


def test_a_hash_taken_in_the_files_mtime_tick_is_not_trusted(tmp_path: Path) -> None:
    path = tmp_path / "Dog" / "a.jpg"
    write_image(path, 1)
    mtime = path.stat().st_mtime_ns
    first = scan(mirror(tmp_path), clock_ns=lambda: mtime + 1)  # hashed right after a write
    second = scan(mirror(tmp_path), cache_of(first), clock_ns=lambda: LATER)
    assert second.hashed == 1


def test_files_hashed_within_a_few_ms_share_one_clock_reading(tmp_path: Path) -> None:
    """A hash is dated by the clock read after it, or by a reading at most 10 ms older (never a
    later one): the files hashed together share one int, not one each (a 100k first sync held
    3.4 MB of them at its peak, bench E)."""
    for n in range(40):
        write_image(tmp_path / "Dog" / f"{n:02}.jpg", n)
    readings: list[int] = []

    def clock() -> int:  # 1 ms a reading; the 21st steps back by a second
        now = LATER + len(readings) * 1_000_000 - (1_000_000_000 if len(readings) == 20 else 0)
        readings.append(now)
        return now

    snapshot = scan(mirror(tmp_path), clock_ns=clock)
    stamps = [f.hashed_at_ns for f in snapshot.files]  # path order is the walk's here
    assert len(readings) == 40
    assert all(s in readings and s <= r for s, r in zip(stamps, readings, strict=True))
    assert sorted(set(stamps)) == sorted({readings[i] for i in (0, 10, 20, 21, 31)})
    assert stamps[0] is stamps[9] and stamps[21] is stamps[30]


def test_checks_record_problems_and_never_stop_the_run(tmp_path: Path) -> None:
    write_image(tmp_path / "Dog" / "good.jpg", 1)
    (tmp_path / "Dog" / "empty.jpg").write_bytes(b"")
    (tmp_path / "Dog" / "text.jpg").write_bytes(b"this is not an image")
    with open(tmp_path / "Dog" / "huge.jpg", "wb") as f:  # sparse: cheap on disk
        f.truncate(MAX_IMAGE_BYTES + 1)
    write_image(tmp_path / "Bad name " / "x.jpg", 2)
    files = by_path(scan(mirror(tmp_path)))
    assert files["Dog/good.jpg"].ok
    assert files["Dog/empty.jpg"].problem.kind is ProblemKind.EMPTY
    assert files["Dog/text.jpg"].problem.kind is ProblemKind.NOT_AN_IMAGE
    assert files["Dog/huge.jpg"].problem.kind is ProblemKind.TOO_LARGE
    assert files["Bad name /x.jpg"].problem.kind is ProblemKind.BAD_TAG_NAME
    assert "whitespace" in files["Bad name /x.jpg"].problem.detail
    assert files["Bad name /x.jpg"].sha256 is not None  # hashed: its bytes stay protected


def test_unreadable_file_and_folder_are_read_errors(tmp_path: Path) -> None:
    write_image(tmp_path / "Dog" / "locked.jpg", 1)
    write_image(tmp_path / "Dog" / "fine.jpg", 2)
    write_image(tmp_path / "Cat" / "c.jpg", 3)

    def open_file(path: str):
        if path.endswith("locked.jpg"):
            raise PermissionError(13, "Permission denied", path)
        return open(path, "rb")

    def open_folder(path: str) -> int:
        if path.endswith("Cat"):
            raise PermissionError(13, "Permission denied", path)
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY)

    snapshot = scan(mirror(tmp_path), open_file=open_file, open_folder=open_folder)
    files = by_path(snapshot)
    assert files["Dog/locked.jpg"].problem.kind is ProblemKind.UNREADABLE
    assert files["Dog/fine.jpg"].ok
    assert [(s.path, s.problem.kind) for s in snapshot.skipped] == [("Cat", ProblemKind.UNREADABLE)]
    assert snapshot.has_read_errors


def test_a_file_changing_while_read_is_flagged(tmp_path: Path) -> None:
    write_image(tmp_path / "Dog" / "a.jpg", 1)

    def stat(path: str) -> os.stat_result:
        st = os.stat(path)
        if path.endswith("a.jpg"):  # the after-read stat sees a new size
            return os.stat_result((*st[:6], st.st_size + 1, *st[7:]))
        return st

    files = by_path(scan(mirror(tmp_path), stat=stat))
    assert files["Dog/a.jpg"].problem.kind is ProblemKind.CHANGED_WHILE_READING


def test_filters_hidden_marker_and_globs(tmp_path: Path) -> None:
    write_image(tmp_path / "Dog" / "a.jpg", 1)
    write_image(tmp_path / "Dog" / "drafts" / "b.jpg", 2)
    write_image(tmp_path / "Dog" / ".hidden.jpg", 3)
    write_image(tmp_path / ".git" / "c.jpg", 4)
    write_image(tmp_path / "Cat" / "c.jpeg", 5)
    (tmp_path / "Dog" / "notes.txt").write_text("hi")
    write_marker(tmp_path, PID)
    snapshot = scan(mirror(tmp_path, exclude=("**/drafts/**",)))
    assert [f.path for f in snapshot.files] == ["Cat/c.jpeg", "Dog/a.jpg"]
    assert snapshot.marker is MarkerState.PRESENT and snapshot.skipped == ()
    only_dogs = scan(mirror(tmp_path, include=("Dog/**",), extensions=(".JPG",)))
    assert [f.path for f in only_dogs.files] == ["Dog/a.jpg", "Dog/drafts/b.jpg"]


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("**", "a/b/c.jpg", True),
        ("*.jpg", "c.jpg", True),
        ("*.jpg", "a/c.jpg", False),
        ("**/*.jpg", "c.jpg", True),
        ("**/*.jpg", "a/b/c.jpg", True),
        ("Dog/**", "Dog/x/y.jpg", True),
        ("Dog/**", "Dogs/y.jpg", False),
        ("a?c/*", "abc/x", True),
        ("[!x]*/*", "x1/y", False),
        ("a b/*", "a b/c", True),
    ],
)
def test_globs(pattern: str, path: str, matches: bool) -> None:
    assert bool(compile_glob(pattern).match(path)) is matches


def test_symlinks_skipped_by_default_followed_with_loops_detected(tmp_path: Path) -> None:
    root = tmp_path / "root"
    write_image(root / "Dog" / "a.jpg", 1)
    write_image(root / ".store" / "b.jpg", 2)  # hidden: reached only through the link
    (root / "Linked").symlink_to(root / ".store")
    (root / "Dog" / "loop").symlink_to(root)
    (root / "Dog" / "dangling.jpg").symlink_to(tmp_path / "missing.jpg")
    default = scan(mirror(root))
    assert [f.path for f in default.files] == ["Dog/a.jpg"]
    assert {(s.path, s.problem.kind) for s in default.skipped} == {
        ("Linked", ProblemKind.SYMLINK),
        ("Dog/loop", ProblemKind.SYMLINK),
        ("Dog/dangling.jpg", ProblemKind.SYMLINK),
    }
    followed = scan(mirror(root, follow_symlinks=True))
    assert [f.path for f in followed.files] == ["Dog/a.jpg", "Linked/b.jpg"]
    assert by_path(followed)["Linked/b.jpg"].tags == ("Linked",)
    assert ("Dog/loop", ProblemKind.SYMLINK_LOOP) in {
        (s.path, s.problem.kind) for s in followed.skipped
    }


def test_followed_symlinks_never_leave_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    write_image(root / "Dog" / "a.jpg", 1)
    write_image(root / "Cat" / "c.jpg", 2)
    write_image(root / ".store" / "pics" / "p.jpg", 3)
    write_image(tmp_path / "outside" / "hostname.jpg", 4)  # an image, so only the place refuses it
    write_image(tmp_path / "outside" / "away" / "x.jpg", 5)
    (root / "Dog" / "host.jpg").symlink_to(tmp_path / "outside" / "hostname.jpg")  # file, outside
    (root / "Away").symlink_to(tmp_path / "outside" / "away")  # folder, outside
    (root / ".hop.jpg").symlink_to(tmp_path / "outside" / "hostname.jpg")
    (root / "Dog" / "chain.jpg").symlink_to(root / ".hop.jpg")  # inside, then out
    (root / "Up").symlink_to("..")  # relative, to the root's parent
    (root / "Pics").symlink_to(root / ".store" / "pics")  # folder, inside
    (root / "Dog" / "rel.jpg").symlink_to(Path("..") / "Cat" / "c.jpg")  # file, inside

    snapshot = scan(mirror(root, follow_symlinks=True))

    assert [f.path for f in snapshot.files] == [
        "Cat/c.jpg",
        "Dog/a.jpg",
        "Dog/rel.jpg",
        "Pics/p.jpg",
    ]
    outside = {"Away", "Dog/chain.jpg", "Dog/host.jpg", "Up"}
    assert {s.path for s in snapshot.skipped} == outside
    for skipped in snapshot.skipped:
        assert skipped.problem.kind is ProblemKind.SYMLINK_OUTSIDE_ROOT
        assert "points outside the root" in str(skipped.problem)


def test_awkward_names_do_not_crash(tmp_path: Path) -> None:
    write_image(tmp_path / "Dog" / "with space.jpg", 1)
    write_image(tmp_path / "Dog" / "new\nline.jpg", 2)
    write_image(tmp_path / "🐶" / "emoji 🐕.jpg", 3)
    bad_dir = os.path.join(os.fsencode(tmp_path), b"Caf\xe9")
    os.mkdir(bad_dir)
    with open(os.path.join(bad_dir, b"x.jpg"), "wb") as f:
        f.write(image_bytes(4))
    with open(os.path.join(os.fsencode(tmp_path), b"Dog", b"\xff.jpg"), "wb") as f:
        f.write(image_bytes(5))
    snapshot = scan(mirror(tmp_path))
    assert [f.path for f in snapshot.files] == [
        "Dog/new\nline.jpg",
        "Dog/with space.jpg",
        "🐶/emoji 🐕.jpg",
    ]
    assert by_path(snapshot)["🐶/emoji 🐕.jpg"].tags == ("🐶",)
    assert [(s.path, s.problem.kind) for s in snapshot.skipped] == [
        ("Caf\\xe9", ProblemKind.NON_UTF8_NAME),
        ("Dog/\\xff.jpg", ProblemKind.NON_UTF8_NAME),
    ]


def test_root_files_can_be_skipped(tmp_path: Path) -> None:
    write_image(tmp_path / "loose.jpg", 1)
    config = dataclasses.replace(mirror(tmp_path), tags=TagConfig(root_files=RootFiles.SKIP))
    (loose,) = scan(config).files
    assert loose.problem.kind is ProblemKind.ROOT_FILE_SKIPPED


def test_missing_root(tmp_path: Path) -> None:
    snapshot = scan(mirror(tmp_path / "unmounted"))
    assert not snapshot.root_exists and snapshot.files == ()


def test_marker_states(tmp_path: Path) -> None:
    assert read_marker(tmp_path, PID) is MarkerState.ABSENT
    write_marker(tmp_path, PID)
    assert read_marker(tmp_path, PID) is MarkerState.PRESENT
    assert read_marker(tmp_path, PID.upper()) is MarkerState.PRESENT
    assert read_marker(tmp_path, "99999999-2222-3333-4444-555555555555") is MarkerState.FOREIGN
    (tmp_path / MARKER_NAME).write_bytes(b"\xff\xfe")
    assert read_marker(tmp_path, PID) is MarkerState.FOREIGN


@pytest.mark.parametrize("fmt", ["jpeg", "png", "bmp", "gif"])
def test_sniff_real_images(fmt: str) -> None:
    assert sniff_image_format(image_bytes(7, fmt)) == fmt
    assert sniff_image_format(b"RIFF....WEBP") is None


# --- the tree's stat digest (what lets an unchanged tree skip the file-by-file work) -----------


def _digest(root: Path) -> str | None:
    return walk_tree(mirror(root)).digest


def test_the_digest_is_stable_and_moves_with_any_name_or_stat_change(tmp_path: Path) -> None:
    write_image(tmp_path / "Dog" / "a.jpg", 1)
    write_image(tmp_path / "Dog" / "b.jpg", 2)
    write_image(tmp_path / "Cat" / "c.jpg", 3)
    seen = {_digest(tmp_path)}
    assert _digest(tmp_path) in seen  # nothing changed: the same digest

    def changed() -> bool:
        digest = _digest(tmp_path)
        new = digest not in seen
        seen.add(digest)
        return new

    os.utime(tmp_path / "Dog" / "a.jpg", ns=(1, 1))
    assert changed()  # mtime
    (tmp_path / "Dog" / "b.jpg").write_bytes((tmp_path / "Dog" / "b.jpg").read_bytes() + b"\0")
    assert changed()  # size (and mtime)
    os.rename(tmp_path / "Cat" / "c.jpg", tmp_path / "Cat" / "d.jpg")
    assert changed()  # a name
    write_image(tmp_path / "Cat" / "e.jpg", 4)
    assert changed()  # a new file
    (tmp_path / "Cat" / "e.jpg").unlink()
    assert _digest(tmp_path) in seen  # back to the tree before it
    # Two files swap names: the same names, sizes and mtimes overall, but not file by file.
    a, d = tmp_path / "Dog" / "a.jpg", tmp_path / "Cat" / "d.jpg"
    os.rename(a, tmp_path / "swap")
    os.rename(d, a)
    os.rename(tmp_path / "swap", d)
    assert changed()


def test_the_digest_is_only_kept_for_a_clean_tree(tmp_path: Path) -> None:
    write_image(tmp_path / "Dog" / "a.jpg", 1)
    walked = walk_tree(mirror(tmp_path))
    # Hashed right after the write: not to be trusted next run, so nothing may vouch for it.
    assert check_tree(walked, mirror(tmp_path), clock_ns=time.time_ns).digest is None
    assert check_tree(walked, mirror(tmp_path), clock_ns=lambda: LATER).digest == walked.digest

    (tmp_path / "Dog" / "empty.jpg").write_bytes(b"")  # a problem file
    assert check_tree(walk_tree(mirror(tmp_path)), mirror(tmp_path)).digest is None
    (tmp_path / "Dog" / "empty.jpg").unlink()
    (tmp_path / "Dog" / "link.jpg").symlink_to(tmp_path / "Dog" / "a.jpg")  # skipped
    assert walk_tree(mirror(tmp_path)).digest is None


def test_decoded_verdicts_land_on_their_own_files_whatever_order_the_decoders_finish(
    tmp_path: Path,
) -> None:
    """More images than the decoders hold at once, every third one cut short: each verdict is
    on the file it belongs to (the decode runs beside the reads, scan.DECODE_IN_FLIGHT)."""
    from syncd.scan import DECODE_IN_FLIGHT

    count = 3 * DECODE_IN_FLIGHT + 2
    for n in range(count):
        data = image_bytes(n, "jpeg", size=(64, 48))
        (tmp_path / "Dog").mkdir(exist_ok=True)
        (tmp_path / "Dog" / f"{n:02}.jpg").write_bytes(
            data[: len(data) // 2] if n % 3 == 0 else data
        )

    snapshot = scan(mirror(tmp_path), clock_ns=lambda: LATER)

    assert snapshot.decoded == count
    kinds = {f.path: f.problem.kind if f.problem else None for f in snapshot.files}
    assert kinds == {
        f"Dog/{n:02}.jpg": ProblemKind.NOT_DECODABLE if n % 3 == 0 else None for n in range(count)
    }


@pytest.mark.parametrize("kept", [0.3, 0.9, 0.99])
def test_a_jpeg_cut_anywhere_in_its_body_is_not_decodable(tmp_path: Path, kept: float) -> None:
    """The JPEG decode is scaled down (Pillow draft mode) to save memory: every byte of the
    body is still read, so a cut even near the end is found."""
    data = image_bytes(9, "jpeg", size=(640, 480))
    (tmp_path / "Dog").mkdir()
    (tmp_path / "Dog" / "cut.jpg").write_bytes(data[: int(len(data) * kept)])

    (cut,) = scan(mirror(tmp_path), clock_ns=lambda: LATER).files

    assert cut.problem is not None and cut.problem.kind is ProblemKind.NOT_DECODABLE
    assert "truncated" in cut.problem.detail


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that says `width` x `height` (1-bit) and holds no picture: its header is all a size
    check needs, and it costs nothing to make at any size."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


@pytest.mark.parametrize("size", [(20_000, 10_500), (10_241, 10_241), (50_000, 50_000)])
def test_an_image_over_the_side_limit_is_too_many_pixels_at_any_size(
    tmp_path: Path, size: tuple[int, int]
) -> None:
    """However big (past Pillow's own decompression-bomb guard too), the service's rule is the
    one reported."""
    (tmp_path / "Dog").mkdir()
    (tmp_path / "Dog" / "big.png").write_bytes(_png_header_only(*size))

    (big,) = scan(mirror(tmp_path), clock_ns=lambda: LATER).files

    assert big.problem is not None and big.problem.kind is ProblemKind.TOO_MANY_PIXELS, big
    assert "10,240 px" in big.problem.detail


def test_the_largest_legal_image_prints_no_pillow_warning(tmp_path: Path) -> None:
    """A 10,240 px square is over Pillow's default decompression-bomb threshold (89.5 MP): the
    warning must not reach the operator's terminal (a fresh process: pytest resets filters)."""
    sample = tmp_path / "square.png"
    sample.write_bytes(_png_header_only(10_240, 10_240))
    code = (
        "import pathlib, sys; from syncd.decode import content_problem; "
        "print(content_problem(pathlib.Path(sys.argv[1]).read_bytes()).kind)"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, str(sample)], capture_output=True, text=True, check=True
    )

    assert run.stdout.strip() == "not_decodable"  # a header and no picture: legal size, no body
    assert "Warning" not in run.stderr, run.stderr
