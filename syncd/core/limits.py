"""The service limits the scanner and the planner obey: the one place they are written down.

Public names: MAX_IMAGE_BYTES, MAX_IMAGE_SIDE_PX, MAX_ASPECT_RATIO, MAX_TAGS_PER_IMAGE,
MAX_TAG_NAME_LENGTH, MAX_REGIONS_PER_IMAGE, MAX_BYTES_RULE, MAX_SIDE_RULE, ASPECT_RATIO_RULE,
dimension_problem.

syncd.api.limits takes the first two from here (api may import core, never the reverse), so the
client, the scanner and the planner cannot disagree. Quotes are from
customvision-training-v3.3.json («…» spec text, [S] schema keyword) or the Microsoft docs ([D]).
The emulator keeps its own reading of them on purpose (an independent reading of the spec).
"""

from __future__ import annotations

from syncd.core.model import Problem, ProblemKind

# docs/spec/DIGEST.md §4 (limits table, "image size (upload)") and §6 (service quotas, "Max image
# size, training upload / prediction: 6 MB / 4 MB").
# «Binary image data. Supported formats are JPEG, GIF, PNG, and BMP. Supports images up to 6MB.»
# (Read as 6 MiB; the service reports a bigger one as ErrorImageSize per image, so a stricter
# reading by the service costs one per-image error, never a rejected batch.)
MAX_IMAGE_BYTES = 6 * 1024 * 1024

# docs/spec/DIGEST.md §6 (service quotas [D]): "Max image height/width | 10,240 px". The service
# answers a bigger one with ErrorImageSize (BadRequestImageDimensions for a one-image call).
MAX_IMAGE_SIDE_PX = 10_240
# docs/spec/DIGEST.md §6: "Aspect ratio | «shouldn't be larger than 25:1»" (long side : short side).
MAX_ASPECT_RATIO = 25
# §6 also gives "Min image height/width | 256 px («Images smaller than 256 pixels will be accepted
# but upscaled.»)": accepted, so no local refusal; there is deliberately no MIN constant here.

# The service's own words, quoted in every local refusal so the operator sees whose rule it is.
MAX_BYTES_RULE = "«Supports images up to 6MB.» (the service's limit, ErrorImageSize)"
MAX_SIDE_RULE = "«Max image height/width: 10,240 px» (the service's limit, ErrorImageSize)"
ASPECT_RATIO_RULE = "«Aspect ratio shouldn't be larger than 25:1» (the service's limit)"

# [D] «Max number of tags per image (classification) 100»; the service answers a bigger set
# with BadRequestExceedTagPerImageLimit [S].
MAX_TAGS_PER_IMAGE = 100

# docs/spec/REGIONS.md (Limits) and DIGEST.md §6: "Max regions per image, training (OD) | 300" [D];
# the service answers more with ErrorRegionLimitExceed (create) or `exceeded` (CreateImageRegions).
MAX_REGIONS_PER_IMAGE = 300

# The spec gives CreateTag's `name` no maxLength and documents only the error BadRequestTagName.
# 256 is our choice: the longest string the same API documents for a name-like field (a metadata
# key, «The length of key is limited to 256.»). A stricter service costs one reported CreateTag
# error for that folder, nothing else.
MAX_TAG_NAME_LENGTH = 256


def dimension_problem(width: int, height: int) -> Problem | None:
    """The service's rule an image of `width` x `height` px breaks, or None if it breaks none."""
    if max(width, height) > MAX_IMAGE_SIDE_PX:
        detail = f"{width} x {height} px; {MAX_SIDE_RULE}"
        return Problem(ProblemKind.TOO_MANY_PIXELS, detail)
    short, long = min(width, height), max(width, height)
    # long/short > 25 without floats: a 25:1 image exactly is allowed.
    if short <= 0 or long > MAX_ASPECT_RATIO * short:
        detail = f"{width} x {height} px, {long / max(short, 1):.1f}:1; {ASPECT_RATIO_RULE}"
        return Problem(ProblemKind.ASPECT_RATIO, detail)
    return None
