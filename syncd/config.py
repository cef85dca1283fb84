"""Typed configuration: defaults -> parse -> env -> validate all -> frozen objects.

Public names: load_config, parse_config, schema_keys, check_value, ConfigError, ConfigProblem,
Config, ServiceConfig, TrainingKeyConfig, MirrorConfig, TagConfig, FileConfig, GuardConfig,
DaemonConfig, PullConfig, AnnotationConfig, EMBEDDED, ENDPOINT_ENV, STATE_DIR_ENV. The choices
some keys take (TagMode, RootFiles, MultiTag, DeletePolicy, AnnotationFormat) are
syncd.core.policy's; MirrorConfig and its
sections satisfy that module's protocols, which is how the mapping and the planner read them.

`service.endpoint` is required: `embedded` (the in-process emulator) only when the config says
so, never by default (a config with no endpoint would otherwise sync into a local stand-in and
report "in sync").

The frozen dataclasses below ARE the schema: each field is a YAML key, its type hint is the
expected type, its default the default, and `metadata["check"]` its validation. The loader walks
them, so a key cannot exist in one place and not the other; `config.example.yaml` documents every
key and a test keeps it in step (`schema_keys`).

Every problem (unknown key, wrong type, missing value, failed check) is collected with its file,
line and key, and all are raised at once as one `ConfigError`; the CLI prints it and exits 2.
A training key written into the YAML is accepted, with a warning in `Config.warnings`, and held as
a `TrainingKey` (never shown).

Secrets in problems: a key pasted into the wrong place must not be printed back. The values of
`service.endpoint`, `mirror.project_id` and `service.training_key.*` are never echoed (the problem
gives the file and line instead), and every problem's text is passed through
`syncd.redact.mask_key_like`, which hides any token shaped like a key (a long run mixing letters
and digits) wherever else it was echoed. Plain `http://` to a host other than this machine is
refused unless `service.allow_insecure_http: true` (the key would cross the network unencrypted).
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import math
import os
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from syncd.core.globs import glob_problem
from syncd.core.mapping import tag_name_problem
from syncd.core.policy import AnnotationFormat, DeletePolicy, MultiTag, RootFiles, TagMode
from syncd.credentials import DEFAULT_KEY_ENV, TrainingKey, key_problem
from syncd.errors import SyncdError
from syncd.redact import looks_like_key, mask_key_like

EMBEDDED = "embedded"
# Environment variables that override one key each (applied after the file, before validation).
ENDPOINT_ENV = "SYNCD_ENDPOINT"  # service.endpoint
STATE_DIR_ENV = "SYNCD_STATE_DIR"  # state_dir
_ENDPOINT_HINT = (
    f"give `endpoint: {EMBEDDED}` for the local emulator, or "
    "`endpoint: https://<resource>.cognitiveservices.azure.com` for Azure"
)
# `daemon.stall_seconds`: how long a mirror loop may show no progress before the daemon stops
# its WATCHDOG=1 pings. The default is well above the longest step a healthy loop takes without
# a heartbeat: one request (its deadline, ~300 s) or one throttle/backoff wait (capped by a
# call's 300 s retry budget). Small values are allowed for tests; the daemon warns about them.
STALL_SECONDS_DEFAULT = 900.0
STALL_SECONDS_MIN = 1.0
STALL_SECONDS_MAX = 86400.0


class ConfigError(SyncdError):
    """The configuration is unusable; `problems` lists every reason, in file order."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = tuple(sorted(problems, key=lambda p: (p.line is None, p.line or 0)))
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with the configuration, located as precisely as we can."""

    key: str
    message: str
    file: str | None = None
    line: int | None = None

    def __post_init__(self) -> None:
        # A key pasted into the wrong place (or as a YAML key) is never printed back.
        object.__setattr__(self, "key", mask_key_like(self.key))
        object.__setattr__(self, "message", mask_key_like(self.message))

    def __str__(self) -> str:
        where = self.file or "config"
        if self.line is not None:
            where = f"{where}:{self.line}"
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


# --- checks (each returns the problem as text, or None) --------------------------------------


def _at_least(n: int) -> Callable[[int], str | None]:
    return lambda value: None if value >= n else f"must be at least {n}, got {value}"


def _between(low: float, high: float) -> Callable[[float], str | None]:
    """A number (or, for an int key, an integer) from low to high; NaN and infinities never pass.
    The upper ends refuse values that can only be typos (a rate of 1e9/s, a 10-day timeout)."""

    def check(value: float) -> str | None:
        if math.isfinite(value) and low <= value <= high:
            return None
        kind = "an integer" if isinstance(value, int) else "a number"
        return f"expected {kind} from {low:g} to {high:g}, got {value:g}"

    return check


_DAY = 86_400.0
_HOUR = 3_600.0


_NOT_SHOWN = "(the value is not shown: a key pasted here by mistake would be)"


def _endpoint(value: str) -> str | None:
    if value == EMBEDDED:
        return None
    try:
        parts = urlsplit(value)
        hostname = parts.hostname
    except ValueError:
        hostname = None
    if hostname and parts.scheme.lower() in ("http", "https"):
        if parts.username is not None or parts.password is not None:
            return (
                f"must not hold a user name or password (the key goes in training_key) {_NOT_SHOWN}"
            )
        return None
    return f"expected {EMBEDDED!r} or an http(s) URL {_NOT_SHOWN}"


def is_loopback(host: str) -> bool:
    """True for `localhost`, 127.0.0.0/8 and ::1 (this machine: nothing crosses a network)."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def insecure_http_problem(endpoint: str, allow_insecure_http: bool) -> str | None:
    """Why plain http:// to `endpoint` is refused (None if https, loopback, embedded or allowed)."""
    if endpoint == EMBEDDED or allow_insecure_http:
        return None
    try:
        parts = urlsplit(endpoint)
        hostname = parts.hostname or ""
    except ValueError:
        return None  # _endpoint reports it
    if parts.scheme.lower() != "http" or not hostname or is_loopback(hostname):
        return None
    return (
        "plain http:// to a host other than this machine would send the training key "
        "unencrypted; use https://, or set service.allow_insecure_http: true if you mean it"
    )


