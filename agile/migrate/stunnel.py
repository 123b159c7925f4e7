"""stunnel: ``sslVersion``/``sslVersionMin``/``sslVersionMax``, ``ciphers``, ``ciphersuites``,
``curves``, ``options``, ``PSKsecrets``, ``cert``.

The file is ``name = value`` lines, ``[service]`` headers, and comments starting with ``;``
or ``#``. Service-level options written before the first service are defaults for every
service, so each service is a TLS scope inheriting from the global one. Option names are
compared without case, as stunnel does.
"""

from __future__ import annotations

import re

from agile.migrate._model import Directive, Kind, ParsedConfig, Scope
from agile.migrate.openssl import conf_command, version_directive

_SECTION = re.compile(r"^\[\s*([^\]]+?)\s*\]$")
_ASSIGN = re.compile(r"^([A-Za-z][A-Za-z0-9_]*)\s*=\s*(.*)$")
_SIMPLE: dict[str, Kind] = {
    "ciphers": "cipher_string",
    "ciphersuites": "ciphersuites",
    "curves": "groups",
    "psksecrets": "psk",
    "cert": "certificate",
    "sigalgs": "sigalgs",
    "clientsigalgs": "sigalgs",
}
_INFO = frozenset(
    {
        "pskidentity",
        "key",
        "client",
        "cafile",
        "capath",
        "verify",
        "verifychain",
        "verifypeer",
        "checkhost",
        "sni",
        "sessioncachesize",
        "sessioncachetimeout",
        "ticketkeysecret",
        "ticketmacsecret",
        "renegotiation",
        "requirecert",
        "crlfile",
        "ocsp",
        "ocspaia",
        "engine",
        "fips",
        "ciphersuites13",
    }
)
_VERSION_KINDS: dict[str, Kind] = {
    "sslversion": "protocols",
    "sslversionmin": "min_protocol",
    "sslversionmax": "max_protocol",
}
_NO_OPTIONS = {
    "NO_SSLV2": "SSLv2",
    "NO_SSLV3": "SSLv3",
    "NO_TLSV1": "TLSv1",
    "NO_TLSV1.1": "TLSv1.1",
    "NO_TLSV1_1": "TLSv1.1",
    "NO_TLSV1.2": "TLSv1.2",
    "NO_TLSV1_2": "TLSv1.2",
    "NO_TLSV1.3": "TLSv1.3",
    "NO_TLSV1_3": "TLSv1.3",
}


def _translate(key: str, value: str, line: int, file: str) -> Directive | None:
    lower = key.lower()
    if lower in _SIMPLE:
        kind = _SIMPLE[lower]
        data = (
            tuple(v for v in value.split(":") if v)
            if kind in {"groups", "ciphersuites", "sigalgs"}
            else ()
        )
        return Directive(file=file, line=line, setting=key, value=value, kind=kind, data=data)
    if lower in _VERSION_KINDS:
        version_kind = _VERSION_KINDS[lower]
        if value.lower() == "all":
            every = ("SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
            return Directive(
                file=file,
                line=line,
                setting=key,
                value=value,
                kind=version_kind,
                data=every if version_kind == "protocols" else (),
            )
        return version_directive(value, version_kind, file=file, line=line, setting=key)
    if lower == "options":
        word = value.strip().upper()
        negate = word.startswith("-")
        version = _NO_OPTIONS.get(word.lstrip("-"))
        if version is None:
            return Directive(file=file, line=line, setting=key, value=value, kind="info")
        return Directive(
            file=file,
            line=line,
            setting=key,
            value=value,
            kind="protocol_delta",
            data=(version,) if negate else (),
            removed=() if negate else (version,),
        )
    if lower == "config":
        # config = COMMAND[:PARAMETER] runs an OpenSSL SSL_CONF command.
        command, _, parameter = value.partition(":")
        return conf_command(command.strip(), parameter, file=file, line=line, setting=key)
    if lower == "securitylevel":
        if not value.strip().isdigit():
            return Directive(
                file=file,
                line=line,
                setting=key,
                value=value,
                kind="unknown",
                note=f"{value!r} is not a security level (0 to 5)",
            )
        return Directive(
            file=file, line=line, setting=key, value=value, kind="seclevel", data=(value.strip(),)
        )
    if lower == "include":
        return Directive(file=file, line=line, setting=key, value=value, kind="include")
    if lower in _INFO:
        return Directive(file=file, line=line, setting=key, value=value, kind="info")
    return None


def parse(text: str, file: str) -> ParsedConfig:
    """Parse a stunnel configuration file."""
    top = Scope(name="global", line=1)
    scopes = [top]
    loose: list[Directive] = []
    current = top
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in ";#":
            continue
        section = _SECTION.match(line)
        if section:
            current = Scope(name=f"[{section.group(1)}]", line=number, parent=top, tls=True)
            scopes.append(current)
            continue
        assign = _ASSIGN.match(line)
        if assign is None:
            loose.append(
                Directive(
                    file=file,
                    line=number,
                    setting="(unparsed)",
                    value=line,
                    kind="unparsed",
                    note="neither [service] nor option = value",
                )
            )
            continue
        translated = _translate(assign.group(1), assign.group(2).strip(), number, file)
        if translated is not None:
            current.directives.append(translated)
    if len(scopes) == 1:
        top.tls = True
    _client_mode(scopes)
    return ParsedConfig(file=file, dialect="stunnel", scopes=scopes, loose=loose)


def _client_mode(scopes: list[Scope]) -> None:
    # In client mode (client = yes) stunnel does not apply curves: OpenSSL's defaults are
    # offered, and a curves line there is ignored.
    for scope in scopes:
        client = False
        for d in scope.effective():
            if d.setting.lower() == "client":
                client = d.value.strip().lower() == "yes"
        if not client:
            continue
        scope.library_groups = True
        scope.directives = [
            Directive(
                file=d.file,
                line=d.line,
                setting=d.setting,
                value=d.value,
                kind="info",
                note="ignored: stunnel applies curves in server mode only",
            )
            if d.kind == "groups" and d.setting.lower() == "curves"
            else d
            for d in scope.directives
        ]


def looks_like(text: str) -> bool:
    """Whether ``text`` reads like a stunnel configuration."""
    return bool(re.search(r"(?mi)^\s*(accept|connect|PSKsecrets|sslVersion\w*)\s*=", text))
