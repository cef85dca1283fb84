"""The peer: a sync script in the style of the Azure quickstart, on the official SDK 3.1.1.

It creates one tag per top folder, then uploads every image with CreateImagesFromFiles in batches
of 64, one batch after another. With `--state F` it is a path-based sync: F keeps {path: image
id}; paths gone since are deleted (DeleteImages, 256 ids a call) and new paths uploaded, which
is what such a sync does after a folder rename.

    python -m bench.peer --url U --project P --root DIR [--state F] [--threads N]

The key comes from SYNCD_TRAINING_KEY. Prints one JSON line: images sent, failures, calls made.
`--threads` is only for staging a scenario quickly (the measured peer always runs with 1).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import (
    ImageFileCreateBatch,
    ImageFileCreateEntry,
)
from msrest.authentication import ApiKeyCredentials

BATCH = 64  # the quickstart's batch: CreateImagesFromFiles takes at most 64 images
DELETE_BATCH = 256  # DeleteImages takes at most 256 ids


class Peer:
    def __init__(self, url: str, project_id: str) -> None:
        key = os.environ["SYNCD_TRAINING_KEY"]
        self.trainer = CustomVisionTrainingClient(
            url, ApiKeyCredentials(in_headers={"Training-key": key})
        )
        self.project_id = project_id
        self.calls = 0
        self.failures = 0

    def tags(self, names: set[str]) -> dict[str, str]:
        """The ids of the tags named, creating the missing ones."""
        ids = {t.name: t.id for t in self.trainer.get_tags(self.project_id)}
        self.calls += 1
        for name in sorted(names - ids.keys()):
            ids[name] = self.trainer.create_tag(self.project_id, name).id
            self.calls += 1
        return ids

    def upload(self, files: list[Path], tag_ids: dict[str, str], threads: int) -> dict[str, str]:
        batches = [files[i : i + BATCH] for i in range(0, len(files), BATCH)]

        def send(batch: list[Path]) -> dict[str, str]:
            entries = [
                ImageFileCreateEntry(
                    name=str(path), contents=path.read_bytes(), tag_ids=[tag_ids[path.parent.name]]
                )
                for path in batch
            ]
            summary = self.trainer.create_images_from_files(
                self.project_id, ImageFileCreateBatch(images=entries)
            )
            self.calls += 1
            ids = {}
            for result in summary.images:
                if result.status in ("OK", "OKDuplicate") and result.image is not None:
                    ids[result.source_url.strip('"')] = result.image.id
                else:
                    self.failures += 1
            return ids

        ids: dict[str, str] = {}
        if threads <= 1:
            for batch in batches:
                ids.update(send(batch))
        else:
            with ThreadPoolExecutor(threads) as pool:
                for found in pool.map(send, batches):
                    ids.update(found)
        return ids

    def delete(self, image_ids: list[str]) -> None:
        for i in range(0, len(image_ids), DELETE_BATCH):
            self.trainer.delete_images(self.project_id, image_ids=image_ids[i : i + DELETE_BATCH])
            self.calls += 1


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.peer")
    parser.add_argument("--url", required=True)
    parser.add_argument("--project", required=True)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--state", type=Path, help="{path: image id} of the last run")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    peer = Peer(args.url, args.project)
    files = _files(args.root)
    known: dict[str, str] = {}
    if args.state and args.state.exists():
        known = json.loads(args.state.read_text())
    present = {str(p) for p in files}
    gone = {path: image_id for path, image_id in known.items() if path not in present}
    new = [p for p in files if str(p) not in known]
    if gone:
        peer.delete(sorted(gone.values()))
    tag_ids = peer.tags({p.parent.name for p in new}) if new else {}
    ids = peer.upload(new, tag_ids, args.threads)
    if args.state:
        kept = {path: i for path, i in known.items() if path not in gone}
        args.state.write_text(json.dumps({**kept, **ids}))
    result = {"uploaded": len(new), "deleted": len(gone), "failures": peer.failures}
    print(json.dumps({**result, "calls": peer.calls}))
    return 0 if peer.failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
