"""ByteKeyTable: exact lookups of byte ranges, whatever the hashes do."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from hakon.ingest.bytekeys import MAX_KEY, ByteKeyTable, padded

keys_st = st.lists(st.binary(min_size=1, max_size=MAX_KEY), min_size=1, max_size=40)


def _layout(keys: list[bytes], gap: bytes) -> tuple[bytes, np.ndarray, np.ndarray]:
    """The keys laid out one after another with `gap` between (as in a request)."""
    starts, out, at = [], [], 0
    for k in keys:
        out += [gap, k]
        at += len(gap)
        starts.append(at)
        at += len(k)
    return padded(b"".join(out)), np.array(starts), np.array([len(k) for k in keys])


def _fill(table: ByteKeyTable, keys: list[bytes]) -> dict[bytes, int]:
    buffer, starts, lengths = _layout(keys, b"")
    hashes = table.hashes(buffer, starts, lengths).tolist()
    model: dict[bytes, int] = {}
    for key, h in zip(keys, hashes, strict=True):
        if key not in model and table.add(key, h, sid := 1000 + len(model)):
            model[key] = sid
    return model


@settings(max_examples=200, deadline=None)
@given(keys_st, keys_st, st.binary(max_size=9))
def test_lookup_finds_exactly_the_keys_added(added: list[bytes], asked: list[bytes], gap: bytes):
    table = ByteKeyTable()
    model = _fill(table, added)
    buffer, starts, lengths = _layout(asked + added, gap)
    ids, found, _ = table.lookup(buffer, starts, lengths)
    for key, sid, hit in zip(asked + added, ids.tolist(), found.tolist(), strict=True):
        assert hit == (key in model)
        if hit:
            assert sid == model[key]


def test_keys_differing_only_past_a_word_or_in_length_stay_apart():
    base = bytes(range(1, 17))
    keys = [base, base + b"\0", base[:15], base[:15] + b"\1", b"\0" * 8, b"\0" * 9, b"x" * MAX_KEY]
    table = ByteKeyTable()
    model = _fill(table, keys)
    assert len(model) == len(keys)
    buffer, starts, lengths = _layout(keys, b"\xff" * 3)
    ids, found, _ = table.lookup(buffer, starts, lengths)
    assert found.all()
    assert ids.tolist() == [model[k] for k in keys]


def test_a_hash_collision_is_refused_and_never_confuses_keys():
    table = ByteKeyTable()
    assert table.add(b"first", 12345, 1)
    assert not table.add(b"other", 12345, 2)  # the caller keeps this one elsewhere
    table._hash = lambda words, lengths: np.full(len(lengths), 12345, np.uint64)  # type: ignore[method-assign]
    buffer, starts, lengths = _layout([b"other", b"first"], b"")
    ids, found, _ = table.lookup(buffer, starts, lengths)
    assert found.tolist() == [False, True]
    assert int(ids[1]) == 1


def test_growing_keeps_every_key():
    keys = [i.to_bytes(4, "little") * (1 + i % 9) for i in range(20_000)]
    table = ByteKeyTable()
    model = _fill(table, keys)
    assert len(table) == len(model) == len(keys)
    buffer, starts, lengths = _layout(keys, b"")
    ids, found, _ = table.lookup(buffer, starts, lengths)
    assert found.all()
    assert ids.tolist() == [model[k] for k in keys]
    table.clear()
    assert not table.lookup(buffer, starts, lengths)[1].any()


def test_long_probe_sequences_find_their_keys_and_misses_end_at_a_gap():
    """Hashes crowded into one bucket make probe sequences hundreds of positions long:
    lookups run vectorized rounds and finish the last few keys one by one."""

    def crowded(words: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        # One low bits for all (one bucket), distinct high bits per key.
        return ((words[:, 0] % np.uint64(1 << 40)) << np.uint64(16)) | np.uint64(5)

    table = ByteKeyTable()
    table._hash = crowded  # type: ignore[method-assign]
    keys = [i.to_bytes(8, "little") for i in range(1, 301)]
    model = _fill(table, keys)
    assert len(model) == len(keys)
    absent = [i.to_bytes(8, "little") for i in range(1001, 1041)]
    asked = absent[:20] + keys[::-1] + absent[20:]
    buffer, starts, lengths = _layout(asked, b"\x07")
    ids, found, _ = table.lookup(buffer, starts, lengths)
    assert found.tolist() == [k in model for k in asked]
    assert ids[found].tolist() == [model[k] for k in asked if k in model]
