"""The benchmark's data: real, distinct, valid image files made with Pillow.

Each image is derived from an integer seed (distinct seeds give distinct bytes). Trees are written
by a pool of processes, one chunk of seeds per task.
"""

from __future__ import annotations

import io
import os
import random
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from PIL import Image

_GRADIENT: Image.Image | None = None


def photo_jpeg(seed: int) -> bytes:
    """A 240x180 JPEG of about 20 KB: a gradient under seeded noise (compresses like a photo)."""
    global _GRADIENT
    w, h = 240, 180
    if _GRADIENT is None:
        _GRADIENT = Image.linear_gradient("L").resize((w, h)).convert("RGB")
    rng = random.Random(seed)
    noise = Image.frombytes("RGB", (w, h), rng.randbytes(w * h * 3))
    img = Image.blend(_GRADIENT, noise, 0.4)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def tiny_png(seed: int) -> bytes:
    """A 16x12 PNG of seeded noise (about 650 bytes)."""
    rng = random.Random(seed)
    img = Image.frombytes("RGB", (16, 12), rng.randbytes(16 * 12 * 3))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def large_png(seed: int) -> bytes:
    """A 1280x1280 PNG of seeded noise, stored uncompressed (about 4.9 MB)."""
    rng = random.Random(seed)
    img = Image.frombytes("RGB", (1280, 1280), rng.randbytes(1280 * 1280 * 3))
    buf = io.BytesIO()
    img.save(buf, "PNG", compress_level=0)
    return buf.getvalue()


_MAKERS = {"photo": (photo_jpeg, ".jpg"), "tiny": (tiny_png, ".png"), "large": (large_png, ".png")}


def _write_chunk(kind: str, items: list[tuple[str, int]]) -> int:
    make, _ = _MAKERS[kind]
    total = 0
    for path, seed in items:
        data = make(seed)
        with open(path, "wb") as f:
            f.write(data)
        total += len(data)
    return total


def layout(root: Path, folders: int, per_folder: int, kind: str, seed0: int) -> list[Path]:
    """The paths of a tree of `folders` tag folders holding `per_folder` images each."""
    suffix = _MAKERS[kind][1]
    return [
        root / f"class{f:03d}" / f"img{seed0 + f * per_folder + i:07d}{suffix}"
        for f in range(folders)
        for i in range(per_folder)
    ]


def write_images(paths: Iterable[Path], kind: str, seed0: int, workers: int = 0) -> int:
    """Write one image per path (seeds seed0, seed0+1, ...); return the bytes written."""
    items = [(str(p), seed0 + n) for n, p in enumerate(paths)]
    for parent in {os.path.dirname(p) for p, _ in items}:
        os.makedirs(parent, exist_ok=True)
    workers = workers or os.cpu_count() or 1
    chunk = max(1, min(2000, len(items) // (workers * 4) or 1))
    chunks = [items[i : i + chunk] for i in range(0, len(items), chunk)]
    if workers == 1 or len(chunks) == 1:
        return sum(_write_chunk(kind, c) for c in chunks)
    with ProcessPoolExecutor(workers) as pool:
        return sum(pool.map(_write_chunk, [kind] * len(chunks), chunks))


def make_tree(root: Path, folders: int, per_folder: int, kind: str, seed0: int) -> int:
    """Write a tree of tag folders; return the bytes written."""
    return write_images(layout(root, folders, per_folder, kind, seed0), kind, seed0)


def age_tree(root: Path, seconds: float) -> None:
    """Set every file's mtime `seconds` into the past (a tree that has been there a while)."""
    then = time.time() - seconds
    for folder, _, files in os.walk(root):
        for name in files:
            os.utime(os.path.join(folder, name), (then, then))


def _camera_base(seed: int) -> bytes:
    """A camera-sized JPEG of seeded noise, 1600x1200 to 2000x1500 (about 1.1 to 1.8 MB)."""
    rng = random.Random(seed)
    w = rng.randrange(1600, 2001, 16)
    h = w * 3 // 4
    img = Image.frombytes("RGB", (w, h), rng.randbytes(w * h * 3))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=75)
    return buf.getvalue()


def _with_comment(jpeg: bytes, text: str) -> bytes:
    """The JPEG with a COM segment right after its SOI marker: same pixels, other bytes."""
    comment = text.encode()
    return jpeg[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + jpeg[2:]


def camera_tree(
    root: Path, folders: int, per_folder: int, seed0: int, bases: int = 24
) -> tuple[int, int]:
    """Write `folders` x `per_folder` camera-like JPEGs of 1-2 MB; return (files, bytes).

    Cheap to make: `bases` distinct noise images (the only ones encoded, in a process pool),
    each file one of them with its own JPEG comment, so every file's hash differs."""
    workers = os.cpu_count() or 1
    with ProcessPoolExecutor(workers) as pool:
        made = list(pool.map(_camera_base, range(seed0, seed0 + bases)))
    total = 0
    n = 0
    for f in range(folders):
        folder = root / f"camera{f:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        for _ in range(per_folder):
            data = _with_comment(made[n % bases], f"syncd bench image {seed0 + n}")
            (folder / f"IMG_{n:05d}.jpg").write_bytes(data)
            total += len(data)
            n += 1
    return n, total