def parse_host_port(address: str) -> tuple[str, int]:
    """Return (host, port) of `host:port` or `:port` (host 127.0.0.1); raise ValueError."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{address!r} is not host:port (e.g. 127.0.0.1:9464)")
    return host.strip("[]") or "127.0.0.1", int(port)


def _address(value: str) -> str | None:
    try:
        parse_host_port(value)
    except ValueError as exc:
        return str(exc)
    return None


_PROJECT_ID = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)


def _uuid(value: str) -> str | None:
    # Dashes required: 32 bare hex digits parse as a UUID, and are also what a key looks like.
    if _PROJECT_ID.fullmatch(value):
        return None
    return (
        "expected a project id like 0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0 (a UUID with dashes) "
        + _NOT_SHOWN
    )


def _mirror_name(value: str) -> str | None:
    ok = re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", value)
    return None if ok else f"expected letters, digits, '_', '.', '-' (max 64), got {value!r}"


def _env_name(value: str) -> str | None:
    if looks_like_key(value):
        return (
            "looks like a training key itself; give the name of the environment variable that "
            f"holds it (e.g. {DEFAULT_KEY_ENV}) {_NOT_SHOWN}"
        )
    ok = re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value)
    return None if ok else f"expected an environment variable name {_NOT_SHOWN}"


def _tag_name(value: str) -> str | None:
    return tag_name_problem(value)


def _rename(value: Mapping[str, str]) -> str | None:
    for folder, tag in value.items():
        if not folder:
            return "a folder name cannot be empty"
        reason = tag_name_problem(tag)
        if reason:
            return f"{folder!r} -> {tag!r}: {reason}"
    return None


def _extensions(value: tuple[str, ...]) -> str | None:
    bad = [e for e in value if not re.fullmatch(r"\.[A-Za-z0-9]+", e)]
    if not value:
        return "list at least one extension"
    return f"expected extensions like '.jpg', got {bad}" if bad else None


def _globs(value: tuple[str, ...]) -> str | None:
    for pattern in value:
        reason = glob_problem(pattern)
        if reason:
            return f"{pattern!r}: {reason}"
    return None


def _check(fn: Callable[[Any], str | None], **extra: Any) -> dict[str, Any]:
    return {"check": fn, **extra}


# --- the schema -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingKeyConfig:
    """Where the training key comes from: `value` > `file` > `env`."""

    env: str = field(default=DEFAULT_KEY_ENV, metadata=_check(_env_name))
    file: Path | None = None
    value: TrainingKey | None = None

    def load(self) -> TrainingKey:
        """Return the key; raise syncd.credentials.CredentialsError if its source has none."""
        if self.value is not None:
            return self.value
        if self.file is not None:
            return TrainingKey.from_file(self.file)
        return TrainingKey.from_env(self.env)


@dataclass(frozen=True)
class ServiceConfig:
    """The Custom Vision endpoint, the key, and how hard to push the service."""

    # Required (parse_config says so when neither the file nor SYNCD_ENDPOINT gives it); the
    # default is only the "not given" mark, so the environment can still set it after parsing.
    endpoint: str = field(default="", metadata=_check(_endpoint))
    # Plain http:// to a host other than this machine sends the key unencrypted: refused unless
    # this says the user means it.
    allow_insecure_http: bool = False
    emulator_dir: Path | None = None  # embedded only; load_config sets <state_dir>/emulator
    training_key: TrainingKeyConfig = field(default_factory=TrainingKeyConfig)
    rate_per_second: float = field(default=10.0, metadata=_check(_between(0.1, 1000)))
    # The image-creating calls' own rate, where the tier limits them apart (F0: ~2/s); unset,
    # they share rate_per_second with every other call.
    upload_rate_per_second: float | None = field(default=None, metadata=_check(_between(0.1, 1000)))
    max_concurrency: int = field(default=10, metadata=_check(_between(1, 256)))
    max_attempts: int = field(default=8, metadata=_check(_between(1, 100)))
    connect_timeout: float = field(default=10.0, metadata=_check(_between(0.1, _DAY)))
    read_timeout: float = field(default=60.0, metadata=_check(_between(0.1, _DAY)))
    # Overall deadline of one request attempt or download, first byte sent to last received.
    request_deadline: float = field(default=300.0, metadata=_check(_between(1, 3600)))
    # The longest one Retry-After holds syncd back (the API limit module's MAX_RETRY_AFTER_S).
    max_retry_after: float = field(default=60.0, metadata=_check(_between(0.1, 600)))
    # The uplink in Mbit/s: with the rate, what one call is worth in bytes when syncd chooses an
    # upload format (raw multipart or base64 in JSON; syncd.api.client.choose_upload_format).
    uplink_mbps: float = field(default=100.0, metadata=_check(_between(0.1, 100_000)))

    @property
    def is_embedded(self) -> bool:
        return self.endpoint == EMBEDDED


@dataclass(frozen=True)
class TagConfig:
    """How folders become tags (see syncd.core.mapping)."""

    mode: TagMode = TagMode.TOP
    root_files: RootFiles = RootFiles.UNTAGGED
    rename: Mapping[str, str] = field(default_factory=dict, metadata=_check(_rename))
    negative_folder: str | None = "_negative"
    negative_tag_name: str = field(default="Negative", metadata=_check(_tag_name))
    delete_empty_tags: bool = False


# The formats `files.prepare` can convert (syncd.prepare): WEBP and TIFF through Pillow itself,
# HEIC/HEIF through pillow-heif (the `formats` extra), AVIF through Pillow's own plugin when it
# was built with libavif (Pillow 11.3+; else pillow-avif-plugin).
PREPARE_FORMATS = ("webp", "tiff", "heif", "avif")
JPEG_QUALITY_MIN, JPEG_QUALITY_MAX = 50, 95


def _prepare_formats(value: tuple[str, ...]) -> str | None:
    bad = [v for v in value if v not in PREPARE_FORMATS]
    return f"expected some of {', '.join(PREPARE_FORMATS)}, got {bad}" if bad else None


@dataclass(frozen=True)
class PrepareConfig:
    """`files.prepare`: what syncd may do to a file before it is sent (syncd.prepare). Opt-in:
    without it a file the service would refuse is a problem, never altered."""

    # Formats the service refuses, converted to PNG (transparency or lossless) or JPEG.
    formats: tuple[str, ...] = field(default=PREPARE_FORMATS, metadata=_check(_prepare_formats))
    # An image over 6 MB or over 10,240 px a side is scaled down until it fits.
    downscale: bool = True
    # An EXIF orientation other than "upright" is applied to the pixels (the service ignores it).
    orient: bool = True
    # The quality of every JPEG syncd writes (Pillow's scale; chroma 4:2:0, Pillow's default).
    jpeg_quality: int = field(
        default=90, metadata=_check(_between(JPEG_QUALITY_MIN, JPEG_QUALITY_MAX))
    )


@dataclass(frozen=True)
class FileConfig:
    """Which files under the root are candidates."""

    include: tuple[str, ...] = field(default=("**",), metadata=_check(_globs))
    exclude: tuple[str, ...] = field(default=(), metadata=_check(_globs))
    extensions: tuple[str, ...] = field(
        default=(".jpg", ".jpeg", ".png", ".bmp", ".gif"), metadata=_check(_extensions)
    )
    follow_symlinks: bool = False
    # None: prepare nothing (the default); see PrepareConfig.
    prepare: PrepareConfig | None = None


@dataclass(frozen=True)
class GuardConfig:
    """The mass-delete guard: a plan deleting more than either limit deletes nothing."""

    max_delete: int = field(default=50, metadata=_check(_at_least(0)))
    max_delete_fraction: float = field(default=0.25, metadata=_check(_between(0, 1)))


@dataclass(frozen=True)
class PullConfig:
    """`syncd pull`: how a project is written out as a folder tree (the mapping reversed)."""

    multi_tag: MultiTag = MultiTag.LINK


@dataclass(frozen=True)
class AnnotationConfig:
    """Where a detection mirror's boxes come from (`format: none`: a classification mirror)."""

    format: AnnotationFormat = AnnotationFormat.NONE
    # The COCO JSON file (format coco only; required there), relative to the config's folder.
    coco_file: Path | None = None

    @property
    def detection(self) -> bool:
        return self.format is not AnnotationFormat.NONE


