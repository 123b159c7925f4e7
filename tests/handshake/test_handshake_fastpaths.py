"""The handshake's fast paths agree with the general code they stand in for.

- ``CatKdf`` (the combiner with its per-peer inputs bound once) derives what ``catkdf`` does;
- ``encode_finished`` and the hello templates produce the frames ``encode`` does, and refuse
  what the message classes refuse; the decoder's fast paths (a hello layout seen before, a
  Finished) decode what the full path does;
- the engine loads signature keys once, and a malformed one fails when the engine is built;
- a handshake reuses its config's prepared combiner across connections and peers safely.
"""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agile._errors import EngineError, HandshakeError
from agile.engine import Engine, Identity
from agile.handshake.messages import (
    AuthMethod,
    ClientHello,
    Finished,
    HelloTemplate,
    KeyShare,
    ServerHello,
    decode,
    encode,
    encode_finished,
)
from agile.kdf import CatKdf, KdfError, catkdf, hash_names

from .conftest import make_policy, run_in_memory

secret = st.binary(min_size=1, max_size=80)
message = st.binary(min_size=0, max_size=300)


@settings(max_examples=60, deadline=None)
@given(
    secrets=st.lists(secret, min_size=1, max_size=3),
    ma=message,
    mb=message,
    info=st.binary(max_size=100),
    label=st.binary(max_size=40),
    psk=st.one_of(st.just(b""), secret),
    hash_name=st.sampled_from(hash_names()),
    kdf=st.sampled_from(["hkdf", "hmac"]),
    length=st.integers(min_value=1, max_value=200),
)
def test_prepared_catkdf_equals_catkdf(
    secrets: list[bytes],
    ma: bytes,
    mb: bytes,
    info: bytes,
    label: bytes,
    psk: bytes,
    hash_name: str,
    kdf: str,
    length: int,
) -> None:
    params: dict[str, Any] = {
        "info": info,
        "label": label,
        "length": length,
        "hash_name": hash_name,
        "psk": psk,
        "kdf": kdf,
    }
    prepared = CatKdf(**params)
    expected = catkdf(secrets, ma=ma, mb=mb, **params)
    assert prepared.derive(secrets, ma=ma, mb=mb) == expected
    assert prepared.derive(secrets, ma=ma, mb=mb) == expected  # the bound state is not consumed


def test_prepared_catkdf_with_kmac_equals_catkdf() -> None:
    params: dict[str, Any] = {"info": b"i", "label": b"l", "length": 32, "psk": b"p" * 32}
    prepared = CatKdf(kdf="kmac128", **params)
    assert prepared.derive([b"k" * 32], ma=b"A", mb=b"B") == catkdf(
        [b"k" * 32], ma=b"A", mb=b"B", kdf="kmac128", **params
    )


def test_prepared_catkdf_refuses_what_catkdf_refuses() -> None:
    with pytest.raises(KdfError, match="cannot produce"):
        CatKdf(info=b"", label=b"", length=255 * 32 + 1)
    with pytest.raises(KdfError, match="unknown hash"):
        CatKdf(info=b"", label=b"", length=32, hash_name="MD5")
    with pytest.raises(KdfError, match="at least one secret"):
        CatKdf(info=b"", label=b"", length=32).derive([], ma=b"", mb=b"")


def test_prepared_catkdf_hides_and_keeps_its_psk() -> None:
    psk = bytes(range(32))
    prepared = CatKdf(info=b"i", label=b"l", length=32, psk=psk)
    assert psk.hex() not in repr(prepared)
    with pytest.raises(TypeError, match="pickled"):
        pickle.dumps(prepared)


@pytest.mark.parametrize("size", [32, 48, 64])
def test_encode_finished_is_encode_of_finished(size: int) -> None:
    data = bytes(range(size))
    frame = encode_finished(data)
    assert frame == encode(Finished(verify_data=data))
    assert decode(frame) == Finished(verify_data=data)


@pytest.mark.parametrize("bad", [b"", b"x" * 31, b"x" * 65, bytearray(32)])
def test_fast_encoders_refuse_what_the_messages_refuse(bad: Any) -> None:
    with pytest.raises(HandshakeError, match="verify_data"):
        encode_finished(bad)


