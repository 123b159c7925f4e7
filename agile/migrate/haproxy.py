"""HAProxy: ``ssl-default-bind-*`` / ``ssl-default-server-*`` in ``global``, and ``bind`` and
``server`` lines with ``ssl``.

Each ``bind ... ssl`` line is a TLS scope that inherits the ``ssl-default-bind-*`` settings;
each ``server ... ssl`` line (TLS towards a backend) inherits ``ssl-default-server-*``. The
options words (``no-tlsv11``, ``ssl-min-ver TLSv1.2``, ``force-tlsv13`` ...) mean the same on a
line and in ``ssl-default-*-options``. Words are split as HAProxy does: quotes and ``\\``
escapes, ``#`` starting a comment.
"""

from __future__ import annotations

import re
import shlex

from agile.migrate._model import Directive, Kind, ParsedConfig, Scope, protocol_name

_SECTIONS = frozenset(
    {
        "global",
        "defaults",
        "frontend",
        "backend",
        "listen",
        "peers",
        "resolvers",
        "userlist",
        "cache",
        "program",
        "http-errors",
        "ring",
        "mailers",
        "crt-store",
        "traces",
        "log-forward",
        "fcgi-app",
    }
)
# bind/server keywords that take one argument (their argument must not be read as a keyword).
_WITH_VALUE = frozenset(
    {
        "crt",
        "crt-list",
        "ca-file",
        "crl-file",
        "alpn",
        "npn",
        "ciphers",
        "ciphersuites",
        "curves",
        "ecdhe",
        "sigalgs",
        "client-sigalgs",
        "ssl-min-ver",
        "ssl-max-ver",
        "verify",
        "verifyhost",
        "sni",
        "name",
        "id",
        "process",
        "thread",
        "interface",
        "mss",
        "maxconn",
        "backlog",
        "level",
        "mode",
        "user",
        "group",
        "uid",
        "gid",
        "nice",
        "namespace",
        "proto",
        "tls-ticket-keys",
        "ca-sign-file",
        "ca-sign-pass",
        "ca-ignore-err",
        "crt-ignore-err",
        "check-sni",
        "weight",
        "inter",
        "fall",
        "rise",
        "port",
        "cookie",
        "resolvers",
        "init-addr",
        "slowstart",
        "on-error",
        "observe",
        "maxqueue",
        "minconn",
        "pool-max-conn",
        "track",
        "source",
        "usesrc",
        "addr",
        "agent-check",
        "agent-port",
        "agent-inter",
        "check-alpn",
        "check-proto",
        "pool-purge-delay",
        "resolve-prefer",
        "redir",
        "tcp-ut",
        "label",
        "expose-fd",
        "accept-netscaler-cip",
        "quic-cc-algo",
        "severity-output",
    }
)
_VERSION_FLAGS = {
    "no-sslv3": "SSLv3",
    "no-tlsv10": "TLSv1",
    "no-tlsv11": "TLSv1.1",
    "no-tlsv12": "TLSv1.2",
    "no-tlsv13": "TLSv1.3",
}
_FORCE_FLAGS = {
    "force-sslv3": "SSLv3",
    "force-tlsv10": "TLSv1",
    "force-tlsv11": "TLSv1.1",
    "force-tlsv12": "TLSv1.2",
    "force-tlsv13": "TLSv1.3",
}


def _options(
    words: list[str], *, file: str, line: int, prefix: str, line_keywords: bool
) -> list[Directive]:
    """Translate option words (``no-tlsv11``, ``ciphers X`` ...) into directives."""
    out: list[Directive] = []
    i = 0
    while i < len(words):
        word = words[i]
        value = words[i + 1] if i + 1 < len(words) else ""
        setting = f"{prefix}{word}"
        if word in _VERSION_FLAGS:
            out.append(
                Directive(
                    file=file,
                    line=line,
                    setting=setting,
                    value=word,
                    kind="protocol_delta",
                    removed=(_VERSION_FLAGS[word],),
                )
            )
        elif word in _FORCE_FLAGS:
            out.append(
                Directive(
                    file=file,
                    line=line,
                    setting=setting,
                    value=word,
                    kind="protocols",
                    data=(_FORCE_FLAGS[word],),
                )
            )
        elif word in {"ssl-min-ver", "ssl-max-ver"}:
            version = protocol_name(value)
            kind: Kind = "min_protocol" if word == "ssl-min-ver" else "max_protocol"
            out.append(
                Directive(
                    file=file,
                    line=line,
                    setting=setting,
                    value=value,
                    kind=kind if version else "unknown",
                    data=(version,) if version else (),
                    note="" if version else f"{value!r} is not a TLS protocol version",
                )
            )
            i += 1
        elif line_keywords and word in {"ciphers", "ciphersuites", "curves", "ecdhe", "sigalgs"}:
            out.append(_valued(word, value, file=file, line=line, setting=setting))
            i += 1
        elif line_keywords and word in {"crt", "crt-list"}:
            out.append(
                Directive(file=file, line=line, setting=setting, value=value, kind="certificate")
            )
            i += 1
        elif word in _WITH_VALUE:
            i += 1
        i += 1
    return out


