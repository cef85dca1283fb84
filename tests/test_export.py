"""syncd.export's pure conversions and rules, as tables; the schema vendored in docs/spec/ is the
one the pull validates with."""

from __future__ import annotations

import json

import pytest

from syncd.automl_schema import AUTOML_SCHEMAS
from syncd.core.regions import Box, ImageSize, Region, voc_box
from syncd.export import (
    ExportImage,
    ProjectKind,
    automl_line,
    coco_pixels,
    split_of,
    voc_pixels,
)
from tests.e2e.support import REPO

SIZE = ImageSize(640, 480)


def test_the_vendored_schema_is_the_one_syncd_validates_with() -> None:
    vendored = json.loads((REPO / "docs/spec/automl-images.schema.json").read_text())
    assert vendored == AUTOML_SCHEMAS


@pytest.mark.parametrize(
    ("box", "expected"),
    [
        (Box(0.0, 0.0, 1.0, 1.0), (1, 1, 640, 480)),  # the whole image: the devkit's (1, 1, W, H)
        (Box(0.5, 0.25, 0.25, 0.5), (321, 121, 480, 360)),
        (Box(0.1234, 0.5, 0.1, 0.1), (79.98, 241, 142.98, 288)),  # edges off the pixel grid
    ],
)
def test_voc_pixels_are_one_based_inclusive_and_read_back_as_the_box(
    box: Box, expected: tuple[float, ...]
) -> None:
    assert voc_pixels(box, SIZE) == expected
    assert voc_box(*voc_pixels(box, SIZE), SIZE) == box  # the detection mirror's reader


def test_coco_pixels() -> None:
    assert coco_pixels(Box(0.5, 0.25, 0.25, 0.5), SIZE) == [320, 120, 160, 240]


def _image(tags: tuple[str, ...] = (), negative: bool = False) -> ExportImage:
    regions = (Region("fork", Box(0.1, 0.2, 0.3, 0.4)),)
    return ExportImage("i", "images/i.jpg", SIZE, tags, negative, regions)


UNTAGGED = "untagged images (AutoML multi-class needs one label)"
NEGATIVE = "Negative images (AutoML multi-class has no 'none' class)"
SEVERAL = "images with several tags (AutoML multi-class takes one label)"
FORK = {"label": "fork", "topX": 0.1, "topY": 0.2, "bottomX": 0.4, "bottomY": 0.6, "isCrowd": 0}


@pytest.mark.parametrize(
    ("kind", "image", "label", "why"),
    [
        (ProjectKind.MULTICLASS, _image(("Cat",)), "Cat", None),
        (ProjectKind.MULTICLASS, _image(), None, UNTAGGED),
        (ProjectKind.MULTICLASS, _image(negative=True), None, NEGATIVE),
        (ProjectKind.MULTICLASS, _image(("Cat", "Dog")), None, SEVERAL),
        (ProjectKind.MULTILABEL, _image(("Dog", "Cat")), ["Cat", "Dog"], None),
        (ProjectKind.MULTILABEL, _image(negative=True), [], None),
        (ProjectKind.DETECTION, _image(), [FORK], None),
    ],
)  # fmt: skip
def test_automl_lines_follow_the_rules_and_the_schema(
    kind: ProjectKind, image: ExportImage, label: object, why: str | None
) -> None:
    import jsonschema

    record, reason = automl_line(image, kind, "azureml://x/")
    assert reason == why
    if label is None:
        assert record is None
        return
    assert record is not None and record["label"] == label
    assert record["image_url"] == "azureml://x/images/i.jpg"
    jsonschema.validate(record, AUTOML_SCHEMAS[kind.value])


def test_the_split_is_seeded_stable_and_near_the_fraction() -> None:
    ids = [f"{n:08d}-0000-0000-0000-000000000000" for n in range(2000)]
    parts = [split_of(i, 7, 0.2) for i in ids]
    assert parts == [split_of(i, 7, 0.2) for i in ids]  # the same seed: the same split
    assert parts != [split_of(i, 8, 0.2) for i in ids]
    assert 0.17 < parts.count("validation") / len(ids) < 0.23
    # Adding images moves none of the others.
    assert [split_of(i, 7, 0.2) for i in ids[:1000]] == parts[:1000]
