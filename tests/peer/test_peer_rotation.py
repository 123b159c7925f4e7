"""``agile peer`` for real: two daemons on loopback rotate keys every 0.5 s.

Checks that both hosts install the same keys in the same order (over at least three
intervals), that a reader polling the key files meanwhile never sees a half-written file,
that the previous key is kept beside the current one for the grace period, and that when the
peer goes away the current key is kept until its lifetime ends and then withdrawn (fail
closed).
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
from pathlib import Path
from typing import Any

from tests.peer.conftest import Identities, Processes, Running, file_mode, poll_until

INTERVAL = "0.5"
GRACE = "0.3"
LIFETIME_S = 3
SHORT_POLICY = f"""
extends = "pqc-only-latest"
name = "short-lived"
version = "1"

[session]
lifetime_s = {LIFETIME_S}
rekey_interval_s = 1
"""


class Watcher(threading.Thread):
    """Reads a key file (and its ``.previous``) in a tight loop, recording what it saw."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.previous = path.with_name(path.name + ".previous")
        self.seen: list[tuple[float, bytes | None]] = []
        self.previous_seen: list[bytes] = []
        self.bad: list[bytes] = []
        self.reads = 0
        self.done = threading.Event()

    @staticmethod
    def _valid(content: bytes) -> bool:
        # A WireGuard PresharedKey file: 32 bytes in base64 and a newline, nothing else.
        try:
            return len(content) == 45 and len(base64.b64decode(content[:-1], validate=True)) == 32
        except binascii.Error:
            return False

    def _read(self, path: Path) -> bytes | None:
        try:
            content = path.read_bytes()
        except FileNotFoundError:
            return None
        self.reads += 1
        if not self._valid(content):
            self.bad.append(content)
        return content

    def run(self) -> None:
        while not self.done.is_set():
            content = self._read(self.path)
            if not self.seen or self.seen[-1][1] != content:
                self.seen.append((time.monotonic(), content))
            previous = self._read(self.previous)
            if previous is not None and (
                not self.previous_seen or self.previous_seen[-1] != previous
            ):
                self.previous_seen.append(previous)

    def current_keys(self) -> list[bytes]:
        return [content for _, content in self.seen if content is not None]


def _rotated(process: Running) -> list[dict[str, Any]]:
    return [e for e in process.json_lines() if e["event"] == "rotated"]


def _key_ids(process: Running, target: str) -> list[str]:
    return [k["key_id"] for e in _rotated(process) for k in e["keys"] if k["target"] == target]


def test_two_daemons_rotate_agree_and_fail_closed(
    processes: Processes, identities: Identities, tmp_path: Path
) -> None:
    (tmp_path / "short.toml").write_text(SHORT_POLICY, encoding="utf-8")
    common = ["--policy", "short.toml", "--interval", INTERVAL, "--grace", GRACE, "--json"]
    watchers = {side: Watcher(tmp_path / f"{side}.psk") for side in ("a", "b")}
    for watcher in watchers.values():
        watcher.start()

    listener = processes.agile(
        "peer",
        *common,
        *identities.args_b(),
        "--listen",
        "127.0.0.1:0",
        "--sink",
        "wireguard:b.psk:wg0",
        "--sink",
        "openssl:b.hex:site-a",
    )
    address = listener.wait_for_line(r'"address": "(127\.0\.0\.1:\d+)"').group(1)
    connector = processes.agile(
        "peer",
        *common,
        *identities.args_a(),
        "--connect",
        address,
        "--sink",
        "wireguard:a.psk:wg0",
        "--sink",
        "openssl:a.hex:site-a",
    )

    # At least three intervals: four rotations on both hosts.
    poll_until(lambda: len(_rotated(listener)) >= 4 and len(_rotated(connector)) >= 4)
    assert file_mode(tmp_path / "a.psk") == 0o600
    assert file_mode(tmp_path / "b.hex") == 0o600

    # The peer goes away; the connecting host keeps its current key, then fails closed.
    # Taken before the stop, which takes a while on a busy machine: the last handshake was at
    # most one interval before this moment, whatever the stop then costs.
    stopped_at = time.monotonic()
    listener.stop()
    last_rotation = _rotated(listener)[-1]["rotation"]
    connector.wait_for_line(r'"event": "handshake_failed"')
    kept = (tmp_path / "a.psk").read_bytes()
    assert (tmp_path / "a.hex").exists()
    connector.wait_for_line(r'"event": "fail_closed"', timeout=LIFETIME_S + 10)
    closed_at = time.monotonic()
    assert not (tmp_path / "a.psk").exists()
    assert not (tmp_path / "a.hex").exists()
    assert not (tmp_path / "a.psk.previous").exists()
    connector.stop()
    for watcher in watchers.values():
        watcher.done.set()
        watcher.join(timeout=5)

    # Both hosts installed the same keys, in the same order, for every sink.
    for target in ("wireguard", "openssl"):
        theirs = _key_ids(listener, target)
        ours = _key_ids(connector, target)
        assert len(theirs) == last_rotation >= 4
        assert ours[: len(theirs)] == theirs
        assert len(set(theirs)) == len(theirs), "every rotation brings a new key"
    a_keys, b_keys = watchers["a"].current_keys(), watchers["b"].current_keys()
    assert a_keys[: len(b_keys)] == b_keys
    assert len(b_keys) >= 4
    assert kept == a_keys[-1]

    # Never a half-written file, though both were read thousands of times meanwhile.
    for watcher in watchers.values():
        assert watcher.bad == []
        assert watcher.reads > 100
        # The previous key sat beside the current one during the grace period.
        assert watcher.previous_seen
        assert all(previous in watcher.current_keys() for previous in watcher.previous_seen)

    # The key outlived the peer until the end of its lifetime (3 s from the last handshake).
    assert closed_at - stopped_at >= LIFETIME_S - float(INTERVAL) - 0.5
    assert watchers["a"].seen[-1][1] is None
    assert any("agile: warning: fail closed" in line for line in connector.stderr)
    events = [e["event"] for e in connector.json_lines()]
    assert events.index("fail_closed") > events.index("handshake_failed")
