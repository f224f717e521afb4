"""An httpx transport that connects only to addresses checked beforehand, within a deadline.

``pinned_transport(host, addresses, deadline)`` returns an ``httpx.HTTPTransport`` whose
connections for ``host`` go to ``addresses`` (tried in order) and nowhere else: no second DNS
lookup happens between the SSRF check and the connection (DNS rebinding). httpcore still sends
the URL's Host header and uses the host name for TLS SNI and certificate checks, because only
the TCP connect is redirected.

Every connect, TLS handshake, read and write waits at most until ``deadline``
(``time.monotonic()`` based), so a peer trickling bytes cannot stretch a request past it; an
expired deadline raises httpcore's timeout errors, which httpx maps to its own.

httpx offers no public network-backend option, so the transport's httpcore pool is rebuilt
with ours (``HTTPTransport._pool``, stable across httpx 0.2x; covered by tests/integration/test_fetch.py).
"""

from __future__ import annotations

import functools
import ssl
import time
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx


def budget(deadline: float, timeout: float | None, error: type[Exception]) -> float:
    """The timeout to use for one operation: the given one, cut to what is left of deadline."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise error("total time limit reached")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream, deadline: float) -> None:
        self._stream, self._deadline = stream, deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, budget(self._deadline, timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, budget(self._deadline, timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        limit = budget(self._deadline, timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, limit), self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _PinnedBackend(httpcore.NetworkBackend):
    """Connects to the checked addresses of one host, in order, and to nothing else."""

    def __init__(self, host: str, addresses: list[str], deadline: float) -> None:
        self._host, self._addresses, self._deadline = host, addresses, deadline
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        if host.lower() != self._host:
            raise httpcore.ConnectError(f"{host} was not checked")
        error: Exception = httpcore.ConnectError(f"{host}: no address")
        for address in self._addresses:
            limit = budget(self._deadline, timeout, httpcore.ConnectTimeout)
            try:
                stream = self._inner.connect_tcp(address, port, limit, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as e:
                error = e  # e.g. ::1 listed first while the server listens on 127.0.0.1 only
                continue
            return _DeadlineStream(stream, self._deadline)
        raise error

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are not used here")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()  # certifi's CAs; ~20 ms to build, so built once


class _PinnedTransport(httpx.HTTPTransport):
    def __init__(self, backend: _PinnedBackend, ssl_context: ssl.SSLContext) -> None:
        super().__init__(verify=ssl_context, trust_env=False)
        self._pool = httpcore.ConnectionPool(ssl_context=ssl_context, network_backend=backend)


def pinned_transport(
    host: str, addresses: list[str], deadline: float, *, ssl_context: ssl.SSLContext | None = None
) -> httpx.HTTPTransport:
    """host: as httpcore will ask for it (``URL.raw_host``); addresses: IP strings, tried in order;
    ssl_context: the CAs to trust (default: certifi's, as httpx)."""
    return _PinnedTransport(_PinnedBackend(host.lower(), addresses, deadline), ssl_context or _ssl_context())
