"""`agile kme certs` and `agile kme serve`: files, modes, the quick start, errors."""

from __future__ import annotations

import json
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from agile.cli import main
from qkd.delivery.etsi014 import Etsi014Client


def test_certs_writes_the_quick_start_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "certs"
    assert main(["kme", "certs", "--out", str(out), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    names = {Path(p).name for p in document["files"]}
    assert names == {
        "ca.pem",
        "kme-a.pem",
        "kme-a.key",
        "kme-b.pem",
        "kme-b.key",
        "sae-a.pem",
        "sae-a.key",
        "sae-b.pem",
        "sae-b.key",
    }
    for name in names:
        if name.endswith(".key"):
            assert stat.S_IMODE((out / name).stat().st_mode) == 0o600
    sae = x509.load_pem_x509_certificate((out / "sae-a.pem").read_bytes())
    assert sae.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "sae-a"
    san = sae.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["sae-a"]
    ca = x509.load_pem_x509_certificate((out / "ca.pem").read_bytes())
    sae.verify_directly_issued_by(ca)


def test_serve_usage_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["kme", "serve"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "--config" in err
    assert main(["kme", "serve", "--config", "x.toml", "--certs", "d"]) == 2


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("not toml [", "not valid"),
        ('ca = "ca.pem"\n', "kme"),
        (
            'ca = "c"\n[kme.a]\nid="A"\nlisten="127.0.0.1:1"\ncert="c"\nkey="k"\nstore="s"\n'
            '[kme.b]\nid="B"\nlisten="nope"\ncert="c"\nkey="k"\nstore="s"\n',
            "kme.b.listen",
        ),
        (
            'ca = "c"\n[kme.a]\nid="A"\nlisten="127.0.0.1:1"\ncert="c"\nkey="k"\nstore="s"\n'
            '[kme.b]\nid="B"\nlisten="127.0.0.1:2"\ncert="c"\nkey="k"\nstore="t"\n'
            '[[link]]\nsaes_a=["x"]\nsaes_b=["y"]\nkey_size=100\n',
            "link[0].key_size",
        ),
    ],
)
def test_config_errors_name_the_file_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, fragment: str
) -> None:
    config = tmp_path / "kme.toml"
    config.write_text(text)
    assert main(["kme", "serve", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert str(config) in err or "kme.toml" in err
    assert fragment in err
    assert "Traceback" not in err


def test_missing_certificates_are_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "kme",
            "serve",
            "--certs",
            str(tmp_path / "none"),
            "--listen-a",
            "127.0.0.1:0",
            "--listen-b",
            "127.0.0.1:0",
        ]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "agile kme certs" in err or "No such file" in err


def test_quick_start_two_commands(tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    assert main(["kme", "certs", "--out", str(certs)]) == 0
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agile.cli",
            "kme",
            "serve",
            "--certs",
            str(certs),
            "--listen-a",
            "127.0.0.1:0",
            "--listen-b",
            "127.0.0.1:0",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        addresses = json.loads(proc.stdout.readline())

        def client(sae: str, kme: str, peer: str) -> Etsi014Client:
            return Etsi014Client(
                f"https://{addresses[kme]}",
                peer_sae_id=peer,
                cert=certs / f"{sae}.pem",
                key=certs / f"{sae}.key",
                ca=certs / "ca.pem",
                retries=10,
            )

        with (
            client("sae-b", "kme_b", "sae-a") as b_master,
            client("sae-a", "kme_a", "sae-b") as a_slave,
        ):
            keys = b_master.get_keys(2)
            assert a_slave.get_keys_by_id([k.key_id for k in keys]) == keys
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0
        assert proc.stdout is not None
        assert proc.stderr is not None
        proc.stdout.close()
        assert "Traceback" not in proc.stderr.read()
        proc.stderr.close()
    assert (certs / "kme-a.sqlite").exists()
