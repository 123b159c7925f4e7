"""nginx configuration: ``ssl_protocols``, ``ssl_ciphers``, ``ssl_ecdh_curve``,
``ssl_conf_command`` and friends, in ``http``, ``stream``, ``mail`` and ``server`` blocks.

The file is tokenised as nginx does it: words (quoted with ``'`` or ``"``, escaped with ``\\``),
``;`` ending a directive, ``{``/``}`` around blocks, ``#`` starting a comment where a word could
start. Every block is a scope inheriting from its parent, as nginx merges settings. A ``server``
block terminates TLS when it listens with ``ssl`` (or ``quic``), says ``ssl on`` or has a
certificate. ``include`` is reported, not followed. ``proxy_ssl_*`` (and ``grpc_``/``uwsgi_``)
settings are TLS towards upstreams: they go into a scope of their own beside the server's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agile.migrate._model import Directive, ParsedConfig, Scope, protocol_name
from agile.migrate.openssl import conf_command_line

_INFO = frozenset(
    {
        "ssl_certificate_key",
        "ssl_prefer_server_ciphers",
        "ssl_session_tickets",
        "ssl_session_ticket_key",
        "ssl_session_cache",
        "ssl_session_timeout",
        "ssl_stapling",
        "ssl_stapling_verify",
        "ssl_stapling_file",
        "ssl_stapling_responder",
        "ssl_trusted_certificate",
        "ssl_client_certificate",
        "ssl_verify_client",
        "ssl_verify_depth",
        "ssl_dhparam",
        "ssl_early_data",
        "ssl_buffer_size",
        "ssl_password_file",
        "ssl_crl",
        "ssl_ocsp",
        "ssl_ocsp_cache",
        "ssl_reject_handshake",
        "ssl_handshake_timeout",
        "ssl_certificate_cache",
        "ssl_key_log",
        "ssl_object_cache_inheritable",
        "ssl_server_name",
        "ssl_name",
        "ssl_verify",
        "ssl_session_reuse",
        "ssl_preread",
    }
)
_UPSTREAM_PREFIXES = ("proxy_", "grpc_", "uwsgi_")


@dataclass
class _Word:
    text: str
    line: int
    first_on_line: bool


def _tokens(text: str) -> tuple[list[_Word | tuple[str, int]], list[tuple[int, str]]]:
    """Words and the punctuation ``{`` ``}`` ``;``; also (line, problem) for lexing errors."""
    out: list[_Word | tuple[str, int]] = []
    problems: list[tuple[int, str]] = []
    i, line, n = 0, 1, len(text)
    line_has_word = False
    while i < n:
        ch = text[i]
        if ch == "\n":
            line += 1
            line_has_word = False
            i += 1
        elif ch.isspace():
            i += 1
        elif ch == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif ch in "{};":
            out.append((ch, line))
            i += 1
            line_has_word = True
        else:
            start_line = line
            buf: list[str] = []
            if ch in "\"'":
                quote = ch
                i += 1
                while i < n and text[i] != quote:
                    if text[i] == "\\" and i + 1 < n:
                        i += 1
                    if text[i] == "\n":
                        line += 1
                    buf.append(text[i])
                    i += 1
                if i >= n:
                    problems.append((start_line, "unterminated quoted string"))
                i += 1
            else:
                while i < n and not text[i].isspace() and text[i] not in "{};":
                    if text[i] == "\\" and i + 1 < n:
                        i += 1
                    buf.append(text[i])
                    i += 1
            out.append(_Word(text="".join(buf), line=start_line, first_on_line=not line_has_word))
            line_has_word = True
    return out, problems


_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


def _is_tls_directive(name: str) -> bool:
    return name.startswith("ssl_") or any(name.startswith(p + "ssl_") for p in _UPSTREAM_PREFIXES)


def parse(text: str, file: str) -> ParsedConfig:
    """Parse an nginx configuration file."""
    tokens, problems = _tokens(text)
    top = Scope(name="main", line=1)
    scopes = [top]
    loose: list[Directive] = [
        Directive(file=file, line=line, setting="(unparsed)", value="", kind="unparsed", note=why)
        for line, why in problems
    ]
    stack: list[Scope] = [top]
    upstream: dict[int, Scope] = {}
    words: list[_Word] = []

    def unparsed(line: int, value: str, why: str) -> None:
        loose.append(
            Directive(
                file=file, line=line, setting="(unparsed)", value=value, kind="unparsed", note=why
            )
        )

    def flush(end: str) -> None:
        nonlocal words
        statement, words = words, []
        # A line that lacks its ';' swallows the next one: split where a known TLS directive
        # starts a line, so the directive is still audited and the broken line reported.
        for k in range(1, len(statement)):
            if statement[k].first_on_line and _is_tls_directive(statement[k].text):
                head = statement[:k]
                unparsed(head[0].line, " ".join(w.text for w in head), "missing ';'")
                statement = statement[k:]
                break
        _statement(statement, end)

    def _statement(statement: list[_Word], end: str) -> None:
        name = statement[0].text
        line = statement[0].line
        args = [w.text for w in statement[1:]]
        scope = stack[-1]
        if not _NAME.match(name):
            unparsed(line, " ".join(w.text for w in statement), "not an nginx directive")
            if end == "{":
                stack.append(Scope(name=f"{name} (unparsed)", line=line, parent=scope))
            return
        if end == "{":
            label = name if not args else f"{name} {' '.join(args)}"
            child = Scope(name=f"{label} (line {line})", line=line, parent=scope)
            scopes.append(child)
            stack.append(child)
            return
        _directive(name, args, line, scope)

    def _directive(name: str, args: list[str], line: int, scope: Scope) -> None:
        value = " ".join(args)
        if name == "include":
            scope.directives.append(
                Directive(file=file, line=line, setting=name, value=value, kind="include")
            )
            return
        if name == "listen" and any(a in {"ssl", "quic"} for a in args[1:]):
            scope.tls = True
            return
        if name == "ssl" and args == ["on"]:
            scope.tls = True
        target = scope
        setting = name
        for prefix in _UPSTREAM_PREFIXES:
            if name.startswith(prefix + "ssl_"):
                target = upstream.get(id(scope)) or _upstream_scope(scope)
                name = name[len(prefix) :]
                break
        if not name.startswith("ssl"):
            return
        if name == "ssl_certificate" and target is scope:
            scope.tls = True
        target.directives.append(_translate(name, setting, args, line, file))

    def _upstream_scope(scope: Scope) -> Scope:
        child = Scope(name=f"{scope.name} -> upstream TLS", line=scope.line, parent=None, tls=False)
        upstream[id(scope)] = child
        scopes.append(child)
        return child

    for token in tokens:
        if isinstance(token, _Word):
            words.append(token)
            continue
        punct, punct_line = token
        if punct == ";":
            if words:
                flush(";")
        elif punct == "{":
            if not words:
                unparsed(punct_line, "{", "block without a name")
                stack.append(Scope(name="(unnamed)", line=punct_line, parent=stack[-1]))
                continue
            flush("{")
        else:  # "}"
            if words:
                unparsed(words[0].line, " ".join(w.text for w in words), "missing ';'")
                words = []
            if len(stack) == 1:
                unparsed(punct_line, "}", "unbalanced '}'")
            else:
                stack.pop()
    if words:
        unparsed(words[0].line, " ".join(w.text for w in words), "missing ';' at end of file")
    if len(stack) > 1:
        unparsed(stack[-1].line, stack[-1].name, "block not closed at end of file")
    _mark_snippet(scopes)
    return ParsedConfig(file=file, dialect="nginx", scopes=scopes, loose=loose)


def _mark_snippet(scopes: list[Scope]) -> None:
    # A snippet with TLS settings but no TLS server (an include file, a Mozilla-style
    # fragment): audit the outermost scope that holds them as if it served TLS.
    if any(s.tls for s in scopes):
        return
    for scope in scopes:
        if any(d.kind not in {"include", "unparsed"} for d in scope.directives) and not (
            scope.name.endswith("-> upstream TLS")
        ):
            scope.tls = True
            return


def _translate(name: str, setting: str, args: list[str], line: int, file: str) -> Directive:
    value = " ".join(args)
    if name == "ssl_protocols":
        versions = [protocol_name(a) for a in args]
        bad = [a for a, v in zip(args, versions, strict=True) if v is None]
        return Directive(
            file=file,
            line=line,
            setting=setting,
            value=value,
            kind="protocols",
            data=tuple(v for v in versions if v),
            note=f"not a protocol version: {', '.join(bad)}" if bad else "",
        )
    if name == "ssl_ciphers":
        return Directive(file=file, line=line, setting=setting, value=value, kind="cipher_string")
    if name == "ssl_ecdh_curve":
        data = ("DEFAULT",) if value.lower() == "auto" else tuple(value.split(":"))
        return Directive(
            file=file, line=line, setting=setting, value=value, kind="groups", data=data
        )
    if name == "ssl_conf_command":
        return conf_command_line(name, args, file=file, line=line, setting=setting)
    if name == "ssl_certificate":
        return Directive(file=file, line=line, setting=setting, value=value, kind="certificate")
    if name in _INFO or name == "ssl":
        return Directive(file=file, line=line, setting=setting, value=value, kind="info")
    return Directive(
        file=file,
        line=line,
        setting=setting,
        value=value,
        kind="unknown",
        note=f"{setting!r} is not an nginx TLS directive this tool knows",
    )


def looks_like(text: str) -> bool:
    """Whether ``text`` reads like an nginx configuration."""
    return bool(re.search(r"(?m)^\s*(server|http|stream)\s*\{|^\s*ssl_[a-z_]+\s+[^=]*;", text))
