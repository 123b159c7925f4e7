"""Hypothesis strategies for every valid handshake message (the codec's property tests).

Each strategy draws any message that the classes accept: names of 1-128 printable ASCII
characters without a leading or trailing space, canonical UUID key IDs, lists up to their
limits, byte strings of any length the field allows (kept short where the limit is large, so
that examples stay fast).
"""

from __future__ import annotations

from hypothesis import strategies as st

from agile.handshake.messages import (
    Auth,
    AuthMethod,
    ClientHello,
    Finished,
    KeyShare,
    Message,
    ServerHello,
    SignatureEntry,
)

names = (
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=128)
    .map(str.strip)
    .filter(bool)
)
key_ids = st.lists(st.uuids().map(str), max_size=16, unique=True).map(tuple)
suite = st.lists(names, min_size=1, max_size=6, unique=True).map(tuple)
blobs = st.binary(min_size=1, max_size=300)


@st.composite
def client_hellos(draw: st.DrawFn) -> ClientHello:
    method = draw(st.sampled_from(AuthMethod))
    shares = draw(st.lists(st.tuples(names, blobs), max_size=32, unique_by=lambda s: s[0]))
    return ClientHello(
        random=draw(st.binary(min_size=32, max_size=32)),
        policy_fingerprint=draw(names),
        combiner=draw(names),
        hash_name=draw(names),
        suites=tuple(draw(st.lists(suite, min_size=1, max_size=16, unique=True))),
        key_shares=tuple(KeyShare(algorithm=a, public_key=k) for a, k in shares),
        qkd_key_ids=draw(key_ids),
        auth_method=method,
        psk_id=draw(st.one_of(st.just(""), names)),
        psk_binder=draw(st.binary(max_size=64)) if method is AuthMethod.PSK else b"",
    )


@st.composite
def server_hellos(draw: st.DrawFn) -> ServerHello:
    return ServerHello(
        random=draw(st.binary(min_size=32, max_size=32)),
        policy_fingerprint=draw(names),
        suite=draw(suite),
        ciphertexts=tuple(draw(st.lists(blobs, max_size=6))),
        qkd_key_ids=draw(key_ids),
    )


@st.composite
def auths(draw: st.DrawFn) -> Auth:
    entries = draw(
        st.lists(
            st.tuples(names, st.binary(min_size=1, max_size=400)),
            min_size=1,
            max_size=4,
            unique_by=lambda s: s[0],
        )
    )
    return Auth(signatures=tuple(SignatureEntry(algorithm=a, signature=s) for a, s in entries))


finisheds = st.binary(min_size=32, max_size=64).map(lambda mac: Finished(verify_data=mac))

MESSAGE_STRATEGIES: dict[str, st.SearchStrategy[Message]] = {
    "ClientHello": client_hellos(),
    "ServerHello": server_hellos(),
    "Auth": auths(),
    "Finished": finisheds,
}
messages = st.one_of(*MESSAGE_STRATEGIES.values())
