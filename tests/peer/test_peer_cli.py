"""``agile keys`` and ``agile peer`` as a person uses them: output, exit codes, one-line errors."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from agile.cli import main
from tests.peer.conftest import POLICY, Identities, Processes, export_pair, file_mode


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("agile: error: ")
    return err


def test_keys_identity_writes_a_secret_file_and_a_trust_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["keys", "identity", "--policy", POLICY, "--out", str(tmp_path / "h"), "--json"]) == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["algorithms"] == ["ML-DSA-65"]
    assert file_mode(Path(report["identity"])) == 0o600
    assert "[peer_public_keys]" in Path(report["trust"]).read_text()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--sink", "ssh:/tmp/x"], "unknown target 'ssh'"),
        (["--sink", "openssl:k.hex:has space"], "identity 'has space'"),
        (["--sink", "openssl:k.hex", "--timeout", "0"], "--timeout 0"),
    ],
)
def test_keys_export_usage_errors(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["keys", "export", "--policy", POLICY, "--connect", "127.0.0.1:9", *argv])
    assert code == 2
    assert message in _one_line_error(capsys)


def test_a_sink_command_must_follow_a_sink(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "keys",
                "export",
                "--policy",
                POLICY,
                "--connect",
                "127.0.0.1:9",
                "--sink-command",
                "true",
                "--sink",
                "openssl:k",
            ]
        )
    assert exc.value.code == 2
    assert "--sink-command must follow the --sink" in capsys.readouterr().err


def test_missing_identity_is_one_line_naming_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "keys",
            "export",
            "--policy",
            POLICY,
            "--connect",
            "127.0.0.1:9",
            "--sink",
            f"openssl:{tmp_path / 'k'}",
        ]
    )
    assert code == 1
    assert "pass --identity FILE" in _one_line_error(capsys)


def test_nobody_connecting_is_reported_after_the_timeout(
    identities: Identities, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "keys",
            "export",
            "--policy",
            POLICY,
            *identities.args_b(),
            "--listen",
            "127.0.0.1:0",
            "--timeout",
            "0.3",
            "--sink",
            f"openssl:{tmp_path / 'k'}",
        ]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "agile: listening on 127.0.0.1:" in err
    assert "no peer connected within 0.3 s" in err
    assert not (tmp_path / "k").exists()


def test_peer_interval_must_be_shorter_than_the_key_lifetime(
    identities: Identities, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "peer",
            "--policy",
            POLICY,
            *identities.args_b(),
            "--listen",
            "127.0.0.1:0",
            "--interval",
            "86400",
            "--sink",
            f"openssl:{tmp_path / 'k'}",
        ]
    )
    assert code == 2
    assert "session.lifetime_s (86400 s)" in _one_line_error(capsys)


def test_keys_export_writes_every_target_identically_on_both_hosts(
    processes: Processes, identities: Identities, tmp_path: Path
) -> None:
    targets = ("openssl", "stunnel", "wireguard", "strongswan")
    client, server = export_pair(
        processes,
        identities,
        [f"{t}:a-{t}:site-a" for t in targets],
        [f"{t}:b-{t}:site-a" for t in targets],
    )
    assert client["role"] == "initiator"
    assert server["role"] == "responder"
    assert client["suite"] == server["suite"]
    assert client["qkd_used"] is False
    assert [k["key_id"] for k in client["keys"]] == [k["key_id"] for k in server["keys"]]
    for target in targets:
        ours, theirs = tmp_path / f"a-{target}", tmp_path / f"b-{target}"
        assert ours.read_bytes() == theirs.read_bytes()
        assert file_mode(ours) == 0o600
    # The reports name key ids, never keys.
    printed = "".join(line for p in processes.running for line in (*p.stdout, *p.stderr))
    secrets = [
        (tmp_path / "a-openssl").read_text().strip(),
        base64.b64decode((tmp_path / "a-wireguard").read_text()).hex(),
        (tmp_path / "a-wireguard").read_text().strip(),
    ]
    for secret in secrets:
        assert secret not in printed


def test_a_psk_policy_and_a_human_readable_report(processes: Processes, tmp_path: Path) -> None:
    (tmp_path / "psk.toml").write_text(
        'extends = "pqc-only-latest"\nname = "psk-pair"\nversion = "1"\n'
        '[auth]\nmethod = "psk"\nsignature_algorithms = []\npsk_id = "pair"\n'
    )
    (tmp_path / "shared.psk").write_text(os.urandom(32).hex())
    common = ["--policy", "psk.toml", "--psk-file", "shared.psk"]
    listen = processes.agile(
        "peer", "--once", *common, "--listen", "127.0.0.1:0", "--sink", "wireguard:b.psk:wg0"
    )
    address = listen.wait_for_line(r"listening on (127\.0\.0\.1:\d+)", stream="stderr").group(1)
    connect = processes.agile(
        "keys", "export", *common, "--connect", address, "--sink", "wireguard:a.psk:wg0"
    )
    assert connect.wait() == 0, connect.stderr
    assert listen.wait() == 0, listen.stderr
    assert (tmp_path / "a.psk").read_bytes() == (tmp_path / "b.psk").read_bytes()
    report = "".join(connect.stdout)
    assert "policy   psk-pair (initiator" in report
    assert "wrote    a.psk  wireguard, identity wg0, key id " in report
