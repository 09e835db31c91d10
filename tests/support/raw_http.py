"""A raw HTTP/1.1 server (asyncio streams) for answers aiohttp's own server will not produce: a
``Content-Length`` that lies, a body cut short, a body delimited only by closing the connection,
a server that trickles its answer.

``RawHTTPServer(answer)`` calls ``await answer(request_head, writer)`` once per request, after the
request head was read; ``answer`` writes whatever bytes it likes and the connection is closed
afterwards. ``path(request_head)`` is the request's path, to answer by route.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Self

Answer = Callable[[bytes, asyncio.StreamWriter], Awaitable[None]]


def path(request_head: bytes) -> str:
    return request_head.split(b" ", 2)[1].decode().split("?", 1)[0]


def head(status: int = 200, **headers: str) -> bytes:
    """A status line and headers (``Content_Type="x"`` -> ``Content-Type: x``), then the blank line."""
    lines = [f"HTTP/1.1 {status} X"] + [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def trickle(writer: asyncio.StreamWriter, data: bytes, *, chunk: int = 64 * 1024, pause_s: float = 0.0) -> None:
    """Write ``data`` in pieces, yielding (or pausing) between them: a slow server."""
    view = memoryview(data)  # no copies: tests measure the client's memory
    for start in range(0, len(data), chunk):
        writer.write(view[start : start + chunk])
        await writer.drain()
        await asyncio.sleep(pause_s)


def chunked(data: bytes, chunk: int = 64 * 1024) -> bytes:
    """``data`` in ``Transfer-Encoding: chunked`` framing."""
    pieces = [
        f"{len(data[i : i + chunk]):x}\r\n".encode() + data[i : i + chunk] + b"\r\n" for i in range(0, len(data), chunk)
    ]
    return b"".join(pieces) + b"0\r\n\r\n"


class RawHTTPServer:
    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests: list[bytes] = []  # each request head as received
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    async def start(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await reader.readuntil(b"\r\n\r\n")
            self.requests.append(request)
            await self.answer(request, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client gave up first (what some tests want)
        finally:
            writer.close()


class RawServers:
    """Servers started for one test, closed together (the ``raw_servers`` fixture)."""

    def __init__(self) -> None:
        self.started: list[RawHTTPServer] = []

    async def serve(self, answer: Answer) -> RawHTTPServer:
        server = await RawHTTPServer(answer).start()
        self.started.append(server)
        return server

    async def close(self) -> None:
        for server in self.started:
            await server.close()
