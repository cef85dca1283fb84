"""Recognise an uploaded image from its bytes: format, width, height; no Pillow at runtime.

Public names: `ImageInfo`, `inspect_image`, `CONTENT_TYPES`.

The service accepts JPEG, PNG, BMP and GIF («Supported formats are JPEG, GIF, PNG, and BMP»). A file
is accepted only if its structure holds together, not just its magic bytes: a PNG's chunks are
walked with their CRCs up to IEND, a JPEG's segments and the markers inside its scans up to EOI,
a GIF's blocks up to its trailer, a BMP's pixel array must fit in the file. So a truncated upload,
or a JPEG whose header is whole but whose picture data is garbage, is `ErrorImageFormat`, as a
decoder on the service side would find (libjpeg stops at a marker no scan may hold:
«Unsupported marker type»).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

CONTENT_TYPES = {"jpeg": "image/jpeg", "png": "image/png", "bmp": "image/bmp", "gif": "image/gif"}


@dataclass(frozen=True)
class ImageInfo:
    """What the emulator needs to know about an accepted image."""

    format: str  # one of CONTENT_TYPES
    width: int
    height: int


def inspect_image(data: bytes) -> ImageInfo | None:
    """Return the format and size of a well-formed JPEG/PNG/BMP/GIF, or None for anything else."""
    try:
        if data.startswith(b"\xff\xd8"):
            return _jpeg(data)
        if data.startswith(b"\x89PNG\r\n\x1a\n"):
            return _png(data)
        if data.startswith((b"GIF87a", b"GIF89a")):
            return _gif(data)
        if data.startswith(b"BM"):
            return _bmp(data)
    except (struct.error, IndexError):
        return None  # a header field ran past the end: truncated
    return None


def _sized(fmt: str, width: int, height: int) -> ImageInfo | None:
    return ImageInfo(fmt, width, height) if width > 0 and height > 0 else None


# JPEG start-of-frame markers (baseline, progressive, lossless...); C4, C8 and CC are not frames.
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
# Markers that may end a scan's data and start the segments before the next scan (progressive
# JPEGs have several): tables, restart interval, DNL, APPn, comments, and the next SOS.
_BETWEEN_SCANS = frozenset({0xC4, 0xCC, 0xDA, 0xDB, 0xDC, 0xDD, 0xFE, *range(0xE0, 0xF0)})
_EOI = 0xD9


def _scan_end(data: bytes, pos: int) -> int | None:
    """Read a scan's entropy-coded data from `pos`; return where the marker after it starts, or
    None if the data holds a marker no scan may hold (corrupt) or never ends (truncated).

    Inside the data a 0xFF byte is followed by 0x00 (a stuffed 0xFF), by RST0-7, or by more
    0xFF fill bytes before a marker: anything else is the marker that ends the scan."""
    while True:
        pos = data.find(b"\xff", pos)
        if pos < 0 or pos + 1 >= len(data):
            return None
        follow = data[pos + 1]
        if follow == 0x00 or 0xD0 <= follow <= 0xD7:
            pos += 2
        elif follow == 0xFF:
            pos += 1
        elif follow == _EOI or follow in _BETWEEN_SCANS:
            return pos
        else:
            return None


def _jpeg(data: bytes) -> ImageInfo | None:
    pos = 2
    size: tuple[int, int] | None = None
    scanned = False
    while pos < len(data):
        if data[pos] != 0xFF:
            return None
        while pos < len(data) and data[pos] == 0xFF:  # fill bytes
            pos += 1
        marker = data[pos]
        pos += 1
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # no length field
            continue
        if marker == _EOI:  # the end: whole only after a frame and a scan
            return _sized("jpeg", *size) if size is not None and scanned else None
        (length,) = struct.unpack(">H", data[pos : pos + 2])
        if length < 2 or pos + length > len(data):
            return None
        if marker in _SOF:
            height, width = struct.unpack(">HH", data[pos + 3 : pos + 7])
            size = (width, height)
        pos += length
        if marker == 0xDA:  # start of scan: entropy-coded data follows, up to the next marker
            if size is None:
                return None
            end = _scan_end(data, pos)
            if end is None:
                return None
            pos, scanned = end, True
    return None


def _png(data: bytes) -> ImageInfo | None:
    pos = 8
    size: tuple[int, int] | None = None
    seen_idat = False
    while pos + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        end = pos + 8 + length
        if end + 4 > len(data):
            return None
        (crc,) = struct.unpack(">I", data[end : end + 4])
        if zlib.crc32(data[pos + 4 : end]) != crc:
            return None
        if size is None:
            if kind != b"IHDR" or length != 13:
                return None
            size = struct.unpack(">II", data[pos + 8 : pos + 16])
        elif kind == b"IDAT":
            seen_idat = True
        elif kind == b"IEND":
            return _sized("png", *size) if seen_idat else None
        pos = end + 4
    return None


def _gif_sub_blocks(data: bytes, pos: int) -> int:
    """Return the position after a chain of GIF data sub-blocks (ended by a zero length)."""
    while True:
        length = data[pos]
        pos += 1 + length
        if length == 0:
            return pos


def _gif(data: bytes) -> ImageInfo | None:
    width, height, flags = struct.unpack("<HHB", data[6:11])
    pos = 13
    if flags & 0x80:
        pos += 3 * (2 ** ((flags & 0x07) + 1))  # global colour table
    images = 0
    while pos < len(data):
        block = data[pos]
        if block == 0x3B:  # trailer
            return _sized("gif", width, height) if images else None
        if block == 0x21:  # extension: label, then sub-blocks
            pos = _gif_sub_blocks(data, pos + 2)
        elif block == 0x2C:  # image descriptor, optional local colour table, LZW data
            local = data[pos + 9]
            pos += 10
            if local & 0x80:
                pos += 3 * (2 ** ((local & 0x07) + 1))
            pos = _gif_sub_blocks(data, pos + 1)
            images += 1
        else:
            return None
        if pos > len(data):
            return None
    return None


def _bmp(data: bytes) -> ImageInfo | None:
    (offset,) = struct.unpack("<I", data[10:14])
    (header_size,) = struct.unpack("<I", data[14:18])
    if header_size == 12:  # BITMAPCOREHEADER
        width, height, _planes, bpp = struct.unpack("<HHHH", data[18:26])
        compression = 0
    elif header_size >= 40:
        width, height, _planes, bpp, compression = struct.unpack("<iiHHI", data[18:34])
    else:
        return None
    height = abs(height)  # negative height = rows stored top-down
    if offset >= len(data) or bpp not in (1, 4, 8, 16, 24, 32):
        return None
    if compression in (0, 3, 6):  # uncompressed (incl. bit fields): the pixel array must fit
        row = ((bpp * width + 31) // 32) * 4
        if offset + row * height > len(data):
            return None
    return _sized("bmp", width, height)
