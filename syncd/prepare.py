"""`files.prepare`: turn an image the service would refuse into one it takes, without touching it.

Public names: ImageFacts, inspect, judge, content_key, prepare_bytes, PrepareError, Preparer,
Preparing, preparing_for, PrepareSummary, summarize, known_as_prepared, learn_prepared,
available_formats, convertible_suffixes, PREPARE_VERSION, MAX_PREPARE_SOURCE_BYTES,
PREPARE_PROCESSES.

Three steps, each where its cost belongs:

- **inspect** (the scan, on new or changed content only): the file is decoded in full with Pillow,
  and what preparing needs to know is kept as `ImageFacts` (format, size in pixels, transparency,
  lossless, EXIF orientation, frames) in the ledger with the file's stat.
- **judge** (every scan, from the facts: no file is read): the file is refused with the service's
  rule, sent as it is, or given a *recipe*, the text naming what preparing will do to it (convert
  to PNG or JPEG at a quality, fit within the limits, apply the orientation). The recipe holds only
  the settings that change this file's output, so a changed setting touches only the files it
  affects.
- **prepare_bytes** (the executor, in a process pool, just before the upload): the recipe applied.

Identity stays the local file's content. A prepared file's key (LocalFile.sha256, what the planner
pairs and the ledger's `images` hold) is `content_key(local sha256, recipe)`: a move keeps it (a
retag), a no-op never prepares again, a changed recipe is new content (uploaded; the old image
goes as any replaced content does). The ledger's `prepared` table maps each key to the local
file's sha256 and the prepared bytes' sha256, so a download of a prepared image is known for
what it is (adoption, the trash, pull).

Pillow (and pillow-heif) are imported on first use: with `files.prepare` off, a run imports
them only to count files of a format it would convert, and only if the tree has some.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import io
import json
import math
import os
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from syncd.core.limits import (
    ASPECT_RATIO_RULE,
    MAX_ASPECT_RATIO,
    MAX_BYTES_RULE,
    MAX_IMAGE_BYTES,
    MAX_IMAGE_SIDE_PX,
    MAX_SIDE_RULE,
)
from syncd.core.model import LocalFile, LocalSnapshot, Problem, ProblemKind, RemoteSnapshot
from syncd.decode import _pillow_image

if TYPE_CHECKING:  # not at run time: the pool's processes import this module, and start fast
    from syncd.config import PrepareConfig

# Bump when the bytes prepared for a recipe change (another resampling, encoder settings): every
# prepared file's key changes with it, so each is prepared and sent again once.
PREPARE_VERSION = 1

# The largest file syncd reads to prepare (a phone photo is 3-15 MB, a scanner's TIFF 50-200 MB).
# The scan holds a few files at once (syncd.scan.DECODE_IN_FLIGHT): this bounds that memory.
MAX_PREPARE_SOURCE_BYTES = 64 * 1024 * 1024

# Formats the service takes as they are (Pillow's names, lower case).
ACCEPTED = ("jpeg", "png", "bmp", "gif")
# files.prepare.formats -> Pillow's format names and the file suffixes the walk then takes in.
_PILLOW_NAMES = {"webp": ("WEBP",), "tiff": ("TIFF",), "heif": ("HEIF",), "avif": ("AVIF",)}
_SUFFIXES = {
    "webp": (".webp",),
    "tiff": (".tif", ".tiff"),
    "heif": (".heic", ".heif"),
    "avif": (".avif",),
}
# Pillow names a phone's JPEG that carries more pictures after the first (MPF) MPO: the service
# reads it as the JPEG it is.
_SAME_AS = {"mpo": "jpeg"}
_ALL_SUFFIXES = frozenset(s for suffixes in _SUFFIXES.values() for s in suffixes)
# EXIF tag 0x0112: 1 is upright, 2-8 a mirror and/or rotation for the viewer to apply.
_EXIF_ORIENTATION = 0x0112
# Each try to fit under 6 MB scales the sides by the square root of the bytes' excess, and a
# little more (a JPEG's size is roughly proportional to its pixel count).
_FIT_MARGIN = 0.95
_FIT_TRIES = 8


class PrepareError(Exception):
    """An image that could not be prepared within the service's limits (the message says why)."""


