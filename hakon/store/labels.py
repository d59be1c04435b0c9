"""Series identity: canonical label sets, stable 64-bit ids, and label matchers.

A series id is xxh64 (seed 0) of the canonical encoding of its sorted label
set, each name and value length-prefixed so no two label sets share an
encoding. xxh64 is specified byte for byte, so ids are stable across restarts,
machines and versions. Ids are kept as signed int64 (the same 64 bits) because
numpy, Arrow and DuckDB all handle int64 best.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import msgspec
import numpy as np
import xxhash

from hakon.store.regex import Regex

METRIC_NAME = "__name__"
Labels = tuple[tuple[str, str], ...]
_SIGN = 1 << 63


def canonical(labels: Mapping[str, str] | Iterable[tuple[str, str]]) -> Labels:
    """Sorted (name, value) pairs without empty values (an empty value means "absent")."""
    pairs = labels.items() if isinstance(labels, Mapping) else labels
    return tuple(sorted((k, v) for k, v in pairs if v != ""))


_encoded_pairs: dict[tuple[str, str], bytes] = {}


def _pair_bytes(pair: tuple[str, str]) -> bytes:
    n, v = pair[0].encode(), pair[1].encode()
    return b"%d:%b%d:%b" % (len(n), n, len(v), v)


def _encode_pair(pair: tuple[str, str]) -> bytes:
    out = _pair_bytes(pair)
    if len(_encoded_pairs) >= 1 << 20:
        _encoded_pairs.clear()
    _encoded_pairs[pair] = out
    return out


def encode(labels: Labels) -> bytes:
    # Pairs repeat across series (cluster, namespace, node, ...): encoding each
    # pair once and joining cached bytes makes a new series several times cheaper.
    get = _encoded_pairs.get
    return b"".join([get(pair) or _encode_pair(pair) for pair in labels])


def series_id(labels: Labels) -> int:
    """Stable signed 64-bit id of a canonical label set."""
    return id_of_encoded(encode(labels))


def id_of_encoded(encoded: bytes) -> int:
    """The id of a label set from its `encode`d bytes (for callers that build them in parts)."""
    return signed_id(xxhash.xxh64_intdigest(encoded))


def signed_id(h: int) -> int:
    """An unsigned 64-bit xxh64 digest as the signed id that holds the same bits."""
    return h - (1 << 64) if h >= _SIGN else h


def encode_pair(pair: tuple[str, str]) -> bytes:
    return _encoded_pairs.get(pair) or _encode_pair(pair)


_encode_json = msgspec.json.Encoder().encode
_decode_json = msgspec.json.Decoder(list[tuple[str, str]]).decode
_decode_many_json = msgspec.json.Decoder(list[list[tuple[str, str]]]).decode


def encode_labels(labels: Labels) -> bytes:
    """A label set as text (JSON pairs): how the catalog and WAL series records keep it,
    and how decode workers hand new series to the server."""
    return _encode_json(labels)


def decode_labels(text: bytes | str) -> Labels:
    """Inverse of `encode_labels`; ValueError when `text` is not one."""
    try:
        return tuple(_decode_json(text))
    except msgspec.DecodeError as exc:
        raise ValueError(str(exc)) from None


def decode_many_labels(texts: Sequence[bytes]) -> list[Labels]:
    """`decode_labels` of many texts in one call into the decoder (ValueError if any is
    not one)."""
    try:
        return list(map(tuple, _decode_many_json(b"[" + b",".join(texts) + b"]")))
    except msgspec.DecodeError as exc:
        raise ValueError(str(exc)) from None


_pair_pieces: dict[tuple[str, str], tuple[bytes, bytes]] = {}


def pair_pieces(pair: tuple[str, str]) -> tuple[bytes, bytes]:
    """(`encode_pair`, `,` + the pair's text) of a pair, cached together.

    A label set's `encode_labels` text is `[` + its pairs' texts joined by `,` + `]`,
    so a decoder composes the ids and the texts of series that share most of their
    pairs (a resource's) from cached pieces, looking each pair up once."""
    found = _pair_pieces.get(pair)
    if found is None:
        if len(_pair_pieces) >= 1 << 20:
            _pair_pieces.clear()
        found = _pair_pieces[pair] = (_pair_bytes(pair), b"," + _encode_json(pair))
    return found


def series_ids(label_sets: Iterable[Labels]) -> np.ndarray:
    return np.fromiter((series_id(ls) for ls in label_sets), dtype=np.int64)


def metric_name(labels: Labels) -> str:
    for name, value in labels:
        if name == METRIC_NAME:
            return value
    return ""


@dataclass(frozen=True)
class Matcher:
    """A Prometheus label matcher: `=`, `!=`, `=~`, `!~`.

    As in Prometheus, an absent label has the value "", regexes are fully
    anchored, and `name=""` matches series without the label.
    """

    name: str
    op: str
    value: str
    _regex: Regex | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.op not in ("=", "!=", "=~", "!~"):
            raise ValueError(f"unknown matcher operator {self.op!r}")
        if self.op in ("=~", "!~"):
            object.__setattr__(self, "_regex", Regex(self.value))  # RegexError is a ValueError

    def matches(self, value: str) -> bool:
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        assert self._regex is not None
        hit = self._regex.test(value)
        return hit if self.op == "=~" else not hit

    @property
    def matches_empty(self) -> bool:
        return self.matches("")
