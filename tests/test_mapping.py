"""Folder path -> tags: every mode and option, and the names that cannot be tags."""

from __future__ import annotations

import pytest

from syncd.config import TagConfig
from syncd.core.limits import MAX_TAG_NAME_LENGTH
from syncd.core.mapping import TagAssignment, TagMapper, tag_key, tag_name_problem
from syncd.core.model import Problem, ProblemKind
from syncd.core.policy import RootFiles, TagMode


def tags(*names: str, negative: bool = False) -> TagAssignment:
    return TagAssignment(names, negative)


@pytest.mark.parametrize(
    ("config", "path", "expected"),
    [
        (TagConfig(), "Dog/a.jpg", tags("Dog")),
        (TagConfig(), "Dog/puppies/a.jpg", tags("Dog")),
        (TagConfig(mode=TagMode.LEAF), "Dog/puppies/a.jpg", tags("puppies")),
        (TagConfig(mode=TagMode.ALL), "Dog/puppies/a.jpg", tags("Dog", "puppies")),
        (TagConfig(mode=TagMode.ALL), "b/A/a/x.jpg", tags("A", "b")),  # a == A: one tag
        (TagConfig(), "a.jpg", tags()),
        (TagConfig(mode=TagMode.ALL), "a.jpg", tags()),
        (TagConfig(rename={"kitty": "Cat"}), "Kitty/a.jpg", tags("Cat")),
        (TagConfig(), "_negative/a.jpg", tags(negative=True)),
        (TagConfig(), "_NEGATIVE/a.jpg", tags(negative=True)),
        (TagConfig(negative_folder="bg"), "bg/a.jpg", tags(negative=True)),
        (TagConfig(negative_folder=None), "_negative/a.jpg", tags("_negative")),
        (TagConfig(mode=TagMode.LEAF), "Dog/_negative/a.jpg", tags(negative=True)),
        (TagConfig(), "Cafe\u0301/a.jpg", tags("Caf\u00e9")),  # NFD folder -> NFC tag
        (TagConfig(), "🐶 dogs/a.jpg", tags("🐶 dogs")),
    ],
)
def test_assign(config: TagConfig, path: str, expected: TagAssignment) -> None:
    assert TagMapper(config).assign(path) == expected


@pytest.mark.parametrize(
    ("config", "path", "kind", "reason"),
    [
        (TagConfig(root_files=RootFiles.SKIP), "a.jpg", ProblemKind.ROOT_FILE_SKIPPED, "root"),
        (TagConfig(), "Dog /a.jpg", ProblemKind.BAD_TAG_NAME, "whitespace"),
        (TagConfig(), " Dog/a.jpg", ProblemKind.BAD_TAG_NAME, "whitespace"),
        (TagConfig(), "Do\ng/a.jpg", ProblemKind.BAD_TAG_NAME, "control"),
        (TagConfig(), f"{'x' * 257}/a.jpg", ProblemKind.BAD_TAG_NAME, "256"),
        (TagConfig(), "Negative/a.jpg", ProblemKind.BAD_TAG_NAME, "Negative tag"),
        (TagConfig(rename={"dog": " "}), "dog/a.jpg", ProblemKind.BAD_TAG_NAME, "empty"),
        (
            TagConfig(mode=TagMode.ALL),
            "_negative/Dog/a.jpg",
            ProblemKind.NEGATIVE_AND_REGULAR,
            "Negative",
        ),
    ],
)
def test_problems_are_reported_with_a_reason(
    config: TagConfig, path: str, kind: ProblemKind, reason: str
) -> None:
    result = TagMapper(config).assign(path)
    assert isinstance(result, Problem)
    assert result.kind is kind
    assert reason in result.detail


def test_tag_keys_ignore_case_and_normal_form() -> None:
    assert tag_key("Dog") == tag_key("dog") == tag_key("DOG")
    assert tag_key("Caf\u00e9") == tag_key("CAFE\u0301")
    assert tag_key("Straße") == tag_key("STRASSE")
    assert tag_key("Dog") != tag_key("Dogs")


def test_tag_name_rules() -> None:
    assert tag_name_problem("Dog") is None
    assert tag_name_problem("x" * MAX_TAG_NAME_LENGTH) is None
    assert tag_name_problem("x" * (MAX_TAG_NAME_LENGTH + 1)) is not None
    assert tag_name_problem("") is not None
    assert tag_name_problem("a\tb") is not None
    assert tag_name_problem("👩\u200d💻") is None  # a ZWJ emoji sequence is fine
