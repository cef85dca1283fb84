"""syncd.annotations: YOLO, VOC and COCO files on real images read to the same normalized boxes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image, ImageOps

from syncd.annotations import (
    AnnotationReader,
    annotated_image_stems,
    image_frame,
    yolo_label_paths,
)
from syncd.core.policy import AnnotationFormat
from syncd.core.regions import Box, ImageSize, Region, to_stored_orientation
from tests.support.images import write_image

RED = (255, 0, 0)


def _image(path: Path, size: tuple[int, int], orientation: int = 1) -> None:
    """A PNG of `size` (stored pixels) with the given EXIF orientation."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, (20, 40, 60))
    exif = Image.Exif()
    if orientation != 1:
        exif[0x0112] = orientation
    image.save(path, exif=exif)


# The dataset: image -> (stored size, EXIF orientation, boxes drawn on the DISPLAYED image as
# (class, x0, y0, x1, y1) in 0-based pixels, x1/y1 exclusive).
DATASET = {
    "street/a.png": ((400, 200), 1, [("car", 40, 20, 120, 100), ("person", 300, 50, 340, 190)]),
    "street/b.png": ((300, 300), 1, [("car", 0, 0, 300, 300)]),
    # a phone photo: stored 200 wide, 100 tall, shown turned 90° clockwise (100 wide, 200 tall)
    "phone/c.png": ((200, 100), 6, [("person", 10, 20, 40, 60)]),
    "empty/d.png": ((64, 64), 1, []),
}
CLASS_IDS = {"car": 0, "person": 1}
COCO_IDS = {"car": 17, "person": 3}  # non-contiguous, and not in name order


def _shown(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    return (size[1], size[0]) if orientation in (5, 6, 7, 8) else size


def _expected() -> dict[str, set[tuple[str, tuple[int, int, int, int]]]]:
    """Independent of the readers: pixels -> fractions of the displayed image -> stored frame."""
    out = {}
    for image, (size, orientation, boxes) in DATASET.items():
        w, h = _shown(size, orientation)
        out[image] = {
            (
                tag,
                to_stored_orientation(
                    Box(x0 / w, y0 / h, (x1 - x0) / w, (y1 - y0) / h), orientation
                ).key,
            )
            for tag, x0, y0, x1, y1 in boxes
        }
    return out


def _write_images(root: Path, prefix: str = "") -> None:
    for image, (size, orientation, _) in DATASET.items():
        _image(root / prefix / image, size, orientation)


def write_yolo(root: Path, parallel: bool) -> None:
    prefix = "images/" if parallel else ""
    _write_images(root, prefix)
    (root / "data.yaml").write_text("names:\n  0: car\n  1: person\n")
    for image, (size, orientation, boxes) in DATASET.items():
        w, h = _shown(size, orientation)
        lines = [
            f"{CLASS_IDS[tag]} {(x0 + x1) / 2 / w} {(y0 + y1) / 2 / h} {(x1 - x0) / w} "
            f"{(y1 - y0) / h}"
            for tag, x0, y0, x1, y1 in boxes
        ]
        label = Path(yolo_label_paths(prefix + image)[0])
        (root / label).parent.mkdir(parents=True, exist_ok=True)
        (root / label).write_text("\n".join(lines) + "\n")


def write_voc(root: Path) -> None:
    _write_images(root)
    for image, (size, orientation, boxes) in DATASET.items():
        w, h = _shown(size, orientation)
        objects = "".join(
            f"<object><name>{tag}</name><difficult>0</difficult><bndbox><xmin>{x0 + 1}</xmin>"
            f"<ymin>{y0 + 1}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
            for tag, x0, y0, x1, y1 in boxes
        )
        xml = (
            f"<annotation><filename>{Path(image).name}</filename><size><width>{w}</width>"
            f"<height>{h}</height><depth>3</depth></size>{objects}</annotation>"
        )
        (root / image).with_suffix(".xml").write_text(xml)


def write_coco(root: Path, coco: Path) -> None:
    _write_images(root)
    images, annotations = [], []
    for number, (image, (size, orientation, boxes)) in enumerate(DATASET.items(), start=100):
        w, h = _shown(size, orientation)
        images.append({"id": number, "file_name": image, "width": w, "height": h})
        for tag, x0, y0, x1, y1 in boxes:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": number,
                    "category_id": COCO_IDS[tag],
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": (x1 - x0) * (y1 - y0),
                    "iscrowd": 0,
                }
            )
    categories = [{"id": i, "name": n} for n, i in COCO_IDS.items()]
    coco.write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories})
    )


