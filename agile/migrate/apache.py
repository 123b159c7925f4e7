"""Apache httpd with mod_ssl: ``SSLProtocol``, ``SSLCipherSuite``, ``SSLOpenSSLConfCmd`` ...

Directives are one per line (a trailing ``\\`` continues it), comments are whole lines starting
with ``#``. ``<VirtualHost>`` blocks are scopes that inherit the server-wide settings; other
containers (``<IfModule>``, ``<Directory>`` ...) are transparent. A virtual host serves TLS when
it says ``SSLEngine on``.

``SSLProtocol`` follows mod_ssl: a word without ``+``/``-`` replaces what was set so far, ``all``
is every version from SSLv3 up, ``+``/``-`` add and remove. ``SSLCipherSuite`` takes an optional
protocol first: ``SSL`` (TLS 1.2 and older, the default) or ``TLSv1.3``.
"""

from __future__ import annotations

import re
import shlex

from agile.migrate._model import PROTOCOL_ORDER, Directive, ParsedConfig, Scope, protocol_name
from agile.migrate.openssl import conf_command_line

_CONTAINER = re.compile(r"^<\s*(/?)\s*([A-Za-z]+)\s*([^>]*)>\s*$")
_DIRECTIVE = re.compile(r"^([A-Za-z][A-Za-z0-9_]*)(\s+(.*))?$")
_PROXY = {"SSLProxyProtocol": "SSLProtocol", "SSLProxyCipherSuite": "SSLCipherSuite"}


def _protocols(args: list[str]) -> tuple[tuple[str, ...], list[str]]:
    enabled: set[str] = set()
    bad: list[str] = []
    for word in args:
        sign, body = (word[0], word[1:]) if word[:1] in {"+", "-"} else ("", word)
        versions = set(PROTOCOL_ORDER[1:]) if body.lower() == "all" else {protocol_name(body) or ""}
        if "" in versions:
            bad.append(word)
            continue
        if sign == "-":
            enabled -= versions
        elif sign == "+":
            enabled |= versions
        else:
            enabled = set(versions)
    return tuple(v for v in PROTOCOL_ORDER if v in enabled), bad


def _translate(name: str, args: list[str], line: int, file: str) -> Directive | None:
    value = " ".join(args)
    base = _PROXY.get(name, name)
    if base == "SSLProtocol":
        versions, bad = _protocols(args)
        return Directive(
            file=file,
            line=line,
            setting=name,
            value=value,
            kind="protocols",
            data=versions,
            note=f"not a protocol version: {', '.join(bad)}" if bad else "",
        )
    if base == "SSLCipherSuite":
        if len(args) == 2 and args[0].upper() in {"SSL", "TLSV1.3"}:
            protocol, spec = args
        elif len(args) == 1:
            protocol, spec = "SSL", args[0]
        else:
            return Directive(
                file=file,
                line=line,
                setting=name,
                value=value,
                kind="unparsed",
                note="SSLCipherSuite takes [SSL|TLSv1.3] and one cipher specification",
            )
        if protocol.upper() == "TLSV1.3":
            return Directive(
                file=file,
                line=line,
                setting=f"{name} TLSv1.3",
                value=spec,
                kind="ciphersuites",
                data=tuple(s for s in spec.split(":") if s),
            )
        return Directive(file=file, line=line, setting=name, value=spec, kind="cipher_string")
    if name == "SSLOpenSSLConfCmd":
        return conf_command_line(name, args, file=file, line=line, setting=name)
    if name == "SSLCertificateFile":
        return Directive(file=file, line=line, setting=name, value=value, kind="certificate")
    if name in {"Include", "IncludeOptional"}:
        return Directive(file=file, line=line, setting=name, value=value, kind="include")
    if name.startswith("SSL"):
        return Directive(file=file, line=line, setting=name, value=value, kind="info")
    return None


def parse(text: str, file: str) -> ParsedConfig:
    """Parse an Apache httpd configuration file."""
    top = Scope(name="server config", line=1)
    scopes = [top]
    loose: list[Directive] = []
    current = top
    upstream: dict[int, Scope] = {}
    containers: list[tuple[str, int, bool]] = []  # name, line, opened a scope
    lines = text.splitlines()
    number = 0

    def unparsed(line: int, value: str, why: str) -> None:
        loose.append(
            Directive(
                file=file, line=line, setting="(unparsed)", value=value, kind="unparsed", note=why
            )
        )

    while number < len(lines):
        start = number + 1
        line = lines[number].strip()
        number += 1
        while line.endswith("\\") and number < len(lines):
            line = line[:-1] + " " + lines[number].strip()
            number += 1
        if not line or line.startswith("#"):
            continue
        container = _CONTAINER.match(line)
        if container:
            closing, name, args = container.group(1), container.group(2), container.group(3)
            if not closing:
                opens = name.lower() == "virtualhost"
                if opens:
                    current = Scope(
                        name=f"<VirtualHost {args.strip()}> (line {start})",
                        line=start,
                        parent=current,
                    )
                    scopes.append(current)
                containers.append((name, start, opens))
                continue
            if not containers or containers[-1][0].lower() != name.lower():
                unparsed(start, line, f"</{name}> closes nothing that is open")
                continue
            _, _, opened = containers.pop()
            if opened and current.parent is not None:
                current = current.parent
            continue
        directive = _DIRECTIVE.match(line)
        if directive is None:
            unparsed(start, line, "not an Apache directive")
            continue
        name = directive.group(1)
        try:
            args = shlex.split(directive.group(3) or "", posix=True)
        except ValueError:
            unparsed(start, line, "unbalanced quotes")
            continue
        if name == "SSLEngine":
            current.tls = bool(args) and args[0].lower() == "on"
        translated = _translate(name, args, start, file)
        if translated is None:
            continue
        if name.startswith("SSLProxy"):
            scope = upstream.get(id(current))
            if scope is None:
                scope = Scope(name=f"{current.name} -> proxy TLS", line=current.line)
                upstream[id(current)] = scope
                scopes.append(scope)
            scope.directives.append(translated)
        elif translated.kind == "unparsed":
            loose.append(translated)
        else:
            current.directives.append(translated)
    for open_name, open_line, _ in containers:
        unparsed(open_line, f"<{open_name}>", "container not closed at end of file")
    if not any(s.tls for s in scopes):
        # A fragment (no SSLEngine anywhere): audit the settings it has as a TLS scope.
        for scope in scopes:
            if any(d.kind not in {"include", "info"} for d in scope.directives):
                scope.tls = True
                break
    return ParsedConfig(file=file, dialect="apache", scopes=scopes, loose=loose)


def looks_like(text: str) -> bool:
    """Whether ``text`` reads like an Apache configuration."""
    return bool(re.search(r"(?m)^\s*(<VirtualHost|SSLEngine|SSLProtocol|SSLCipherSuite)\b", text))
