"""`syncd review`: the images the emulator was told to mispredict, and only those, with their
local paths, in every format; the --link-into tree; images no longer local are marked."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sys
from pathlib import Path

import httpx
import pytest

from syncd.emulator.server import EmulatorServer
from tests.e2e.support import REPO, Sandbox, write_tree
from tests.support import TEST_KEY
from tests.support.hostile import HostileServer, Reply, Request
from tests.support.terminal import run_into_gone_reader

TREE = {
    **{f"Dog/d{i}.jpg": 100 + i for i in range(7)},
    **{f"Cat/c{i}.png": 200 + i for i in range(6)},
    **{f"Bird/b{i}.jpg": 300 + i for i in range(6)},
    "_negative/n0.jpg": 400,
}
# path -> the tag the emulator is told to predict for it
MISPREDICT = {"Dog/d1.jpg": "Cat", "Cat/c2.png": "Bird", "Bird/b0.jpg": "Dog", "Dog/d5.jpg": "Bird"}
GONE = "Dog/d5.jpg"  # deleted locally after training: listed as not local


@pytest.fixture
def reviewed(box: Sandbox) -> tuple[Sandbox, dict[str, str], str]:
    """A synced, trained project with MISPREDICT marked and GONE deleted; returns (box,
    path -> image id, iteration id)."""
    write_tree(box.root, TREE)
    assert box.reconcile().exit_code == 0
    by_sha = {image.sha256: image.id for image in box.images()}
    ids = {rel: by_sha[hashlib.sha256((box.root / rel).read_bytes()).hexdigest()] for rel in TREE}
    tags = {t["name"]: t["id"] for t in box.http.get(f"/projects/{box.project_id}/tags").json()}
    root_url = str(box.http.base_url).split("/customvision")[0]
    for rel, predicted in MISPREDICT.items():
        r = box.http.post(
            f"{root_url}/emulator/projects/{box.project_id}/mispredictions",
            json={"imageId": ids[rel], "tagId": tags[predicted]},
        )
        assert r.status_code == 204, r.text
    train = box.cli("train", "--config", str(box.config_path), "--wait", "--json")
    assert train.exit_code == 0, str(train)
    assert train.document is not None
    (box.root / GONE).unlink()
    assert box.reconcile().exit_code == 0  # delete: mirror; the iteration keeps the image
    return box, ids, train.document["iteration_id"]


def _review(box: Sandbox, *args: str) -> str:
    run = box.cli("review", "--config", str(box.config_path), *args)
    assert run.exit_code == 0, str(run)
    return run.stdout


def test_json_lists_exactly_the_mispredicted_worst_first(
    reviewed: tuple[Sandbox, dict[str, str], str],
) -> None:
    box, ids, iteration_id = reviewed
    doc = json.loads(_review(box, "--format", "json"))
    assert doc["iteration"]["id"] == iteration_id and doc["reviewed"] == len(TREE)
    listed = doc["listed"]
    assert {v["image_id"] for v in listed} == {ids[rel] for rel in MISPREDICT}
    for v in listed:
        rel = next(r for r in MISPREDICT if ids[r] == v["image_id"])
        assert v["predicted"] == MISPREDICT[rel]
        assert v["expected"] == [rel.split("/")[0]]
        assert v["reason"] == "another tag wins"
        assert (v["paths"], v["local"]) == (([], False) if rel == GONE else ([rel], True))
    margins = [v["expected_probability"] - v["predicted_probability"] for v in listed]
    assert margins == sorted(margins)  # worst first
    # The same iteration named by id gives the same answer.
    assert json.loads(_review(box, "--iteration", iteration_id, "--format", "json")) == doc


def test_csv_and_table_carry_the_same_files(
    reviewed: tuple[Sandbox, dict[str, str], str],
) -> None:
    box, ids, _ = reviewed
    rows = list(csv.DictReader(io.StringIO(_review(box, "--format", "csv"))))
    assert {(r["image_id"], r["path"], r["local"]) for r in rows} == {
        (ids[rel], "" if rel == GONE else rel, "no" if rel == GONE else "yes") for rel in MISPREDICT
    }
    assert all(
        r["predicted"] == MISPREDICT[next(k for k in MISPREDICT if ids[k] == r["image_id"])]
        for r in rows
    )
    table = _review(box)
    assert f"4 of {len(TREE)} images listed" in table
    for rel in MISPREDICT:
        if rel != GONE:
            assert rel in table
    assert f"(not local) image {ids[GONE]}" in table
    assert "Dog/d0.jpg" not in table


def test_threshold_lists_images_whose_own_tag_scores_under_it(
    reviewed: tuple[Sandbox, dict[str, str], str],
) -> None:
    box, _, _ = reviewed
    # The emulator scores an image's own tag 0.80-0.99: at 0.995 every image is under it.
    doc = json.loads(_review(box, "--format", "json", "--threshold", "0.995"))
    assert len(doc["listed"]) == len(TREE)
    reasons = {v["reason"] for v in doc["listed"]}
    assert reasons == {"another tag wins", "own tag under threshold"}


def test_link_into_builds_the_expected_tree(
    reviewed: tuple[Sandbox, dict[str, str], str], tmp_path: Path
) -> None:
    box, _, _ = reviewed
    into = tmp_path / "review"
    for _ in range(2):  # a second run rebuilds the view
        _review(box, "--link-into", str(into))
        links = {
            p.relative_to(into).as_posix(): p.resolve() for p in into.rglob("*") if p.is_symlink()
        }
        assert links == {
            "Dog→Cat/d1.jpg": (box.root / "Dog/d1.jpg").resolve(),
            "Cat→Bird/c2.png": (box.root / "Cat/c2.png").resolve(),
            "Bird→Dog/b0.jpg": (box.root / "Bird/b0.jpg").resolve(),
        }
    (into / "notes.txt").write_text("mine")
    run = box.cli("review", "--config", str(box.config_path), "--link-into", str(into))
    assert run.exit_code == 1 and "not symlinks" in run.stderr
    assert (into / "notes.txt").read_text() == "mine"


def test_no_trained_iteration_is_a_clear_error(box: Sandbox) -> None:
    write_tree(box.root, TREE)
    assert box.reconcile().exit_code == 0
    run = box.cli("review", "--config", str(box.config_path))
    assert run.exit_code == 1 and "syncd train" in run.stderr


# A tag name a hostile or careless service could send: a spreadsheet formula, terminal escapes
# (clear screen, set the window title), a carriage return and a right-to-left override.
HOSTILE_NAME = '=HYPERLINK("http://x")\x1b[2J\x1b]0;pwned\x07\r\u202eBird'
UNSAFE_CHARS = ("\x1b", "\x07", "\r", "\u202e")


def test_server_text_is_printed_safely_and_csv_cells_are_neutralised(
    reviewed: tuple[Sandbox, dict[str, str], str], server: EmulatorServer
) -> None:
    box, _, _ = reviewed

    def rename_bird(request: Request) -> Reply | None:
        """Forward, and answer the iteration's scores with the Bird tag renamed."""
        if request.method != "GET" or "/performance/" not in request.path:
            return None
        upstream = httpx.get(server.url + request.target, headers={"Training-Key": TEST_KEY})
        body = upstream.content.replace(b'"Bird"', json.dumps(HOSTILE_NAME).encode())
        headers = {"content-type": "application/json"}
        return Reply(upstream.status_code, headers=headers, body=body)

    with HostileServer(rename_bird, upstream=server.url) as bad:
        box.endpoint = bad.api_url
        box.write_config()
        table = _review(box)
        csv_text = _review(box, "--format", "csv")
        doc = json.loads(_review(box, "--format", "json"))  # JSON keeps the data, escaped

    assert not any(c in table for c in UNSAFE_CHARS), repr(table)
    assert "\\x1b[2J" in table  # shown, escaped, not obeyed

    rows = list(csv.DictReader(io.StringIO(csv_text)))
    hostile = [r for r in rows if "HYPERLINK" in r["predicted"]]
    assert len(hostile) == 2, rows  # Cat/c2.png and Dog/d5.jpg are predicted as Bird
    for row in rows:
        for column, cell in row.items():
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), (column, cell)
            assert not any(c in cell for c in UNSAFE_CHARS), (column, cell)
        float(row["expected_probability"]), float(row["predicted_probability"])  # still numbers
    assert all(r["predicted"].startswith("'=HYPERLINK") for r in hostile)

    assert {v["predicted"] for v in doc["listed"]} >= {HOSTILE_NAME}


def test_review_into_a_reader_that_left_ends_quietly(
    reviewed: tuple[Sandbox, dict[str, str], str],
) -> None:
    # `syncd review | head -1`: once head has its line, the rest goes nowhere, without a traceback.
    box, _, _ = reviewed
    argv = [sys.executable, "-m", "syncd", "review", "--config", str(box.config_path)]
    for extra in ([], ["--format", "csv"], ["--format", "json"]):
        code, stderr = run_into_gone_reader([*argv, *extra], cwd=str(REPO))
        assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
        assert code == 0, stderr