def _keys(reader: AnnotationReader, images: list[str]) -> dict[str, set[object]]:
    out = {}
    for image in images:
        read = reader.read(image)
        assert read.problems == () and read.usable, (image, read.problems)
        out[image.removeprefix("images/")] = {r.key for r in read.regions}
    return out


def test_one_dataset_in_three_formats_reads_to_the_same_boxes(tmp_path: Path) -> None:
    images = list(DATASET)
    expected = _expected()
    write_yolo(tmp_path / "yolo", parallel=False)
    write_yolo(tmp_path / "yolo_parallel", parallel=True)
    write_voc(tmp_path / "voc")
    write_coco(tmp_path / "coco", tmp_path / "instances.json")
    readers = {
        "yolo": (AnnotationReader(tmp_path / "yolo", AnnotationFormat.YOLO), images),
        "yolo_parallel": (
            AnnotationReader(tmp_path / "yolo_parallel", AnnotationFormat.YOLO),
            [f"images/{i}" for i in images],
        ),
        "voc": (AnnotationReader(tmp_path / "voc", AnnotationFormat.VOC), images),
        "coco": (
            AnnotationReader(tmp_path / "coco", AnnotationFormat.COCO, tmp_path / "instances.json"),
            images,
        ),
    }
    for name, (reader, paths) in readers.items():
        assert reader.setup_problems == (), name
        assert _keys(reader, paths) == expected, name
    # the turned phone photo: drawn at x 10..40, y 20..60 on the 100x200 displayed image; on the
    # stored 200x100 pixels that is x 20..60 (0.1..0.3), y 60..90 (0.6..0.9)
    (region,) = readers["voc"][0].read("phone/c.png").regions
    assert region == Region("person", Box(0.1, 0.6, 0.2, 0.3))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_transform_agrees_with_pillows_exif_transpose(
    tmp_path: Path, orientation: int
) -> None:
    # stored 40x20 with a red block at x 5..15, y 3..9; Pillow shows it turned; a YOLO box drawn
    # on what Pillow shows must land back on the block in the stored pixels
    stored = Image.new("RGB", (40, 20), (0, 0, 0))
    stored.paste(RED, (5, 3, 15, 9))
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.save(tmp_path / "x.png", exif=exif)
    with Image.open(tmp_path / "x.png") as opened:
        shown = ImageOps.exif_transpose(opened)
    mask = shown.convert("L").point(lambda v: 255 if v > 40 else 0)
    x0, y0, x1, y1 = mask.getbbox() or (0, 0, 0, 0)
    w, h = shown.size
    (tmp_path / "x.txt").write_text(
        f"0 {(x0 + x1) / 2 / w} {(y0 + y1) / 2 / h} {(x1 - x0) / w} {(y1 - y0) / h}\n"
    )
    (tmp_path / "classes.txt").write_text("block\n")
    read = AnnotationReader(tmp_path, AnnotationFormat.YOLO).read("x.png")
    assert read.regions == (Region("block", Box(5 / 40, 3 / 20, 10 / 40, 6 / 20)),)
    assert image_frame(tmp_path / "x.png") == (ImageSize(40, 20), orientation)


def test_yolo_names_from_classes_txt_or_data_yaml_list(tmp_path: Path) -> None:
    write_image(tmp_path / "a.jpg", 1)
    (tmp_path / "a.txt").write_text("1 0.5 0.5 0.5 0.5\n")
    (tmp_path / "classes.txt").write_text("cat\ndog\n")
    assert AnnotationReader(tmp_path, AnnotationFormat.YOLO).read("a.jpg").regions[0].tag == "dog"
    (tmp_path / "classes.txt").unlink()
    (tmp_path / "data.yaml").write_text("path: .\ntrain: images\nnames: [cow, horse]\n")
    reader = AnnotationReader(tmp_path, AnnotationFormat.YOLO)
    assert reader.classes == {0: "cow", 1: "horse"} and reader.setup_problems == ()
    assert reader.read("a.jpg").regions[0].tag == "horse"
    # both, disagreeing: data.yaml wins, and it is said
    (tmp_path / "classes.txt").write_text("cat\ndog\n")
    reader = AnnotationReader(tmp_path, AnnotationFormat.YOLO)
    assert [str(p) for p in reader.setup_problems] == [
        "classes.txt: disagrees with data.yaml's names: data.yaml's are used"
    ]


