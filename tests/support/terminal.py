"""Run a command on a pseudo-terminal and read back what a person at that terminal saw.

Public names: Screen, run_on_terminal, run_into_gone_reader, COLUMNS.

`run_on_terminal` starts the command with stdout and stderr on the slave side of a pty (so
`isatty()` is true, as in an interactive shell), reads everything it writes, and replays it on a
small terminal model: `Screen.rows` are the lines left on the screen and in its scrollback at the
end, and `Screen.drawn` every state a line was in before it was rewritten or erased (a live line
that came and went is there, though the final screen no longer shows it). The model knows what
terminals do with carriage return, newline, cursor up/down/column and the erase-line sequences;
colours and cursor visibility are ignored.

`run_into_gone_reader` is the other end of a user's pipeline: the command writes into a pipe whose
reader has already gone, as `head -1` has once it printed its line (`syncd status | head -1`).
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

COLUMNS = 160  # wide enough that no line the tests look for wraps
ROWS = 50

_CSI = re.compile(r"\x1b\[([?0-9;]*)([A-Za-z])")
_OTHER_ESCAPE = re.compile(r"\x1b[()][A-Za-z0-9]|\x1b\][^\x07]*\x07|\x1b[=>78]")


@dataclass
class Screen:
    """What the terminal showed: final rows (scrollback included), and every line state drawn."""

    rows: list[str] = field(default_factory=list)
    drawn: list[str] = field(default_factory=list)
    raw: str = ""
    exit_code: int | None = None

    @property
    def text(self) -> str:
        return "\n".join(self.rows)

    def __str__(self) -> str:  # shown by pytest when an assertion fails
        return f"exit {self.exit_code}\nscreen:\n{self.text}\nraw:\n{self.raw!r}"


class _Terminal:
    def __init__(self) -> None:
        self.rows: list[list[str]] = [[]]
        self.row = 0
        self.col = 0
        self.drawn: list[str] = []

    def _line(self) -> list[str]:
        while len(self.rows) <= self.row:
            self.rows.append([])
        return self.rows[self.row]

    def _remember(self) -> None:
        text = "".join(self._line()).rstrip()
        if text and (not self.drawn or self.drawn[-1] != text):
            self.drawn.append(text)

    def _put(self, char: str) -> None:
        line = self._line()
        if self.col >= COLUMNS:  # autowrap
            self._remember()
            self.row += 1
            self.col = 0
            line = self._line()
        while len(line) < self.col:
            line.append(" ")
        if self.col < len(line):
            line[self.col] = char
        else:
            line.append(char)
        self.col += 1

    def _csi(self, params: str, final: str) -> None:
        numbers = [int(p) for p in params.lstrip("?").split(";") if p.isdigit()]
        n = numbers[0] if numbers else 0
        if final == "K":
            self._remember()
            line = self._line()
            if n == 0:
                del line[self.col :]
            elif n == 1:
                line[: self.col] = [" "] * min(self.col, len(line))
            else:
                line.clear()
        elif final == "A":
            self._remember()
            self.row = max(0, self.row - max(n, 1))
        elif final == "B":
            self._remember()
            self.row += max(n, 1)
        elif final == "C":
            self.col += max(n, 1)
        elif final == "D":
            self.col = max(0, self.col - max(n, 1))
        elif final == "G":
            self.col = max(n, 1) - 1
        # m (colour), h/l (modes, cursor visibility), J and the rest: nothing a test reads

    def feed(self, text: str) -> None:
        text = _OTHER_ESCAPE.sub("", text)
        i = 0
        while i < len(text):
            char = text[i]
            if char == "\x1b":
                match = _CSI.match(text, i)
                if match:
                    self._csi(match.group(1), match.group(2))
                    i = match.end()
                    continue
            elif char == "\r":
                self._remember()
                self.col = 0
            elif char == "\n":
                self._remember()
                self.row += 1
                self.col = 0  # the pty's onlcr turns \n into \r\n
            elif char == "\b":
                self.col = max(0, self.col - 1)
            elif char >= " ":
                self._put(char)
            i += 1

    def screen(self) -> Screen:
        self._remember()
        rows = ["".join(r).rstrip() for r in self.rows]
        while rows and not rows[-1]:
            rows.pop()
        return Screen(rows, self.drawn)


def run_on_terminal(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    timeout: float = 120.0,
) -> Screen:
    """Run `argv` with stdin, stdout and stderr on a fresh pty (COLUMNS x ROWS, TERM=xterm);
    return what it showed. Fails (TimeoutError) if it has not ended within `timeout` s."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    environment = {**os.environ, "TERM": "xterm", **(env or {})}
    for name in ("COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE"):
        if name not in (env or {}):
            environment.pop(name, None)
    proc = subprocess.Popen(
        list(argv),
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=environment,
        cwd=cwd,
        start_new_session=True,
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{argv} still running after {timeout:g} s")
            ready, _, _ = select.select([master], [], [], min(left, 1.0))
            if not ready:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every slave end is closed, the child is gone
                break
            if not data:
                break
            chunks.append(data)
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    raw = b"".join(chunks).decode("utf-8", errors="replace")
    terminal = _Terminal()
    terminal.feed(raw)
    screen = terminal.screen()
    screen.raw = raw
    screen.exit_code = code
    return screen


def run_into_gone_reader(
    argv: Sequence[str], *, stderr_too: bool = False, cwd: str | None = None, timeout: float = 120.0
) -> tuple[int, str]:
    """Run `argv` with stdout (and with `stderr_too`, stderr) into a real pipe whose reading end
    is already closed: every write to it fails with EPIPE. Return the exit code and whatever
    went to stderr (empty with `stderr_too`)."""
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the command writes a byte
    try:
        proc = subprocess.run(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=write,
            stderr=write if stderr_too else subprocess.PIPE,
            cwd=cwd,
            timeout=timeout,
        )
    finally:
        os.close(write)
    return proc.returncode, (proc.stderr or b"").decode("utf-8", errors="replace")
