"""Shared fixtures: signing identities for two hosts, and agile/openssl processes on loopback.

Every process is started through :class:`Processes`, which reads its output in background
threads (so a pipe never fills up) and kills whatever is still running at teardown.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest

from agile import load_policy
from agile.peer import write_identity

POLICY = "pqc-only-latest"
AGILE = [sys.executable, "-m", "agile.cli"]
TIMEOUT_S = 20.0


@dataclass(frozen=True)
class Identities:
    """Identity and trust files of host A (connects) and host B (listens)."""

    a_identity: Path
    a_trust: Path
    b_identity: Path
    b_trust: Path

    def args_a(self) -> list[str]:
        return ["--identity", str(self.a_identity), "--trust", str(self.b_trust)]

    def args_b(self) -> list[str]:
        return ["--identity", str(self.b_identity), "--trust", str(self.a_trust)]


@pytest.fixture(scope="session")
def identities(tmp_path_factory: pytest.TempPathFactory) -> Identities:
    directory = tmp_path_factory.mktemp("identities")
    policy = load_policy(POLICY)
    a_identity, a_trust = write_identity(policy, directory / "a")
    b_identity, b_trust = write_identity(policy, directory / "b")
    return Identities(a_identity, a_trust, b_identity, b_trust)


class Running:
    """A process whose stdout and stderr lines are collected as they come."""

    def __init__(self, argv: list[str], cwd: Path, stdin: bool = False) -> None:
        self.argv = argv
        self.proc = subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._changed = threading.Condition()
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.stdout), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: IO[str] | None, lines: list[str]) -> None:
        assert stream is not None
        for line in stream:
            with self._changed:
                lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for_line(
        self, pattern: str, *, stream: str = "stdout", timeout: float = TIMEOUT_S
    ) -> re.Match[str]:
        """The first line matching ``pattern`` (a regex), waiting up to ``timeout``."""
        lines = self.stdout if stream == "stdout" else self.stderr
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        with self._changed:
            while True:
                for line in lines:
                    match = regex.search(line)
                    if match:
                        return match
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None and not self._alive()):
                    raise AssertionError(
                        f"no line matching {pattern!r} from {self.argv[:4]}...; "
                        f"stdout={''.join(self.stdout)[-2000:]!r} "
                        f"stderr={''.join(self.stderr)[-2000:]!r}"
                    )
                self._changed.wait(min(remaining, 0.2))

    def _alive(self) -> bool:
        return any(reader.is_alive() for reader in self._readers)

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text)
        self.proc.stdin.flush()

    def wait(self, timeout: float = TIMEOUT_S) -> int:
        code = self.proc.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=5)
        return code

    def json_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout if line.startswith("{")]

    def json_document(self) -> dict[str, Any]:
        document = json.loads("".join(self.stdout))
        assert isinstance(document, dict)
        return document

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        # The readers reach end of file once the process is gone: let them finish, so that
        # every line is collected and no stream is closed under a reader.
        for reader in self._readers:
            reader.join(timeout=5)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


class Processes:
    """Starts processes in ``cwd``; whatever still runs at teardown is stopped."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.running: list[Running] = []

    def start(self, argv: list[str], *, stdin: bool = False) -> Running:
        process = Running(argv, self.cwd, stdin=stdin)
        self.running.append(process)
        return process

    def agile(self, *args: str) -> Running:
        return self.start([*AGILE, *args])

    def close(self) -> None:
        for process in self.running:
            process.stop()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    group = Processes(tmp_path)
    try:
        yield group
    finally:
        group.close()


def export_pair(
    processes: Processes,
    identities: Identities,
    sinks_a: list[str],
    sinks_b: list[str],
    *extra: str,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run `agile keys export` on both hosts (B listens, A connects); their JSON reports."""
    listen = processes.agile(
        "keys",
        "export",
        "--policy",
        POLICY,
        *identities.args_b(),
        "--listen",
        "127.0.0.1:0",
        *[arg for sink in sinks_b for arg in ("--sink", sink)],
        "--json",
        *extra,
    )
    address = listen.wait_for_line(r"listening on (127\.0\.0\.1:\d+)", stream="stderr").group(1)
    connect = processes.agile(
        "keys",
        "export",
        "--policy",
        POLICY,
        *identities.args_a(),
        "--connect",
        address,
        *[arg for sink in sinks_a for arg in ("--sink", sink)],
        "--json",
        *extra,
    )
    assert connect.wait() == 0, "".join(connect.stderr)
    assert listen.wait() == 0, "".join(listen.stderr)
    return connect.json_document(), listen.json_document()


def poll_until(condition: Callable[[], bool], timeout: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def file_mode(path: Path) -> int:
    return os.stat(path).st_mode & 0o777
