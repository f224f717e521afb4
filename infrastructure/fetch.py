"""Fetch one link for `POST /v1/document/upload-link`, without opening an SSRF door.

Policy, checked on every hop (the first request and each redirect) *before* connecting:
only http/https; the host is resolved once and refused if any of its addresses is not public
(loopback, private, link-local, multicast, reserved, unspecified, and the IPv4-mapped, 6to4,
NAT64 and Teredo forms of those), unless the host name or the address is in ``allow_hosts``
(the LINK_ALLOWLIST setting).

Pinning: the connection goes to the addresses that were checked, never to a second DNS answer
(DNS rebinding); the Host header, TLS SNI and certificate check still use the host name. See
pinned_http.py, whose transport also holds every connect, read and write to the total
deadline: ``timeout`` bounds the whole fetch (DNS included), not each read.

Bodies are read raw and inflated here (gzip/deflate only) so ``max_bytes`` bounds both the
bytes received and the bytes inflated: a compression bomb stops at the limit.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
import time
import zlib
from typing import Any

import httpx
import msgspec

from infrastructure.parsers import DOCX_MIME, accepted_file_types
from infrastructure.pinned_http import pinned_transport

MAX_REDIRECTS = 5
USER_AGENT = "ledgerllm-link-fetcher/0.1"
_HINT = "the LINK_ALLOWLIST setting can allow a host"
_REDIRECTS = {301, 302, 303, 307, 308}
# Framing and hop-by-hop headers are ours to set; Accept-Encoding too, since we inflate bodies.
_REFUSED_HEADERS = frozenset({
    "host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te",
    "trailer", "expect", "proxy-connection", "proxy-authorization", "accept-encoding",
})  # fmt: skip
_CREDENTIALS = ("authorization", "cookie")  # dropped when a redirect leaves the origin
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Most specific first: 127.0.0.1 is also "private" to the ipaddress module.
_LABELS = ("loopback", "unspecified", "link_local", "multicast", "site_local", "private", "reserved")
_EXTENSION = {"text/html": ".html", "application/xhtml+xml": ".html", "text/plain": ".txt",
              "text/markdown": ".md", "text/csv": ".csv", "application/json": ".json",
              "application/pdf": ".pdf", DOCX_MIME: ".docx"}  # fmt: skip


class FetchedPage(msgspec.Struct, frozen=True):
    url: str  # after redirects
    content_type: str
    data: bytes
    filename: str  # e.g. "example.com-docs-page.html"


class FetchRefused(ValueError):
    """The link is against policy (scheme, address, header); nothing was sent."""


class FetchFailed(ValueError):
    """Network error, timeout, HTTP status >= 400, too many redirects or a body over the limit."""


def refusal_reason(address: str) -> str | None:
    """Why an IP address must not be fetched ("loopback", "IPv4-mapped private", ...), or None."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone ("fe80::1%eth0")
    checks: list[tuple[str, Any]] = [("", ip)]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # judged as the IPv4 address it is
            checks = [("IPv4-mapped ", ip.ipv4_mapped)]
        elif ip in _NAT64:
            checks = [("NAT64 ", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))]
        if ip.sixtofour is not None:
            checks.append(("6to4 ", ip.sixtofour))
        if ip.teredo is not None:
            checks += [("Teredo ", embedded) for embedded in ip.teredo]
    for prefix, a in checks:
        for label in _LABELS:
            if getattr(a, f"is_{label}", False):  # is_site_local exists for IPv6 only
                return prefix + label.replace("_", "-")
        if not a.is_global:  # e.g. 100.64.0.0/10, shared address space
            return prefix + "non-public"
    return None


