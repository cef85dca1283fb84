"""Which image format a file holds, from its first bytes: the formats the service accepts.

Public names: sniff_image_format, image_suffix, IMAGE_MAGIC_BYTES, UNACCEPTED_IMAGE_SUFFIXES.

«Supported formats are JPEG, GIF, PNG, and BMP.» The scanner refuses anything else before an
upload; `syncd pull` and the trash name a downloaded original by its format.
"""

from __future__ import annotations

# (first bytes, format name, file suffix); the longest magic needed is PNG's 8 bytes.
IMAGE_MAGIC_BYTES: tuple[tuple[bytes, str, str], ...] = (
    (b"\xff\xd8\xff", "jpeg", ".jpg"),
    (b"\x89PNG\r\n\x1a\n", "png", ".png"),
    (b"GIF87a", "gif", ".gif"),
    (b"GIF89a", "gif", ".gif"),
    (b"BM", "bmp", ".bmp"),
)


# Suffixes of image formats the service refuses: the walk counts such files by suffix, so a tree
# half of WEBP or TIFF is not mirrored half without a word. Other files (notes, sidecars, CSVs)
# are a dataset's normal company and are not counted. .jfif and .jpe are JPEGs: not listed.
UNACCEPTED_IMAGE_SUFFIXES = frozenset(
    {
        ".webp",
        ".tif",
        ".tiff",
        ".heic",
        ".heif",
        ".avif",
        ".jxl",
        ".jp2",
        ".ico",
        ".svg",
        ".psd",
        ".dng",
        ".cr2",
        ".nef",
        ".arw",
    }
)


def sniff_image_format(head: bytes) -> str | None:
    """Return "jpeg", "png", "gif" or "bmp" from a file's first bytes, or None."""
    return next((name for magic, name, _ in IMAGE_MAGIC_BYTES if head.startswith(magic)), None)


def image_suffix(head: bytes) -> str | None:
    """Return the file suffix (".jpg", ".png", ".gif", ".bmp") for a file's first bytes, or None."""
    return next((suffix for magic, _, suffix in IMAGE_MAGIC_BYTES if head.startswith(magic)), None)
