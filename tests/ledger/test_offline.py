"""The standalone verifier's shortcuts say exactly what RFC 8785 itself says.

``geodispatch.ledger.offline`` decides canonical form with orjson where that provably gives the
RFC 8785 bytes, event lines included. Each shortcut is checked here
against the exact definition (``rfc8785`` and the standard ``json`` parser): on every code point,
on generated values full of the constructs where the two serialisers differ, and on whole
exports with single bytes changed, against a verifier written the slow, obvious way.
"""

from __future__ import annotations

import contextlib
import json
import random
from pathlib import Path
from typing import Any

import orjson
import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from geodispatch.ledger.merkle import MerkleTree, leaf_hash
from geodispatch.ledger.offline import (
    _plain_event_line,
    event_line,
    header_line,
    is_canonical,
    verify_export,
)
from geodispatch.ledger.signing import TreeHead, log_id, public_key_pem


def _exact(raw: bytes) -> bool:
    """RFC 8785's own answer: does ``raw`` equal the canonical form of what it parses to?"""
    try:
        return bool(rfc8785.dumps(json.loads(raw)) == raw)
    except ValueError:  # not JSON, or a value RFC 8785 cannot write
        return False


def test_event_lines_escape_every_code_point_as_rfc8785() -> None:
    chars = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    for start in range(0, len(chars), 512):
        text = "".join(chars[start:start + 512])
        body = text.encode("utf-8")
        want = rfc8785.dumps({"seq": start, "body": text}) + b"\n"
        assert event_line(start, body) == want, hex(start)
    for seq in (0, 1, 2**53 - 1):
        assert event_line(seq, b'{"a":"\\"x\\""}') == \
            rfc8785.dumps({"seq": seq, "body": '{"a":"\\"x\\""}'}) + b"\n"


# Values rich in what orjson and RFC 8785 spell differently: integral and exponent floats,
# integers on both sides of 2**53, keys from U+E000 up and beyond the BMP, escapes.
_floats = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1.0, -0.0, 0.0, 1e16, 1e21, 1e-7, 1e-6, 5e-324, 2.5e-7, 1e15, 123.0,
                     1.7976931348623157e308, 0.1, 1230.8000000000002]))
_ints = st.one_of(st.integers(-(2**53) - 3, 2**53 + 3),
                  st.sampled_from([2**53 - 1, 2**53, -(2**53) + 1, -(2**53), 2**63, 10**16]))
_text = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["\ue000", "\uffff", "\U0001f600", "a\"b", "back\\slash", "tab\tnl\n",
                     "\x00\x1f", "x.0,y", "1e+5", "hmac-sha256:18e1", "вул. Хрещатик"]))
_json = st.recursive(
    st.one_of(st.none(), st.booleans(), _ints, _floats, _text),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(_text, inner, max_size=4)),
    max_leaves=12)


def _spellings(value: Any) -> list[bytes]:
    out = []
    with contextlib.suppress(ValueError):
        out.append(rfc8785.dumps(value))
    for opts in (orjson.OPT_SORT_KEYS, 0):
        with contextlib.suppress(TypeError):
            out.append(orjson.dumps(value, option=opts))
    for kw in ({"sort_keys": True, "separators": (",", ":"), "ensure_ascii": False},
               {"sort_keys": True}, {"separators": (",", ":")}):
        with contextlib.suppress(ValueError):
            out.append(json.dumps(value, allow_nan=False,
                                  **kw).encode("utf-8"))  # type: ignore[arg-type]
    return out


@settings(max_examples=600, deadline=None)
@given(_json)
def test_canonical_form_is_decided_as_rfc8785_decides_it(value: Any) -> None:
    for raw in _spellings(value):
        try:
            obj = json.loads(raw)
        except ValueError:
            continue
        assert is_canonical(raw, obj) == _exact(raw), raw


@settings(max_examples=400, deadline=None)
@given(st.one_of(_json.map(lambda v: json.dumps(v, ensure_ascii=False, allow_nan=False)),
                 st.text(max_size=40)),
       st.integers(0, 2**53 - 1),
       st.sampled_from(["", "space", "escape_a", "lead_zero", "slash", "ctrl", "quote"]))
def test_plain_event_lines_are_read_as_the_exact_parser_reads_them(
        body_text: str, seq: int, mutation: str) -> None:
    line = event_line(seq, body_text.encode("utf-8"))[:-1]
    if mutation == "space":
        line = line.replace(b'","seq":', b'", "seq":')
    elif mutation == "escape_a":
        line = line.replace(b"a", b"\\u0061", 1)
    elif mutation == "lead_zero":
        line = line.replace(b'"seq":', b'"seq":0')
    elif mutation == "slash":
        line = line.replace(b"/", b"\\/", 1)
    elif mutation == "ctrl":
        line = line.replace(b"e", b"\t", 1)
    elif mutation == "quote":
        line = line.replace(b'\\"', b'"', 1)
    plain = _plain_event_line(line)
    if plain is None:
        return
    got_seq, got_body = plain
    assert _exact(line)
    assert json.loads(line) == {"body": got_body.decode("utf-8"), "seq": got_seq}


