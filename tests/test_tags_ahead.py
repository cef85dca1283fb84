"""Which tags a first sync creates while the project is read (syncd.firstsync.tags_ahead): the
first folders' in path order, spelt as the planner spells them, no more than fit beside the three
reads in the quota's first second, and none for a tree that would not stream or was synced before
(it carries the root marker)."""

from __future__ import annotations

from pathlib import Path

from syncd.config import AnnotationConfig, MirrorConfig, TagConfig
from syncd.core.model import MarkerState, TagType
from syncd.core.planner import CreateTag
from syncd.core.policy import AnnotationFormat
from syncd.firstsync import tags_ahead
from syncd.scan import Walked

PID = "00000000-0000-0000-0000-000000000001"


def _walked(*paths: str, marker: MarkerState = MarkerState.ABSENT) -> Walked:
    # Walk order: each folder's files by name, as syncd.scan walks.
    found = tuple((p, 100, 0, n) for n, p in enumerate(paths))
    return Walked("/data", True, marker, found)


def _mirror(**options: object) -> MirrorConfig:
    return MirrorConfig(root=Path("/data"), project_id=PID, **options)  # type: ignore[arg-type]


def test_each_folder_once_in_path_order_with_the_negative_tag() -> None:
    walked = _walked("dog/a.jpg", "dog/b.jpg", "Cat/c.jpg", "_negative/n.jpg", "Dog/d.jpg")
    assert tags_ahead(_mirror(), walked, 10) == [
        CreateTag("Cat", TagType.REGULAR),
        CreateTag("Dog", TagType.REGULAR),  # "Dog/d.jpg" sorts before "dog/a.jpg": its spelling
        CreateTag("Negative", TagType.NEGATIVE),
    ]


def test_no_more_than_the_first_second_leaves_beside_the_three_reads() -> None:
    walked = _walked(*(f"f{n:02d}/x.jpg" for n in range(20)))
    assert [t.name for t in tags_ahead(_mirror(), walked, 10)] == [f"f{n:02d}" for n in range(7)]
    assert tags_ahead(_mirror(), walked, 3) == []  # a rate of 3 a second leaves none
    assert len(tags_ahead(_mirror(), walked, 50)) == 20


def test_root_files_and_renames_follow_the_mirrors_tag_rules() -> None:
    walked = _walked("loose.jpg", "Kitten/k.jpg")
    mirror = _mirror(tags=TagConfig(rename={"Kitten": "Cat"}))
    assert tags_ahead(mirror, walked, 10) == [CreateTag("Cat", TagType.REGULAR)]


def test_none_for_a_tree_that_would_not_stream() -> None:
    walked = _walked("Dog/a.jpg")
    detection = _mirror(annotations=AnnotationConfig(format=AnnotationFormat.YOLO))
    assert tags_ahead(detection, walked, 10) == []
    assert tags_ahead(_mirror(), _walked("Dog/a.jpg", marker=MarkerState.FOREIGN), 10) == []
    # Synced before (a lost ledger's rebuild): the project has its tags already.
    assert tags_ahead(_mirror(), _walked("Dog/a.jpg", marker=MarkerState.PRESENT), 10) == []
    assert tags_ahead(_mirror(), _walked(), 10) == []
