"""Decode worker processes and the socket each one is driven through.

Why not `ProcessPoolExecutor`: its feeder and result threads pickle every
body and every result under this process's GIL, and a finished result waits
in a 64 KiB pipe until the result thread wins the GIL back from the event
loop, so the worker sat blocked for part of each request (measured: 0.71 of
its core busy while requests queued for it). Here each worker owns one Unix
socket with buffers larger than a request, written and read by the event loop
itself; a result's arrays are read straight into the buffer they are used
from, with no unpickling and no thread hop.

Frames, both ways: `u64 payload length, u32 header length`, then the header
(pickled, padded to 8 bytes) and the raw bytes. A request's raw bytes are the
body as received; a result's are the sample arrays (ids, timestamps, values),
then its new series: their ids, the lengths of their label texts, the texts.
A worker answers its requests in order, so the channel pairs answers with a
FIFO of waiting futures.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import pickle
import signal
import socket
import struct
import subprocess
import sys
from typing import Any

import numpy as np
import xxhash

from hakon.errors import HakonError
from hakon.gcpolicy import GcFreezer
from hakon.ingest.limits import IngestLimits

log = logging.getLogger(__name__)

FRAME = struct.Struct("<QI")
SOCKET_BUFFER = 4 << 20  # a whole large request fits: the writer never waits on the reader


def frame(header: Any, *raw: bytes | memoryview) -> list[bytes | memoryview]:
    """The pieces of one frame, for `writelines`/`sendmsg` (the raw bytes are not copied)."""
    head = pickle.dumps(header, protocol=pickle.HIGHEST_PROTOCOL)
    head += b"\0" * (-len(head) % 8)  # arrays after it start 8-aligned
    size = len(head) + sum(memoryview(r).nbytes for r in raw)
    return [FRAME.pack(size, len(head)), head, *raw]


class WorkerDied(Exception):
    """The worker process exited with requests outstanding."""


# -- this process's side ---------------------------------------------------------------


class _Channel(asyncio.BufferedProtocol):
    """Reads result frames into buffers of their exact size and resolves waiters in order."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiting: collections.deque[asyncio.Future[tuple[Any, bytearray, int]]] = (
            collections.deque()
        )
        self.closed = False
        self._prefix = bytearray(FRAME.size)
        self._buf = self._prefix
        self._got = 0
        self._head_len = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def get_buffer(self, sizehint: int) -> memoryview:
        return memoryview(self._buf)[self._got :]

    def buffer_updated(self, nbytes: int) -> None:
        self._got += nbytes
        if self._got < len(self._buf):
            return
        if self._buf is self._prefix:
            size, self._head_len = FRAME.unpack(self._prefix)
            self._buf, self._got = bytearray(size), 0
            if size:
                return
        payload, self._buf, self._got = self._buf, self._prefix, 0
        header = pickle.loads(memoryview(payload)[: self._head_len])
        if self.waiting:
            waiter = self.waiting.popleft()
            if not waiter.done():
                waiter.set_result((header, payload, self._head_len))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        while self.waiting:
            waiter = self.waiting.popleft()
            if not waiter.done():
                waiter.set_exception(WorkerDied())


class WorkerProcess:
    """One decode worker: a child process and this process's end of its socket.

    The process does not belong to an event loop; the channel over the socket does,
    so a caller on another loop (tests run several) gets a channel of its own."""

    def __init__(self, limits: IngestLimits) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        for s in (ours, theirs):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hakon.ingest.workers", str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
        )
        theirs.close()
        ours.sendmsg(frame(limits))  # small: fits the socket buffer, never blocks
        self.sock = ours
        self._channel: tuple[asyncio.AbstractEventLoop, asyncio.Task[_Channel]] | None = None

    def _current(self) -> _Channel | None:
        if self._channel is None or not self._channel[1].done():
            return None
        attaching = self._channel[1]
        return None if attaching.cancelled() or attaching.exception() else attaching.result()

    @property
    def outstanding(self) -> int:
        channel = self._current()
        return len(channel.waiting) if channel else 0

    def alive(self) -> bool:
        if self.proc.poll() is not None:
            return False
        channel = self._current()
        return channel is None or not channel.closed

    async def call(self, header: Any, raw: bytes) -> tuple[Any, bytearray, int]:
        """Send one request; (result header, result payload, offset of its raw bytes)."""
        channel = await self._attach()
        assert channel.transport is not None
        waiter = asyncio.get_running_loop().create_future()
        channel.waiting.append(waiter)
        channel.transport.writelines(frame(header, raw))
        return await waiter

    async def _attach(self) -> _Channel:
        loop = asyncio.get_running_loop()
        if self._channel is not None:
            owner, attaching = self._channel
            if owner is loop:
                channel = await attaching  # shared: two callers must not open two channels
                if not channel.closed:
                    return channel
            elif not attaching.done() or attaching.result().waiting:
                # Answers owed to a loop that is gone would arrive on the new channel.
                raise WorkerDied()
        attaching = loop.create_task(self._connect(loop))
        self._channel = (loop, attaching)
        return await attaching

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> _Channel:
        _, channel = await loop.create_unix_connection(_Channel, sock=self.sock.dup())
        return channel

    async def detach(self) -> None:
        """Close the running loop's channel (call before that loop ends: a transport
        left on a closed loop can never be closed). The worker itself lives on."""
        channel = self._current()
        if channel is None or self._channel is None or channel.transport is None:
            return
        if self._channel[0] is asyncio.get_running_loop():
            self._channel = None
            channel.transport.close()
            while not channel.closed:
                await asyncio.sleep(0)

    def stop(self) -> None:
        channel = self._current()
        if channel is not None and channel.transport is not None and self._channel is not None:
            owner = self._channel[0]
            if not owner.is_closed():
                owner.call_soon_threadsafe(channel.transport.close)
        self.sock.close()
        self.proc.kill()
        self.proc.wait()