def test_yolo_without_class_names_says_where_to_put_them(tmp_path: Path) -> None:
    write_image(tmp_path / "a.jpg", 1)
    (tmp_path / "a.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    reader = AnnotationReader(tmp_path, AnnotationFormat.YOLO)
    assert [str(p) for p in reader.setup_problems] == [
        "data.yaml: no class names: put data.yaml (names:) or classes.txt at the root"
    ]
    assert [str(p) for p in reader.read("a.jpg").problems] == ["a.txt: line 1: unknown class id 0"]


def test_label_paths_and_both_layouts_present(tmp_path: Path) -> None:
    assert yolo_label_paths("a/b.jpg") == ("a/b.txt",)
    assert yolo_label_paths("images/train/b.jpg") == ("labels/train/b.txt", "images/train/b.txt")
    assert yolo_label_paths("images/x/images/b.png") == (
        "images/x/labels/b.txt",  # the last images/ folder, as YOLO trainers replace it
        "images/x/images/b.txt",
    )
    write_image(tmp_path / "images/train/b.jpg", 2)
    (tmp_path / "classes.txt").write_text("cat\n")
    (tmp_path / "labels/train").mkdir(parents=True)
    (tmp_path / "labels/train/b.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (tmp_path / "images/train/b.txt").write_text("0 0.5 0.5 0.4 0.4\n")
    read = AnnotationReader(tmp_path, AnnotationFormat.YOLO).read("images/train/b.jpg")
    assert read.regions == (Region("cat", Box(0.4, 0.4, 0.2, 0.2)),)
    assert read.sources == ("labels/train/b.txt",)
    assert [str(p) for p in read.problems] == [
        "images/train/b.txt: images/train/b.jpg also has labels/train/b.txt, which is the one read"
    ]


def test_absent_or_empty_annotation_means_no_boxes(tmp_path: Path) -> None:
    write_image(tmp_path / "a.jpg", 1)
    write_image(tmp_path / "b.jpg", 2)
    (tmp_path / "b.txt").write_text("")
    (tmp_path / "classes.txt").write_text("cat\n")
    reader = AnnotationReader(tmp_path, AnnotationFormat.YOLO)
    assert reader.read("a.jpg").regions == () and reader.read("a.jpg").usable
    assert reader.read("b.jpg").regions == () and reader.read("b.jpg").sources == ("b.txt",)
    assert AnnotationReader(tmp_path, AnnotationFormat.VOC).read("a.jpg").regions == ()


@pytest.mark.parametrize(
    ("xml", "problems", "usable"),
    [
        ("<annotation><object>", ["a.xml: not valid XML: no element found: line 1, column 20"], 0),
        (
            '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 '
            '"&lol;&lol;&lol;&lol;">]><annotation>&lol2;</annotation>',
            ["a.xml: refused: DTDForbidden"],
            0,
        ),
        (
            '<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><annotation>&x;</annotation>',
            ["a.xml: refused: DTDForbidden"],
            0,
        ),
        (
            "<annotation><size><width>99</width><height>24</height></size></annotation>",
            ["a.xml: size: <size> says 99x24, the image is 32x24"],
            0,
        ),
        (
            "<annotation><object><name>cat</name><bndbox><xmin>1</xmin><ymin>1</ymin>"
            "<xmax>x</xmax><ymax>5</ymax></bndbox></object>"
            "<object><name></name></object>"
            "<object><name>dog</name><bndbox><xmin>40</xmin><ymin>1</ymin><xmax>50</xmax>"
            "<ymax>5</ymax></bndbox></object>"
            "<object><name>cat</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>16</xmax>"
            "<ymax>12</ymax></bndbox></object></annotation>",
            [
                "a.xml: object 1 (cat): <bndbox> needs numeric xmin, ymin, xmax, ymax",
                "a.xml: object 2: no <name>",
                "a.xml: object 3 (dog): wholly outside the image",
            ],
            1,
        ),
    ],
)
def test_voc_problems_name_file_and_object(
    tmp_path: Path, xml: str, problems: list[str], usable: int
) -> None:
    write_image(tmp_path / "a.jpg", 1)  # 32x24
    (tmp_path / "a.xml").write_text(xml)
    read = AnnotationReader(tmp_path, AnnotationFormat.VOC).read("a.jpg")
    assert [str(p) for p in read.problems] == problems
    assert read.usable is bool(usable)
    if usable:
        assert read.regions == (Region("cat", Box(0.0, 0.0, 0.5, 0.5)),)


def test_coco_problems_are_reported_and_the_rest_goes_on(tmp_path: Path) -> None:
    write_image(tmp_path / "a.jpg", 1)  # 32x24
    write_image(tmp_path / "b.jpg", 2)
    coco = tmp_path / "c.json"
    coco.write_text(
        json.dumps(
            {
                "images": [
                    {"id": 1, "file_name": "a.jpg", "width": 32, "height": 24},
                    {"id": 2, "file_name": "b.jpg", "width": 64, "height": 48},
                    {"id": 3, "file_name": "a.jpg"},
                ],
                "annotations": [
                    {"id": 10, "image_id": 1, "category_id": 7, "bbox": [0, 0, 16, 12]},
                    {"id": 11, "image_id": 1, "category_id": 8, "bbox": [0, 0, 16, 12]},
                    {"id": 12, "image_id": 9, "category_id": 7, "bbox": [0, 0, 16, 12]},
                    {"id": 13, "image_id": 1, "category_id": 7, "bbox": [0, 0, 16]},
                    {"id": 14, "image_id": 1, "category_id": 7, "bbox": [40, 0, 5, 5]},
                    {"id": 15, "image_id": 2, "category_id": 7, "bbox": [0, 0, 5, 5]},
                ],
                "categories": [{"id": 7, "name": "cat"}],
            }
        )
    )
    reader = AnnotationReader(tmp_path, AnnotationFormat.COCO, coco)
    assert [str(p) for p in reader.setup_problems] == [
        f"{coco}: images[2]: 'a.jpg' is listed twice",
        f"{coco}: annotations[1] (id 11): unknown category_id 8",
        f"{coco}: annotations[2] (id 12): unknown image_id 9",
        f"{coco}: annotations[3] (id 13): bbox must be [x, y, width, height] numbers",
    ]
    a = reader.read("a.jpg")
    assert a.regions == (Region("cat", Box(0.0, 0.0, 0.5, 0.5)),)
    assert [str(p) for p in a.problems] == [
        f"{coco}: annotations[4] (id 14): a.jpg: wholly outside the image"
    ]
    b = reader.read("b.jpg")
    assert not b.usable and b.regions == ()
    assert [str(p) for p in b.problems] == [
        f"{coco}: image id 2: b.jpg: width/height say 64x48, the image is 32x24"
    ]
    assert reader.read("not/listed.jpg").regions == ()


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "cannot read it: No such file or directory"),
        ("{not json", "not valid JSON: Expecting property name enclosed in double quotes"),
        ("[1, 2]", "expected a JSON object with images, annotations and categories"),
    ],
)
def test_a_coco_file_that_cannot_be_used_is_one_clear_problem(
    tmp_path: Path, content: str | None, problem: str
) -> None:
    coco = tmp_path / "c.json"
    if content is not None:
        coco.write_text(content)
    reader = AnnotationReader(tmp_path, AnnotationFormat.COCO, coco)
    (found,) = reader.setup_problems
    assert str(found).startswith(f"{coco}: {problem}")