def _export(tmp_path: Path, bodies: list[bytes]) -> tuple[Path, Any]:
    key = Ed25519PrivateKey.generate()
    pub = key.public_key()
    tree = MerkleTree(leaf_hash(b) for b in bodies)
    lid = log_id(pub)
    heads = [TreeHead(lid, n, tree.root(n).hex(), 1_700_000_000_000 + n).sign(key)
             for n in sorted({1, len(bodies) // 2, len(bodies)})]
    out = tmp_path / "log.jsonl"
    out.write_bytes(header_line(key=pub, heads=heads, tree_size=len(bodies), complete=True)
                    + b"".join(event_line(i, b) for i, b in enumerate(bodies)))
    return out, pub


def _reference_ok(path: Path, pub: Any) -> bool:
    """The export verified the slow, obvious way: every line and body through json and rfc8785."""
    data = path.read_bytes()
    if not data.endswith(b"\n"):
        return False
    lines = data[:-1].split(b"\n")
    if not all(_exact(line) for line in lines):
        return False
    header = json.loads(lines[0])
    try:
        heads = [TreeHead.from_dict(h) for h in header["tree_heads"]]
    except (ValueError, KeyError, TypeError):
        return False
    if header.get("log_id") != log_id(pub) or not all(h.verify(pub) for h in heads):
        return False
    if (header.get("format"), header.get("v"), header.get("complete")) != \
            ("geodispatch-log", 1, True) or header.get("public_key") != \
            public_key_pem(pub).decode("ascii"):
        return False
    leaves, last = [], {}
    for n, line in enumerate(lines[1:]):
        rec = json.loads(line)
        if set(rec) != {"body", "seq"} or rec["seq"] != n or not isinstance(rec["body"], str):
            return False
        body = rec["body"].encode("utf-8")
        if not _exact(body):
            return False
        ev = json.loads(body)
        iid, iseq = ev.get("incident_id"), ev.get("incident_seq")
        if isinstance(iid, int) and isinstance(iseq, int):
            if iseq != last.get(iid, 0) + 1:
                return False
            last[iid] = iseq
        leaves.append(leaf_hash(body))
    tree = MerkleTree(leaves)
    return (header["tree_size"] == tree.size and max(h.tree_size for h in heads) == tree.size
            and all(tree.root(h.tree_size).hex() == h.root_hash for h in heads))


def _bodies() -> list[bytes]:
    rng = random.Random(5)
    out = []
    for i in range(60):
        iid = 1 + i % 7
        state = {"incidents": [{"id": iid, "eta_s": rng.choice([120, 144.8, 0.5, 1e-7, 1e21]),
                                "address": rng.choice(["вул. Хрещатик, 1", 'say "hi"\n',
                                                       "C:\\path", "\ue000", "\U0001f600"]),
                                "h3": "617700000000004000", "big": 2**53 - 1,
                                "location": "0101000020e61000005623bee12a8c3e40"}]}
        ev = {"v": 1, "incident_id": iid, "incident_seq": i // 7 + 1, "kind": "note",
              "actor": "d1", "at": "2026-03-01T00:15:00.000000+00:00",
              "data": {"\ue000k": 1, "\U0001f600k": 2, "x": rng.random()}, "state": state}
        out.append(rfc8785.dumps(ev))
    return out


def test_an_export_verifies_and_every_single_changed_byte_is_caught(tmp_path: Path) -> None:
    path, pub = _export(tmp_path, _bodies())
    rep = verify_export(path, pub)
    assert rep.ok, rep.problems
    assert rep.events == rep.tree_size == 60 and rep.heads_checked == 3
    assert _reference_ok(path, pub)
    data = path.read_bytes()
    rng = random.Random(11)
    bad = tmp_path / "bad.jsonl"
    tried = 0
    for pos in rng.sample(range(len(data)), 400):
        for new in (data[pos] ^ 0x01, ord(" "), ord("\\")):
            if new == data[pos]:
                continue
            forged = bytearray(data)
            forged[pos] = new
            bad.write_bytes(bytes(forged))
            assert verify_export(bad, pub).ok == _reference_ok(bad, pub) is False, (pos, new)
            tried += 1
    assert tried > 1000


@pytest.mark.parametrize("edit", [
    lambda d: d.replace(b'"seq":3}', b'"seq":03}'),            # a leading zero
    lambda d: d.replace(b'\\"kind\\"', b'\\"ki\\u006ed\\"', 1),  # an escaped letter
    lambda d: d.replace(b"120", b"120.0", 1),                  # an integral float
    lambda d: d.replace(b"1e+21", b"1E+21", 1),               # another exponent spelling
    lambda d: d[: d.rindex(b"\n", 0, len(d) - 1) + 1],         # the last event cut off
])
def test_respelt_exports_are_refused(tmp_path: Path, edit: Any) -> None:
    path, pub = _export(tmp_path, _bodies())
    data = path.read_bytes()
    changed = edit(data)
    assert changed != data
    path.write_bytes(changed)
    assert not verify_export(path, pub).ok
    assert not _reference_ok(path, pub)


def test_reading_in_parallel_gives_the_same_report(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import geodispatch.ledger.offline as offline

    path, pub = _export(tmp_path, _bodies())
    data = path.read_bytes()
    monkeypatch.setattr(offline, "PARALLEL_BYTES", 0)
    rng = random.Random(3)
    variants = [data, data.replace(b'"seq":3}', b'"seq":03}'),
                data[: data.index(b"\n") + 1] + b"\n".join(
                    data[data.index(b"\n") + 1:].split(b"\n")[::-1][1:]) + b"\n"]
    for pos in rng.sample(range(len(data)), 40):
        forged = bytearray(data)
        forged[pos] ^= 0x01
        variants.append(bytes(forged))
    for k, variant in enumerate(variants):
        path.write_bytes(variant)
        one, three = verify_export(path, pub, workers=1), verify_export(path, pub, workers=3)
        assert one.as_dict() == three.as_dict(), k