# `tags:` keys that mean nothing in a detection mirror (its boxes' classes are its tags); set
# there, each gets a warning. `rename` and `delete_empty_tags` still apply (to class names).
_CLASSIFICATION_ONLY_TAG_KEYS = ("mode", "root_files", "negative_folder", "negative_tag_name")


@dataclass(frozen=True)
class MirrorConfig:
    """One (root folder, project) pair."""

    root: Path
    project_id: str = field(metadata=_check(_uuid))
    name: str = field(default="default", metadata=_check(_mirror_name))
    ledger: Path | None = None  # load_config sets <state_dir>/<name>.ledger.sqlite
    delete: DeletePolicy = DeletePolicy.KEEP
    adopt_foreign_images: bool = False
    max_tags_per_project: int = field(default=500, metadata=_check(_at_least(1)))
    tags: TagConfig = field(default_factory=TagConfig)
    annotations: AnnotationConfig = field(default_factory=AnnotationConfig)
    files: FileConfig = field(default_factory=FileConfig)
    guard: GuardConfig = field(default_factory=GuardConfig)
    pull: PullConfig = field(default_factory=PullConfig)
    # Start training after a reconcile that changed at least this many images (0: never).
    train_after_sync: int = field(default=0, metadata=_check(_at_least(0)))
    # Under `delete: mirror`: each deleted image's original is downloaded here first (a dated
    # folder laid out like the tree); a failed download holds its delete back. None: no trash.
    trash_dir: Path | None = None


