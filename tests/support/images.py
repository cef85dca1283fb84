"""Real, distinct image files for tests: JPEG and PNG via Pillow, BMP and GIF too.

Every image is derived from an integer seed, so two seeds never give the same bytes and the same
seed always does.
"""

from __future__ import annotations

import functools
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


# --- images the service refuses or that need care (files.prepare, issue 18) ---------------------


def _seeded(seed: int, size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    """A small gradient with a seeded colour: compresses well, differs per seed."""
    rng = random.Random(seed)
    base = Image.linear_gradient("L").resize(size)
    colour = Image.new("RGB", size, (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    img = Image.merge("RGB", (base, colour.getchannel(1), colour.getchannel(2)))
    return img.convert(mode) if mode != "RGB" else img


def encoded(img: Image.Image, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **options)
    return buf.getvalue()


@functools.cache
def noise_jpeg(target_bytes: int = 9 * 1024 * 1024) -> bytes:
    """A JPEG of random noise at quality 95, just over `target_bytes` (built once a session):
    noise does not compress, so a 9 MB JPEG is a few megapixels, like a phone photo."""
    rng = random.Random(18)
    side = 1600
    while True:
        img = Image.frombytes("RGB", (side, side * 3 // 4), rng.randbytes(side * side * 9 // 4))
        data = encoded(img, "JPEG", quality=95)
        if len(data) > target_bytes:
            return data
        side = int(side * (target_bytes / len(data)) ** 0.5) + 16


def wide_png(size: tuple[int, int]) -> bytes:
    """A 1-bit PNG of `size`: a few KB even at 12,000 px wide."""
    return encoded(Image.new("1", size, 1), "PNG")


def webp(seed: int, *, lossless: bool = False, alpha: bool = False) -> bytes:
    img = _seeded(seed, (64, 48))
    if alpha:  # see-through on the left, opaque on the right
        img.putalpha(Image.linear_gradient("L").rotate(90).resize(img.size))
    return encoded(img, "WEBP", lossless=lossless, quality=80)


def tiff(seed: int) -> bytes:
    return encoded(_seeded(seed, (64, 48)), "TIFF", compression="tiff_lzw")


def heic(seed: int) -> bytes | None:
    """A HEIC photo, or None when pillow-heif (the `formats` extra) is not installed."""
    try:
        import pillow_heif
    except ImportError:
        return None
    pillow_heif.register_heif_opener()
    return encoded(_seeded(seed, (64, 48)), "HEIF", quality=80)


def cmyk_jpeg(seed: int) -> bytes:
    return encoded(_seeded(seed, (64, 48), "CMYK"), "JPEG", quality=90)


def png16(seed: int) -> bytes:
    """A 16-bit greyscale PNG."""
    img = Image.linear_gradient("L").resize((64, 48)).convert("I")
    img = img.point(lambda v: v * 257 + seed % 256)
    return encoded(img.convert("I;16"), "PNG")


def animated_gif(seed: int) -> bytes:
    frames = [_seeded(seed + i, (48, 32)).convert("P") for i in range(3)]
    return encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)


def rotated_jpeg(seed: int, orientation: int = 6, size: tuple[int, int] = (64, 48)) -> bytes:
    """A JPEG stored `size` wide whose EXIF says to turn it (6: 90 degrees clockwise)."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encoded(_seeded(seed, size), "JPEG", quality=90, exif=exif.tobytes())
