"""A real GOPROXY-protocol module proxy on 127.0.0.1, for hermetic tests of gobuild and of `go` itself."""

from __future__ import annotations

import base64
import datetime
import io
import ipaddress
import json
import ssl
import threading
import time
import urllib.parse
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gobuild import module

DEFAULT_TIME = "2024-01-01T00:00:00Z"
# Fixed zip entry time: the same files always give the same zip bytes.
_ZIP_TIME = (2024, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class _Version:
    """One stored module version: its three proxy files."""

    info: bytes
    mod: bytes
    zip: bytes


class ModuleProxy:
    """Serves added module versions over the GOPROXY protocol; start()/stop() or use as a context manager."""

    def __init__(self, tls_dir: Path | None = None, auth: tuple[str, str] | None = None) -> None:
        """tls_dir: serve https with a self-signed certificate written there (ca_file); auth: require
        these basic-auth credentials on every request (401 otherwise)."""
        self.tls_dir = tls_dir
        self.auth = auth
        self.unauthorized = 0  # requests refused for missing or wrong credentials
        self._delays: dict[str, float] = {}
        self._lock = threading.Lock()
        self._modules: dict[str, dict[str, _Version]] = {}  # module path -> version -> files
        self._aliases: dict[tuple[str, str], str] = {}  # (module, query) -> version
        self._failures: dict[str, int] = {}
        self._raw: dict[str, tuple[int, bytes]] = {}  # exact path -> canned answer
        self._requests: list[str] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:PORT (no trailing slash)."""
        assert self._server is not None, "proxy not started"
        host, port = self._server.server_address[:2]
        return f"{'https' if self.tls_dir else 'http'}://{host!s}:{port}"

    @property
    def ca_file(self) -> Path:
        """The certificate clients must trust (tls_dir only)."""
        assert self.tls_dir is not None
        return self.tls_dir / "cert.pem"

    def start(self) -> ModuleProxy:
        """Listen on a free port of 127.0.0.1 and serve from a daemon thread."""
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        server.daemon_threads = True
        if self.tls_dir is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*_self_signed(self.tls_dir))
            server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        # A short poll interval keeps stop() (which waits for the serve loop) fast.
        self._thread = threading.Thread(target=server.serve_forever, args=(0.02,), name="modproxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> ModuleProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ content

    def add(self, module_path: str, version: str, files: dict[str, str | bytes], time: str | None = None) -> None:
        """Add a module version; files are relative to the module root.

        Without a go.mod among files, .mod answers what proxies synthesize for pre-module
        versions (`module <path>`), as for +incompatible versions.
        """
        module.check(module_path, version)
        if not module.is_canonical_version(version):
            raise ValueError(f"not a canonical version: {version}")
        data = {name: content.encode() if isinstance(content, str) else content for name, content in files.items()}
        info = json.dumps({"Version": version, "Time": time or DEFAULT_TIME}).encode()
        mod = data.get("go.mod", f"module {module_path}\n".encode())
        stored = _Version(info=info, mod=mod, zip=make_zip(module_path, version, data))
        with self._lock:
            self._modules.setdefault(module_path, {})[version] = stored

    def alias(self, module_path: str, query: str, version: str) -> None:
        """Make @v/<query>.info answer for version, as a proxy does for a branch name or commit."""
        with self._lock:
            self._aliases[(module_path, query)] = version

    def fail(self, prefix: str, status: int) -> None:
        """Answer requests whose (unescaped-URL) path starts with prefix with status; 0 clears."""
        with self._lock:
            if status:
                self._failures[prefix] = status
            else:
                self._failures.pop(prefix, None)

    def delay(self, prefix: str, seconds: float) -> None:
        """Answer requests whose path starts with prefix only after seconds (a slow proxy); 0 clears."""
        with self._lock:
            if seconds:
                self._delays[prefix] = seconds
            else:
                self._delays.pop(prefix, None)

    def serve(self, path: str, body: bytes, status: int = 200) -> None:
        """Answer GETs of exactly path (percent-decoded, `!`-escaped) with body, e.g. to fake a broken proxy."""
        with self._lock:
            self._raw[path] = (status, body)

    @property
    def requests(self) -> list[str]:
        """Paths requested so far (percent-decoded, still `!`-escaped), in order."""
        with self._lock:
            return list(self._requests)

    # ------------------------------------------------------------------ serving

    def respond(self, raw_path: str) -> tuple[int, str, bytes]:
        """(status, content type, body) for a GET of raw_path."""
        path = urllib.parse.unquote(urllib.parse.urlsplit(raw_path).path)
        with self._lock:
            self._requests.append(path)
            failure = next((s for p, s in self._failures.items() if path.startswith(p)), 0)
            raw = self._raw.get(path)
            delay = next((s for p, s in self._delays.items() if path.startswith(p)), 0.0)
        time.sleep(delay)
        if failure:
            return failure, "text/plain", b"injected failure\n"
        if raw is not None:
            return raw[0], "application/octet-stream", raw[1]
        if path.startswith("/sumdb/"):
            return 404, "text/plain", b"not found: no checksum database here\n"
        if "/@v/" in path:
            escaped, _, file = path[1:].partition("/@v/")
            return self._serve_version_file(escaped, file)
        if path.endswith("/@latest"):
            return self._serve_latest(path[1 : -len("/@latest")])
        return 404, "text/plain", b"not found\n"

    def _lookup(self, escaped: str) -> tuple[str, dict[str, _Version]] | None:
        """The module path and its versions for an escaped path, None if unknown."""
        try:
            path = module.unescape_path(escaped)
        except module.InvalidPath:
            return None
        with self._lock:
            versions = self._modules.get(path)
            return (path, dict(versions)) if versions else None

    def _serve_version_file(self, escaped: str, file: str) -> tuple[int, str, bytes]:
        """@v/list and @v/<version>.info|.mod|.zip."""
        found = self._lookup(escaped)
        if found is None:
            return 404, "text/plain", f"not found: module {escaped}: no matching versions\n".encode()
        path, versions = found
        if file == "list":
            listed = [v for v in module.sort_versions(versions) if not module.is_pseudo_version(v)]
            return 200, "text/plain; charset=utf-8", "".join(v + "\n" for v in listed).encode()
        stem, dot, ext = file.rpartition(".")
        try:
            version = module.unescape_version(stem) if dot else ""
        except module.InvalidVersion:
            version = ""
        if ext == "info" and (path, version) in self._aliases:
            version = self._aliases[(path, version)]
        stored = versions.get(version)
        if stored is None or ext not in ("info", "mod", "zip"):
            # Go proxies answer 410 Gone (or 404) for versions they know not to exist.
            return 410, "text/plain", f"not found: {path}@{version}: invalid version: unknown revision\n".encode()
        kind = {"info": "application/json", "mod": "text/plain; charset=utf-8", "zip": "application/zip"}[ext]
        return 200, kind, getattr(stored, ext)

    def _serve_latest(self, escaped: str) -> tuple[int, str, bytes]:
        """@latest: highest release, else pre-release, else newest pseudo-version."""
        found = self._lookup(escaped)
        if found is None:
            return 404, "text/plain", b"not found\n"
        _, versions = found
        ordered = module.sort_versions(versions)
        tagged = [v for v in ordered if not module.is_pseudo_version(v)]
        releases = [v for v in tagged if not module.semver_prerelease(v)]
        best = (releases or tagged or ordered)[-1]
        return 200, "application/json", versions[best].info


def _handler_for(proxy: ModuleProxy) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to proxy."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if proxy.auth is not None and not _authorized(self.headers.get("Authorization", ""), proxy.auth):
                with proxy._lock:
                    proxy.unauthorized += 1
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="modproxy"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status, kind, body = proxy.respond(self.path)
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep test output clean; ModuleProxy.requests records what was asked

    return Handler


def _authorized(header: str, auth: tuple[str, str]) -> bool:
    scheme, _, token = header.partition(" ")
    return scheme == "Basic" and token == base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, written to directory (cert.pem, key.pem)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "modproxy")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def make_zip(module_path: str, version: str, files: dict[str, bytes]) -> bytes:
    """A module zip as golang.org/x/mod/zip makes it: every file under "<module>@<version>/"."""
    prefix = f"{module_path}@{version}/"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(files):
            zf.writestr(zipfile.ZipInfo(prefix + name, _ZIP_TIME), files[name], zipfile.ZIP_DEFLATED)
    return buf.getvalue()


def hello_module(path: str, version: str, message: str = "hello") -> dict[str, str | bytes]:
    """Files of a minimal module whose root is a main package printing message (version is for the caller)."""
    del version  # the same files serve any version; the parameter keeps call sites readable
    return {
        "go.mod": f"module {path}\n\ngo 1.22\n",
        "main.go": f'package main\n\nimport "fmt"\n\nfunc main() {{\n\tfmt.Println({json.dumps(message)})\n}}\n',
    }


@pytest.fixture
def modproxy() -> Iterator[ModuleProxy]:
    """A started ModuleProxy, stopped after the test."""
    with ModuleProxy() as proxy:
        yield proxy
