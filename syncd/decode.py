"""Decode an image fully before any upload: the service's checks that can be made locally.

Public names: content_problem.

The first bytes say JPEG, PNG, BMP or GIF (syncd.core.imageformat); this decodes the whole picture
with Pillow, so a body cut short or garbage behind a valid header is found here, not by the
service (its ErrorImageFormat) on every run. The size in pixels and the aspect ratio are checked
against the service's limits first (syncd.core.limits, from the header: a too-large image is
refused without being decoded).

Pillow is imported on the first decode, not at start-up: a no-op run decodes nothing (the scanner
remembers each file's verdict with its stat, syncd.scan) and so never pays for the import.
"""

from __future__ import annotations

import functools
import io
import warnings
from types import ModuleType

from syncd.core.limits import MAX_IMAGE_SIDE_PX, MAX_SIDE_RULE, dimension_problem
from syncd.core.model import Problem, ProblemKind

# Pillow's names for the formats the service accepts: nothing else is even tried.
_ACCEPTED_FORMATS = ("JPEG", "PNG", "BMP", "GIF")
_FORMAT_RULE = "«Supported formats are JPEG, GIF, PNG, and BMP.» (the service: ErrorImageFormat)"


@functools.cache
def _pillow_image() -> ModuleType:
    """PIL.Image, imported on the first decode and told the service's pixel limit.

    Pillow guards against decompression bombs in Image.open (a warning over 89.5 MP, an error
    over twice that). Our own rule is checked from the header before any decode, so the guard is
    set to the service's largest legal image (a 10,240 px square decodes quietly) and its warning
    silenced (it would reach the operator's terminal); its error, past twice that, can only be an
    image over the side limit. Set once for the process, never around each decode: the decode
    threads would race on the warnings filters."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_SIDE_PX * MAX_IMAGE_SIDE_PX
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
    return Image


def content_problem(data: bytes) -> Problem | None:
    """Return the service rule the image in `data` breaks (it is not decodable, a side is over
    10,240 px, longer than 25:1), or None if it breaks none. Never raises for bad content."""
    Image = _pillow_image()
    try:
        with Image.open(io.BytesIO(data), formats=_ACCEPTED_FORMATS) as img:
            problem = dimension_problem(*img.size)
            if problem is not None:
                return problem
            if img.format == "JPEG":
                # libjpeg's scaled decode still reads every entropy-coded byte (a cut or garbage
                # body fails the same), but builds 1/64 of the pixels: a 10,240 px square takes
                # a few MB, not 300, on each decode thread.
                img.draft(img.mode, (-(-img.width // 8), -(-img.height // 8)))
            img.load()  # decodes every byte of the picture (the first frame of a GIF)
    except Image.DecompressionBombError as exc:  # past twice the largest legal image
        return Problem(ProblemKind.TOO_MANY_PIXELS, f"{exc}; {MAX_SIDE_RULE}")
    except Exception as exc:
        reason = str(exc) or type(exc).__name__
        detail = f"it does not decode as an image ({reason}); {_FORMAT_RULE}"
        return Problem(ProblemKind.NOT_DECODABLE, detail)
    return None
