"""The service limits the scanner and the planner obey: the one place they are written down.

Public names: MAX_IMAGE_BYTES, MAX_TAGS_PER_IMAGE, MAX_TAG_NAME_LENGTH.

syncd.api.limits takes the first two from here (api may import core, never the reverse), so the
client, the scanner and the planner cannot disagree. Quotes are from
customvision-training-v3.3.json («…» spec text, [S] schema keyword) or the Microsoft docs ([D]).
The emulator keeps its own reading of them on purpose (an independent reading of the spec).
"""

from __future__ import annotations

# «Binary image data. Supported formats are JPEG, GIF, PNG, and BMP. Supports images up to 6MB.»
# (Read as 6 MiB; the service reports a bigger one as ErrorImageSize per image, so a stricter
# reading by the service costs one per-image error, never a rejected batch.)
MAX_IMAGE_BYTES = 6 * 1024 * 1024

# [D] «Max number of tags per image (classification) 100»; the service answers a bigger set
# with BadRequestExceedTagPerImageLimit [S].
MAX_TAGS_PER_IMAGE = 100

# The spec gives CreateTag's `name` no maxLength and documents only the error BadRequestTagName.
# 256 is our choice: the longest string the same API documents for a name-like field (a metadata
# key, «The length of key is limited to 256.»). A stricter service costs one reported CreateTag
# error for that folder, nothing else.
MAX_TAG_NAME_LENGTH = 256
