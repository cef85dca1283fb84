"""What a ledger rebuild costs: syncd's way (download and hash the originals) against re-uploading
every file and reading the OKDuplicate answers. Run: `python -m bench.rebuild_cost [N]`.

Prints API calls, image bytes and wall time for both, against an in-process EmulatorServer
(no latency: the times show local costs only; calls and bytes are what carry over to Azure).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from PIL import Image

from syncd.api import ClientSettings, TrainingClient, UploadItem, UploadStatus
from syncd.credentials import TrainingKey
from syncd.emulator.server import EmulatorServer

KEY = "bench-rebuild-key"
SIDE = 84  # an 84x84 PNG of noise is about 21 KB


def _write_tree(root: Path, n: int) -> int:
    total = 0
    for i in range(n):
        rng = random.Random(i)
        path = root / f"T{i % 10}" / f"img{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        pixels = bytes(rng.randrange(256) for _ in range(SIDE * SIDE * 3))
        Image.frombytes("RGB", (SIDE, SIDE), pixels).save(path, format="PNG")
        total += path.stat().st_size
    return total


def _reconcile(config: Path) -> tuple[float, dict[str, object]]:
    env = {**os.environ, "SYNCD_TRAINING_KEY": KEY}
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "syncd", "reconcile", "--config", str(config), "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    return time.monotonic() - started, json.loads(out.stdout)["mirrors"][0]


async def _reupload(url: str, project_id: str, root: Path) -> tuple[float, int, int]:
    settings = ClientSettings(rate_per_second=10)
    async with TrainingClient(url, TrainingKey(KEY), settings=settings) as client:
        items = [UploadItem(str(p), p.read_bytes()) for p in sorted(root.rglob("*.png"))]
        started = time.monotonic()
        duplicates = 0
        async for results in client.upload_images(project_id, items):
            duplicates += sum(r.status is UploadStatus.OK_DUPLICATE for r in results)
        return time.monotonic() - started, client.api_calls, duplicates


def main(n: int) -> None:
    with tempfile.TemporaryDirectory(prefix="syncd-rebuild-") as tmp_name:
        tmp = Path(tmp_name)
        root = tmp / "dataset"
        size = _write_tree(root, n)
        with EmulatorServer(training_key=KEY) as emulator:
            http = httpx.Client(
                base_url=f"{emulator.url}/customvision/v3.3/training", headers={"Training-Key": KEY}
            )
            domain = next(d for d in http.get("/domains").json() if d["type"] == "Classification")
            params = {
                "name": "rebuild",
                "domainId": domain["id"],
                "classificationType": "Multilabel",
            }
            project_id = http.post("/projects", params=params).json()["id"]
            config = tmp / "syncd.yaml"
            config.write_text(
                f"state_dir: {tmp / 'state'}\n"
                f"service: {{endpoint: '{emulator.url}'}}\n"
                f"mirror: {{name: rebuild, root: '{root}', project_id: {project_id}}}\n"
            )
            seconds, first = _reconcile(config)
            print(f"first sync: {seconds:.1f} s, {first['api_calls']} calls")
            for ledger in (tmp / "state").glob("rebuild.ledger.sqlite*"):
                ledger.unlink()
            seconds, rebuilt = _reconcile(config)
            remote = rebuilt["remote"]
            assert isinstance(remote, dict)
            print(
                f"rebuild by download: {seconds:.1f} s, {rebuilt['api_calls']} calls, "
                f"{remote['downloads_hashed']} originals ({size / 1e6:.1f} MB down), "
                f"uploads {rebuilt['done']['uploads']}"  # type: ignore[index]
            )
            seconds, calls, duplicates = asyncio.run(_reupload(emulator.url, project_id, root))
            print(
                f"rebuild by re-upload: {seconds:.1f} s, {calls} calls, "
                f"{duplicates} OKDuplicate ({size / 1e6:.1f} MB up)"
            )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