# -- the worker's side -------------------------------------------------------------------


def _read_exactly(sock: socket.socket, buf: bytearray) -> bool:
    view, got = memoryview(buf), 0
    while got < len(buf):
        n = sock.recv_into(view[got:])
        if not n:
            return False
        got += n
    return True


def _read_frame(sock: socket.socket) -> tuple[Any, memoryview] | None:
    prefix = bytearray(FRAME.size)
    if not _read_exactly(sock, prefix):
        return None
    size, head_len = FRAME.unpack(prefix)
    payload = bytearray(size)
    if not _read_exactly(sock, payload):
        return None
    view = memoryview(payload)
    return pickle.loads(view[:head_len]), view[head_len:]


class _Orders:
    """The sort order of a request's series, remembered by the ids' digest: an agent
    sends its resources in the same order every scrape, so the argsort is paid once."""

    LIMIT = 4096

    def __init__(self) -> None:
        self._orders: dict[bytes, np.ndarray] = {}

    def of(self, ids: np.ndarray) -> np.ndarray:
        key = xxhash.xxh3_128_digest(np.ascontiguousarray(ids).data)  # no copy
        order = self._orders.get(key)
        if order is None:
            if len(self._orders) >= self.LIMIT:
                self._orders.clear()
            order = self._orders[key] = np.argsort(ids, kind="stable")
        return order


def serve(sock: socket.socket) -> None:
    """Answer requests until this process's parent closes the socket."""
    from hakon.ingest.body import decode_body
    from hakon.ingest.decoding import Decoders

    first = _read_frame(sock)
    if first is None:
        return
    limits: IngestLimits = first[0]

    def fresh() -> Decoders:  # the server keeps the labels: it gets them with each batch
        return Decoders(limits, keep_labels=False)

    decoders, generation, orders = fresh(), 0, _Orders()
    collector = GcFreezer()
    while (request := _read_frame(sock)) is not None:
        (req_generation, fmt, encoding, allowed, args), raw = request
        if req_generation != generation:  # the server dropped labels: forget everything
            decoders, generation, orders = fresh(), req_generation, _Orders()
        registries = decoders.registries()
        journal: dict[int, bytes] = {}
        for r in registries:
            r.journal = journal
        try:
            body = decode_body(bytes(raw), encoding, allowed, limits.max_decoded_bytes)
            extra, batch = decoders.decode(fmt, body, args)
            # Sorted by series here, on this core: the store's head then merges presorted
            # chunks (timsort finds the runs) instead of sorting arrival order.
            order = orders.of(batch.sample_series)
            arrays = [batch.sample_series[order], batch.timestamps[order], batch.values[order]]
            # New series as raw bytes too: ids, text lengths, the texts (pickling a label
            # tuple per series cost a sixth of a first payload's time here).
            texts = list(journal.values())
            arrays += [
                np.fromiter(journal, np.int64, len(journal)),
                np.fromiter(map(len, texts), np.int64, len(texts)),
            ]
            reply = frame(("ok", extra, len(order), len(texts)), *(a.data for a in arrays), *texts)
        except HakonError as exc:
            details = (exc.code, exc.message, exc.details, getattr(exc, "retry_after", None))
            reply = frame(("error", *details))
        except Exception as exc:  # a bug: reported to the request, the worker lives on
            log.exception("decode worker failed on a %s request", fmt)
            reply = frame(("crash", f"{type(exc).__name__}: {exc}"))
        finally:
            for r in registries:
                r.journal = None
        sock.sendall(b"".join(reply))
        collector.settle()


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server decides when workers stop
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s decode-worker %(message)s")
    with socket.socket(fileno=int(sys.argv[1])) as sock:
        serve(sock)


if __name__ == "__main__":
    main()
