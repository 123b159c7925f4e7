"""The cipher-string evaluator, the parsers' semantics and the risk rules, one case at a time."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from agile.cli import main
from agile.migrate import MigrationError, audit_files, audit_text, detect_dialect, parse_text
from agile.migrate._ciphers import CIPHERS, evaluate
from agile.migrate.rules import Stack, context_of

OPENSSL = shutil.which("openssl")
TLS13_NAMES = {"TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_128_GCM_SHA256"}
CIPHER_STRINGS = [
    "HIGH:!aNULL:!MD5",
    "DEFAULT",
    "DEFAULT@SECLEVEL=2",
    "kRSA:DEFAULT",
    "ECDHE+AESGCM:ECDHE+CHACHA20:!ECDSA",
    "EECDH+AESGCM:EDH+AESGCM",
    "HIGH:!aNULL:!SSLv2:!DH:!kDHEPSK",
    "PSK",
    "aNULL",
    "ECDH:DH:-SHA1:+AES128",
    "ALL:!COMPLEMENTOFDEFAULT:!eNULL",
    "COMPLEMENTOFALL",
    "SSLv3",
    "TLSv1",
    "RSA+AES",
    "AESCCM",
    "ARIA:CAMELLIA256",
    "SHA256:@STRENGTH",
    "ECDSA+SHA384",
]


def _openssl_selects(cipher_string: str) -> set[str]:
    assert OPENSSL is not None
    env = dict(os.environ, OPENSSL_CONF=os.devnull)
    proc = subprocess.run(
        [OPENSSL, "ciphers", cipher_string + ":@SECLEVEL=0"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    return set(proc.stdout.strip().split(":")) - TLS13_NAMES - {""}


@pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed (CI installs it)")
@pytest.mark.parametrize("cipher_string", CIPHER_STRINGS)
def test_cipher_strings_select_what_openssl_selects(cipher_string: str) -> None:
    theirs = _openssl_selects(cipher_string)
    ours = {c.name for c in evaluate(cipher_string).ciphers}
    # Legacy suites (RC4, DES, EXPORT ...) are not in an OpenSSL 3 build; compare the rest.
    legacy = {c.name for c in CIPHERS if c.legacy}
    assert ours - legacy == theirs


def test_default_is_special_only_at_the_start() -> None:
    assert "ECDHE-RSA-AES128-GCM-SHA256" in evaluate("DEFAULT").names()
    assert evaluate("kRSA:DEFAULT").names() == evaluate("kRSA").names()
    assert evaluate("kRSA:DEFAULT").unknown == ("DEFAULT",)


def test_seclevel_3_removes_rsa_key_transport() -> None:
    assert any(c.kx == "RSA" for c in evaluate("HIGH").ciphers)
    assert not any(c.kx == "RSA" for c in evaluate("HIGH:@SECLEVEL=3").ciphers)


def test_kill_is_permanent_and_minus_is_not() -> None:
    assert "AES128-SHA" not in evaluate("!kRSA:ALL").names()
    assert "AES128-SHA" in evaluate("-kRSA:ALL").names()


def _risks(text: str, dialect: str, stack: Stack | None = None) -> dict[str, str]:
    return {
        f.setting: f.risk
        for f in audit_text(text, "t.conf", dialect=dialect, stack=stack)  # type: ignore[arg-type]
    }


def test_hybrid_not_first_is_weak_and_first_is_ok() -> None:
    weak = _risks("[s]\nGroups = X25519:X25519MLKEM768\nMinProtocol = TLSv1.3\n", "openssl")
    ok = _risks("[s]\nGroups = X25519MLKEM768:X25519\nMinProtocol = TLSv1.3\n", "openssl")
    assert weak["Groups"] == "weak"
    assert ok["Groups"] == "ok"


def test_openssl_35_groups_syntax() -> None:
    risks = _risks(
        "[s]\nGroups = ?*X25519MLKEM768 / *X25519:?secp256r1\nMinProtocol=TLSv1.3\n", "openssl"
    )
    assert risks["Groups"] == "ok"
    removed = _risks(
        "[s]\nGroups = DEFAULT:-X25519MLKEM768\nMinProtocol=TLSv1.3\n",
        "openssl",
        Stack(openssl=(3, 5)),
    )
    assert removed["Groups"] == "quantum-vulnerable"


def test_absent_groups_depend_on_the_openssl_version() -> None:
    text = "[s]\nMinProtocol = TLSv1.3\n"
    assert _risks(text, "openssl", Stack(openssl=(3, 0)))["Groups"] == "quantum-vulnerable"
    assert _risks(text, "openssl", Stack(openssl=(3, 5)))["Groups"] == "ok"


def test_draft_kyber_is_weak() -> None:
    assert (
        _risks("ssl_ecdh_curve X25519Kyber768Draft00:X25519;", "nginx")["ssl_ecdh_curve"] == "weak"
    )


def test_apache_sslprotocol_semantics() -> None:
    parsed = parse_text(
        "SSLProtocol all -SSLv3 -TLSv1 -TLSv1.1\nSSLProtocol TLSv1.2 +TLSv1.3\n",
        "a.conf",
        dialect="apache",
    )
    first, second = parsed.scopes[0].directives
    assert first.data == ("TLSv1.2", "TLSv1.3")
    assert second.data == ("TLSv1.2", "TLSv1.3")


def test_apache_tls13_cipher_suite_form() -> None:
    parsed = parse_text(
        "SSLCipherSuite TLSv1.3 TLS_AES_256_GCM_SHA384\n", "a.conf", dialect="apache"
    )
    (d,) = parsed.scopes[0].directives
    assert (d.kind, d.data) == ("ciphersuites", ("TLS_AES_256_GCM_SHA384",))


def test_haproxy_force_and_max_version() -> None:
    text = (
        "global\n    ssl-default-bind-options force-tlsv12\nfrontend f\n    bind :443 ssl crt x\n"
    )
    assert _risks(text, "haproxy")["ssl-default-bind-options force-tlsv12"] == (
        "quantum-vulnerable"
    )
    text = "frontend f\n    bind :443 ssl crt x ssl-max-ver TLSv1.2\n"
    assert _risks(text, "haproxy")["ssl-max-ver"] == "quantum-vulnerable"


def test_nginx_quotes_comments_and_inheritance() -> None:
    text = (
        "http {\n"
        "  ssl_protocols 'TLSv1.3'; # only 1.3\n"
        '  ssl_ecdh_curve "X25519MLKEM768:X25519";\n'
        "  server { listen 443 ssl; ssl_certificate c.pem; }\n"
        "}\n"
    )
    findings = audit_text(text, "n.conf", dialect="nginx")
    assert not [f for f in findings if f.risk == "quantum-vulnerable"]
    # The server inherits both settings: no finding for an absent default.
    assert not [f for f in findings if f.value == "(not set)"]


def test_nginx_unclosed_block_and_stray_brace_are_reported() -> None:
    findings = audit_text("server {\n listen 443 ssl;\n", "n.conf", dialect="nginx")
    assert any(f.setting == "(unparsed)" and f.line == 1 for f in findings)
    findings = audit_text("}\nssl_protocols TLSv1.3;\n", "n.conf", dialect="nginx")
    assert any(f.setting == "(unparsed)" and f.line == 1 for f in findings)


def test_openssl_protocol_command() -> None:
    risks = _risks("[s]\nProtocol = ALL,-SSLv3,-TLSv1,-TLSv1.1,-TLSv1.3\n", "openssl")
    assert risks["Protocol"] == "quantum-vulnerable"


def test_stunnel_psk_only_keeps_recorded_sessions_safe() -> None:
    text = "[t]\naccept = 1\nconnect = 2\nPSKsecrets = p.txt\nsslVersionMin = TLSv1.2\n"
    risks = _risks(text, "stunnel")
    assert risks["PSKsecrets"] == "ok"
    assert risks["curves"] == "ok"  # the default curves, with a PSK mixed in
    with_cert = _risks(text + "cert = c.pem\n", "stunnel")
    assert with_cert["curves"] == "quantum-vulnerable"


def test_cipher_string_is_inactive_when_only_tls13_is_enabled() -> None:
    assert (
        _risks("ssl_protocols TLSv1.3;\nssl_ciphers AES128-SHA;\n", "nginx")["ssl_ciphers"] == "ok"
    )


def test_undetectable_dialect_and_missing_file(tmp_path: pytest.TempPathFactory) -> None:
    with pytest.raises(MigrationError, match="--format"):
        detect_dialect("/x/y", "nothing to see\n")
    with pytest.raises(MigrationError, match="no such file"):
        audit_files(["/nonexistent/ssl.conf"])


def test_cli_errors_are_one_line(capsys: pytest.CaptureFixture[str], tmp_path: object) -> None:
    assert main(["migrate", "tls", "/nonexistent/nginx.conf"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "/nonexistent/nginx.conf" in err
    assert main(["migrate", "tls", "--openssl", "three", "x.conf"]) == 2
    with pytest.raises(SystemExit) as exc:
        main(["migrate", "tls", "--format", "iis", "x.conf"])
    assert exc.value.code == 2


def test_format_overrides_detection(tmp_path: object, capsys: pytest.CaptureFixture[str]) -> None:
    import pathlib

    path = pathlib.Path(str(tmp_path)) / "settings.txt"
    path.write_text("MinProtocol = TLSv1.3\nGroups = X25519MLKEM768\n", encoding="utf-8")
    assert main(["migrate", "tls", "--format", "openssl", "--json", str(path)]) == 0
    assert '"dialects"' in capsys.readouterr().out


def test_stunnel_security_level_3_refuses_rsa_key_transport() -> None:
    base = "[s]\naccept = 1\nconnect = 2\ncert = c.pem\ncurves = X25519MLKEM768\n"
    assert _risks(base, "stunnel")["ciphers"] == "quantum-vulnerable"
    assert _risks(base + "securityLevel = 3\n", "stunnel")["ciphers"] == "ok"


def test_stunnel_config_runs_ssl_conf_commands() -> None:
    text = "[s]\naccept = 1\nconnect = 2\ncert = c.pem\nconfig = Groups:X25519MLKEM768:X25519\n"
    assert _risks(text, "stunnel")["config"] == "ok"


def test_stunnel_client_mode_ignores_curves_and_uses_library_groups() -> None:
    text = "[c]\nclient = yes\naccept = 1\nconnect = h:2\ncurves = X25519MLKEM768\n"
    findings = {(f.setting, f.value): f for f in audit_text(text, "s.conf", dialect="stunnel")}
    assert findings[("curves", "X25519MLKEM768")].risk == "ok"
    assert "ignored" in findings[("curves", "X25519MLKEM768")].note
    # The groups actually offered are OpenSSL's: classical on 3.0, hybrid on 3.5.
    assert findings[("curves", "(not set)")].risk == "quantum-vulnerable"
    on_35 = audit_text(text, "s.conf", dialect="stunnel", stack=Stack(openssl=(3, 5)))
    assert [f.risk for f in on_35 if f.value == "(not set)" and f.setting == "curves"] == ["ok"]


def test_haproxy_listener_default_curve_is_p256_even_on_openssl_35() -> None:
    text = (
        "frontend f\n    bind :443 ssl crt x ssl-min-ver TLSv1.3\n"
        "backend b\n    server s 10.0.0.1:443 ssl ssl-min-ver TLSv1.3\n"
    )
    findings = audit_text(text, "h.cfg", dialect="haproxy", stack=Stack(openssl=(3, 5)))
    curves = {f.line: f.risk for f in findings if f.setting == "curves"}
    assert curves == {2: "quantum-vulnerable", 4: "ok"}


def test_text_output_names_file_and_line(
    capsys: pytest.CaptureFixture[str], tmp_path: object
) -> None:
    import pathlib

    path = pathlib.Path(str(tmp_path)) / "site.conf"
    path.write_text("server {\n  listen 443 ssl;\n  garbage here\n}\n", encoding="utf-8")
    assert main(["migrate", "tls", "--format", "nginx", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"{path}:3: [weak] (unparsed)" in out
    assert f"{path}:1: [quantum-vulnerable] ssl_ecdh_curve = (not set)" in out


def test_conf_commands_win_over_native_settings_in_their_block() -> None:
    text = (
        "server {\n  listen 443 ssl;\n  ssl_conf_command Groups X25519MLKEM768:X25519;\n"
        "  ssl_ecdh_curve X25519;\n  ssl_protocols TLSv1.3;\n}\n"
    )
    findings = audit_text(text, "n.conf", dialect="nginx")
    # ssl_ecdh_curve is overridden by the conf command: the server offers the hybrid group.
    parsed = parse_text(text, "n.conf", dialect="nginx")
    server = next(s for s in parsed.scopes if s.tls)
    assert context_of(server, "nginx", Stack()).groups[0] == "X25519MLKEM768"
    assert any(f.setting == "ssl_ecdh_curve" for f in findings)
