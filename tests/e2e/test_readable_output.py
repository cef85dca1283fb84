"""What a person reads stays readable: a warning names a few paths and counts the rest; files
skipped for their extension are counted, not dropped silently."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tests.e2e.support import Sandbox, write_tree
from tests.support.images import write_image

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


def _write_unaccepted(root: Path) -> None:
    """12 WEBP and 3 TIFF images (real ones), and files that are not counted: a note, a hidden
    WEBP."""
    for i in range(12):
        write_image(root / f"Dog/w{i:02}.webp", 500 + i, "webp")
    for i in range(3):
        write_image(root / f"Cat/t{i}.TIFF", 600 + i, "tiff")
    (root / "Dog/notes.txt").write_text("taken in May", encoding="utf-8")
    write_image(root / "Dog/.hidden.webp", 700, "webp")
    # Written an hour ago: the next runs trust their hashes (no racy window), so a run that finds
    # nothing changed takes the short path that loads no file.
    an_hour_ago = time.time() - 3600
    for path in root.rglob("*"):
        os.utime(path, (an_hour_ago, an_hour_ago))


def test_the_summary_counts_skipped_files_by_extension(synced: Sandbox) -> None:
    _write_unaccepted(synced.root)

    run = synced.cli("reconcile", "--config", str(synced.config_path))

    assert run.exit_code == 0, str(run)  # nothing the user asked for is left undone
    assert "  skipped 12 .webp, 3 .tiff: not accepted by the service\n" in run.stdout, str(run)
    # and on the next run, which finds nothing changed and loads no file
    again = synced.cli("reconcile", "--config", str(synced.config_path))
    assert "unchanged since the last run in sync" in again.stdout, str(again)
    assert "  skipped 12 .webp, 3 .tiff: not accepted by the service\n" in again.stdout


def test_the_json_counts_skipped_files_by_extension(synced: Sandbox) -> None:
    _write_unaccepted(synced.root)

    run = synced.reconcile()

    assert run.mirror["local"]["skipped_by_extension"] == {".webp": 12, ".tiff": 3}


def test_nothing_skipped_by_extension_says_nothing(synced: Sandbox) -> None:
    run = synced.cli("reconcile", "--config", str(synced.config_path))

    assert "skipped" not in run.stdout, str(run)
