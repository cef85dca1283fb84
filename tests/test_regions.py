"""syncd.core.regions: boxes, their canonical key, clipping, EXIF frames, YOLO/VOC/COCO pixels."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.core.regions import (
    BOX_TOLERANCE,
    AnnotationProblem,
    Box,
    ImageSize,
    Region,
    coco_box,
    make_box,
    same_box,
    to_displayed_orientation,
    to_stored_orientation,
    voc_box,
    yolo_boxes,
    yolo_class_names,
)

CLASSES = {0: "cat", 1: "dog"}


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        # class cx cy w h -> (tag, left, top, width, height) or the problem's reason
        ("0 0.5 0.5 0.2 0.4", ("cat", 0.4, 0.3, 0.2, 0.4)),
        ("1 0.5 0.5 1 1", ("dog", 0.0, 0.0, 1.0, 1.0)),
        ("0 0.05 0.5 0.2 0.2", ("cat", 0.0, 0.4, 0.15, 0.2)),  # clipped on the left
        ("0 0.95 0.95 0.2 0.2", ("cat", 0.85, 0.85, 0.15, 0.15)),  # clipped right and bottom
        ("0 0.5 0.5 0 0.2", "degenerate: zero or negative width or height"),
        ("0 0.5 0.5 0.2 -0.1", "degenerate: zero or negative width or height"),
        ("0 1.5 0.5 0.2 0.2", "wholly outside the image"),
        ("0 -0.2 0.5 0.2 0.2", "wholly outside the image"),
        ("0 0.5 0.5 0.00001 0.2", "smaller than 0.0001 of the image once clipped and rounded"),
        ("0 nan 0.5 0.2 0.2", "a coordinate is not a finite number"),
        ("7 0.5 0.5 0.2 0.2", "unknown class id 7"),
        ("0 0.5 0.5 0.2", "expected 'class cx cy w h' (5 fields), got 4"),
        ("cat 0.5 0.5 0.2 0.2", "not numbers: cat 0.5 0.5 0.2 0.2"),
    ],
)
def test_yolo_lines(line: str, expected: tuple[str, float, float, float, float] | str) -> None:
    converted = yolo_boxes(f"# a comment\n\n{line}\n", CLASSES, "a.txt")
    if isinstance(expected, str):
        assert converted.regions == ()
        assert converted.problems == (AnnotationProblem("a.txt", "line 3", expected),)
        assert str(converted.problems[0]) == f"a.txt: line 3: {expected}"
    else:
        tag, *box = expected
        assert converted.problems == ()
        assert converted.regions == (Region(tag, Box(*box)),)


def test_a_bad_line_does_not_stop_the_file() -> None:
    converted = yolo_boxes(
        "0 0.5 0.5 0.2 0.2\n9 0.5 0.5 0.2 0.2\n1 0.5 0.5 0.4 0.4\n", CLASSES, "f"
    )
    assert [r.tag for r in converted.regions] == ["cat", "dog"]
    assert [p.where for p in converted.problems] == ["line 2"]


@pytest.mark.parametrize(
    ("xmin", "ymin", "xmax", "ymax", "expected"),
    [
        # VOC devkit: 1-based inclusive; on a 100x50 image the whole image is 1,1,100,50
        (1, 1, 100, 50, (0.0, 0.0, 1.0, 1.0)),
        (11, 6, 30, 25, (0.1, 0.1, 0.2, 0.4)),  # left=(11-1)/100, width=(30-11+1)/100
        (1, 1, 1, 1, (0.0, 0.0, 0.01, 0.02)),  # a single pixel is a 1x1 box, not degenerate
        (-9, 1, 10, 50, (0.0, 0.0, 0.1, 1.0)),  # clipped
        (91, 41, 120, 80, (0.9, 0.8, 0.1, 0.2)),  # clipped
        (30, 6, 11, 25, "degenerate: zero or negative width or height"),
        (101, 1, 120, 50, "wholly outside the image"),
    ],
)
def test_voc_pixels(
    xmin: float, ymin: float, xmax: float, ymax: float, expected: tuple[float, ...] | str
) -> None:
    box = voc_box(xmin, ymin, xmax, ymax, ImageSize(100, 50))
    assert box == (expected if isinstance(expected, str) else Box(*expected))


@pytest.mark.parametrize(
    ("bbox", "expected"),
    [
        ([0, 0, 100, 50], (0.0, 0.0, 1.0, 1.0)),
        ([10, 5, 20, 20], (0.1, 0.1, 0.2, 0.4)),
        ([10.5, 5.25, 20.25, 20.5], (0.105, 0.105, 0.2025, 0.41)),
        ([90, 40, 30, 30], (0.9, 0.8, 0.1, 0.2)),  # clipped
        ([10, 5, 0, 20], "degenerate: zero or negative width or height"),
        ([100, 5, 10, 10], "wholly outside the image"),
    ],
)
def test_coco_pixels(bbox: list[float], expected: tuple[float, ...] | str) -> None:
    box = coco_box(bbox, ImageSize(100, 50))
    assert box == (expected if isinstance(expected, str) else Box(*expected))


def test_the_same_box_in_three_conventions_is_one_key() -> None:
    size = ImageSize(640, 480)
    # pixels 64..191 (128 wide) x 48..143 (96 tall), 0-based
    yolo = yolo_boxes("0 0.2 0.2 0.2 0.2", CLASSES, "a.txt").regions[0].box
    voc = voc_box(65, 49, 192, 144, size)
    coco = coco_box([64, 48, 128, 96], size)
    assert yolo == voc == coco == Box(0.1, 0.1, 0.2, 0.2)


def test_float_noise_never_changes_the_key_and_same_box_has_a_tolerance() -> None:
    a = make_box(0.1 + 0.2, 0.3, 0.1, 0.2)  # 0.30000000000000004
    b = make_box(0.3, 0.1 * 3, 0.7 - 0.6, 0.2)
    assert isinstance(a, Box) and isinstance(b, Box)
    assert a.key == b.key == (3000, 3000, 1000, 2000)
    assert a == b  # rounded when made: equal, not merely close
    # what the service echoes (e.g. through float32) rounds back to the same key
    echoed = Box(0.30000001192092896, 0.30000001192092896, 0.10000000149011612, 0.2)
    assert echoed.key == a.key and same_box(a, echoed)
    nudged = Box(a.left + BOX_TOLERANCE, a.top, a.width, a.height)
    moved = Box(a.left + 3 * BOX_TOLERANCE, a.top, a.width, a.height)
    assert same_box(a, nudged) and not same_box(a, moved)


# A box drawn on the displayed image (left 0.1, top 0.2, width 0.3, height 0.1) for each EXIF
# orientation, where it is on the stored pixels. The file-level test below checks the same
# transforms against Pillow's own exif_transpose on real images.
SHOWN = Box(0.1, 0.2, 0.3, 0.1)


@pytest.mark.parametrize(
    ("orientation", "stored"),
    [
        (1, (0.1, 0.2, 0.3, 0.1)),
        (2, (0.6, 0.2, 0.3, 0.1)),  # mirrored left-right
        (3, (0.6, 0.7, 0.3, 0.1)),  # rotated 180
        (4, (0.1, 0.7, 0.3, 0.1)),  # mirrored top-bottom
        (5, (0.2, 0.1, 0.1, 0.3)),  # transposed
        (6, (0.2, 0.6, 0.1, 0.3)),  # shown turned 90° clockwise
        (7, (0.7, 0.6, 0.1, 0.3)),  # transversed
        (8, (0.7, 0.1, 0.1, 0.3)),  # shown turned 90° counter-clockwise
        (0, (0.1, 0.2, 0.3, 0.1)),  # not a valid orientation: ignored, as viewers do
    ],
)
def test_exif_orientation_turns_displayed_boxes_into_the_stored_frame(
    orientation: int, stored: tuple[float, ...]
) -> None:
    assert to_stored_orientation(SHOWN, orientation) == Box(*stored)


@pytest.mark.parametrize("orientation", range(0, 10))
def test_a_stored_box_exported_as_displayed_reads_back_as_the_same_box(orientation: int) -> None:
    """`pull --format` writes boxes on the displayed image; the sync reads them back into the
    stored frame: the two conversions are inverses, so the round trip changes no region."""
    for stored in (Box(0.1, 0.2, 0.3, 0.1), Box(0.0, 0.0, 1.0, 1.0), Box(0.6, 0.05, 0.4, 0.5)):
        shown = to_displayed_orientation(stored, orientation)
        assert to_stored_orientation(shown, orientation).key == stored.key
        if orientation in (5, 6, 7, 8):  # turned a quarter: width and height trade places
            assert (shown.width, shown.height) == (stored.height, stored.width)


def test_pixel_boxes_on_a_turned_image_use_the_displayed_size() -> None:
    # stored 200x100, orientation 6: shown 100 wide, 200 tall
    assert coco_box([10, 20, 30, 40], ImageSize(200, 100), 6) == to_stored_orientation(
        Box(0.1, 0.1, 0.3, 0.2), 6
    )
    assert voc_box(11, 21, 40, 60, ImageSize(200, 100), 6) == coco_box(
        [10, 20, 30, 40], ImageSize(200, 100), 6
    )


@pytest.mark.parametrize(
    ("names", "expected", "problems"),
    [
        (["cat", "dog"], {0: "cat", 1: "dog"}, []),
        ({0: "cat", 5: "dog"}, {0: "cat", 5: "dog"}, []),  # a mapping may skip ids
        ({0: "cat", "x": "dog"}, {0: "cat"}, ["names['x']: id is not an integer"]),
        (["cat", " dog"], {0: "cat"}, ["names[1]: class name ' dog': a tag name cannot"]),
        (["cat", 3], {0: "cat"}, ["names[1]: name is not text"]),
        ("cat", {}, ["names: expected a list or a mapping of names"]),
    ],
)
def test_yolo_class_names_from_a_list_or_a_mapping(
    names: object, expected: dict[int, str], problems: list[str]
) -> None:
    classes, found = yolo_class_names(names, "data.yaml")
    assert classes == expected
    assert len(found) == len(problems)
    for problem, start in zip(found, problems, strict=True):
        assert str(problem).startswith(f"data.yaml: {start}")


@given(
    st.floats(-1, 2),
    st.floats(-1, 2),
    st.floats(-1, 2),
    st.floats(-1, 2),
    st.sampled_from(range(1, 9)),
)
def test_made_boxes_are_in_the_image_and_stable_when_read_again(
    left: float, top: float, width: float, height: float, orientation: int
) -> None:
    box = make_box(left, top, width, height)
    if isinstance(box, str):
        return
    assert box.left >= 0 and box.left + box.width <= 1 + 1e-9 and box.width > 0
    assert box.top >= 0 and box.top + box.height <= 1 + 1e-9 and box.height > 0
    # what syncd sent, read back (from the ledger or the service), is the same box
    assert make_box(box.left, box.top, box.width, box.height) == box
    # turning into the stored frame keeps it a valid box of the same area
    turned = to_stored_orientation(box, orientation)
    assert abs(turned.width * turned.height - box.width * box.height) < 1e-6


def test_a_box_given_twice_is_reported_once_and_kept_once() -> None:
    # the service answers a repeated region as `duplicated`; a set of regions holds it once
    text = "0 0.5 0.5 0.2 0.2\n1 0.5 0.5 0.2 0.2\n0 0.50001 0.5 0.2 0.2\n"
    converted = yolo_boxes(text, CLASSES, "a.txt")
    assert [r.tag for r in converted.regions] == ["cat", "dog"]
    assert [str(p) for p in converted.problems] == [
        "a.txt: line 3: the same cat box as line 1 (within 0.0001): kept once"
    ]
