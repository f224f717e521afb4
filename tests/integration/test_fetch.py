"""fetch_link against a real http.server on loopback.

A process-wide audit hook records every socket connect, so the tests can show that a refused
address is never connected to (the check happens before connecting) and that nothing here
talks to anything but loopback.
"""

from __future__ import annotations

import datetime
import gzip
import json
import ssl
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from infrastructure.fetch import FetchedPage, FetchFailed, FetchRefused, fetch_link, refusal_reason
from infrastructure.pinned_http import pinned_transport

LOOPBACK = frozenset({"127.0.0.1"})
PAGE = b"<html><head><title>Test page</title></head><body><p>Hello from loopback</p></body></html>"
BOMB = gzip.compress(b"\0" * (20 << 20))  # 20 MiB of zeros, about 20 KiB on the wire

CONNECTS: list[object] = []  # this test's connects
ALL_CONNECTS: list[object] = []  # the whole module's


RECORDING = threading.Event()  # set while this module's server runs


def _audit(event: str, args: tuple) -> None:
    if event == "socket.connect" and RECORDING.is_set():
        CONNECTS.append(args[1])
        ALL_CONNECTS.append(args[1])


sys.addaudithook(_audit)  # cannot be removed, so it records only while RECORDING is set


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    requests: list[str] = []

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in {"Content-Length": str(len(body)), **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _trickle(self, data: bytes, interval: float, limit: float = 5.0) -> None:
        end = time.monotonic() + limit
        try:
            for i in range(len(data)):
                if time.monotonic() > end:
                    return
                self.wfile.write(data[i : i + 1])
                self.wfile.flush()
                time.sleep(interval)
        except OSError:  # the client gave up, as it should
            pass

    def do_GET(self) -> None:  # noqa: C901 - one branch per test route
        Handler.requests.append(self.path)
        path, _, query = self.path.partition("?")
        if path == "/page":
            self._send(200, PAGE, {"Content-Type": "text/html; charset=utf-8"})
        elif path == "/docs/data.json":
            self._send(200, b'{"a": 1}', {"Content-Type": "application/json"})
        elif path == "/headers":
            echo = json.dumps({k.lower(): v for k, v in self.headers.items()}).encode()
            self._send(200, echo, {"Content-Type": "application/json"})
        elif path.startswith("/chain/"):
            n = int(path.rsplit("/", 1)[1])
            if n == 0:
                self._send(200, PAGE, {"Content-Type": "text/html"})
            else:
                self._send(302, headers={"Location": f"/chain/{n - 1}"})
        elif path == "/goto":
            self._send(302, headers={"Location": parse_qs(query)["url"][0]})
        elif path == "/missing":
            self._send(404, b"not here", {"Content-Type": "text/plain"})
        elif path == "/huge":  # no Content-Length: the body runs until the connection closes
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            try:
                for _ in range(800):  # 50 MiB
                    self.wfile.write(b"x" * 65536)
            except OSError:
                pass
        elif path == "/huge-declared":
            self._send(200, headers={"Content-Length": str(10**9), "Connection": "close"})
        elif path == "/gzip":
            body = gzip.compress(b"zipped " * 100)
            self._send(200, body, {"Content-Encoding": "gzip", "Content-Type": "text/plain"})
        elif path == "/deflate-raw":
            raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
            body = raw.compress(b"raw deflate") + raw.flush()
            self._send(200, body, {"Content-Encoding": "deflate", "Content-Type": "text/plain"})
        elif path == "/bomb":
            self._send(200, BOMB, {"Content-Encoding": "gzip", "Content-Type": "text/plain"})
        elif path == "/slow":  # bytes keep coming, so no single read ever times out
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.flush()
            self._trickle(b"y" * 1000, 0.05)
        elif path == "/slow-headers":
            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
            self._trickle(b"X-Slow: " + b"z" * 1000, 0.05)
        else:
            self._send(500, b"unknown test route")


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    RECORDING.set()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        RECORDING.clear()
        server.shutdown()
        server.server_close()
        # Nothing in this module ever connected anywhere but loopback.
        assert ALL_CONNECTS
        assert all(isinstance(a, tuple) and a[0] == "127.0.0.1" for a in ALL_CONNECTS), ALL_CONNECTS


@pytest.fixture(autouse=True)
def _clear() -> None:
    Handler.requests.clear()
    CONNECTS.clear()


def fetch(url: str, **kwargs: object) -> FetchedPage:
    options: dict = {"max_bytes": 1 << 20, "timeout": 3.0, "allow_hosts": LOOPBACK, **kwargs}
    return fetch_link(url, **options)


# --- policy ---


def test_loopback_is_refused_without_the_allowlist(base: str) -> None:
    by_name = base.replace("127.0.0.1", "localhost") + "/page"
    for url in (f"{base}/page", by_name, "http://[::1]/", "http://127.1/", "http://2130706433/"):
        with pytest.raises(FetchRefused) as caught:
            fetch(url, allow_hosts=frozenset())
        assert "loopback" in str(caught.value) and "LINK_ALLOWLIST" in str(caught.value)
    assert Handler.requests == [] and CONNECTS == []


def test_allowed_with_allow_hosts(base: str) -> None:
    page = fetch(f"{base}/page")
    assert page.data == PAGE
    assert page.url == f"{base}/page"
    assert page.content_type == "text/html; charset=utf-8"
    assert page.filename == "127.0.0.1-page.html"
    by_name = fetch(base.replace("127.0.0.1", "localhost") + "/page", allow_hosts=frozenset({"LOCALHOST."}))
    assert by_name.data == PAGE and by_name.filename == "localhost-page.html"


def test_filename_from_path_and_content_type(base: str) -> None:
    assert fetch(f"{base}/docs/data.json").filename == "127.0.0.1-docs-data.json"
    assert fetch(f"{base}/gzip").filename == "127.0.0.1-gzip.txt"


@pytest.mark.parametrize(
    "target", ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/", "http://[::ffff:10.0.0.1]/"]
)
def test_redirect_to_a_refused_address_is_never_connected(base: str, target: str) -> None:
    with pytest.raises(FetchRefused, match="LINK_ALLOWLIST"):
        fetch(f"{base}/goto?url={target}")
    assert Handler.requests == [f"/goto?url={target}"]
    assert len(CONNECTS) == 1 and CONNECTS[0][0] == "127.0.0.1", CONNECTS  # type: ignore[index]


def test_redirects_are_followed_and_capped(base: str) -> None:
    page = fetch(f"{base}/chain/5")
    assert page.data == PAGE and page.url == f"{base}/chain/0"
    with pytest.raises(FetchFailed, match="more than 5"):
        fetch(f"{base}/chain/6")
    assert len(Handler.requests) == 6 + 6


def test_non_http_schemes_are_refused(base: str) -> None:
    urls = ("ftp://127.0.0.1/x", "file:///etc/passwd", "gopher://127.0.0.1:70/", "javascript:alert(1)", "data:,hi")
    for url in urls:
        with pytest.raises(FetchRefused, match="only http and https"):
            fetch(url)
    with pytest.raises(FetchRefused):
        fetch("http://[::1")
    assert CONNECTS == []


def test_redirect_to_another_scheme_is_refused(base: str) -> None:
    with pytest.raises(FetchRefused, match="only http and https"):
        fetch(f"{base}/goto?url=file:///etc/passwd")


@pytest.mark.parametrize("name", ["Host", "content-length", "Transfer-Encoding", "CONNECTION", "Accept-Encoding"])
def test_framing_headers_are_refused(base: str, name: str) -> None:
    with pytest.raises(FetchRefused, match="cannot be set"):
        fetch(f"{base}/headers", headers={name: "x"})
    assert Handler.requests == []


def test_malformed_headers_are_refused(base: str) -> None:
    for headers in ({"X-A": "a\r\nInjected: 1"}, {"Bad Name": "x"}, {"X-A": "caf\u00e9"}):
        with pytest.raises(FetchRefused):
            fetch(f"{base}/headers", headers=headers)


def test_caller_headers_are_sent_and_credentials_dropped_across_origins(base: str) -> None:
    headers = {"Authorization": "Bearer secret", "Cookie": "a=b", "X-Keep": "1", "User-Agent": "custom"}
    same = json.loads(fetch(f"{base}/headers", headers=headers).data)
    assert same["authorization"] == "Bearer secret" and same["cookie"] == "a=b"
    assert same["x-keep"] == "1" and same["user-agent"] == "custom"
    other = base.replace("127.0.0.1", "localhost") + "/headers"
    page = fetch(f"{base}/goto?url={other}", headers=headers, allow_hosts=LOOPBACK | {"localhost"})
    moved = json.loads(page.data)
    assert "authorization" not in moved and "cookie" not in moved
    assert moved["x-keep"] == "1" and moved["host"] == urlsplit(other).netloc


def test_pinned_transport_sends_the_host_name_to_the_checked_address(base: str) -> None:
    """The connection goes to the pinned IP; the name is never resolved (it does not exist)."""
    port = urlsplit(base).port
    transport = pinned_transport("rebind.invalid", ["127.0.0.1"], time.monotonic() + 3)
    with httpx.Client(transport=transport) as client:
        echo = client.get(f"http://rebind.invalid:{port}/headers").json()
        assert echo["host"] == f"rebind.invalid:{port}"
        with pytest.raises(httpx.ConnectError, match="not checked"):
            client.get(f"http://other.invalid:{port}/headers")


def test_pinned_tls_uses_the_host_name_for_sni_and_certificate_checks(tmp_path: Path) -> None:
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "pinned.invalid")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("pinned.invalid")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    sni: list[str] = []
    server_context.sni_callback = lambda _sock, sni_name, _ctx: sni.append(sni_name)  # type: ignore[misc]
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = server_context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    trust = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
    try:
        for host, ok in (("pinned.invalid", True), ("other.invalid", False)):
            transport = pinned_transport(host, ["127.0.0.1"], time.monotonic() + 3, ssl_context=trust)
            with httpx.Client(transport=transport) as client:
                if ok:
                    assert client.get(f"https://{host}:{port}/headers").json()["host"] == f"{host}:{port}"
                else:
                    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                        client.get(f"https://{host}:{port}/headers")
        assert sni == ["pinned.invalid", "other.invalid"]
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"), ("::1", "loopback"), ("10.1.2.3", "private"), ("192.168.0.1", "private"),
        ("172.16.0.1", "private"), ("169.254.169.254", "link-local"), ("fe80::1%eth0", "link-local"),
        ("0.0.0.0", "unspecified"), ("::", "unspecified"), ("224.0.0.1", "multicast"), ("ff02::1", "multicast"),
        ("240.0.0.1", "private"), ("100.64.0.1", "non-public"), ("fc00::1", "private"), ("fec0::1", "site-local"),
        ("::ffff:127.0.0.1", "IPv4-mapped loopback"), ("::ffff:169.254.169.254", "IPv4-mapped link-local"),
        ("2002:7f00:1::", "6to4 loopback"), ("2002:a00:1::", "6to4 private"), ("64:ff9b::a00:1", "NAT64 private"),
        ("8.8.8.8", None), ("2606:4700::1111", None), ("::ffff:8.8.8.8", None), ("64:ff9b::808:808", None),
    ],
)  # fmt: skip
def test_refusal_reasons(address: str, reason: str | None) -> None:
    assert refusal_reason(address) == reason


