"""The chaos run: `syncd run` and `syncd emulator` as subprocesses, faults, random edits, kill -9.

Public names: ChaosSettings, ChaosResult, run_chaos, main, CHAOS_KEY.

One run, all of it drawn from `random.Random(seed)`:
1. Start the emulator (`--data`, so a kill -9 loses nothing acknowledged), create a Multilabel
   project, write a starting tree, restart the emulator with every fault on (`--tps`,
   `--fail-rate`, `--drop-rate`, `--latency`, its own `--seed`) and start the daemon. The daemon
   talks to the emulator through the hostile server (tests/support/hostile.py), which answers a
   share (`hostile_rate`) of requests itself, the way a broken or malicious service would:
   Retry-After of 10^9 s, inf, NaN, a negative value or a date years ahead; a body trickled a
   byte at a time; a request that never gets an answer; a huge body; JSON of the wrong shape; an
   HTML page; and error texts that echo the training key in every encoding. None of these reach
   the emulator, so each is safe for any request.
2. Until `duration_s` has passed: random file operations (create, overwrite with new bytes, move,
   rename a folder, delete, copy the same bytes into a second folder) with short random pauses;
   now and then the daemon or the emulator is killed with SIGKILL and restarted a moment later.
3. Faults off (the emulator restarts without them, the hostile server only forwards), the daemon
   is started if it is down, and the invariant checker (tests/support/invariants.py) is polled
   until the tree, the ledger and the project agree or `settle_deadline_s` passes. Then the
   daemon gets SIGTERM (it must exit 0) and the checker runs once more: that last answer is the
   verdict.
Also checked: neither process exited unless we killed it, and the training key is in no log
and not in the ledger, in any encoding the hostile server echoed it in.

Replay: the same seed gives the same operations, pauses, kill points and fault sequences; the
processes' own timing (how far the daemon got when it was killed, and so which request meets
which hostile answer) is the only thing that varies.
Before the daemon starts, the driver puts foreign images in the project, as another tool or another
install of syncd would: some plain, some carrying the metadata `syncd=<this mirror's name>` (a name
anyone can write). Their bytes are in no local file; under `delete: mirror` every one must survive
(an unrequested delete is a violation).
The driver keeps the tree free of what syncd must refuse (the same bytes in `_negative/` and a
regular folder, bad tag names), so every violation at the end is a real one.
"""

from __future__ import annotations

import argparse
import base64
import collections
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx
import yaml

from tests.support.hostile import HostileServer, Reply, Request
from tests.support.images import image_bytes
from tests.support.invariants import Violation, check_invariants
from tests.support.key_echo import echo_text, leaks

REPO = Path(__file__).resolve().parents[2]

CHAOS_KEY = "chaos-KEY-3f9b2d71e0c4a658-SECRET"
MIRROR = "chaos"
NEGATIVE = "_negative"
API = "/customvision/v3.3/training"
FORMATS = {".jpg": "jpeg", ".png": "png", ".gif": "gif", ".bmp": "bmp"}
START_FOLDERS = ("Dog", "Cat", "Bird", NEGATIVE)
MAX_FOLDERS = 12  # renames make new names; past this, renames reuse no new names
MAX_FILES = 400  # past this, the driver deletes more than it creates
START_FILES = 30
FOREIGN_IMAGES = 6  # half plain, half claiming this mirror's name in their metadata


@dataclass(frozen=True)
class ChaosSettings:
    seed: int
    duration_s: float = 20.0
    workdir: Path | None = None  # default: a new temp dir (kept on failure)
    # Faults while the chaos lasts (all on).
    tps: float = 15.0
    fail_rate: float = 0.05
    drop_rate: float = 0.05
    latency_ms: float = 15.0
    # Mean operations between kills, and the longest time each process stays down.
    ops_per_daemon_kill: int = 25
    ops_per_emulator_kill: int = 40
    max_down_s: float = 2.0
    max_pause_s: float = 0.25
    settle_deadline_s: float = 180.0
    full_reconcile_s: float = 5.0
    # Share of requests the hostile server answers itself (see HostileFaults), and the per-request
    # deadline the daemon is given, so that a trickled or unanswered request ends in seconds.
    hostile_rate: float = 0.1
    request_deadline_s: float = 5.0