def test_an_unreadable_image_or_a_huge_label_file_is_a_problem_not_a_traceback(
    tmp_path: Path,
) -> None:
    (tmp_path / "classes.txt").write_text("cat\n")
    (tmp_path / "a.jpg").write_bytes(b"not an image")
    (tmp_path / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    read = AnnotationReader(tmp_path, AnnotationFormat.YOLO).read("a.jpg")
    assert not read.usable
    assert str(read.problems[0]).startswith("a.txt: a.jpg: cannot read the image's size:")
    write_image(tmp_path / "b.jpg", 1)
    (tmp_path / "b.txt").write_bytes(b"0 0.5 0.5 0.2 0.2\n" * 70_000)  # > 1 MiB
    read = AnnotationReader(tmp_path, AnnotationFormat.YOLO).read("b.jpg")
    assert not read.usable and [str(p) for p in read.problems] == [
        "b.txt: larger than 1 MiB: not read"
    ]


def test_a_coco_size_that_is_the_unturned_size_says_so(tmp_path: Path) -> None:
    _image(tmp_path / "c.png", (200, 100), 6)  # shown 100x200
    coco = tmp_path / "c.json"
    coco.write_text(
        json.dumps(
            {
                "images": [{"id": 1, "file_name": "c.png", "width": 200, "height": 100}],
                "annotations": [],
                "categories": [],
            }
        )
    )
    read = AnnotationReader(tmp_path, AnnotationFormat.COCO, coco).read("c.png")
    assert [str(p) for p in read.problems] == [
        f"{coco}: image id 1: c.png: width/height say 200x100, the image is 100x200 as displayed "
        "(its EXIF orientation turns it): annotate it as displayed"
    ]


def test_a_voc_size_of_zero_is_no_size(tmp_path: Path) -> None:
    write_image(tmp_path / "a.jpg", 1)  # 32x24
    (tmp_path / "a.xml").write_text(
        "<annotation><size><width>0</width><height>0</height></size><object><name>cat</name>"
        "<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>16</xmax><ymax>12</ymax></bndbox></object>"
        "</annotation>"
    )
    read = AnnotationReader(tmp_path, AnnotationFormat.VOC).read("a.jpg")
    assert read.problems == () and read.regions == (Region("cat", Box(0.0, 0.0, 0.5, 0.5)),)


@pytest.mark.parametrize(
    ("annotation", "fmt", "stems"),
    [
        ("a/b.txt", AnnotationFormat.YOLO, ("a/b",)),
        ("labels/train/b.txt", AnnotationFormat.YOLO, ("images/train/b", "labels/train/b")),
        ("classes.txt", AnnotationFormat.YOLO, ()),
        ("a/b.xml", AnnotationFormat.VOC, ("a/b",)),
        ("a/b.txt", AnnotationFormat.VOC, ()),
        ("a/b.xml", AnnotationFormat.NONE, ()),
    ],
)
def test_an_annotation_file_names_its_images_for_the_daemon(
    annotation: str, fmt: AnnotationFormat, stems: tuple[str, ...]
) -> None:
    assert annotated_image_stems(annotation, fmt) == stems
    for stem in stems:  # and the reader looks for it there
        if fmt is AnnotationFormat.YOLO:
            assert annotation in yolo_label_paths(stem + ".jpg")


def test_duplicate_boxes_in_voc_and_coco_are_reported_once(tmp_path: Path) -> None:
    write_image(tmp_path / "a.jpg", 1)  # 32x24
    box = "<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>16</xmax><ymax>12</ymax></bndbox>"
    (tmp_path / "a.xml").write_text(
        f"<annotation><object><name>cat</name>{box}</object>"
        f"<object><name>cat</name>{box}</object></annotation>"
    )
    read = AnnotationReader(tmp_path, AnnotationFormat.VOC).read("a.jpg")
    assert len(read.regions) == 1
    assert [str(p) for p in read.problems] == [
        "a.xml: object 2 (cat): the same cat box as object 1 (cat) (within 0.0001): kept once"
    ]
    coco = tmp_path / "c.json"
    annotation = {"image_id": 1, "category_id": 7, "bbox": [0, 0, 16, 12]}
    coco.write_text(
        json.dumps(
            {
                "images": [{"id": 1, "file_name": "a.jpg"}],
                "annotations": [{"id": 1, **annotation}, {"id": 2, **annotation}],
                "categories": [{"id": 7, "name": "cat"}],
            }
        )
    )
    read = AnnotationReader(tmp_path, AnnotationFormat.COCO, coco).read("a.jpg")
    assert len(read.regions) == 1
    assert [str(p) for p in read.problems] == [
        f"{coco}: annotations[1] (id 2): the same cat box as annotations[0] (id 1) (within "
        "0.0001): kept once"
    ]
