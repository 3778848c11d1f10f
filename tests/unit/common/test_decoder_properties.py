"""Every decoder of what arrives from outside, fed arbitrary bytes: it returns its type or
raises its own error, never anything else (no crash a bad record could trigger)."""

from __future__ import annotations

from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st
from rts_common.contracts import TOPICS, BadMessage, FrameMeta

header_values = st.one_of(st.none(), st.binary(max_size=40), st.text(max_size=40))
names = st.sampled_from(["seq", "ts", "w", "h", "crc", "x"])
headers = st.one_of(st.none(), st.lists(st.tuples(names, header_values), max_size=8))
keys = st.one_of(st.none(), st.binary(max_size=300))
values = st.one_of(
    st.none(),
    st.binary(max_size=2000),
    # Almost-valid JSON reaches deeper into the validators than random bytes.
    st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20)),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=12), children, max_size=6)
        ),
        max_leaves=20,
    ).map(lambda doc: __import__("json").dumps(doc).encode()),
)


@settings(max_examples=300, deadline=None)
@given(keys, values, headers)
@example(b"k", b"[" * 10_000 + b"]" * 10_000, None)  # nesting past every parser's limit
@example(b"k", b'{"a":' * 10_000 + b"1" + b"}" * 10_000, None)
@example(b"k", b"\xff\xfe{", None)  # not UTF-8
@example(b"k", b'{"event_id": "' + b"x" * (10 << 20) + b'"}', None)  # 10 MB
def test_every_topic_decoder_returns_its_type_or_bad_message(
    key: bytes | None, value: bytes | None, record_headers: Any
) -> None:
    reasons = set()
    for spec in TOPICS:
        try:
            spec.decode(key, value, record_headers)
        except BadMessage as bad:
            reasons.add(bad.reason)
    assert "" not in reasons


@settings(max_examples=300, deadline=None)
@given(keys, headers)
def test_frame_headers_parse_or_raise_bad_message(key: bytes | None, record_headers: Any) -> None:
    try:
        meta = FrameMeta.from_record(key, record_headers)
    except BadMessage:
        return
    assert meta.width > 0
    assert meta.height > 0