@dataclass
class ChaosResult:
    seed: int
    workdir: Path
    operations: collections.Counter[str] = field(default_factory=collections.Counter)
    violations: list[Violation] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # unexpected exits, leaked key, ...
    settle_s: float = 0.0
    requests: int = 0  # requests the daemon sent (through the hostile server)
    files_at_end: int = 0
    images_at_end: int = 0

    @property
    def ok(self) -> bool:
        return not self.violations and not self.problems

    def summary(self) -> str:
        ops = ", ".join(f"{k} {v}" for k, v in sorted(self.operations.items()))
        verdict = "PASS" if self.ok else "FAIL"
        lines = [
            f"chaos seed={self.seed}: {verdict}; {sum(self.file_ops().values())} file operations"
            f" ({ops}); {self.requests} requests; {self.files_at_end} files,"
            f" {self.images_at_end} images at the end;"
            f" settled in {self.settle_s:.1f} s; workdir {self.workdir}",
            *(f"  violation: {v}" for v in self.violations),
            *(f"  problem: {p}" for p in self.problems),
        ]
        if not self.ok:
            lines.append(f"  replay: python -m tests.chaos --seed {self.seed}")
        return "\n".join(lines)

    def file_ops(self) -> dict[str, int]:
        return {k: v for k, v in self.operations.items() if not k.startswith(("kill", "hostile"))}

    def hostile_faults(self) -> dict[str, int]:
        return {k: v for k, v in self.operations.items() if k.startswith("hostile")}


# Retry-After values a hostile service might send; every one must be capped, none may stall.
ABSURD_RETRY_AFTER = ("1000000000", "inf", "nan", "-5", "1e308", "Wed, 01 Jan 2031 00:00:00 GMT")
HOSTILE_KINDS = (
    "retry_after",
    "trickle",
    "hang",
    "huge_body",
    "wrong_shape",
    "html",
    "echo_key_500",
    "echo_key_400",
)


class HostileFaults:
    """The hostile server's script for a chaos run: forward, or (at `rate`) misbehave.

    Seeded by the run; the counts of what it injected are kept in `injected`. The
    `ALWAYS_HOSTILE_AT`-th request is hostile whatever the draw, so that even a short run on a
    slow machine (a few dozen requests) meets the hostile server at least once.
    """

    ALWAYS_HOSTILE_AT = 5

    def __init__(self, seed: int, rate: float, deadline_s: float) -> None:
        self.rng = random.Random(seed)
        self.rate = rate
        self.deadline_s = deadline_s
        self.enabled = True
        self.seen = 0
        self.injected: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()  # the hostile server calls scripts from worker threads

    def __call__(self, request: Request) -> Reply | None:
        # Image downloads (pre-signed URIs) and probes pass; the training API is the target.
        if not self.enabled or "/training/" not in request.path:
            return None
        with self._lock:
            self.seen += 1
            if self.rng.random() >= self.rate and self.seen != self.ALWAYS_HOSTILE_AT:
                return None
            kind = self.rng.choice(HOSTILE_KINDS)
            self.injected[kind] += 1
            return self._reply(kind, request.headers.get("training-key", ""))

    def _reply(self, kind: str, key: str) -> Reply:
        if kind == "retry_after":
            return Reply(429, headers={"Retry-After": self.rng.choice(ABSURD_RETRY_AFTER)})
        if kind == "trickle":  # a byte at a time, slower than any deadline allows
            return Reply(json=[], chunk=1, interval=self.deadline_s, length=1000)
        if kind == "hang":
            return Reply(hang=True)
        if kind == "huge_body":
            return Reply(body=b"[", stream_bytes=200_000_000, fill=b"[")
        if kind == "wrong_shape":
            return Reply(json={"images": "not a list", "count": "many"})
        if kind == "html":
            return Reply(502, body=b"<html><body>Bad gateway</body></html>")
        echoed = echo_text(key) if key else "no key"
        if kind == "echo_key_500":
            return Reply(500, body=f"upstream failed for key {echoed}".encode())
        return Reply(400, json={"code": f"BadRequest{key}", "message": f"bad key {echoed}"})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _child_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    return {**env, **extra}


