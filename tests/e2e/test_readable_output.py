"""What a person reads stays readable: a warning names a few paths and counts the rest."""

from __future__ import annotations

from tests.e2e.support import Sandbox, write_tree

SHOWN = 5  # paths a one-line warning names (syncd.display.SHOWN_PATHS)


def test_a_merged_tags_warning_names_a_few_paths_then_a_count(sandbox: Sandbox) -> None:
    # `Dog/` and `dog/` are one tag (names compare case-insensitively): a tags_merged note
    # about all 110 files.
    tree = {f"Dog/a{i:02}.jpg": 1000 + i for i in range(60)}
    tree |= {f"dog/b{i:02}.jpg": 2000 + i for i in range(50)}
    write_tree(sandbox.root, tree)

    run = sandbox.cli("reconcile", "--config", str(sandbox.config_path), "--dry-run")

    (line,) = [ln for ln in run.stdout.splitlines() if "tags_merged" in ln]
    assert line.count(".jpg") == SHOWN, line
    assert line.endswith(f"and {len(tree) - SHOWN} more"), line
    assert len(line) < 200, line
    assert "Dog/a00.jpg" in line and "dog/b00.jpg" in line, line  # a path of each spelling
    # --json lists every path
    document = sandbox.reconcile("--dry-run").mirror
    (merged,) = [c for c in document["conflicts"] if c["kind"] == "tags_merged"]
    assert sorted(merged["paths"]) == sorted(tree)