@dataclass(frozen=True)
class DaemonConfig:
    """`syncd run`: when a changed file counts as written, how changes are batched, the timers."""

    settle_seconds: float = field(default=2.0, metadata=_check(_between(0.01, _HOUR)))
    max_delay_seconds: float = field(default=1.0, metadata=_check(_between(0.01, _HOUR)))
    full_reconcile_seconds: float = field(default=3600.0, metadata=_check(_between(1, 7 * _DAY)))
    rescan_seconds: float = field(default=60.0, metadata=_check(_between(1, _DAY)))
    shutdown_timeout_seconds: float = field(default=10.0, metadata=_check(_between(1, _HOUR)))
    # A flush this soon after a run that checked the project's counts (and no failed item since)
    # trusts the ledger's account instead of asking again (3 calls). 0: ask at every flush.
    count_check_seconds: float = field(default=60.0, metadata=_check(_between(0, _HOUR)))
    # WATCHDOG=1 stops once a mirror loop has shown no progress for this long (docs/daemon.md).
    stall_seconds: float = field(
        default=STALL_SECONDS_DEFAULT,
        metadata=_check(_between(STALL_SECONDS_MIN, STALL_SECONDS_MAX)),
    )
    # host:port for Prometheus metrics (GET /metrics); null: no endpoint.
    metrics_address: str | None = field(default=None, metadata=_check(_address))