def fetch_link(
    url: str,
    *,
    headers: dict[str, str] | None = None,
    max_bytes: int,
    timeout: float,
    allow_hosts: frozenset[str] = frozenset(),
) -> FetchedPage:
    deadline = time.monotonic() + timeout
    allowed = frozenset(_normalize_host(h) for h in allow_hosts)
    sent = _checked_headers(headers or {})
    try:
        current = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        raise FetchRefused(f"{url!r} is not a valid http(s) URL") from None
    for _ in range(MAX_REDIRECTS + 1):
        host = _checked_target(current)
        addresses = _resolve(host, current.port or (443 if current.scheme == "https" else 80), deadline)
        _check_addresses(current, host, addresses, allowed)
        location = _request(current, host, addresses, sent, max_bytes, deadline)
        if isinstance(location, FetchedPage):
            return location
        try:
            target = current.join(location)
        except (httpx.InvalidURL, ValueError):
            raise FetchFailed(f"{current} redirected to an invalid URL {location!r}") from None
        if (target.scheme, target.host, target.port) != (current.scheme, current.host, current.port):
            sent = {k: v for k, v in sent.items() if k.lower() not in _CREDENTIALS}
        current = target
    raise FetchFailed(f"{url} redirected more than {MAX_REDIRECTS} times")


def checked_addresses(url: httpx.URL, allow_hosts: frozenset[str], deadline: float) -> tuple[str, list[str]]:
    """The host to connect to and its checked addresses, by the policy above (webhooks use it
    before each delivery); FetchRefused for a target against policy, FetchFailed if unresolvable."""
    host = _checked_target(url)
    addresses = _resolve(host, url.port or (443 if url.scheme == "https" else 80), deadline)
    _check_addresses(url, host, addresses, frozenset(_normalize_host(h) for h in allow_hosts))
    return host, addresses


# --- policy ---


def _normalize_host(host: str) -> str:
    host = host.strip().lower().rstrip(".").removeprefix("[").removesuffix("]")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


def _checked_headers(headers: dict[str, str]) -> dict[str, str]:
    for name, value in headers.items():
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise FetchRefused(f"header name {name!r} is not a valid HTTP header name")
        if name.lower() in _REFUSED_HEADERS:
            raise FetchRefused(f"header {name!r} cannot be set for a link fetch")
        if not isinstance(value, str) or not all(c == "\t" or " " <= c <= "~" for c in value):
            raise FetchRefused(f"header {name!r} must be printable ASCII on one line")
    return dict(headers)


def _checked_target(url: httpx.URL) -> str:
    if url.scheme not in ("http", "https"):
        raise FetchRefused(f"only http and https links can be fetched, not {url.scheme or 'no'!r} ones")
    host = url.raw_host.decode("ascii").lower()  # IDNA-encoded, as httpcore will connect
    if not host:
        raise FetchRefused(f"{url} has no host")
    return host


def _check_addresses(url: httpx.URL, host: str, addresses: list[str], allowed: frozenset[str]) -> None:
    if _normalize_host(host) in allowed:
        return
    for address in addresses:
        if _normalize_host(address) in allowed:
            continue
        reason = refusal_reason(address)
        if reason is not None:
            literal = _normalize_host(host) == _normalize_host(address)
            what = f"{address} is" if literal else f"{host} resolves to {address},"
            raise FetchRefused(
                f"refused to fetch {url}: {what} a {reason} address; "
                f"only public addresses are fetched ({_HINT})"
            )