def _valued(keyword: str, value: str, *, file: str, line: int, setting: str) -> Directive:
    if keyword == "ciphers":
        return Directive(file=file, line=line, setting=setting, value=value, kind="cipher_string")
    if keyword in {"ciphersuites", "curves", "ecdhe", "sigalgs"}:
        kinds: dict[str, Kind] = {
            "ciphersuites": "ciphersuites",
            "curves": "groups",
            "ecdhe": "groups",
            "sigalgs": "sigalgs",
        }
        return Directive(
            file=file,
            line=line,
            setting=setting,
            value=value,
            kind=kinds[keyword],
            data=tuple(v for v in value.split(":") if v),
        )
    raise AssertionError(keyword)


def parse(text: str, file: str) -> ParsedConfig:
    """Parse a HAProxy configuration file."""
    top = Scope(name="global", line=1)
    bind_defaults = Scope(name="global (ssl-default-bind-*)", line=1, parent=top)
    server_defaults = Scope(name="global (ssl-default-server-*)", line=1, parent=top)
    scopes = [top, bind_defaults, server_defaults]
    loose: list[Directive] = []
    section: str | None = None
    section_name = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            lexer = shlex.shlex(stripped, posix=True)
            lexer.whitespace_split = True
            lexer.commenters = "#"
            words = list(lexer)
        except ValueError:
            loose.append(_unparsed(file, number, stripped, "unbalanced quotes"))
            continue
        if not words:
            continue
        keyword = words[0]
        if keyword in _SECTIONS:
            section = keyword
            section_name = " ".join(words[:2])
            if keyword == "global":
                top.line = bind_defaults.line = server_defaults.line = number
            continue
        if section is None:
            loose.append(_unparsed(file, number, stripped, "outside any section"))
            continue
        if not re.match(r"^[a-z][a-z0-9_.-]*$", keyword):
            loose.append(_unparsed(file, number, stripped, "not a HAProxy keyword"))
            continue
        if section == "global":
            _global(
                keyword,
                words,
                line=number,
                file=file,
                top=top,
                bind_defaults=bind_defaults,
                server_defaults=server_defaults,
            )
        elif keyword in {"bind", "server"} and "ssl" in words[2:]:
            parent = bind_defaults if keyword == "bind" else server_defaults
            address = words[1] if keyword == "bind" else " ".join(words[1:3])
            # HAProxy applies its default ECDHE curve to listeners only; a server line (TLS
            # towards a backend) offers OpenSSL's default groups.
            scope = Scope(
                name=f"{section_name}: {keyword} {address} (line {number})",
                line=number,
                parent=parent,
                tls=True,
                library_groups=keyword == "server",
            )
            scope.directives.extend(
                _options(words[2:], file=file, line=number, prefix="", line_keywords=True)
            )
            scopes.append(scope)
    return ParsedConfig(file=file, dialect="haproxy", scopes=scopes, loose=loose)


def _global(
    keyword: str,
    words: list[str],
    *,
    line: int,
    file: str,
    top: Scope,
    bind_defaults: Scope,
    server_defaults: Scope,
) -> None:
    match = re.match(
        r"^ssl-default-(bind|server)-(options|ciphers|ciphersuites|curves|sigalgs)$", keyword
    )
    if match is None:
        if keyword.startswith("ssl-") or keyword.startswith("tune.ssl"):
            top.directives.append(
                Directive(
                    file=file, line=line, setting=keyword, value=" ".join(words[1:]), kind="info"
                )
            )
        return
    side, what = match.groups()
    scope = bind_defaults if side == "bind" else server_defaults
    value = " ".join(words[1:])
    if what == "options":
        found = _options(words[1:], file=file, line=line, prefix="", line_keywords=False)
        scope.directives.extend(
            Directive(
                file=d.file,
                line=d.line,
                setting=f"{keyword} {d.setting}",
                value=d.value,
                kind=d.kind,
                data=d.data,
                removed=d.removed,
                note=d.note,
            )
            for d in found
        )
        if not found:
            scope.directives.append(
                Directive(file=file, line=line, setting=keyword, value=value, kind="info")
            )
        return
    scope.directives.append(_valued(what, value, file=file, line=line, setting=keyword))


def _unparsed(file: str, line: int, text: str, why: str) -> Directive:
    return Directive(
        file=file, line=line, setting="(unparsed)", value=text, kind="unparsed", note=why
    )


def looks_like(text: str) -> bool:
    """Whether ``text`` reads like a HAProxy configuration."""
    return bool(
        # Section headers carry no ';' or '{' (nginx's "listen 443 ssl;" does).
        re.search(r"(?m)^\s*(frontend|backend|listen)\s+[^;{\n]+$", text)
        or re.search(r"(?m)^\s*ssl-default-(bind|server)-", text)
    )