@functools.cache
def _plugins() -> frozenset[str]:
    """The optional formats whose Pillow plugin is here: HEIF through pillow-heif (registered
    on first use), AVIF when Pillow was built with libavif."""
    found = {"webp", "tiff"}
    try:
        import pillow_heif  # type: ignore[import-not-found,unused-ignore]

        pillow_heif.register_heif_opener()
        found.add("heif")
    except ImportError:
        pass
    from PIL import features

    if features.check("avif"):
        found.add("avif")
    return frozenset(found)


def available_formats(prepare: PrepareConfig) -> tuple[str, ...]:
    """The configured formats that can be decoded here."""
    return tuple(f for f in prepare.formats if f in _plugins())


def convertible_suffixes(prepare: PrepareConfig | None) -> frozenset[str]:
    """File suffixes the walk takes in because `files.prepare` converts them."""
    if prepare is None:
        return frozenset()
    return frozenset(s for f in available_formats(prepare) for s in _SUFFIXES[f])


@dataclass(frozen=True)
class ImageFacts:
    """What preparing an image depends on, read once by decoding it (kept in the ledger)."""

    format: str  # Pillow's name, lower case: jpeg, png, bmp, gif, webp, tiff, heif, avif
    width: int  # as stored, before any orientation
    height: int
    alpha: bool  # has transparency
    lossless: bool  # PNG, BMP, GIF, lossless WEBP, TIFF not JPEG-compressed
    orientation: int = 1
    frames: int = 1

    def to_text(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_text(cls, text: str) -> ImageFacts | None:
        try:
            return cls(**json.loads(text))
        except (ValueError, TypeError):
            return None  # unreadable: the file is read again


def inspect(data: bytes, prepare: PrepareConfig) -> ImageFacts | Problem:
    """Decode `data` in full; return its facts, or the problem that it does not decode (or is
    past the decompression-bomb guard: more than twice the service's largest image)."""
    Image = _pillow_image()
    formats = [f.upper() for f in ACCEPTED]
    formats += [n for f in available_formats(prepare) for n in _PILLOW_NAMES[f]]
    try:
        with Image.open(io.BytesIO(data), formats=formats) as img:
            fmt = str(img.format).lower()
            fmt = _SAME_AS.get(fmt, fmt)
            alpha = img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in img.info
            orientation = int(img.getexif().get(_EXIF_ORIENTATION, 1) or 1)
            facts = ImageFacts(
                format=fmt,
                width=img.width,
                height=img.height,
                alpha=alpha,
                lossless=_lossless(fmt, img.info, data),
                orientation=orientation if 1 <= orientation <= 8 else 1,
                frames=int(getattr(img, "n_frames", 1)),
            )
            if fmt == "jpeg":  # every body byte is still read (see syncd.decode)
                img.draft(img.mode, (-(-img.width // 8), -(-img.height // 8)))
            img.load()
    except Image.DecompressionBombError as exc:
        return Problem(ProblemKind.TOO_MANY_PIXELS, f"{exc}; {MAX_SIDE_RULE}")
    except Exception as exc:
        reason = str(exc) or type(exc).__name__
        names = ", ".join(f.upper() for f in (*ACCEPTED, *available_formats(prepare)))
        detail = f"it does not decode as an image ({reason}); files.prepare reads {names}"
        return Problem(ProblemKind.NOT_DECODABLE, detail)
    return facts


def _lossless(fmt: str, info: dict[str, Any], data: bytes) -> bool:
    if fmt in ("png", "bmp", "gif"):
        return True
    if fmt == "webp":  # a lossless WEBP's bitstream is a VP8L chunk (a lossy one's is VP8)
        return b"VP8L" in data[12:4096]
    if fmt == "tiff":
        return str(info.get("compression", "raw")) not in ("jpeg", "tiff_jpeg")
    return False  # JPEG, HEIF, AVIF


def judge(facts: ImageFacts, size: int, prepare: PrepareConfig | None) -> Problem | str | None:
    """The service rule the file breaks and preparing cannot mend (a Problem), what preparing
    will do to it (its recipe), or None: it is sent as it is."""
    convert = facts.format not in ACCEPTED
    if convert and (prepare is None or facts.format not in available_formats(prepare)):
        detail = f"a {facts.format.upper()} image: not a JPEG, PNG, BMP or GIF"
        return Problem(ProblemKind.NOT_AN_IMAGE, detail)
    width, height = facts.width, facts.height
    short, long = min(width, height), max(width, height)
    if short <= 0 or long > MAX_ASPECT_RATIO * short:
        # Scaling keeps the ratio; cropping or padding would change what the model is shown.
        detail = f"{width} x {height} px, {long / max(short, 1):.1f}:1; {ASPECT_RATIO_RULE}"
        return Problem(ProblemKind.ASPECT_RATIO, detail)
    over_side = long > MAX_IMAGE_SIDE_PX
    over_bytes = size > MAX_IMAGE_BYTES
    downscale = prepare is not None and prepare.downscale
    if over_side and not downscale:
        return Problem(ProblemKind.TOO_MANY_PIXELS, f"{width} x {height} px; {MAX_SIDE_RULE}")
    if over_bytes and not downscale:
        detail = f"{size} bytes, over {MAX_IMAGE_BYTES}; {MAX_BYTES_RULE}"
        return Problem(ProblemKind.TOO_LARGE, detail)
    orient = prepare is not None and prepare.orient and facts.orientation != 1
    if prepare is None or not (convert or over_side or over_bytes or orient):
        return None
    output = "png" if facts.alpha or facts.lossless else "jpeg"
    recipe = [f"v{PREPARE_VERSION}", output]
    if output == "jpeg":
        recipe.append(f"q{prepare.jpeg_quality}")
    if orient:
        recipe.append(f"orient{facts.orientation}")
    if downscale:  # a conversion can grow past 6 MB too (a lossless WEBP as a PNG)
        recipe.append("fit")
    return ":".join(recipe)


def content_key(sha256: str, recipe: str | None) -> str:
    """The identity of a file's content as it is sent: its own sha256 when sent as it is, else
    a hash of (its sha256, the recipe), so another recipe is other content."""
    if recipe is None:
        return sha256
    return hashlib.sha256(f"syncd-prepared\0{sha256}\0{recipe}".encode()).hexdigest()


# --- preparing (in the pool's processes) ----------------------------------------------------------


def prepare_bytes(data: bytes, recipe: str) -> bytes:
    """Return `data` (a file's bytes) prepared by `recipe`; raise PrepareError if it cannot be
    made to fit. Deterministic: the same bytes and recipe give the same bytes (same Pillow)."""
    Image = _pillow_image()
    _plugins()
    from PIL import ImageOps

    steps = recipe.split(":")
    output = steps[1]
    quality = next((int(s[1:]) for s in steps if s.startswith("q")), 90)
    fit = "fit" in steps
    with Image.open(io.BytesIO(data)) as opened:
        opened.seek(0)  # an animation is prepared as its first frame
        scale = _side_scale(opened.width, opened.height) if fit else 1.0
        if opened.format == "JPEG" and scale < 0.5:
            # libjpeg scales by 1/2, 1/4, 1/8 while decoding: far less work, still above target
            opened.draft(opened.mode, (int(opened.width * scale), int(opened.height * scale)))
        mode = _mode(opened, output)
        opened.load()
        img = opened if opened.mode == mode else opened.convert(mode)  # (convert always copies)
    if any(s.startswith("orient") for s in steps):
        img = ImageOps.exif_transpose(img) or img
    target = _scaled(img.width, img.height, _side_scale(img.width, img.height) if fit else 1.0)
    for _ in range(_FIT_TRIES):
        resized = img if target == img.size else img.resize(target, Image.Resampling.LANCZOS)
        out = _encode(resized, output, quality)
        if len(out) <= MAX_IMAGE_BYTES:
            return out
        if not fit:
            raise PrepareError(
                f"{len(out)} bytes as {output.upper()}, over {MAX_IMAGE_BYTES} "
                "(files.prepare.downscale is off); " + MAX_BYTES_RULE
            )
        factor = math.sqrt(MAX_IMAGE_BYTES / len(out)) * _FIT_MARGIN
        target = _scaled(target[0], target[1], factor)
    raise PrepareError(f"could not fit it under {MAX_IMAGE_BYTES} bytes; {MAX_BYTES_RULE}")


def _side_scale(width: int, height: int) -> float:
    return min(1.0, MAX_IMAGE_SIDE_PX / max(width, height, 1))


def _scaled(width: int, height: int, factor: float) -> tuple[int, int]:
    """The size scaled by `factor` (at most the original), within the side and aspect limits."""
    if factor >= 1.0:
        return width, height
    w, h = max(1, int(width * factor)), max(1, int(height * factor))
    if w >= h and w > MAX_ASPECT_RATIO * h:  # rounding must not tip 25:1 over
        h = -(-w // MAX_ASPECT_RATIO)
    elif h > w and h > MAX_ASPECT_RATIO * w:
        w = -(-h // MAX_ASPECT_RATIO)
    return w, h


def _mode(img: Any, output: str) -> str:
    """The mode to encode in: PNG keeps grey, 16 bits, palette and alpha; JPEG takes L or RGB."""
    mode = str(img.mode)
    if output == "png":
        if mode in ("1", "L", "LA", "RGB", "RGBA", "I;16"):
            return mode
        if mode == "P":
            return "RGBA" if "transparency" in img.info else "RGB"
        if mode in ("I", "I;16B", "I;16L"):
            return "I;16" if mode != "I" else "I"
        return "RGBA" if mode in ("PA", "La", "RGBa") or "A" in mode else "RGB"
    return "L" if mode in ("1", "L") else "RGB"


def _encode(img: Any, output: str, quality: int) -> bytes:
    buffer = io.BytesIO()
    if output == "jpeg":
        img.save(buffer, "JPEG", quality=quality)
    else:
        img.save(buffer, "PNG", compress_level=6)
    return buffer.getvalue()


def _prepare_job(data: bytes, recipe: str) -> tuple[bytes | None, str]:
    """One job in a pool process: (the prepared bytes, "") or (None, why not). Never raises:
    an exception's traceback must not reach the operator."""
    try:
        return prepare_bytes(data, recipe), ""
    except PrepareError as exc:
        return None, str(exc)
    except Exception as exc:
        return None, f"it could not be prepared ({str(exc) or type(exc).__name__})"


def _worker_start() -> None:
    """A pool process ignores Ctrl-C (the terminal sends it to the whole process group): syncd
    itself stops the run and shuts the pool down, and a worker's traceback must not reach the
    operator's terminal. It keeps the memory one image frees for the next."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _keep_freed_memory()


# glibc's mallopt parameters (malloc.h) and the values a pool process sets. By default glibc maps
# each block over ~128 KB-32 MB (Pillow's 16 MB image blocks, a file's bytes) on its own and gives
# it back on free, and trims the heap past 128 KB free: each image then faults tens of MB of
# zeroed pages in again (perf, bench K: a quarter of a worker's CPU time, ~400k page faults for
# 32 photos; ~57k with these). A process keeps up to _KEEP_FREED_BYTES for the next image: about
# one decoded 12 MP photo and its file, held only while the run's pool lives.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024  # glibc's largest on 64 bits
_KEEP_FREED_BYTES = 128 * 1024 * 1024


def _keep_freed_memory() -> None:
    """Tell glibc's malloc to keep freed memory in this process (elsewhere: its defaults)."""
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this process runs on
    except (OSError, AttributeError):
        return  # not glibc (macOS has no mallopt)
    mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES)
    mallopt(_M_TRIM_THRESHOLD, _KEEP_FREED_BYTES)


# --- the pool -------------------------------------------------------------------------------------

# One process per core: preparing is decoding and encoding, all CPU. The upload pipeline bounds
# how many files wait (syncd.executor: a few windows of at most max_batch_bytes in all).
PREPARE_PROCESSES = max(1, os.cpu_count() or 1)


class Preparer:
    """The process pool that prepares uploads, started on the first job (a run that prepares
    nothing starts none). Use as a context manager; `prepare` is awaited from the event loop."""

    def __init__(self, processes: int = PREPARE_PROCESSES) -> None:
        self.processes = processes
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> Preparer:
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        if self._pool is not None:
            # Interrupted: do not hold the run up while the workers finish their current image
            # (they exit after it, the queue closed); else they are idle and end at once.
            self._pool.shutdown(wait=kind is None, cancel_futures=True)
            self._pool = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            import multiprocessing

            # Not fork: the parent has threads (the event loop's, the scan's), and a child forked
            # while one holds a lock can hang. A fork server is a fresh single-threaded process,
            # started once per syncd process, that has imported this module and the main script
            # (so each worker it forks starts at once, without importing either again).
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["__main__", __name__])
            self._pool = ProcessPoolExecutor(
                self.processes, mp_context=context, initializer=_worker_start
            )
        return self._pool

    async def prepare(self, data: bytes, recipe: str) -> tuple[bytes | None, str]:
        """(prepared bytes, "") or (None, why not)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor(), _prepare_job, data, recipe)


@dataclass
class Preparing:
    """What the executor needs to send prepared content: for each key, the local file's sha256
    (what the file read must hash to) and its recipe; the pool; the ledger's record of what was
    prepared (a prepared image's bytes hash to its prepared sha256, not its key: the trash checks
    that)."""

    jobs: dict[str, tuple[str, str]]  # key -> (local sha256, recipe)
    known: dict[str, tuple[str, str]]  # key -> (local sha256, prepared sha256): the ledger's
    preparer: Preparer
    prepared: int = 0

    def file_sha256(self, key: str) -> str:
        """The sha256 a file holding the content keyed `key` has."""
        job = self.jobs.get(key)
        return job[0] if job is not None else key

    def sent_sha256(self, key: str) -> str:
        """The sha256 of the bytes the service holds for the content keyed `key`."""
        known = self.known.get(key)
        return known[1] if known is not None else key

    async def prepare(self, key: str, data: bytes) -> tuple[bytes | None, str]:
        """The bytes to send for the content keyed `key` read from its file: `data` itself
        when it is sent as it is, else prepared in the pool; (None, why) if it cannot be."""
        job = self.jobs.get(key)
        if job is None:
            return data, ""
        prepared, why = await self.preparer.prepare(data, job[1])
        if prepared is not None:
            self.prepared += 1
            self.known[key] = (job[0], hashlib.sha256(prepared).hexdigest())
        return prepared, why


def preparing_for(
    files: Iterable[LocalFile], known: dict[str, tuple[str, str]], preparer: Preparer
) -> Preparing:
    """The Preparing of a scan's files (LocalFile: those with a recipe are prepared)."""
    jobs = {
        f.sha256: (f.source_sha256, f.recipe)
        for f in files
        if f.recipe is not None and f.sha256 is not None and f.source_sha256 is not None
    }
    return Preparing(jobs, dict(known), preparer)


def known_as_prepared(
    snapshot: RemoteSnapshot, known: dict[str, tuple[str, str]]
) -> RemoteSnapshot:
    """The snapshot with each image whose bytes are content syncd prepared (a hashed download,
    a foreign upload of the same preparation) named by that content's key: the planner then
    pairs it with its local file (adoption matches prepared content)."""
    by_prepared = {prepared: key for key, (_, prepared) in known.items()}
    if not any(i.sha256 in by_prepared for i in snapshot.images):
        return snapshot
    images = tuple(
        dataclasses.replace(i, sha256=by_prepared[i.sha256]) if i.sha256 in by_prepared else i
        for i in snapshot.images
    )
    return dataclasses.replace(snapshot, images=images)


@dataclass
class PrepareSummary:
    """What files.prepare did in a run, or would do if it were on (the summary's lines).

    `would_take_skipped`: files left out for their format that it would convert;
    `would_take_refused`: files refused for their size in bytes or pixels that it would scale
    down (prepare off only). `reprepare`: planned uploads of files whose content is in the
    project already, prepared otherwise (settings changed). `prepared`: files prepared and sent.
    """

    enabled: bool = False
    prepared: int = 0
    reprepare: int = 0
    would_take_skipped: int = 0
    would_take_refused: int = 0

    @property
    def would_take(self) -> int:
        return self.would_take_skipped + self.would_take_refused

    def to_json(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "prepared": self.prepared,
            "reprepare": self.reprepare,
            "would_take": self.would_take,
            "would_take_skipped": self.would_take_skipped,
            "would_take_refused": self.would_take_refused,
        }


# Refusals files.prepare.downscale mends (an image past the decompression-bomb guard, more than
# twice the service's largest, is counted too: rare, and then the run says so by path).
_DOWNSCALED_KINDS = (ProblemKind.TOO_LARGE, ProblemKind.TOO_MANY_PIXELS)


def summarize(
    prepare: PrepareConfig | None,
    local: LocalSnapshot,
    uploads: Iterable[str],
    image_sha256s: Iterable[str],
    known: dict[str, tuple[str, str]],
) -> PrepareSummary:
    """The run's PrepareSummary before anything is sent: `uploads` are the planned uploads'
    keys, `image_sha256s` the keys of the images the project holds (as the ledger knows them)."""
    if prepare is None:
        skipped = 0
        if any(suffix in _ALL_SUFFIXES for suffix, _ in local.unaccepted):
            # Only then are the plugins looked for (pillow-heif and Pillow take memory).
            from syncd.config import PrepareConfig  # (see the import at the top)

            suffixes = convertible_suffixes(PrepareConfig())
            skipped = sum(n for suffix, n in local.unaccepted if suffix in suffixes)
        refused = sum(
            1
            for f in local.files
            if f.problem is not None
            and f.problem.kind in _DOWNSCALED_KINDS
            and f.size <= MAX_PREPARE_SOURCE_BYTES
        )
        summary = PrepareSummary(False, would_take_skipped=skipped, would_take_refused=refused)
    else:
        summary = PrepareSummary(True)
    # Local content the project holds under any key: as it is, or as prepared from it.
    held = set(image_sha256s)
    held_sources = held | {known[key][0] for key in held if key in known}
    # Only a prepared key names other bytes than its own (a dict of every file, ~5 MB at a
    # 100k first sync, was built here just after the plan, at the run's peak).
    file_sha = {f.sha256: f.source_sha256 for f in local.files if f.source_sha256 is not None}
    summary.reprepare = sum(
        1 for key in uploads if key not in held and file_sha.get(key, key) in held_sources
    )
    return summary


# Files read and prepared at once to learn their prepared hashes (each holds a file's bytes).
_LEARNING_IN_FLIGHT = PREPARE_PROCESSES + 1


async def learn_prepared(
    local: LocalSnapshot,
    snapshot: RemoteSnapshot,
    known: dict[str, tuple[str, str]],
    root: str,
    preparer: Preparer,
) -> dict[str, tuple[str, str]]:
    """Prepare the files whose prepared content is not known yet, to learn its sha256, when the
    project holds images of content no local file has (a lost ledger, another install's upload
    of the same preparation): returns key -> (local sha256, prepared sha256) of those learnt.

    Preparing is deterministic, so the same file and recipe give the bytes sent before, and the
    planner can then adopt the image instead of uploading a copy."""
    keys = {f.sha256 for f in local.files if f.sha256 is not None}
    held = {i.sha256 for i in snapshot.images if i.sha256 is not None}
    if not held - keys - {prepared for _, prepared in known.values()}:
        return {}
    todo = [
        f
        for f in local.good_files
        if f.recipe is not None and f.sha256 not in held and f.sha256 not in known
    ]
    learnt: dict[str, tuple[str, str]] = {}
    gate = asyncio.Semaphore(_LEARNING_IN_FLIGHT)

    async def one(f: LocalFile) -> None:
        assert f.sha256 is not None and f.recipe is not None and f.source_sha256 is not None
        async with gate:
            try:
                data = await asyncio.to_thread(_read_file, os.path.join(root, f.path))
            except OSError:
                return  # the upload reports it, if it is planned
            if hashlib.sha256(data).hexdigest() != f.source_sha256:
                return  # changed since the scan: the next run sees the new content
            prepared, _ = await preparer.prepare(data, f.recipe)
        if prepared is not None:
            learnt[f.sha256] = (f.source_sha256, hashlib.sha256(prepared).hexdigest())

    await asyncio.gather(*(one(f) for f in todo))
    return learnt


def _read_file(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read(MAX_PREPARE_SOURCE_BYTES + 1)