def _resolve(host: str, port: int, deadline: float) -> list[str]:
    """Addresses of host, looked up within the deadline (getaddrinfo itself has no timeout)."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    result: list[Any] = []
    done = threading.Event()

    def lookup() -> None:
        try:
            result.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except Exception as e:  # noqa: BLE001 - handed to the caller below
            result.append(e)
        finally:
            done.set()

    threading.Thread(target=lookup, name="fetch-dns", daemon=True).start()
    if not done.wait(max(0.0, deadline - time.monotonic())):
        raise FetchFailed(f"looking up {host} took longer than the time limit")
    if isinstance(result[0], Exception):
        raise FetchFailed(f"could not resolve {host}: {result[0]}")
    addresses = list(dict.fromkeys(info[4][0] for info in result[0]))
    if not addresses:
        raise FetchFailed(f"could not resolve {host}: no addresses")
    return addresses


def _request(url: httpx.URL, host: str, addresses: list[str], headers: dict[str, str], max_bytes: int,
             deadline: float) -> FetchedPage | str:  # fmt: skip
    """One GET: the page, or the Location of a redirect."""
    transport = pinned_transport(host, addresses, deadline)
    defaults = {"User-Agent": USER_AGENT, "Accept": "text/html,application/xhtml+xml,*/*;q=0.8",
                "Accept-Encoding": "gzip, deflate"}  # fmt: skip
    # trust_env=False: an HTTP(S)_PROXY from the environment would resolve the host itself.
    client = httpx.Client(transport=transport, trust_env=False, follow_redirects=False, headers=defaults)
    with client:
        left = deadline - time.monotonic()
        if left <= 0:
            raise FetchFailed(f"fetching {url} took longer than the time limit")
        try:
            with client.stream("GET", url, headers=headers, timeout=httpx.Timeout(left)) as response:
                if response.status_code in _REDIRECTS and "location" in response.headers:
                    return response.headers["location"]
                if response.status_code >= 400:
                    raise FetchFailed(f"{url} answered HTTP {response.status_code}")
                content_type = response.headers.get("content-type", "application/octet-stream")
                data = _read_body(response, max_bytes)
        except httpx.TimeoutException:
            raise FetchFailed(f"fetching {url} took longer than the time limit") from None
        except httpx.HTTPError as e:
            raise FetchFailed(f"fetching {url} failed: {type(e).__name__}: {e}") from None
    filename = _filename(url, content_type)
    return FetchedPage(url=str(url), content_type=content_type, data=data, filename=filename)


def _read_body(response: httpx.Response, max_bytes: int) -> bytes:
    too_large = FetchFailed(f"{response.url} is larger than the limit of {max_bytes} bytes")
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise too_large
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if encoding in ("", "identity"):
        inflater = None
    elif encoding in ("gzip", "x-gzip"):
        inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
    elif encoding == "deflate":  # zlib-wrapped as the RFC says, or raw (some old servers)
        inflater = _Deflate()
    else:
        raise FetchFailed(f"{response.url} used an unsupported content encoding {encoding!r}")
    body = bytearray()
    received = 0
    try:
        for chunk in response.iter_raw():
            received += len(chunk)
            if inflater is not None:
                # At most one byte over the limit is inflated; a bomb stops here.
                chunk = inflater.decompress(chunk, max_bytes - len(body) + 1)
            body += chunk
            if received > max_bytes or len(body) > max_bytes:
                raise too_large
        if inflater is not None:
            body += inflater.flush()
    except zlib.error as e:
        raise FetchFailed(f"{response.url} sent a corrupt {encoding} body: {e}") from None
    if len(body) > max_bytes:
        raise too_large
    return bytes(body)


class _Deflate:
    """A decompressobj for "deflate" that picks zlib or raw framing from the first two bytes."""

    def __init__(self) -> None:
        self._head = b""
        self._inner: Any = None

    def decompress(self, data: bytes, max_length: int) -> bytes:
        if self._inner is None:
            self._head += data
            if len(self._head) < 2:
                return b""
            zlib_wrapped = self._head[0] & 0x0F == 8 and int.from_bytes(self._head[:2], "big") % 31 == 0
            self._inner = zlib.decompressobj(zlib.MAX_WBITS if zlib_wrapped else -zlib.MAX_WBITS)
            data, self._head = self._head, b""
        return self._inner.decompress(data, max_length)

    def flush(self) -> bytes:
        return self._inner.flush() if self._inner is not None else b""


def _filename(url: httpx.URL, content_type: str) -> str:
    """host-and-path-segments plus the extension of the content type, e.g. example.com-page.html."""
    parts = [url.raw_host.decode("ascii"), *(s for s in url.path.split("/") if s)]
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", "-".join(parts)).strip("-.")[:200] or "link"
    mime = content_type.split(";")[0].strip().lower()
    ext = _EXTENSION.get(mime)
    if ext and not name.lower().endswith(tuple(accepted_file_types().get(mime, [ext]))):
        name += ext
    return name
