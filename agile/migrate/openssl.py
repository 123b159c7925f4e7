"""OpenSSL configuration files (``openssl.cnf``) and OpenSSL's SSL_CONF commands.

The TLS part of ``openssl.cnf`` is reached through a chain of sections::

    openssl_conf = default_conf        # top level: the section the library reads
    [default_conf]
    ssl_conf = ssl_sect                # the SSL configuration module
    [ssl_sect]
    system_default = system_default_sect
    [system_default_sect]              # SSL_CONF commands: MinProtocol, CipherString, Groups ...
    MinProtocol = TLSv1.2

The sections the chain reaches are audited, every key in them being an SSL_CONF command
(``SSL_CONF_cmd(3)``, names compared without case). A fragment with no chain (a file that is
only a ``[system_default_sect]``) is audited section by section wherever SSL_CONF commands
appear. The same command table serves nginx ``ssl_conf_command`` and Apache
``SSLOpenSSLConfCmd``, which hand their arguments to the same OpenSSL function.
"""

from __future__ import annotations

import re

from agile.migrate._model import (
    PROTOCOL_ORDER,
    Directive,
    Kind,
    ParsedConfig,
    Scope,
    protocol_name,
)

# SSL_CONF_cmd(3) file-style command names, lower-cased, with what each one sets.
_COMMANDS: dict[str, Kind] = {
    "cipherstring": "cipher_string",
    "ciphersuites": "ciphersuites",
    "curves": "groups",
    "groups": "groups",
    "minprotocol": "min_protocol",
    "maxprotocol": "max_protocol",
    "protocol": "protocol_delta",
    "signaturealgorithms": "sigalgs",
    "clientsignaturealgorithms": "sigalgs",
    "certificate": "certificate",
    "options": "info",
    "privatekey": "info",
    "serverinfofile": "info",
    "dhparameters": "info",
    "ecdhparameters": "info",
    "recordpadding": "info",
    "numtickets": "info",
    "chaincafile": "info",
    "chaincapath": "info",
    "verifycafile": "info",
    "verifycapath": "info",
    "requestcafile": "info",
    "clientcafile": "info",
    "clientcapath": "info",
    "verifymode": "info",
}


def conf_command(name: str, value: str, *, file: str, line: int, setting: str) -> Directive:
    """Turn one SSL_CONF command (``Groups``, ``MinProtocol`` ...) into a directive."""
    kind = _COMMANDS.get(name.lower())
    value = value.strip()
    if kind is None:
        return Directive(
            file=file,
            line=line,
            setting=setting,
            value=value,
            kind="unknown",
            note=f"{name!r} is not an OpenSSL SSL_CONF command",
        )
    if kind in {"min_protocol", "max_protocol"}:
        if value.lower() == "none":
            return Directive(file=file, line=line, setting=setting, value=value, kind=kind)
        return version_directive(value, kind, file=file, line=line, setting=setting)
    if kind == "protocol_delta":
        return _protocol_command(value, file=file, line=line, setting=setting)
    if kind in {"groups", "ciphersuites", "sigalgs"}:
        items = tuple(w for w in re.split(r"[:,\s]+", value) if w)
        return Directive(file=file, line=line, setting=setting, value=value, kind=kind, data=items)
    return Directive(file=file, line=line, setting=setting, value=value, kind=kind)


def conf_command_line(
    directive: str, args: list[str], *, file: str, line: int, setting: str
) -> Directive:
    """A server directive that hands one SSL_CONF command on: ``ssl_conf_command Groups X``.

    ``directive`` names the server's directive in the note when the arguments are not a
    command name and one value.
    """
    if len(args) != 2:
        return Directive(
            file=file,
            line=line,
            setting=setting,
            value=" ".join(args),
            kind="unparsed",
            note=f"{directive} takes a command name and one value",
        )
    return conf_command(args[0], args[1], file=file, line=line, setting=f"{setting} {args[0]}")


def version_directive(value: str, kind: Kind, *, file: str, line: int, setting: str) -> Directive:
    """One protocol version (``TLSv1.2``) as a ``kind`` directive; ``unknown`` if it is none."""
    version = protocol_name(value)
    if version is None:
        return Directive(
            file=file,
            line=line,
            setting=setting,
            value=value,
            kind="unknown",
            note=f"{value!r} is not a TLS protocol version",
        )
    return Directive(file=file, line=line, setting=setting, value=value, kind=kind, data=(version,))


