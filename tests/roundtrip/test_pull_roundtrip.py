"""The other way round: an exported tree, synced into a NEW project by a mirror of the same format,
gives the first project's content with 0 differences (the proof that the export is complete).

Classification: the `folders` format is what a classification mirror reads. Detection: `coco`,
`yolo` and `voc` are what a detection mirror reads (issue 17's sync). AutoML's JSONL is read by
no mirror: its completeness is held by the read-back (tests/roundtrip/test_pull_formats.py).
A pull into the mirror's own root in its own format is followed by a reconcile that sends nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from syncd.emulator.server import EmulatorServer
from tests.e2e.support import Sandbox, remote_content
from tests.roundtrip.support import (
    GENERAL_DETECTION,
    KIND_COUNTS,
    label_detection_project,
    label_project,
)
from tests.support import TEST_KEY
from tests.support.project_view import remote_images


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCD_TRAINING_KEY", TEST_KEY)
    for name in ("SYNCD_CONFIG", "SYNCD_ENDPOINT", "SYNCD_STATE_DIR"):
        monkeypatch.delenv(name, raising=False)


MULTILABEL = {"classificationType": "Multilabel"}


def _sandbox(
    tmp: Path, url: str, project_id: str, api: httpx.Client, capsys: pytest.CaptureFixture[str]
) -> Sandbox:
    tmp.mkdir()
    return Sandbox(tmp, url, project_id, api, capsys)


def _new_project(api: httpx.Client, **params: str) -> str:
    r = api.post("/projects", params={"name": "new", **params})
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


def test_a_pulled_folder_tree_syncs_into_a_new_project_with_no_difference(
    tmp_path: Path,
    server: EmulatorServer,
    api: httpx.Client,
    capsys: pytest.CaptureFixture[str],
) -> None:
    old = _sandbox(tmp_path / "old", server.url, _new_project(api, **MULTILABEL), api, capsys)
    old.write_config()
    label_project(api, old.project_id, KIND_COUNTS)  # tags, Negative, untagged, multi-tag
    exported = tmp_path / "exported"
    run = old.cli(
        "pull", "--config", str(old.config_path), "--format", "folders", "--into", str(exported)
    )
    assert run.exit_code == 0, str(run)
    assert "verified: read back with the folder tree: 320 images as in the project" in run.stdout

    # The tree's marker names the old project: a new project's mirror starts without it.
    (exported / ".syncd-root").unlink()
    new = _sandbox(tmp_path / "new", server.url, _new_project(api, **MULTILABEL), api, capsys)
    new.write_config(root=str(exported))
    synced = new.reconcile()
    assert synced.exit_code == 0, str(synced)

    assert remote_content(api, new.project_id) == remote_content(api, old.project_id)


def _boxes_by_content(api: httpx.Client, project_id: str) -> dict[str, frozenset[Any]]:
    """sha256 -> {(tag name, box rounded to 1e-4)}: a project's boxes, whatever its image ids."""
    by_id = {i.id: i.sha256 for i in remote_images(api, project_id)}
    out: dict[str, frozenset[Any]] = {}
    skip = 0
    while True:
        r = api.get(f"/projects/{project_id}/images", params={"take": 256, "skip": skip})
        page = r.json()
        for image in page:
            out[by_id[image["id"]]] = frozenset(
                (reg["tagName"], *(round(reg[k], 4) for k in ("left", "top", "width", "height")))
                for reg in image.get("regions") or ()
            )
        skip += len(page)
        if len(page) < 256:
            return out


@pytest.mark.parametrize("fmt", ["coco", "yolo", "voc"])
def test_an_exported_detection_tree_syncs_into_a_new_project_with_no_difference(
    tmp_path: Path,
    server: EmulatorServer,
    api: httpx.Client,
    capsys: pytest.CaptureFixture[str],
    fmt: str,
) -> None:
    project = label_detection_project(api, images=12, negatives=0)
    old = _sandbox(tmp_path / "old", server.url, project.project_id, api, capsys)
    exported = tmp_path / "exported"
    coco = {"coco_file": str(exported / "annotations.json")} if fmt == "coco" else {}
    old.write_config(annotations={"format": fmt, **coco})
    run = old.cli("pull", "--config", str(old.config_path), "--into", str(exported))
    assert run.exit_code == 0, str(run)

    (exported / ".syncd-root").unlink()
    new = _sandbox(
        tmp_path / "new", server.url, _new_project(api, domainId=GENERAL_DETECTION), api, capsys
    )
    new.write_config(root=str(exported), annotations={"format": fmt, **coco})
    synced = new.reconcile()
    assert synced.exit_code == 0, str(synced)
    assert _boxes_by_content(api, new.project_id) == _boxes_by_content(api, project.project_id)


@pytest.mark.parametrize("fmt", ["coco", "yolo", "voc"])
def test_a_detection_pull_into_the_mirror_then_reconcile_sends_nothing(
    tmp_path: Path,
    server: EmulatorServer,
    api: httpx.Client,
    capsys: pytest.CaptureFixture[str],
    fmt: str,
) -> None:
    project = label_detection_project(api, images=12)
    box = _sandbox(tmp_path / "m", server.url, project.project_id, api, capsys)
    coco = {"coco_file": str(tmp_path / "m" / "boxes.json")} if fmt == "coco" else {}
    box.write_config(annotations={"format": fmt, **coco})  # pull takes the mirror's format
    pulled = box.cli("pull", "--config", str(box.config_path), "--json")
    assert pulled.exit_code == 0, str(pulled)
    assert pulled.document is not None and pulled.document["format"] == fmt
    if coco:  # the COCO file the mirror reads, not one of pull's choosing
        assert (tmp_path / "m" / "boxes.json").is_file()
    run = box.reconcile()
    assert run.exit_code == 0, str(run)
    assert run.mirror["done"] == {k: 0 for k in run.mirror["done"]}, str(run)