_KEMS = ("ML-KEM-768", "DHKEM(X25519, HKDF-SHA256)")
_UUID = "00000000-0000-0000-0000-000000000007"


@settings(max_examples=40, deadline=None)
@given(
    random=st.binary(min_size=32, max_size=32),
    keys=st.lists(st.binary(min_size=1, max_size=1300), min_size=2, max_size=2),
    key_ids=st.sampled_from([(), (_UUID,)]),
    psk=st.booleans(),
    binder=st.binary(min_size=32, max_size=64),
    fingerprint=st.sampled_from(["sha256:" + "ab" * 32, "fp-2"]),
)
def test_client_hello_template_is_encode_of_client_hello(
    random: bytes,
    keys: list[bytes],
    key_ids: tuple[str, ...],
    psk: bool,
    binder: bytes,
    fingerprint: str,
) -> None:
    method = AuthMethod.PSK if psk else AuthMethod.SIGNATURE
    fixed: dict[str, Any] = {
        "policy_fingerprint": fingerprint,
        "combiner": "catkdf",
        "hash_name": "SHA-256",
        "suites": (_KEMS, (_KEMS[0],)),
        "auth_method": method,
        "psk_id": "site" if psk else "",
    }
    template = HelloTemplate.client_hello(algorithms=_KEMS, **fixed)
    hello = ClientHello(
        random=random,
        key_shares=tuple(
            KeyShare(algorithm=a, public_key=k) for a, k in zip(_KEMS, keys, strict=True)
        ),
        qkd_key_ids=key_ids,
        psk_binder=binder if psk else b"",
        **fixed,
    )
    if psk:
        frame = template.client(random, keys, key_ids, binder_length=len(binder)) + binder
    else:
        frame = template.client(random, keys, key_ids)
    assert frame == encode(hello)
    # Decoded twice: the second time through the cache of accepted hello layouts.
    assert decode(frame) == hello
    assert decode(frame) == hello


@settings(max_examples=40, deadline=None)
@given(
    random=st.binary(min_size=32, max_size=32),
    cts=st.lists(st.binary(min_size=1, max_size=1100), min_size=0, max_size=3),
    key_ids=st.sampled_from([(), (_UUID,)]),
)
def test_server_hello_template_is_encode_of_server_hello(
    random: bytes, cts: list[bytes], key_ids: tuple[str, ...]
) -> None:
    suite = (*_KEMS, "QKD")
    template = HelloTemplate.server_hello(policy_fingerprint="fp", suite=suite)
    hello = ServerHello(
        random=random,
        policy_fingerprint="fp",
        suite=suite,
        ciphertexts=tuple(cts),
        qkd_key_ids=key_ids,
    )
    frame = template.server(random, cts, key_ids)
    assert frame == encode(hello)
    assert decode(frame) == hello
    assert decode(frame) == hello


def test_templates_refuse_what_the_messages_refuse() -> None:
    with pytest.raises(HandshakeError, match="name"):
        HelloTemplate.server_hello(policy_fingerprint="bad name\n", suite=_KEMS)
    with pytest.raises(HandshakeError, match="twice"):
        HelloTemplate.server_hello(policy_fingerprint="fp", suite=(_KEMS[0], _KEMS[0]))
    template = HelloTemplate.client_hello(
        policy_fingerprint="fp",
        combiner="catkdf",
        hash_name="SHA-256",
        suites=(_KEMS,),
        algorithms=_KEMS,
        auth_method=AuthMethod.SIGNATURE,
        psk_id="",
    )
    with pytest.raises(HandshakeError, match="psk_binder"):
        template.client(bytes(32), [b"k", b"x"], binder_length=32)
    with pytest.raises(HandshakeError, match="public_key"):
        template.client(bytes(32), [b"k", b""])
    with pytest.raises(HandshakeError, match="random"):
        template.client(bytes(31), [b"k", b"x"])
    with pytest.raises(HandshakeError, match="UUID"):
        template.client(bytes(32), [b"k", b"x"], ("not-a-uuid",))