@dataclass(frozen=True)
class _ConfigFile:
    """The top level of the YAML: `mirror:` (one) or `mirrors:` (a list), not both."""

    state_dir: Path | None = None
    service: ServiceConfig = field(default_factory=ServiceConfig)
    mirror: MirrorConfig | None = None
    mirrors: tuple[MirrorConfig, ...] = ()
    daemon: DaemonConfig = field(default_factory=DaemonConfig)


@dataclass(frozen=True)
class Config:
    """The whole, validated configuration. `mirrors` always holds at least one mirror."""

    state_dir: Path
    service: ServiceConfig
    mirrors: tuple[MirrorConfig, ...]
    source: Path | None = None
    warnings: tuple[str, ...] = ()
    daemon: DaemonConfig = field(default_factory=DaemonConfig)


# --- loading ---------------------------------------------------------------------------------

_MISSING = object()
_SECRET_FIELDS = {"value"}  # never echo these values in a problem


class _Reader:
    """Converts YAML nodes to schema objects, collecting problems and each key's line."""

    def __init__(self, source: str | None, base_dir: Path) -> None:
        self.source = source
        self.base_dir = base_dir
        self.problems: list[ConfigProblem] = []
        self.lines: dict[str, int] = {}
        self.from_env: dict[str, str] = {}  # key -> the environment variable that set it
        self.positions: dict[str, list[int]] = {}  # list key -> file index of each kept item
        self._constructor = yaml.constructor.SafeConstructor()

    def problem(self, key: str, message: str, node: yaml.Node | None = None) -> None:
        if key in self.from_env:
            where = f"environment variable {self.from_env[key]}"
            self.problems.append(ConfigProblem(key, message, where))
            return
        line = node.start_mark.line + 1 if node is not None else self.lines.get(key)
        self.problems.append(ConfigProblem(key, message, self.source, line))

    def has_problems_under(self, key: str) -> bool:
        return any(p.key == key or p.key.startswith((f"{key}.", f"{key}[")) for p in self.problems)

    def section(self, cls: type, node: yaml.Node, key: str) -> Any:
        """Return a `cls` built from a mapping node; a bad optional key falls back to its default
        (its problem is recorded), a bad or missing required key makes the whole section _MISSING.
        """
        if not isinstance(node, yaml.MappingNode):
            self.problem(key, f"expected a mapping, got {_kind(node)}", node)
            return _MISSING
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        broken = False
        for key_node, value_node in node.value:
            name = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            child = f"{key}.{name}" if key else str(name)
            if name not in fields:
                known = ", ".join(fields)
                self.problem(child, f"unknown key (known keys: {known})", key_node)
                continue
            if name in values:
                self.problem(child, "key given twice", key_node)
                continue
            self.lines[child] = key_node.start_mark.line + 1
            value = self.value(hints[name], value_node, child, secret=name in _SECRET_FIELDS)
            if value is _MISSING:
                broken = broken or _required(fields[name])
                continue
            values[name] = value
        for name, f in fields.items():
            if (
                name not in values
                and _required(f)
                and f"{key}.{name}".lstrip(".") not in self.lines
            ):
                self.problem(f"{key}.{name}" if key else name, "missing (required)", node)
                broken = True
        if broken:
            return _MISSING
        for name, value in values.items():  # validate as built, while the key path is exact
            check = fields[name].metadata.get("check")
            reason = check(value) if check is not None and value is not None else None
            if reason:
                self.problem(f"{key}.{name}" if key else name, reason)
        return cls(**values)

    def value(self, hint: Any, node: yaml.Node, key: str, secret: bool = False) -> Any:
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if origin in (typing.Union, types.UnionType) and type(None) in args:
            if isinstance(node, yaml.ScalarNode) and self._scalar(node) is None:
                return None
            (hint,) = [a for a in args if a is not type(None)]
            origin, args = typing.get_origin(hint), typing.get_args(hint)
        if dataclasses.is_dataclass(hint):
            return self.section(typing.cast(type, hint), node, key)
        if origin is tuple:
            if not isinstance(node, yaml.SequenceNode):
                self.problem(key, f"expected a list, got {_kind(node)}", node)
                return _MISSING
            items = [self.value(args[0], n, f"{key}[{i}]") for i, n in enumerate(node.value)]
            self.positions[key] = [i for i, item in enumerate(items) if item is not _MISSING]
            return tuple(item for item in items if item is not _MISSING)
        if origin in (Mapping, dict):
            if not isinstance(node, yaml.MappingNode):
                self.problem(key, f"expected a mapping, got {_kind(node)}", node)
                return _MISSING
            pairs = {self._scalar(k): self._scalar(v) for k, v in node.value}
            if not all(isinstance(k, str) and isinstance(v, str) for k, v in pairs.items()):
                self.problem(key, "expected a mapping of strings to strings", node)
                return _MISSING
            return types.MappingProxyType(pairs)
        if not isinstance(node, yaml.ScalarNode):
            self.problem(key, f"expected {_expected(hint)}, got {_kind(node)}", node)
            return _MISSING
        raw = self._scalar(node)
        if hint is TrainingKey and isinstance(raw, str) and raw.strip():
            problem = key_problem(raw.strip())
            if problem:
                self.problem(key, problem, node)
                return _MISSING
        converted = _convert_scalar(hint, raw, self.base_dir)
        if converted is _MISSING:
            got = "a value" if secret else f"{raw!r}"
            self.problem(key, f"expected {_expected(hint)}, got {got}", node)
        return converted

    def _scalar(self, node: yaml.Node) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            return _MISSING
        return self._constructor.construct_object(node, deep=True)