def _protocol_command(value: str, *, file: str, line: int, setting: str) -> Directive:
    # "Protocol = -SSLv3,-TLSv1" or "ALL,-TLSv1": a comma-separated list of changes.
    added: list[str] = []
    removed: list[str] = []
    bad: list[str] = []
    for word in (w.strip() for w in value.split(",")):
        if not word:
            continue
        sign, body = (word[0], word[1:]) if word[0] in "+-" else ("+", word)
        versions = (
            list(PROTOCOL_ORDER[1:]) if body.upper() == "ALL" else [protocol_name(body) or ""]
        )
        if not versions[0]:
            bad.append(word)
            continue
        (removed if sign == "-" else added).extend(versions)
    return Directive(
        file=file,
        line=line,
        setting=setting,
        value=value,
        kind="protocol_delta",
        data=tuple(added),
        removed=tuple(removed),
        note=f"not a protocol version: {', '.join(bad)}" if bad else "",
    )


_SECTION = re.compile(r"^\[\s*([^\]\s]+)\s*\]\s*(#.*)?$")
_ASSIGN = re.compile(r"^([A-Za-z0-9_.;$:-]+)\s*=\s*(.*)$")
_INCLUDE = re.compile(r"^\.include(\s*=\s*|\s+)(\S.*)$")
_PRAGMA = re.compile(r"^\.pragma(\s*=\s*|\s+)(\S.*)$")


def _strip_value(raw: str) -> str:
    # Values may be quoted; outside quotes, '#' starts a comment.
    out: list[str] = []
    quote = ""
    for ch in raw:
        if quote:
            if ch == quote:
                quote = ""
            else:
                out.append(ch)
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            break
        else:
            out.append(ch)
    return "".join(out).strip()


def parse(text: str, file: str) -> ParsedConfig:
    """Parse an ``openssl.cnf``-style file."""
    sections: dict[str, list[tuple[int, str, str]]] = {"default": []}
    section_lines: dict[str, int] = {"default": 1}
    order = ["default"]
    loose: list[Directive] = []
    current = "default"
    lines = text.splitlines()
    number = 0
    while number < len(lines):
        start = number + 1
        line = lines[number].strip()
        number += 1
        while line.endswith("\\") and number < len(lines):
            line = line[:-1] + lines[number].strip()
            number += 1
        if not line or line.startswith("#"):
            continue
        section = _SECTION.match(line)
        if section:
            current = section.group(1)
            if current not in sections:
                sections[current] = []
                order.append(current)
            section_lines.setdefault(current, start)
            continue
        include = _INCLUDE.match(line)
        if include:
            loose.append(
                Directive(
                    file=file,
                    line=start,
                    setting=".include",
                    value=_strip_value(include.group(2)),
                    kind="include",
                )
            )
            continue
        if _PRAGMA.match(line):
            continue
        assign = _ASSIGN.match(line)
        if assign:
            sections[current].append((start, assign.group(1), _strip_value(assign.group(2))))
            continue
        loose.append(
            Directive(
                file=file,
                line=start,
                setting="(unparsed)",
                value=line,
                kind="unparsed",
                note="neither a [section], a name = value pair nor a directive",
            )
        )
    ssl_sections = _ssl_sections(sections)
    top = Scope(name="(file)", line=1)
    scopes = [top]
    for name in order:
        if name not in ssl_sections:
            continue
        scope = Scope(name=f"[{name}]", line=section_lines[name], parent=top, tls=True)
        for line_no, key, value in sections[name]:
            scope.directives.append(conf_command(key, value, file=file, line=line_no, setting=key))
        scopes.append(scope)
    return ParsedConfig(file=file, dialect="openssl", scopes=scopes, loose=loose)


def _lookup(sections: dict[str, list[tuple[int, str, str]]], section: str, key: str) -> str | None:
    for _, name, value in sections.get(section, []):
        if name == key:
            return value
    return None


def _ssl_sections(sections: dict[str, list[tuple[int, str, str]]]) -> list[str]:
    found: list[str] = []
    for name in sections:
        ssl_conf = _lookup(sections, name, "ssl_conf")
        if ssl_conf is None or ssl_conf not in sections:
            continue
        for _, _key, target in sections[ssl_conf]:
            if target in sections and target not in found:
                found.append(target)
    if found:
        return found
    # A fragment: audit every section that holds SSL_CONF commands.
    return [
        name
        for name, entries in sections.items()
        if any(key.lower() in _COMMANDS and key.lower() != "options" for _, key, _ in entries)
        and not any(key.lower() in {"openssl_conf", "ssl_conf"} for _, key, _ in entries)
    ]


def looks_like(text: str) -> bool:
    """Whether ``text`` reads like an OpenSSL configuration file."""
    return bool(
        re.search(r"(?m)^\s*(openssl_conf|ssl_conf|system_default)\s*=", text)
        or (
            re.search(r"(?m)^\s*\[\s*\w+\s*\]\s*$", text)
            and re.search(r"(?mi)^\s*(MinProtocol|CipherString|Groups|Ciphersuites)\s*=", text)
        )
    )
