"""`syncd review --link-into` on a detection iteration: one JPEG per listed image with the image's
boxes and the iteration's confident predictions drawn over it (Pillow's ImageDraw).

Public names: draw_overlay, EXPECTED_COLOUR, PREDICTED_COLOUR.

Boxes are fractions of the stored pixels (the service's frame), so they are drawn on the stored
image, and the overlay is written without EXIF: every viewer then shows it as drawn. Expected boxes
(the image's regions) are green, drawn just outside the box, with the tag above it; predictions at
or above the review's threshold magenta, just inside the box, with tag and probability.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw

from syncd.core.regions import Box

EXPECTED_COLOUR = (0, 200, 0)
PREDICTED_COLOUR = (255, 0, 255)
_JPEG_QUALITY = 95
_LINE_PER_PIXELS = 200  # 1 px of line per this many pixels of the longer side, at least 3


def _pixels(box: Box, width: int, height: int) -> tuple[float, float, float, float]:
    return (
        box.left * width,
        box.top * height,
        (box.left + box.width) * width,
        (box.top + box.height) * height,
    )


def draw_overlay(
    source: Path,
    target: Path,
    expected: Sequence[tuple[str, Box]],
    predicted: Sequence[tuple[str, Box, float]],
) -> None:
    """Write `target` (JPEG): `source` with expected boxes green and predictions magenta."""
    with Image.open(source) as opened:
        image = opened.convert("RGB")
    draw = ImageDraw.Draw(image)
    width, height = image.size
    line = max(3, max(width, height) // _LINE_PER_PIXELS)
    # Expected boxes are stroked just outside their edges, predictions just inside: a prediction
    # right on its box leaves both visible side by side. Labels: expected above the box,
    # predicted inside its top-left corner.
    for tag, box in expected:
        x0, y0, x1, y1 = _pixels(box, width, height)
        draw.rectangle(
            (x0 - line, y0 - line, x1 + line, y1 + line), outline=EXPECTED_COLOUR, width=line
        )
        draw.text((x0, max(0.0, y0 - 12 - line)), tag, fill=EXPECTED_COLOUR)
    for tag, box, probability in predicted:
        x0, y0, x1, y1 = _pixels(box, width, height)
        draw.rectangle((x0, y0, x1, y1), outline=PREDICTED_COLOUR, width=line)
        draw.text((x0 + 2 * line, y0 + 2 * line), f"{tag} {probability:.2f}", fill=PREDICTED_COLOUR)
    tmp = target.with_name(f".{target.name}.tmp")
    image.save(tmp, format="JPEG", quality=_JPEG_QUALITY)
    tmp.replace(target)