def _required(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _convert_scalar(hint: Any, raw: Any, base_dir: Path) -> Any:
    if hint is bool:
        return raw if isinstance(raw, bool) else _MISSING
    if hint is int:
        return raw if isinstance(raw, int) and not isinstance(raw, bool) else _MISSING
    if hint is float:
        ok = isinstance(raw, int | float) and not isinstance(raw, bool)
        return float(raw) if ok else _MISSING
    if not isinstance(raw, str):
        return _MISSING
    if hint is str:
        return raw
    if hint is Path:
        return _resolve(raw, base_dir) if raw.strip() else _MISSING
    if hint is TrainingKey:
        return TrainingKey(raw.strip()) if raw.strip() else _MISSING
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(raw)
        except ValueError:
            return _MISSING
    raise TypeError(f"config schema uses an unsupported type {hint!r}")


def _resolve(raw: str, base_dir: Path) -> Path:
    """Expand `~` and make a relative path relative to the config file's folder."""
    path = Path(raw).expanduser()
    return path if path.is_absolute() else base_dir / path


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return "a single value"


def _expected(hint: Any) -> str:
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return "one of " + ", ".join(repr(m.value) for m in hint)
    names = {bool: "true or false", int: "an integer", float: "a number", Path: "a path"}
    return names.get(hint, "a string")


def _default_state_dir(environ: Mapping[str, str]) -> Path:
    base = environ.get("XDG_STATE_HOME") or str(Path("~/.local/state").expanduser())
    return Path(base) / "syncd"


def _within(path: Path, folder: Path) -> bool:
    return Path(os.path.abspath(path)).is_relative_to(os.path.abspath(folder))


def parse_config(
    text: str, *, source: Path | None = None, environ: Mapping[str, str] | None = None
) -> Config:
    """Return the Config that `text` describes; raise ConfigError listing every problem."""
    environ = os.environ if environ is None else environ
    base_dir = source.parent if source is not None else Path.cwd()
    reader = _Reader(str(source) if source else None, base_dir)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:  # PyYAML composes recursively: thousands of levels exhaust the stack
        raise ConfigError(
            [ConfigProblem("", "not valid YAML: nested too deeply", reader.source)]
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(exc, "problem", None) or "not valid YAML"
        raise ConfigError(
            [ConfigProblem("", f"not valid YAML: {reason}", reader.source, line)]
        ) from None
    if node is None:
        raise ConfigError([ConfigProblem("", "the file is empty", reader.source)])

    # defaults + parse
    parsed = reader.section(_ConfigFile, node, "")
    if parsed is _MISSING:
        raise ConfigError(reader.problems)
    # env
    state_dir = parsed.state_dir or _default_state_dir(environ)
    if environ.get(STATE_DIR_ENV):
        state_dir = _resolve(environ[STATE_DIR_ENV], Path.cwd())
    service = parsed.service
    if environ.get(ENDPOINT_ENV):
        service = dataclasses.replace(service, endpoint=environ[ENDPOINT_ENV])
        reader.from_env["service.endpoint"] = ENDPOINT_ENV
        reason = _endpoint(service.endpoint)
        if reason:
            reader.problem("service.endpoint", reason)
    # Missing, unless its section's own problem (not a mapping) says it already.
    if not service.endpoint and not any(p.key == "service" for p in reader.problems):
        reader.problem("service.endpoint", f"missing (required): {_ENDPOINT_HINT}")
    if not reader.has_problems_under("service.endpoint"):
        reason = insecure_http_problem(service.endpoint, service.allow_insecure_http)
        if reason:
            reader.problem("service.endpoint", reason)
    if service.emulator_dir is None:
        service = dataclasses.replace(service, emulator_dir=state_dir / "emulator")
    # validate all (each field was checked as it was built; now what spans fields)
    mirrors, mirrors_key = _mirrors(parsed, reader)
    mirrors = tuple(
        m
        if m.ledger is not None
        else dataclasses.replace(m, ledger=state_dir / f"{m.name}.ledger.sqlite")
        for m in mirrors
    )
    warnings: list[str] = []
    _check_mirrors(mirrors, mirrors_key, reader, warnings)
    if service.training_key.value is not None:
        if service.training_key.file is not None:
            reader.problem("service.training_key", "give `file` or `value`, not both")
        warnings.append(
            "the training key is written in the config file; prefer the environment variable "
            f"{service.training_key.env} or `service.training_key.file` (chmod 600)"
        )
    address = parsed.daemon.metrics_address
    if address and not is_loopback(parse_host_port(address)[0]):
        warnings.append(
            f"daemon.metrics_address {address} is not a loopback address: anyone who can reach it "
            "reads the metrics page (no authentication): mirror names, file, pending and action "
            "counts, API calls by operation and status, service error codes and sync times"
        )
    if reader.problems:
        raise ConfigError(reader.problems)
    return Config(
        state_dir=state_dir,
        service=service,
        mirrors=mirrors,
        source=source,
        warnings=tuple(warnings),
        daemon=parsed.daemon,
    )


def _mirrors(parsed: _ConfigFile, reader: _Reader) -> tuple[tuple[MirrorConfig, ...], str]:
    if "mirror" in reader.lines and "mirrors" in reader.lines:
        reader.problem("mirrors", "give `mirror` (one) or `mirrors` (a list), not both")
    if parsed.mirror is not None:
        return (parsed.mirror,), "mirror"
    broken = reader.has_problems_under("mirror") or reader.has_problems_under("mirrors")
    if not parsed.mirrors and not broken:
        reader.problem("mirror", "missing (required): give `mirror:` or a `mirrors:` list")
    return parsed.mirrors, "mirrors"


def _check_mirrors(
    mirrors: tuple[MirrorConfig, ...], key: str, reader: _Reader, warnings: list[str]
) -> None:
    seen: dict[str, dict[Any, int]] = {"name": {}, "project_id": {}, "ledger": {}}
    index = reader.positions.get(key, list(range(len(mirrors))))
    for i, mirror in enumerate(mirrors):
        where = key if key == "mirror" else f"{key}[{index[i]}]"
        for attr, earlier in seen.items():
            value = getattr(mirror, attr)
            norm = os.path.abspath(value) if isinstance(value, Path) else str(value).lower()
            if norm in earlier:
                first = index[earlier[norm]]
                reader.problem(f"{where}.{attr}", f"same as mirrors[{first}].{attr}")
            earlier[norm] = i
        if mirror.ledger is not None and _within(mirror.ledger, mirror.root):
            reader.problem(f"{where}.ledger", "must not be inside the root folder it mirrors")
        if mirror.trash_dir is not None and any(_within(mirror.trash_dir, m.root) for m in mirrors):
            reader.problem(
                f"{where}.trash_dir",
                "must not be inside the root folder of a mirror (its files would be uploaded "
                "again)",
            )
        for j, other in enumerate(mirrors[:i]):
            if _within(mirror.root, other.root) or _within(other.root, mirror.root):
                reader.problem(f"{where}.root", f"overlaps mirrors[{index[j]}].root")
        _check_annotations(mirror, where, reader, warnings)


def _check_annotations(
    mirror: MirrorConfig, where: str, reader: _Reader, warnings: list[str]
) -> None:
    """coco_file is required with `format: coco` and refused otherwise; the folder-tag keys that
    a detection mirror ignores get a warning when the file sets them."""
    annotations = mirror.annotations
    key = f"{where}.annotations"
    if annotations.format is AnnotationFormat.COCO and annotations.coco_file is None:
        reader.problem(
            f"{key}.coco_file", "missing (required with format: coco): the COCO JSON file's path"
        )
    if annotations.format is not AnnotationFormat.COCO and annotations.coco_file is not None:
        reader.problem(
            f"{key}.coco_file",
            f"only used with format: coco (format is {annotations.format.value}): remove it",
        )
    if not annotations.detection:
        return
    for name in _CLASSIFICATION_ONLY_TAG_KEYS:
        line = reader.lines.get(f"{where}.tags.{name}")
        if line is None:
            continue
        place = f"{reader.source or 'config'}:{line}"
        warnings.append(
            f"{place}: {where}.tags.{name} is ignored in a detection mirror "
            f"(annotations.format: {annotations.format.value}): folders carry no tags there, "
            "the boxes' class names are the tags"
        )


def load_config(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Config:
    """Return the Config in the YAML file at `path`; raise ConfigError listing every problem."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(
            [ConfigProblem("", f"cannot read the config file: {reason}", str(source))]
        ) from None
    return parse_config(text, source=source.absolute(), environ=environ)


def check_value(key: str, value: str, *, allow_insecure_http: bool = False) -> str | None:
    """Return why `value` is not valid for `key` (e.g. "mirror.project_id"), or None; for flags
    that stand in for a config key (an endpoint also gets the plain-http check)."""
    if key == "service.endpoint":
        return _endpoint(value) or insecure_http_problem(value, allow_insecure_http)
    checks = {"mirror.project_id": _uuid}
    return checks[key](value)


def schema_keys() -> list[str]:
    """Return every key path of the schema (`mirror.tags.mode`; `mirrors` entries as `mirror`)."""

    def walk(cls: type, prefix: str) -> list[str]:
        keys = []
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            path = f"{prefix}{f.name}"
            keys.append(path)
            hint = hints[f.name]
            inner = [a for a in typing.get_args(hint) if dataclasses.is_dataclass(a)]
            if dataclasses.is_dataclass(hint):
                keys += walk(typing.cast(type, hint), f"{path}.")
            elif inner and (f.name == "mirror" or type(None) in typing.get_args(hint)):
                keys += walk(typing.cast(type, inner[0]), f"{path}.")
        return keys

    return walk(_ConfigFile, "")
