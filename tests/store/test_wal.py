import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from hakon.store.wal import SeriesRecord, Wal, decode_records, encode_samples, encode_series


def record(n: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    return encode_samples(
        rng.integers(-(2**63), 2**63 - 1, n), rng.integers(0, 2**40, n), rng.normal(size=n)
    )


def test_round_trip_keeps_bits() -> None:
    values = np.array([np.nan, -0.0, np.inf, 1e-308, 5e-324], dtype=np.float64)
    data = encode_samples(np.arange(5), np.arange(5) * 1000, values)
    (rec,), end, problem = decode_records(data)
    assert problem is None and end == len(data)
    assert rec.values.view(np.int64).tolist() == values.view(np.int64).tolist()


@given(st.binary(max_size=2000))
@settings(max_examples=300)
def test_decoder_never_crashes_on_arbitrary_bytes(data: bytes) -> None:
    _records, end, problem = decode_records(data)
    assert 0 <= end <= len(data)
    assert problem is not None or end == len(data)


@given(st.integers(min_value=1, max_value=200), st.data())
@settings(max_examples=100)
def test_any_torn_tail_keeps_exactly_the_whole_records(n: int, data) -> None:
    good = record(n, 1) + record(3, 2)
    cut = data.draw(st.integers(min_value=0, max_value=len(good) - 1))
    records, end, _problem = decode_records(good[:cut])
    whole = [r for r in (record(n, 1), record(3, 2))]
    assert end == (len(whole[0]) if cut >= len(whole[0]) else 0)
    assert len(records) == (1 if cut >= len(whole[0]) else 0)


def test_replay_cuts_a_corrupt_tail_and_keeps_the_rest(tmp_path) -> None:
    wal = Wal(tmp_path, 1 << 20)
    wal.write([record(10, 1)])
    wal.write([record(20, 2)])
    wal.close()
    path = wal.path(1)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF  # flip a bit in the second record's values
    path.write_bytes(bytes(data))
    reopened = Wal(tmp_path, 1 << 20)
    assert [len(r.timestamps) for r in reopened.replay(0)] == [10]
    assert path.stat().st_size == len(record(10, 1))  # cut at the last good record
    assert reopened.current == 2  # new writes go to a fresh segment


def test_series_records_round_trip_among_sample_records() -> None:
    texts = [b'[["__name__","up"],["job","a"]]', b"", b'[["__name__","\\u00e9"]]']
    ids = np.array([5, -(2**63), 2**63 - 1], dtype=np.int64)
    data = encode_series(ids, texts) + record(4, 3) + encode_series(ids[:0], [])
    (series, samples, empty), end, problem = decode_records(data)
    assert problem is None and end == len(data)
    assert isinstance(series, SeriesRecord) and isinstance(empty, SeriesRecord)
    assert series.ids.tolist() == ids.tolist() and series.labels == texts
    assert len(samples.timestamps) == 4 and empty.labels == []


def test_a_series_record_whose_parts_disagree_ends_the_segment() -> None:
    import struct
    import zlib

    good = encode_series(np.array([1, 2]), [b"ab", b"cd"])
    payload = bytearray(good[12:])
    struct.pack_into("<I", payload, 8 + 16 + 4, 99)  # the last text "ends" past the blob
    bad = struct.pack("<HBBII", 0x4B48, 2, 0, len(payload), zlib.crc32(payload)) + payload
    records, end, problem = decode_records(record(2) + bytes(bad))
    assert len(records) == 1 and end == len(record(2)) and problem == "bad series record"
