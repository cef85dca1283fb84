"""Real, distinct image files for tests: JPEG and PNG via Pillow, BMP and GIF too.

Every image is derived from an integer seed, so two seeds never give the same bytes and the same
seed always does.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

from PIL import Image

FORMATS = ("jpeg", "png", "bmp", "gif")
_SUFFIX = {"jpeg": ".jpg", "png": ".png", "bmp": ".bmp", "gif": ".gif"}


def image_bytes(seed: int, fmt: str = "jpeg", size: tuple[int, int] = (32, 24)) -> bytes:
    """Return the bytes of a small, valid image whose pixels depend on the seed."""
    rng = random.Random(seed)
    img = Image.new("RGB", size, (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    # A few seeded pixels make the content distinct even where the colour repeats.
    for i in range(8):
        img.putpixel((i % size[0], (seed >> i) % size[1]), (seed % 256, (seed >> 8) % 256, i * 31))
    buf = io.BytesIO()
    img.save(buf, format=fmt.upper())
    return buf.getvalue()


def write_image(path: Path, seed: int, fmt: str | None = None) -> bytes:
    """Write a seeded image to path (format from the suffix unless given) and return its bytes."""
    if fmt is None:
        fmt = {v: k for k, v in _SUFFIX.items()}.get(path.suffix.lower(), "jpeg")
    data = image_bytes(seed, fmt)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def suffix(fmt: str) -> str:
    return _SUFFIX[fmt]