def test_a_cached_hello_prefix_does_not_hide_a_bad_remainder() -> None:
    """A ClientHello like one seen before but for a changed field is checked in full."""
    template = HelloTemplate.client_hello(
        policy_fingerprint="fp-cache",
        combiner="catkdf",
        hash_name="SHA-256",
        suites=(_KEMS,),
        algorithms=_KEMS,
        auth_method=AuthMethod.SIGNATURE,
        psk_id="",
    )
    good = template.client(bytes(32), [b"k", b"x"])
    decode(good)  # its layout is now cached
    # The same prefix, then an empty key share: refused as before.
    with pytest.raises(HandshakeError, match="public_key"):
        decode(_reframe(good.replace(b"\x00\x00\x00\x01x", b"\x00\x00\x00\x00")))
    # The same prefix, then a PSK binder on a hello that authenticates by signatures.
    assert good.endswith(b"\x00")
    with pytest.raises(HandshakeError, match="psk_binder"):
        decode(_reframe(good[:-1] + b"\x01z"))


def _reframe(frame: bytes) -> bytes:
    """``frame`` with its header's body length fixed after an edit."""
    return frame[:3] + (len(frame) - 7).to_bytes(4, "big") + frame[7:]


def _signature_policy() -> Any:
    return make_policy(
        auth={"method": "signature", "signature_algorithms": ["ML-DSA-65", "Ed25519"]},
        qkd={"source": "none", "required": False},
        suites=[{"name": "pq", "components": ["ML-KEM-768", "DHKEM(X25519, HKDF-SHA256)"]}],
    )


def test_engine_loads_signature_keys_once() -> None:
    policy = _signature_policy()
    me, peer = Identity.generate(policy), Identity.generate(policy)
    engine = Engine(policy, signing_keys=me.signing_keys, peer_public_keys=dict(peer.public_keys))
    for signer in engine.config.signers:
        assert signer.key.info.name == signer.algorithm
        assert "SignaturePrivateKey" in repr(signer.key)
        assert me.signing_keys[signer.algorithm].reveal().hex() not in repr(engine.config)
    for verifier in engine.config.verifiers:
        assert verifier.key.public_bytes == peer.public_keys[verifier.algorithm]


def test_malformed_keys_fail_when_the_engine_is_built() -> None:
    policy = _signature_policy()
    me, peer = Identity.generate(policy), Identity.generate(policy)
    short_signing = dict(me.signing_keys)
    short_signing["ML-DSA-65"] = me.signing_keys["ML-DSA-65"].reveal()[:-1]  # type: ignore[assignment]
    with pytest.raises(EngineError, match=r"our ML-DSA-65 signing key is unusable"):
        Engine(policy, signing_keys=short_signing, peer_public_keys=dict(peer.public_keys))
    bad_peer = dict(peer.public_keys)
    bad_peer["Ed25519"] = bad_peer["Ed25519"][:-1]
    with pytest.raises(EngineError, match=r"peer's Ed25519 public key is unusable"):
        Engine(policy, signing_keys=me.signing_keys, peer_public_keys=bad_peer)


def test_prepared_combiner_is_per_peer_and_reused() -> None:
    """One responder config serves two initiators with different policies (fingerprints):
    each pair derives matching keys, and the cache holds one prepared combiner per pair."""
    suites = [{"name": "pq", "components": ["ML-KEM-768", "DHKEM(X25519, HKDF-SHA256)"]}]
    base: dict[str, Any] = {
        "auth": {"method": "psk", "psk_id": "t"},
        "qkd": {"source": "none", "required": False},
        "suites": suites,
    }
    responder_policy = make_policy(**base)
    first = make_policy(**base)
    second = make_policy(**base, name="test-policy-b")
    assert first.fingerprint != second.fingerprint
    psk = bytes(range(32))
    responder_engine = Engine(responder_policy, psk=psk)
    for initiator_policy in (first, second, first):
        initiator_engine = Engine(initiator_policy, psk=psk)
        ours, theirs = run_in_memory(initiator_engine.initiator(), responder_engine.responder())
        assert ours is not None
        assert theirs is not None
        assert ours.key == theirs.key
    cached = [k for k in responder_engine.config.cache if k[0] == "catkdf"]
    fingerprints = {first.fingerprint, second.fingerprint}
    assert {k[1][0] for k in cached} == fingerprints


