"""Decompressing request bodies without letting a small body become a huge one.

A 1 MB gzip body can inflate to gigabytes; both decoders here stop at
`max_bytes` of output and refuse the request instead.
"""

from __future__ import annotations

import zlib

import cramjam

from hakon.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType


def _too_large(max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"decompressed body exceeds the limit of {max_bytes} bytes",
        details={"limit_bytes": max_bytes},
    )


def gunzip(body: bytes, max_bytes: int) -> bytes:
    inflater = zlib.decompressobj(wbits=47)  # gzip or zlib header, detected
    try:
        out = inflater.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise InvalidRequest(f"body is not valid gzip: {exc}", field="body") from None
    if len(out) > max_bytes:
        raise _too_large(max_bytes)
    if not inflater.eof:
        raise InvalidRequest("gzip body is truncated", field="body")
    return out


def snappy_block_length(body: bytes) -> int:
    """The uncompressed length a snappy block declares in its varint preamble."""
    length = shift = 0
    for i, byte in enumerate(body[:10]):
        length |= (byte & 0x7F) << shift
        if byte < 0x80:
            return length
        shift += 7
        if i == 4:
            break
    raise InvalidRequest("body is not valid snappy: bad length preamble", field="body")


def unsnappy(body: bytes, max_bytes: int) -> bytes:
    """Snappy *block* format, as remote_write uses (not the framed stream format)."""
    if snappy_block_length(body) > max_bytes:
        raise _too_large(max_bytes)
    try:
        return bytes(cramjam.snappy.decompress_raw(body))
    except Exception as exc:  # cramjam raises its own DecompressionError
        raise InvalidRequest(f"body is not valid snappy: {exc}", field="body") from None


def decode_body(body: bytes, encoding: str, allowed: tuple[str, ...], max_bytes: int) -> bytes:
    """Undo `Content-Encoding` (one of `allowed`, or identity)."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        if len(body) > max_bytes:
            raise _too_large(max_bytes)
        return body
    if encoding not in allowed:
        raise UnsupportedEncoding(encoding, allowed)
    if encoding in ("gzip", "x-gzip", "deflate"):
        return gunzip(body, max_bytes)
    return unsnappy(body, max_bytes)


class UnsupportedEncoding(UnsupportedMediaType):
    def __init__(self, encoding: str, allowed: tuple[str, ...]) -> None:
        super().__init__(
            f"Content-Encoding {encoding!r} is not supported here; use "
            + ", ".join(["identity", *allowed]),
            details={"field": "Content-Encoding", "supported": ["identity", *allowed]},
        )