class _Process:
    """A child process whose output goes to a log file; kill -9 or SIGTERM it, start it again."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.unexpected_exits: list[int] = []

    def start(self) -> None:
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.argv, cwd=REPO, env=self.env, stdout=self._log, stderr=subprocess.STDOUT
        )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def note_exit(self) -> None:
        """Record an exit nobody asked for (a crash of the process itself)."""
        if self.proc is not None and self.proc.poll() is not None:
            self.unexpected_exits.append(self.proc.returncode)
            self.proc = None

    def kill9(self) -> None:
        self.note_exit()
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)
            self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def terminate(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM and wait; return the exit code (None if it had to be killed)."""
        self.note_exit()
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)
            code = None
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        return code


class _World:
    def __init__(self, settings: ChaosSettings, workdir: Path) -> None:
        self.settings = settings
        self.rng = random.Random(settings.seed)
        self.workdir = workdir
        self.root = workdir / "dataset"
        self.state = workdir / "state"
        self.ledger = self.state / f"{MIRROR}.ledger.sqlite"
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.http = httpx.Client(base_url=self.url, headers={"Training-Key": CHAOS_KEY}, timeout=30)
        self.emulator_starts = 0
        self.emulator = _Process([], {}, workdir / "emulator.log")
        self.daemon = _Process(
            [sys.executable, "-m", "syncd", "run", "--config", str(workdir / "syncd.yaml")],
            _child_env({"SYNCD_TRAINING_KEY": CHAOS_KEY}),
            workdir / "daemon.log",
        )
        self.next_name = 0
        self.project_id = ""
        self.foreign: list[str] = []
        self.hostile = HostileFaults(
            settings.seed, settings.hostile_rate, settings.request_deadline_s
        )
        self.proxy = HostileServer(self.hostile, upstream=self.url).start()

    # --- processes ----------------------------------------------------------------------------

    def start_emulator(self, *, faults: bool) -> None:
        s = self.settings
        argv = [sys.executable, "-m", "syncd", "emulator", "--port", str(self.port)]
        argv += ["--data", str(self.workdir / "emulator")]
        if faults:
            argv += ["--tps", str(s.tps), "--fail-rate", str(s.fail_rate)]
            argv += ["--drop-rate", str(s.drop_rate), "--latency", str(s.latency_ms)]
            # Each start gets its own fault seed, drawn from the run's seed.
            argv += ["--seed", str(self.rng.randrange(2**31))]
        self.emulator.argv = argv
        self.emulator.env = _child_env({"SYNCD_EMULATOR_TRAINING_KEY": CHAOS_KEY})
        self.emulator.start()
        self.emulator_starts += 1
        deadline = time.monotonic() + 30
        while True:  # any HTTP answer (a fault's 429/5xx included) means it is serving
            try:
                httpx.get(f"{self.url}/emulator-ready-probe", timeout=2)
                return
            except httpx.TransportError:
                if not self.emulator.alive() or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the emulator did not start; see {self.emulator.log_path}"
                    ) from None
                time.sleep(0.05)

    def create_project(self) -> None:
        domains = self.http.get(f"{API}/domains").json()
        domain = next(d for d in domains if d["type"] == "Classification")
        r = self.http.post(
            f"{API}/projects",
            params={"name": "chaos", "domainId": domain["id"], "classificationType": "Multilabel"},
        )
        r.raise_for_status()
        self.project_id = r.json()["id"]

    def add_foreign_images(self) -> None:
        """Upload images no local file holds, half with `syncd=<mirror name>` metadata."""
        for n in range(FOREIGN_IMAGES):
            data = image_bytes(2**41 + self.rng.randrange(2**40), "png", (40, 30))
            batch: dict[str, object] = {
                "images": [{"name": f"foreign{n}.png", "contents": base64.b64encode(data).decode()}]
            }
            if n % 2:
                batch["metadata"] = {"syncd": MIRROR}
            r = self.http.post(f"{API}/projects/{self.project_id}/images/files", json=batch)
            r.raise_for_status()
            self.foreign.append(str(r.json()["images"][0]["image"]["id"]).lower())

    def write_config(self) -> None:
        s = self.settings
        config = {
            "state_dir": str(self.state),
            "service": {
                "endpoint": self.proxy.url,
                "rate_per_second": 50,
                "connect_timeout": 2,
                "read_timeout": 15,
                "request_deadline": s.request_deadline_s,
            },
            "daemon": {
                "settle_seconds": 0.3,
                "max_delay_seconds": 0.3,
                "rescan_seconds": 2,
                "full_reconcile_seconds": s.full_reconcile_s,
                "shutdown_timeout_seconds": 8,
            },
            "mirror": {
                "name": MIRROR,
                "root": str(self.root),
                "project_id": self.project_id,
                "ledger": str(self.ledger),
                "delete": "mirror",
                # The driver deletes on purpose; a guard refusal would only hide the verdict.
                "guard": {"max_delete": 1_000_000, "max_delete_fraction": 1.0},
            },
        }
        (self.workdir / "syncd.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")

    # --- the tree -----------------------------------------------------------------------------

    def files(self) -> list[Path]:
        out = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            out += [Path(dirpath) / f for f in sorted(filenames) if not f.startswith(".")]
        return out

    def folders(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and p.name[0] != ".")

    def _new_bytes(self, suffix: str) -> bytes:
        size = self.rng.choice([(32, 24), (32, 24), (96, 64), (320, 240)])
        return image_bytes(self.rng.randrange(2**40), FORMATS[suffix], size)

    def _new_path(self, folder: str | None) -> Path:
        self.next_name += 1
        suffix = self.rng.choice(sorted(FORMATS))
        name = f"f{self.next_name:05d}{suffix}"
        return self.root / folder / name if folder else self.root / name

    def _pick_folder(self, *, allow_root: bool = True) -> str | None:
        choices: list[str | None] = sorted(set(self.folders()) | set(START_FOLDERS))
        if allow_root:
            choices.append(None)
        return self.rng.choice(choices)

    def _top(self, path: Path) -> str | None:
        parts = path.relative_to(self.root).parts
        return parts[0] if len(parts) > 1 else None

    def _conflicts(self, data: bytes, folder: str | None, leaving: Path | None = None) -> bool:
        """Would these bytes in `folder` sit in `_negative/` and a regular folder at once?"""
        tops = {self._top(p) for p in self.files() if p != leaving and p.read_bytes() == data}
        tops.add(folder)
        tops.discard(None)
        return NEGATIVE in tops and len(tops) > 1

    def write(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def operate(self) -> str | None:
        """Do one random file operation; return its name (None if it did not apply)."""
        files = self.files()
        weights = {
            "create": 4 if len(files) < MAX_FILES else 0,
            "overwrite": 2,
            "move": 2,
            "rename_folder": 1,
            "delete": 2 if len(files) > 10 else 0,
            "copy": 2,
        }
        op = self.rng.choices(list(weights), list(weights.values()))[0]
        pick = self.rng.choice(files) if files else None
        if op == "create" or pick is None:
            path = self._new_path(self._pick_folder())
            self.write(path, self._new_bytes(path.suffix))
            return "create"
        if op == "overwrite":
            self.write(pick, self._new_bytes(pick.suffix))
            return op
        if op == "delete":
            pick.unlink()
            return op
        if op in ("move", "copy"):
            folder = self._pick_folder()
            target = self._new_path(folder).with_suffix(pick.suffix)
            data = pick.read_bytes()
            if self._conflicts(data, folder, leaving=pick if op == "move" else None):
                return None
            target.parent.mkdir(parents=True, exist_ok=True)
            if op == "move":
                os.rename(pick, target)
            else:
                shutil.copyfile(pick, target)
            return op
        # rename_folder: a fresh name (never `_negative`, never an existing name in any case).
        folders = [f for f in self.folders() if f != NEGATIVE] or self.folders()
        if not folders:
            return None
        source = self.rng.choice(folders)
        existing = {f.casefold() for f in self.folders()}
        pool = [f"Tag{n}" for n in range(MAX_FOLDERS)] + ["Dog", "Cat", "Bird", "Fish"]
        fresh = [n for n in pool if n.casefold() not in existing]
        if not fresh or source == NEGATIVE:
            return None
        os.rename(self.root / source, self.root / self.rng.choice(fresh))
        return op

    def seed_tree(self) -> None:
        for _ in range(START_FILES):
            path = self._new_path(self.rng.choice(START_FOLDERS))
            self.write(path, self._new_bytes(path.suffix))

    def close(self) -> None:
        self.daemon.kill9()
        self.emulator.kill9()
        self.proxy.stop()
        self.http.close()


def _leaks(paths: list[Path]) -> list[str]:
    out = []
    for path in paths:
        for extra in ("", "-wal"):
            file = path.with_name(path.name + extra)
            if file.exists():
                out += [
                    f"the training key ({form}) appears in {file}"
                    for form in leaks(file.read_bytes(), CHAOS_KEY)
                ]
    return out


def _chaos_phase(world: _World, result: ChaosResult) -> None:
    s, rng = world.settings, world.rng
    end = time.monotonic() + s.duration_s
    emulator_back_at: float | None = None
    daemon_back_at: float | None = None
    while time.monotonic() < end:
        now = time.monotonic()
        if emulator_back_at is not None and now >= emulator_back_at:
            world.start_emulator(faults=True)
            emulator_back_at = None
        if daemon_back_at is not None and now >= daemon_back_at:
            world.daemon.start()
            daemon_back_at = None
        # A process that died without our kill is recorded (note_exit) and started again.
        if daemon_back_at is None and not world.daemon.alive():
            world.daemon.note_exit()
            world.daemon.start()
        if emulator_back_at is None and not world.emulator.alive():
            world.emulator.note_exit()
            world.start_emulator(faults=True)
        draw = rng.random()
        if draw < 1 / s.ops_per_daemon_kill and daemon_back_at is None:
            world.daemon.kill9()
            result.operations["kill_daemon"] += 1
            daemon_back_at = now + rng.uniform(0, s.max_down_s)
        elif draw < 1 / s.ops_per_daemon_kill + 1 / s.ops_per_emulator_kill:
            if emulator_back_at is None:
                world.emulator.kill9()
                result.operations["kill_emulator"] += 1
                emulator_back_at = now + rng.uniform(0, s.max_down_s)
        else:
            op = world.operate()
            if op is not None:
                result.operations[op] += 1
        time.sleep(rng.uniform(0, s.max_pause_s))


def _settle_phase(world: _World, result: ChaosResult) -> None:
    s = world.settings
    world.hostile.enabled = False
    world.emulator.kill9()  # faults off: the same data, a plain emulator
    world.start_emulator(faults=False)
    if not world.daemon.alive():
        world.daemon.note_exit()
        world.daemon.start()
    started = time.monotonic()
    while time.monotonic() - started < s.settle_deadline_s:
        if not world.daemon.alive():
            world.daemon.note_exit()
            result.problems.append("the daemon exited while settling")
            break
        try:
            if not check_invariants(
                world.root, world.ledger, world.http, world.project_id, foreign=world.foreign
            ):
                break
        except httpx.HTTPError:
            pass  # an image deleted between the listing and its download: look again
        time.sleep(1.0)
    result.settle_s = time.monotonic() - started
    code = world.daemon.terminate()
    if code != 0:
        result.problems.append(f"the daemon exited {code} on SIGTERM, not 0")
    # The verdict: the same check once the daemon has stopped.
    result.violations = check_invariants(
        world.root, world.ledger, world.http, world.project_id, foreign=world.foreign
    )
    result.files_at_end = len(world.files())
    count = world.http.get(f"{API}/projects/{world.project_id}/images/count")
    result.images_at_end = int(count.json())


def run_chaos(settings: ChaosSettings) -> ChaosResult:
    """Run one chaos session and return what happened (see the module docstring)."""
    workdir = settings.workdir or Path(tempfile.mkdtemp(prefix=f"syncd-chaos-{settings.seed}-"))
    workdir.mkdir(parents=True, exist_ok=True)
    result = ChaosResult(settings.seed, workdir)
    world = _World(settings, workdir)
    try:
        world.root.mkdir()
        world.start_emulator(faults=False)
        world.create_project()
        world.add_foreign_images()
        world.write_config()
        world.seed_tree()
        world.emulator.terminate()
        world.start_emulator(faults=True)
        world.daemon.start()
        _chaos_phase(world, result)
        _settle_phase(world, result)
    finally:
        world.close()
    for proc, name in ((world.daemon, "daemon"), (world.emulator, "emulator")):
        for code in proc.unexpected_exits:
            result.problems.append(f"the {name} exited by itself with {code}")
    result.operations.update({f"hostile_{k}": v for k, v in world.hostile.injected.items()})
    result.requests = len(world.proxy.requests)
    result.problems += _leaks([world.daemon.log_path, world.ledger])
    result.problems += _log_problems(world.daemon.log_path)
    return result


def _log_problems(path: Path) -> list[str]:
    """Tracebacks in the daemon's log are bugs even when the run converged."""
    text = path.read_text(errors="replace") if path.exists() else ""
    out = []
    for line in text.splitlines():
        if "Traceback" in line or '"level": "critical"' in line:
            out.append(f"daemon log: {line[:300]}")
        else:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and event.get("event") == "session_failed":
                out.append(f"daemon log: {line[:300]}")
    return out[:10]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument("--seed", type=int, action="append", help="seed (repeat for several runs)")
    parser.add_argument("--runs", type=int, default=1, help="runs with random seeds (no --seed)")
    parser.add_argument("--duration", type=float, default=180.0, help="seconds of chaos per run")
    parser.add_argument("--workdir", type=Path, help="where to keep the run (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the workdir of passing runs")
    args = parser.parse_args(argv)
    seeds = args.seed or [random.SystemRandom().randrange(2**31) for _ in range(args.runs)]
    failed = 0
    totals: collections.Counter[str] = collections.Counter()
    for seed in seeds:
        print(f"chaos seed={seed}: running {args.duration:g} s", flush=True)
        workdir = args.workdir / str(seed) if args.workdir else None
        result = run_chaos(ChaosSettings(seed=seed, duration_s=args.duration, workdir=workdir))
        print(result.summary(), flush=True)
        totals.update(result.operations)
        if result.ok and not args.keep:
            shutil.rmtree(result.workdir, ignore_errors=True)
        failed += not result.ok
    ops = sum(v for k, v in totals.items() if not k.startswith(("kill", "hostile")))
    hostile = sum(v for k, v in totals.items() if k.startswith("hostile"))
    print(
        f"chaos: {len(seeds) - failed}/{len(seeds)} runs passed; {ops} file operations,"
        f" {totals['kill_daemon']} daemon kills, {totals['kill_emulator']} emulator kills,"
        f" {hostile} hostile answers;"
        f" seeds {' '.join(map(str, seeds))}",
        flush=True,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