def test_the_hello_layout_cache_is_bounded() -> None:
    from agile.handshake import messages

    for n in range(messages._LAYOUT_CACHE_SIZE + 5):
        template = HelloTemplate.server_hello(policy_fingerprint=f"fp-bound-{n}", suite=_KEMS)
        frame = template.server(bytes(32), [b"c", b"e"])
        decoded = decode(frame)
        assert isinstance(decoded, ServerHello)
        assert decoded.policy_fingerprint == f"fp-bound-{n}"
        assert decode(frame) == decoded  # now from the cache
    entries = messages._SH_LAYOUTS.entries
    assert len(entries) == messages._LAYOUT_CACHE_SIZE
    assert entries[-1].fields[0] == f"fp-bound-{messages._LAYOUT_CACHE_SIZE + 4}"


def _full_decode(frame: bytes) -> Any:
    """What the decoder makes of ``frame`` with no layout remembered (the full path)."""
    from agile.handshake import messages

    saved = (messages._CH_LAYOUTS.entries, messages._SH_LAYOUTS.entries)
    messages._CH_LAYOUTS.entries = messages._SH_LAYOUTS.entries = ()
    try:
        return decode(frame)
    except HandshakeError as exc:
        return ("refused", str(exc))
    finally:
        messages._CH_LAYOUTS.entries, messages._SH_LAYOUTS.entries = saved


def _psk_template() -> HelloTemplate:
    return HelloTemplate.client_hello(
        policy_fingerprint="fp-layout",
        combiner="catkdf",
        hash_name="SHA-256",
        suites=(_KEMS, (_KEMS[0],)),
        algorithms=_KEMS,
        auth_method=AuthMethod.PSK,
        psk_id="site",
    )


def _psk_hello() -> bytes:
    return _psk_template().client(bytes(32), [b"k" * 5, b"x" * 3], binder_length=4) + b"BIND"


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_a_remembered_layout_decodes_what_the_full_path_does(data: st.DataObject) -> None:
    """Decode a hello (its layout is remembered), then change any one byte, or cut or extend
    it: the decoder, through the layout or not, gives exactly what the full path gives
    (the same message, or a refusal)."""
    server = HelloTemplate.server_hello(policy_fingerprint="fp-layout", suite=_KEMS)
    good = data.draw(st.sampled_from([_psk_hello(), server.server(bytes(32), [b"c" * 4, b"e"])]))
    assert decode(good) == _full_decode(good)  # remembered now
    edit = data.draw(st.sampled_from(["flip", "cut", "extend"]))
    if edit == "flip":
        at = data.draw(st.integers(min_value=0, max_value=len(good) - 1))
        value = data.draw(st.integers(min_value=0, max_value=255))
        frame = good[:at] + bytes([value]) + good[at + 1 :]
    elif edit == "cut":
        frame = good[: data.draw(st.integers(min_value=0, max_value=len(good) - 1))]
    else:
        frame = good + data.draw(st.binary(min_size=1, max_size=8))
    if data.draw(st.booleans()) and len(frame) >= 7:
        frame = _reframe(frame)
    try:
        through_layout: Any = decode(frame)
    except HandshakeError as exc:
        through_layout = ("refused", str(exc))
    assert through_layout == _full_decode(frame)


def test_a_layout_only_varies_the_random_keys_and_binder() -> None:
    """A new random, new key shares and a new binder of the same lengths decode through the
    layout to a hello with exactly those bytes."""
    from agile.handshake import messages

    decode(_psk_hello())
    layout = next(e for e in messages._CH_LAYOUTS.entries if e.match(_psk_hello()) is not None)
    frame = _psk_template().client(b"r" * 32, [b"K" * 5, b"X" * 3], binder_length=4) + b"b1nd"
    assert layout.match(frame) == (b"r" * 32, b"K" * 5, b"X" * 3, b"b1nd")
    hello = decode(frame)
    assert isinstance(hello, ClientHello)
    assert (hello.random, hello.psk_binder) == (b"r" * 32, b"b1nd")
    assert [s.public_key for s in hello.key_shares] == [b"K" * 5, b"X" * 3]
    assert hello.psk_id == "site"
