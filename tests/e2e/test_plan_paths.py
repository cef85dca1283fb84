"""Plans by path (issue 15): every line of a dry run or summary about an image names its file,
with the image id beside it; the summary says what was kept and why.

These tests read the human output of `syncd reconcile` (stdout), as a person would.
"""

from __future__ import annotations

import shutil

from tests.e2e.support import STANDARD_TREE, Run, Sandbox, age, sha256
from tests.support.images import image_bytes, write_image


def _human(box: Sandbox, *args: str) -> Run:
    return box.cli("reconcile", "--config", str(box.config_path), *args)


def _lines(run: Run, verb: str) -> list[str]:
    """The dry run's plan lines for one verb (`    delete image: ...`)."""
    prefix = f"{verb}: "
    return [line.strip() for line in run.stdout.splitlines() if line.strip().startswith(prefix)]


def _image_id(box: Sandbox, data: bytes) -> str:
    (image,) = [i for i in box.images() if i.sha256 == sha256(data)]
    return image.id


def _post_foreign(box: Sandbox, data: bytes) -> str:
    """Upload an image behind syncd's back (no metadata, no tag); return its id."""
    r = box.http.post(
        f"/projects/{box.project_id}/images",
        files={"imageData": ("x.jpg", data, "image/jpeg")},
    )
    assert r.status_code == 200, r.text
    return str(r.json()["images"][0]["image"]["id"])


def _section(run: Run, title: str) -> list[str]:
    """The indented lines under a summary heading that starts with `title`."""
    lines = run.stdout.splitlines()
    for n, line in enumerate(lines):
        if line.strip().startswith(title):
            depth = len(line) - len(line.lstrip())
            out = []
            for follow in lines[n + 1 :]:
                if len(follow) - len(follow.lstrip()) <= depth:
                    break
                out.append(follow.strip())
            return [line.strip(), *out]
    raise AssertionError(f"no {title!r} section in the summary:\n{run.stdout}")


def test_a_dry_run_names_the_file_and_image_of_each_retag_and_delete(synced: Sandbox) -> None:
    moved = (synced.root / "Dog/d0.jpg").read_bytes()
    removed = (synced.root / "Bird/b0.jpg").read_bytes()
    moved_id, removed_id = _image_id(synced, moved), _image_id(synced, removed)
    (synced.root / "Dog/d0.jpg").rename(synced.root / "Cat/d0.jpg")  # a retag
    (synced.root / "Bird/b0.jpg").unlink()  # a delete

    run = _human(synced, "--dry-run")

    assert run.exit_code in (0, 1), str(run)
    (removed_tags,) = _lines(run, "remove tags")
    (added_tags,) = _lines(run, "add tags")
    (deleted,) = _lines(run, "delete image")
    for line in (removed_tags, added_tags):
        assert "Cat/d0.jpg" in line and moved_id in line, line
    assert "Bird/b0.jpg" in deleted and removed_id in deleted, deleted
    assert "gone" in deleted, deleted  # the path is where the file was, not where it is


def test_a_dry_run_after_a_refused_delete_still_names_the_gone_file(synced: Sandbox) -> None:
    # The real run that refused the deletes forgot the files (they are gone from the scan);
    # the reviewer's dry run that follows must still say which files the deletes are about.
    gone = ("Dog/d0.jpg", "Dog/d1.jpg", "Dog/d2.png", "Dog/d3.jpg", "Cat/c0.jpg", "Cat/c1.png")
    ids = {rel: _image_id(synced, (synced.root / rel).read_bytes()) for rel in gone}
    for rel in gone:
        (synced.root / rel).unlink()
    assert synced.reconcile().mirror["refused"]["images"] == 6

    run = _human(synced, "--dry-run", "--allow-mass-delete")

    lines = _lines(run, "delete image")
    assert len(lines) == 6, run.stdout
    for rel, image_id in ids.items():
        assert any(rel in line and image_id in line for line in lines), (rel, lines)


def test_a_dry_run_names_the_file_of_an_adopted_image(synced: Sandbox) -> None:
    data = image_bytes(777)
    image_id = _post_foreign(synced, data)  # already in the project, not syncd's
    (synced.root / "Cat/same.jpg").write_bytes(data)  # the same content appears in the tree

    run = _human(synced, "--dry-run")

    (adopted,) = _lines(run, "adopt")
    assert "Cat/same.jpg" in adopted and image_id in adopted, adopted


