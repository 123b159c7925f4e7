"""The key ring and sinks without a network: formats, rotation, grace, fail closed, commands."""

from __future__ import annotations

import base64
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from agile.export import derive_target_key, import_psk
from agile.peer import (
    Event,
    KeyRing,
    PeerError,
    PeerLink,
    build_engine,
    export_key_id,
    parse_address,
    parse_sink,
    read_identity,
    read_trust,
    write_identity,
)
from agile.policy.loader import load_policy, policy_from_dict
from agile.secret import SecretBytes
from agile.session import HybridSession
from tests.peer.conftest import Identities, file_mode


def _session(lifetime_s: float | None = 3600.0) -> HybridSession:
    return HybridSession.create(
        SecretBytes(os.urandom(32)),
        suite=("ML-KEM-768", "DHKEM(X25519, HKDF-SHA256)"),
        hash_name="SHA-256",
        aead="AES-256-GCM",
        transcript_hash=os.urandom(32),
        lifetime_s=lifetime_s,
    )


class Commands:
    """Records install commands and what the key file held when each ran."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[list[str], bytes]] = []
        self.fail = fail

    def __call__(self, argv: Sequence[str]) -> str | None:
        key_file = Path(argv[-1])
        self.calls.append((list(argv), key_file.read_bytes()))
        return "wg exited with status 1" if self.fail else None


# -- sinks ------------------------------------------------------------------------------------


def test_parse_sink_forms() -> None:
    sink = parse_sink("wireguard:/run/agile/wg0.psk:wg0-b")
    assert (sink.target, sink.path, sink.identity) == (
        "wireguard",
        Path("/run/agile/wg0.psk"),
        "wg0-b",
    )
    assert parse_sink("openssl:psk.hex").identity == "agile"
    assert parse_sink("stunnel:c:/keys/psk.txt:site-a").path == Path("c:/keys/psk.txt")
    with_command = parse_sink(
        "wireguard:k.psk:wg0", "wg set wg0 peer 'A B=' preshared-key {key_file}"
    )
    assert with_command.command == (
        "wg",
        "set",
        "wg0",
        "peer",
        "A B=",
        "preshared-key",
        "{key_file}",
    )
    assert with_command.argv(Path("k.psk"), "0011")[-1] == "k.psk"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("ssh:/tmp/k", "unknown target 'ssh'"),
        ("openssl", "TARGET:PATH[:IDENTITY]"),
        ("openssl:", "TARGET:PATH[:IDENTITY]"),
        ("openssl::site", "PATH is empty"),
        ("stunnel:psk.txt:bad identity", "identity 'bad identity'"),
    ],
)
def test_bad_sinks_are_refused_before_any_handshake(spec: str, message: str) -> None:
    with pytest.raises(PeerError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_sink(spec)


def test_each_target_is_written_in_its_format(tmp_path: Path) -> None:
    session = _session()
    sinks = [
        parse_sink(f"{target}:{tmp_path / target}:site-a")
        for target in ("openssl", "stunnel", "wireguard", "strongswan")
    ]
    KeyRing(sinks, grace_s=1).install(session)
    text = {sink.target: sink.path.read_text(encoding="ascii") for sink in sinks}
    tls_key = derive_target_key(session, "openssl", "site-a").reveal()
    assert text["openssl"] == tls_key.hex() + "\n"
    assert text["stunnel"] == f"site-a:{tls_key.hex()}\n"
    wg_key = derive_target_key(session, "wireguard", "site-a").reveal()
    assert base64.b64decode(text["wireguard"]) == wg_key
    ppk = derive_target_key(session, "strongswan", "site-a").reveal()
    assert f"secret = 0x{ppk.hex()}" in text["strongswan"]
    assert "id = site-a" in text["strongswan"]
    assert len({tls_key, wg_key, ppk}) == 3, "each target gets its own key"
    for sink in sinks:
        assert file_mode(sink.path) == 0o600


def test_the_tls_key_is_the_rfc9258_imported_psk_of_the_session_exporter(tmp_path: Path) -> None:
    from agile.export import ImportedIdentity

    session = _session()
    KeyRing([parse_sink(f"openssl:{tmp_path / 'k'}:site-a")], grace_s=0).install(session)
    identity = ImportedIdentity(external_identity=b"site-a")
    expected = import_psk(session.export("external psk tls13", identity.encode(), 32), identity)
    assert (tmp_path / "k").read_text(encoding="ascii").strip() == expected.reveal().hex()


# -- rotation, grace, fail closed ------------------------------------------------------------


def test_rotation_keeps_the_previous_key_for_the_grace_period(tmp_path: Path) -> None:
    sink = parse_sink(f"wireguard:{tmp_path / 'wg.psk'}:wg0")
    ring = KeyRing([sink], grace_s=0.2)
    first = ring.install(_session())
    assert not sink.previous_path.exists()
    old = sink.path.read_bytes()
    second = ring.install(_session())
    assert first["keys"][0]["key_id"] != second["keys"][0]["key_id"]
    assert sink.previous_path.read_bytes() == old
    assert file_mode(sink.previous_path) == 0o600
    assert sink.path.read_bytes() != old
    assert ring.tick() == []
    time.sleep(0.25)
    assert [e["event"] for e in ring.tick()] == ["previous_removed"]
    assert not sink.previous_path.exists()
    assert sink.path.exists()


def test_without_grace_no_previous_key_is_kept(tmp_path: Path) -> None:
    sink = parse_sink(f"openssl:{tmp_path / 'k.hex'}")
    ring = KeyRing([sink], grace_s=0)
    ring.install(_session())
    ring.install(_session())
    assert not sink.previous_path.exists()


def test_the_key_is_kept_until_its_lifetime_then_withdrawn(tmp_path: Path) -> None:
    sink = parse_sink(f"stunnel:{tmp_path / 'psk.txt'}:site-a")
    ring = KeyRing([sink], grace_s=5)
    ring.install(_session(lifetime_s=0.3))
    ring.install(_session(lifetime_s=0.3))
    assert ring.tick("peer unreachable") == []
    assert sink.path.exists()
    time.sleep(0.35)
    events = ring.tick("peer unreachable")
    assert [e["event"] for e in events] == ["fail_closed"]
    assert events[0]["reason"] == "peer unreachable"
    assert not sink.path.exists()
    assert not sink.previous_path.exists()
    assert ring.closed
    assert ring.tick() == []
    ring.install(_session())  # the next handshake installs a key again
    assert sink.path.exists()
    assert not ring.closed


def test_commands_run_after_the_file_is_written_and_fail_closed_installs_a_dead_key(
    tmp_path: Path,
) -> None:
    commands = Commands()
    sink = parse_sink(
        f"wireguard:{tmp_path / 'wg.psk'}:wg0", "wg set wg0 peer PUB preshared-key {key_file}"
    )
    ring = KeyRing([sink], grace_s=0, run_command=commands)
    session = _session(lifetime_s=0.1)
    event = ring.install(session)
    argv, content = commands.calls[0]
    assert argv == ["wg", "set", "wg0", "peer", "PUB", "preshared-key", str(sink.path)]
    installed = derive_target_key(session, "wireguard", "wg0").reveal()
    assert base64.b64decode(content) == installed
    assert event["keys"][0]["key_id"] == export_key_id(SecretBytes(installed))
    time.sleep(0.15)
    ring.tick()
    assert len(commands.calls) == 2
    dead = base64.b64decode(commands.calls[1][1])
    assert len(dead) == 32
    assert dead != installed
    assert not sink.path.exists()


def test_a_failing_command_is_reported(tmp_path: Path) -> None:
    sink = parse_sink(f"wireguard:{tmp_path / 'wg.psk'}:wg0", "wg set wg0 {key_file}")
    event = KeyRing([sink], grace_s=0, run_command=Commands(fail=True)).install(_session())
    assert event["command_errors"] == [{**sink.describe(), "reason": "wg exited with status 1"}]


def test_a_real_command_runs_without_a_shell(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    sink = parse_sink(f"openssl:{tmp_path / 'k.hex'}:x", f"cp {{key_file}} {marker}")
    event = KeyRing([sink], grace_s=0).install(_session())
    assert "command_errors" not in event
    assert marker.read_bytes() == sink.path.read_bytes()
    missing = parse_sink(f"openssl:{tmp_path / 'j.hex'}:x", "no-such-command-here {key_file}")
    event = KeyRing([missing], grace_s=0).install(_session())
    assert "cannot run no-such-command-here" in event["command_errors"][0]["reason"]


def test_a_key_ring_needs_distinct_sinks(tmp_path: Path) -> None:
    with pytest.raises(PeerError, match="no --sink"):
        KeyRing([], grace_s=0)
    same = [parse_sink(f"openssl:{tmp_path / 'k'}:a"), parse_sink(f"stunnel:{tmp_path / 'k'}:b")]
    with pytest.raises(PeerError, match="same file"):
        KeyRing(same, grace_s=0)
    with pytest.raises(PeerError, match="--grace"):
        KeyRing(same[:1], grace_s=-1)


def test_events_carry_key_ids_never_keys(tmp_path: Path) -> None:
    session = _session()
    sink = parse_sink(f"openssl:{tmp_path / 'k.hex'}:site-a")
    event = KeyRing([sink], grace_s=0).install(session)
    key_hex = sink.path.read_text(encoding="ascii").strip()
    assert key_hex not in repr(event)
    assert session.key.reveal().hex() not in repr(event)
    assert key_hex not in repr(sink)


# -- identities, engines, the link -----------------------------------------------------------


def test_identity_files_round_trip(identities: Identities) -> None:
    assert file_mode(identities.a_identity) == 0o600
    secret = read_identity(identities.a_identity)
    public = read_trust(identities.a_trust)
    assert set(secret) == set(public) == {"ML-DSA-65"}
    assert secret["ML-DSA-65"].reveal().hex() not in identities.a_trust.read_text()


def test_identity_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[signing_keys]\nEd25519 = 'zz'\n")
    with pytest.raises(PeerError, match="not hexadecimal"):
        read_identity(bad)
    with pytest.raises(PeerError, match=r"no \[peer_public_keys\] table"):
        read_trust(bad)
    with pytest.raises(PeerError, match="cannot read"):
        read_identity(tmp_path / "missing.toml")


def test_build_engine_says_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(PeerError, match="--identity FILE"):
        build_engine(load_policy("pqc-only-latest"))
    with pytest.raises(PeerError, match="etsi014"):
        build_engine(load_policy("qkd-required-latest"), identity=tmp_path / "x")
    psk_policy = policy_from_dict(
        {
            **load_policy("pqc-only-latest").model_dump(mode="json"),
            "name": "psk",
            "auth": {"method": "psk", "psk_id": "t"},
        }
    )
    with pytest.raises(PeerError, match="--psk-file"):
        build_engine(psk_policy)
    with pytest.raises(PeerError, match="does not authenticate with signatures"):
        write_identity(psk_policy, tmp_path / "p")


def test_identity_and_trust_must_cover_the_policy(identities: Identities, tmp_path: Path) -> None:
    hybrid = load_policy("hybrid-default-latest")  # ML-DSA-65 and Ed25519
    with pytest.raises(PeerError, match="no Ed25519 signing key"):
        build_engine(hybrid, identity=identities.a_identity, trust=identities.b_trust)
    mine, _ = write_identity(hybrid, tmp_path / "mine")
    with pytest.raises(PeerError, match="no Ed25519 public key"):
        build_engine(hybrid, identity=mine, trust=identities.b_trust)
    with pytest.raises(PeerError, match="--trust FILE"):
        build_engine(hybrid, identity=mine)


def test_a_simulated_qkd_link_cannot_span_two_hosts_so_an_optional_policy_falls_back(
    tmp_path: Path,
) -> None:
    hybrid = load_policy("hybrid-default-latest")
    mine, _ = write_identity(hybrid, tmp_path / "mine")
    _, theirs = write_identity(hybrid, tmp_path / "theirs")
    engine, note = build_engine(hybrid, identity=mine, trust=theirs)
    engine.close()
    assert "falls back without QKD" in note
    engine, note = build_engine(hybrid, identity=mine, trust=theirs, no_qkd=True)
    engine.close()
    assert "--no-qkd" in note


def test_parse_address() -> None:
    assert parse_address("127.0.0.1:7443", "--listen") == ("127.0.0.1", 7443)
    assert parse_address("[::1]:0", "--listen") == ("::1", 0)
    for bad in ("7443", "host:", "host:port", "h:70000"):
        with pytest.raises(PeerError, match="HOST:PORT"):
            parse_address(bad, "--connect")


def test_two_links_on_loopback_install_the_same_keys(
    identities: Identities, tmp_path: Path
) -> None:
    policy = load_policy("pqc-only-latest")
    engine_b, _ = build_engine(policy, identity=identities.b_identity, trust=identities.a_trust)
    engine_a, _ = build_engine(policy, identity=identities.a_identity, trust=identities.b_trust)
    listener = PeerLink(engine_b, listen=("127.0.0.1", 0), timeout_s=10)
    connector = PeerLink(
        engine_a, connect=parse_address(listener.address, "--connect"), timeout_s=10
    )
    rings = {
        side: KeyRing(
            [
                parse_sink(f"{t}:{tmp_path / f'{side}-{t}'}:peer-1")
                for t in ("stunnel", "strongswan")
            ],
            grace_s=0,
        )
        for side in ("a", "b")
    }
    events: dict[str, Event] = {}

    def serve() -> None:
        events["b"] = rings["b"].install(listener.handshake(wait_s=10))

    thread = threading.Thread(target=serve)
    thread.start()
    events["a"] = rings["a"].install(connector.handshake(wait_s=10))
    thread.join(timeout=15)
    listener.close()
    assert [k["key_id"] for k in events["a"]["keys"]] == [k["key_id"] for k in events["b"]["keys"]]
    assert events["a"]["session_key_id"] == events["b"]["session_key_id"]
    for target in ("stunnel", "strongswan"):
        assert (tmp_path / f"a-{target}").read_bytes() == (tmp_path / f"b-{target}").read_bytes()
    with pytest.raises(PeerError, match="exactly one"):
        PeerLink(engine_a)


def test_key_files_of_an_earlier_run_expire_by_their_age(tmp_path: Path) -> None:
    sink = parse_sink(f"openssl:{tmp_path / 'k.hex'}:site-a")
    KeyRing([sink], grace_s=1).install(_session())
    sink.previous_path.write_text("stale\n")
    written = sink.path.stat().st_mtime
    os.utime(sink.path, (written - 100, written - 100))
    ring = KeyRing([sink], grace_s=1)
    event = ring.adopt_existing(lifetime_s=100.2)
    assert event is not None
    assert event["paths"] == [str(sink.path)]
    assert 0 < event["expires_in_s"] <= 0.2
    assert not sink.previous_path.exists()
    assert ring.tick() == []
    assert sink.path.exists()
    time.sleep(0.25)
    assert [e["event"] for e in ring.tick("peer unreachable")] == ["fail_closed"]
    assert not sink.path.exists()
    # A fresh key file is adopted with the whole lifetime ahead, and replaced by a rotation.
    ring.install(_session())
    assert KeyRing([sink], grace_s=1).adopt_existing(lifetime_s=60.0) is not None
    assert (
        KeyRing([parse_sink(f"openssl:{tmp_path / 'none'}")], grace_s=0).adopt_existing(
            lifetime_s=60.0
        )
        is None
    )