# --- failures ---


def test_404_is_a_failure_with_the_status(base: str) -> None:
    with pytest.raises(FetchFailed, match="HTTP 404"):
        fetch(f"{base}/missing")


def test_size_cap_while_streaming(base: str) -> None:
    start = time.monotonic()
    with pytest.raises(FetchFailed, match="limit of 100000 bytes"):
        fetch(f"{base}/huge", max_bytes=100_000)
    with pytest.raises(FetchFailed, match="limit of 100000 bytes"):
        fetch(f"{base}/huge-declared", max_bytes=100_000)
    assert time.monotonic() - start < 1


def test_compressed_bodies_are_inflated_within_the_cap(base: str) -> None:
    assert fetch(f"{base}/gzip").data == b"zipped " * 100
    assert fetch(f"{base}/deflate-raw").data == b"raw deflate"
    with pytest.raises(FetchFailed, match="limit of 1048576 bytes"):
        fetch(f"{base}/bomb")  # 20 KiB on the wire, 20 MiB inflated


@pytest.mark.parametrize("path", ["/slow", "/slow-headers"])
def test_timeout_is_a_total_deadline(base: str, path: str) -> None:
    start = time.monotonic()
    with pytest.raises(FetchFailed, match="time limit"):
        fetch(f"{base}{path}", timeout=0.5)
    assert 0.45 < time.monotonic() - start < 0.9


def test_connection_refused_is_a_failure(base: str) -> None:
    with pytest.raises(FetchFailed, match="failed"):
        fetch("http://127.0.0.1:9/")  # discard port: nothing listens
