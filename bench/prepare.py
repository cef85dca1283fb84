"""Scenario H: `files.prepare` throughput against Pillow's plain loop on the same files.

`python -m bench.prepare DIR` prepares every file under DIR twice and prints one JSON line:

- syncd: each file read and handed to syncd.prepare's process pool (one process per core, as a
  reconcile runs it), with the recipe the scan would give it;
- the floor: one process, for each file Pillow's `open`, `resize` to the size syncd's output has
  (skipped when syncd kept the size), `save` in syncd's output format and JPEG quality.

The target compares syncd per core used with the floor: images per CPU-second (this process's and
the pool workers', read from /proc) >= 0.9x the floor's. CPU seconds, not wall time over the
processes: on a machine shared with other work, a process waiting for a core is not syncd's cost.
The fork server the workers come from starts once per syncd process: its start is in the wall
time, not in the CPU seconds. `generate(DIR, photos, webps)` writes the files: camera-sized JPEGs
over 6 MB (smooth content with grain, quality 95, about 7 MB at 12 MP) and WEBP photos (converted
to JPEG).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import random
import resource
import sys
import time
from pathlib import Path

from PIL import Image

from syncd.config import PrepareConfig
from syncd.core.model import Problem
from syncd.prepare import PREPARE_PROCESSES, Preparer, inspect, judge

PHOTO_SIZE = (4000, 3000)  # 12 MP, a phone camera's
WEBP_SIZE = (2000, 1500)


def _photo(seed: int, size: tuple[int, int]) -> Image.Image:
    """Smooth content with grain: compresses like a photo, not like noise or a flat colour."""
    rng = random.Random(seed)
    w, h = size
    grain = Image.frombytes("RGB", (w // 3, h // 3), rng.randbytes((w // 3) * (h // 3) * 3))
    grain = grain.resize(size, Image.Resampling.BICUBIC)
    base = Image.linear_gradient("L").resize(size).rotate(rng.randrange(360)).convert("RGB")
    return Image.blend(base, grain, 0.5)


def generate(folder: Path, photos: int, webps: int, scale: float = 1.0) -> int:
    """Write the scenario's files under `folder`; return their bytes in all."""
    folder.mkdir(parents=True, exist_ok=True)
    total = 0
    photo_size = (int(PHOTO_SIZE[0] * scale), int(PHOTO_SIZE[1] * scale))
    webp_size = (int(WEBP_SIZE[0] * scale), int(WEBP_SIZE[1] * scale))
    for i in range(photos):
        out = io.BytesIO()
        _photo(50_000 + i, photo_size).save(out, "JPEG", quality=95)
        total += (folder / f"photo{i:03d}.jpg").write_bytes(out.getvalue())
    for i in range(webps):
        out = io.BytesIO()
        _photo(60_000 + i, webp_size).save(out, "WEBP", quality=85)
        total += (folder / f"web{i:03d}.webp").write_bytes(out.getvalue())
    return total


def _recipes(files: list[Path], prepare: PrepareConfig) -> list[tuple[bytes, str]]:
    jobs = []
    for path in files:
        data = path.read_bytes()
        facts = inspect(data, prepare)
        recipe = facts if isinstance(facts, Problem) else judge(facts, len(data), prepare)
        if not isinstance(recipe, str):
            raise SystemExit(f"{path}: nothing to prepare ({recipe})")
        jobs.append((data, recipe))
    return jobs


def _cpu_seconds() -> float:
    """CPU time of this process."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    return me.ru_utime + me.ru_stime


def _workers_cpu_seconds(preparer: Preparer) -> float:
    """CPU time of the pool's processes so far (children of the fork server, not of this
    process: read from /proc while they live)."""
    pool = preparer._pool  # the bench's look inside: syncd has no use for it
    pids = list(pool._processes) if pool is not None else []  # type: ignore[attr-defined]
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


async def _syncd(files: list[Path], recipes: list[str]) -> tuple[float, float, list[bytes]]:
    began, cpu = time.perf_counter(), _cpu_seconds()
    with Preparer() as preparer:

        async def one(path: Path, recipe: str) -> bytes:
            data = await asyncio.to_thread(path.read_bytes)
            prepared, why = await preparer.prepare(data, recipe)
            if prepared is None:
                raise SystemExit(f"{path}: {why}")
            return prepared

        out = await asyncio.gather(*(one(p, r) for p, r in zip(files, recipes, strict=True)))
        workers = _workers_cpu_seconds(preparer)
    return time.perf_counter() - began, _cpu_seconds() - cpu + workers, list(out)


def _floor(files: list[Path], outputs: list[bytes], quality: int) -> tuple[float, float]:
    """Pillow's plain loop: open, resize to syncd's output size, save in syncd's format."""
    targets = []
    for data in outputs:
        with Image.open(io.BytesIO(data)) as img:
            targets.append((img.format or "JPEG", img.size))
    began, cpu = time.perf_counter(), _cpu_seconds()
    for path, (fmt, size) in zip(files, targets, strict=True):
        with Image.open(path) as img:
            if img.size != size:
                img = img.resize(size, Image.Resampling.LANCZOS)
            elif img.mode not in ("RGB", "L"):
                img = img.convert("RGB")
            out = io.BytesIO()
            if fmt == "JPEG":
                img.convert("RGB").save(out, "JPEG", quality=quality)
            else:
                img.save(out, fmt)
    return time.perf_counter() - began, _cpu_seconds() - cpu


def main() -> int:
    folder = Path(sys.argv[1])
    files = sorted(p for p in folder.iterdir() if p.is_file())
    prepare = PrepareConfig()
    recipes = [recipe for _, recipe in _recipes(files, prepare)]
    syncd_s, syncd_cpu, outputs = asyncio.run(_syncd(files, recipes))
    floor_s, floor_cpu = _floor(files, outputs, prepare.jpeg_quality)
    print(
        json.dumps(
            {
                "files": len(files),
                "bytes_in": sum(p.stat().st_size for p in files),
                "bytes_out": sum(map(len, outputs)),
                "largest_out": max(map(len, outputs)),
                "processes": PREPARE_PROCESSES,
                "syncd_seconds": syncd_s,
                "syncd_cpu_seconds": syncd_cpu,
                "floor_seconds": floor_s,
                "floor_cpu_seconds": floor_cpu,
                "recipes": sorted(set(recipes)),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