def test_a_dry_run_names_the_files_and_image_of_a_conflict(synced: Sandbox) -> None:
    data = (synced.root / "Dog/d1.jpg").read_bytes()
    image_id = _image_id(synced, data)
    shutil.copy(synced.root / "Dog/d1.jpg", synced.root / "_negative/d1.jpg")  # negative + Dog

    run = _human(synced, "--dry-run")

    (conflict,) = _lines(run, "conflict")
    assert "Dog/d1.jpg" in conflict and "_negative/d1.jpg" in conflict, conflict
    assert image_id in conflict, conflict


def test_the_summary_lists_images_kept_under_delete_keep_by_their_last_path(
    synced: Sandbox,
) -> None:
    synced.write_config(delete="keep")
    gone = (synced.root / "Bird/b2.jpg").read_bytes()
    image_id = _image_id(synced, gone)
    (synced.root / "Bird/b2.jpg").unlink()
    age(synced.root)  # long written: the next runs may trust the hashes and skip the files

    first = _human(synced)
    again = _human(synced, "--full")  # the file is long gone: its last known path is named
    unchanged = _human(synced)  # a run that plans nothing still says what is kept

    assert "unchanged since the last run in sync" in unchanged.stdout, unchanged.stdout
    for run in (first, again, unchanged):
        kept = _section(run, "kept")
        assert any("delete: keep" in line and "1" in line for line in kept), kept
        assert any("Bird/b2.jpg" in line and image_id in line for line in kept), kept


def test_the_summary_lists_foreign_images_as_kept(synced: Sandbox) -> None:
    image_id = _post_foreign(synced, image_bytes(778))
    write_image(synced.root / "Cat/new.jpg", 779)  # unmatched local content: foreign is hashed

    run = _human(synced)

    kept = _section(run, "kept")
    assert any("foreign" in line and "1" in line for line in kept), kept
    assert any("no local file; foreign" in line and image_id in line for line in kept), kept


def test_the_summary_lists_deletes_refused_by_the_guard_with_their_paths(
    synced: Sandbox,
) -> None:
    gone = ("Dog/d0.jpg", "Dog/d1.jpg", "Dog/d2.png", "Dog/d3.jpg", "Cat/c0.jpg", "Cat/c1.png")
    for rel in gone:
        (synced.root / rel).unlink()

    run = _human(synced)

    kept = _section(run, "kept")
    assert any("refused" in line and "6" in line for line in kept), kept
    assert sum(1 for line in kept if "Dog/d0.jpg" in line) == 1, kept


def test_the_summary_names_the_file_of_an_image_whose_delete_failed(synced: Sandbox) -> None:
    trash = synced.tmp / "trash"
    trash.write_text("not a folder\n")  # the original cannot be kept, so it is not deleted
    synced.write_config(trash_dir=str(trash))
    data = (synced.root / "Bird/b0.jpg").read_bytes()
    image_id = _image_id(synced, data)
    (synced.root / "Bird/b0.jpg").unlink()

    run = _human(synced)

    assert run.exit_code == 1, str(run)
    failed = _section(run, "failed")
    assert any("Bird/b0.jpg" in line and image_id in line for line in failed), failed


def test_a_file_changed_in_place_names_its_path_for_the_old_images_delete(
    synced: Sandbox,
) -> None:
    old_id = _image_id(synced, (synced.root / "Dog/d1.jpg").read_bytes())
    write_image(synced.root / "Dog/d1.jpg", 9101)  # new bytes, same path

    run = _human(synced, "--dry-run")

    (deleted,) = _lines(run, "delete image")
    assert "Dog/d1.jpg" in deleted and old_id in deleted and "gone" in deleted, deleted
    (uploaded,) = _lines(run, "upload")
    assert "Dog/d1.jpg" in uploaded, uploaded


def test_a_long_delete_plan_is_listed_in_full_by_path_in_the_json(synced: Sandbox) -> None:
    gone = sorted(rel for rel in STANDARD_TREE if rel != "Dog/d0.jpg")  # 11: more than shown
    ids = {rel: _image_id(synced, (synced.root / rel).read_bytes()) for rel in gone}
    for rel in gone:
        (synced.root / rel).unlink()

    human = _human(synced, "--dry-run", "--allow-mass-delete")
    run = synced.reconcile("--dry-run", "--allow-mass-delete")

    assert "--json lists every delete" in human.stdout, human.stdout
    listed = {(d["paths"][0], d["image_id"]) for d in run.mirror["delete_images"]}
    assert listed == {(rel, ids[rel]) for rel in gone}, run.mirror["delete_images"]
    assert all(d["gone"] and d["reason"] == "no_local_file" for d in run.mirror["delete_images"])
