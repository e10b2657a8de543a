"""A real nginx terminating TLS in front of the app served by uvicorn, asking browsers and apps
for a client certificate (``ssl_verify_client optional_no_ca``: nginx checks the proof of
possession in the handshake, our app judges the certificate) and forwarding it as the README
shows. Used by the certificate sign-in and RFC 8705 tests."""

from __future__ import annotations

import ipaddress
import ssl
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.operations.deployment import (
    nginx_binary,
    nginx_main_context,
    nginx_temp_paths,
    wait_until,
)

CERTIFICATE_HEADER = "X-SSL-Client-Cert"
# The client's side: another loopback address than nginx's own (127.0.0.1, the trusted proxy).
CLIENT_ADDRESS = "127.0.0.3"


def nginx_tls_conf(directory: Path, *, port: int, upstream: str) -> str:
    return f"""
{nginx_main_context(directory, worker_connections=64)}
http {{
    access_log off;
{nginx_temp_paths(directory)}
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {directory / "server.pem"};
        ssl_certificate_key {directory / "server.key"};
        ssl_verify_client optional_no_ca;
        location / {{
            proxy_pass http://{upstream};
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            # Always set, so a client's own header of that name never passes through.
            proxy_set_header {CERTIFICATE_HEADER} $ssl_client_escaped_cert;
        }}
    }}
}}
"""


def _server_certificate(directory: Path) -> Path:
    """A throwaway CA-less server certificate for 127.0.0.1; returns the PEM (to trust)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return write_pem_pair(directory, "server", certificate, key)[0]


def write_pem_pair(
    directory: Path, name: str, certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> tuple[Path, Path]:
    """``<name>.pem`` (the certificate) and ``<name>.key`` (the key, unencrypted PKCS#8), as
    nginx, OpenSSL, Node and browsers load them."""
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@dataclass(frozen=True)
class TlsProxy:
    url: str
    directory: Path
    server_pem: Path

    def client(
        self,
        certificate: x509.Certificate | None = None,
        key: ec.EllipticCurvePrivateKey | None = None,
        **options: object,
    ) -> httpx.Client:
        """An HTTP client from CLIENT_ADDRESS that presents ``certificate`` in the handshake."""
        context = ssl.create_default_context(cafile=str(self.server_pem))
        if certificate is not None and key is not None:
            name = f"client-{certificate.serial_number:x}"
            cert_path, key_path = write_pem_pair(self.directory, name, certificate, key)
            context.load_cert_chain(str(cert_path), str(key_path))
        transport = httpx.HTTPTransport(local_address=CLIENT_ADDRESS, verify=context)
        return httpx.Client(base_url=self.url, transport=transport, **options)  # type: ignore[arg-type]


@contextmanager
def tls_proxy(directory: Path, *, port: int, upstream: str) -> Iterator[TlsProxy]:
    binary = nginx_binary()
    assert binary is not None
    directory.mkdir(parents=True, exist_ok=True)
    server_pem = _server_certificate(directory)
    (directory / "nginx.conf").write_text(nginx_tls_conf(directory, port=port, upstream=upstream))
    process = subprocess.Popen(
        [binary, "-p", str(directory), "-c", str(directory / "nginx.conf"), "-e", "stderr"],
        stdout=subprocess.DEVNULL,
        stderr=(directory / "error.log").open("ab"),
    )
    proxy = TlsProxy(url=f"https://127.0.0.1:{port}", directory=directory, server_pem=server_pem)
    try:
        with proxy.client() as probe:
            wait_until(
                lambda: probe.get("/healthz", timeout=2).status_code == 200,
                timeout=10,
                what="nginx with TLS in front",
            )
        yield proxy
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
