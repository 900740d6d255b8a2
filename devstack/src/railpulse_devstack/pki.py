"""The local PKI: a CA, the broker's server certificate and one client certificate per device.

Layout under `<state>/pki/`:
  ca.crt, ca.key                      the local CA (EC P-256), made on first start
  server.crt, server.key              mosquitto's (SAN DNS:localhost, IP:127.0.0.1)
  devices/<name>.crt, <name>.key      a device's client certificate (CN = thing name)

Device certificates are EC P-256 (a few ms each), so a fleet of hundreds is made in a second or
two. `ensure_device()` is safe to call concurrently from several processes.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import ipaddress
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["DeviceCert", "Pki"]

_VALIDITY = dt.timedelta(days=3650)


@dataclass(frozen=True, slots=True)
class DeviceCert:
    name: str
    cert_path: Path
    key_path: Path

    def pem(self) -> str:
        return self.cert_path.read_text()


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.chmod(mode)
    tmp.replace(path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class Pki:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.devices_dir = root / "devices"
        self.ca_cert_path = root / "ca.crt"
        self.ca_key_path = root / "ca.key"
        self.server_cert_path = root / "server.crt"
        self.server_key_path = root / "server.key"
        self._ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def ensure_ca(self) -> None:
        with self._locked():
            if self.ca_cert_path.exists() and self.ca_key_path.exists():
                return
            key = ec.generate_private_key(ec.SECP256R1())
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "railpulse local CA")])
            now = dt.datetime.now(dt.UTC)
            cert = (
                x509.CertificateBuilder()
                .subject_name(name)
                .issuer_name(name)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5))
                .not_valid_after(now + _VALIDITY)
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(
                    x509.KeyUsage(
                        digital_signature=True,
                        content_commitment=False,
                        key_encipherment=False,
                        data_encipherment=False,
                        key_agreement=False,
                        key_cert_sign=True,
                        crl_sign=True,
                        encipher_only=False,
                        decipher_only=False,
                    ),
                    critical=True,
                )
                .add_extension(
                    x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
                )
                .sign(key, hashes.SHA256())
            )
            _write(self.ca_key_path, _key_pem(key), 0o600)
            _write(self.ca_cert_path, cert.public_bytes(serialization.Encoding.PEM))
            self._ca = None

    def _load_ca(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        if self._ca is None:
            self.ensure_ca()
            cert = x509.load_pem_x509_certificate(self.ca_cert_path.read_bytes())
            key = serialization.load_pem_private_key(self.ca_key_path.read_bytes(), password=None)
            assert isinstance(key, ec.EllipticCurvePrivateKey)
            self._ca = (cert, key)
        return self._ca

    def _issue(
        self, common_name: str, *, server: bool, hosts: Sequence[str] = ()
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        ca_cert, ca_key = self._load_ca()
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH]
                    if server
                    else [ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        *(x509.DNSName(h) for h in hosts),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    ]
                ),
                critical=False,
            )
        return builder.sign(ca_key, hashes.SHA256()), key

    def ensure_server(self, hosts: Sequence[str] = ()) -> None:
        """The broker's certificate (SAN localhost, 127.0.0.1 and `hosts`), issued once."""
        with self._locked():
            if self.server_cert_path.exists() and self.server_key_path.exists():
                return
        cert, key = self._issue("localhost", server=True, hosts=hosts)
        with self._locked():
            _write(self.server_key_path, _key_pem(key), 0o640)
            _write(self.server_cert_path, cert.public_bytes(serialization.Encoding.PEM))

    def device_paths(self, name: str) -> DeviceCert:
        return DeviceCert(name, self.devices_dir / f"{name}.crt", self.devices_dir / f"{name}.key")

    def ensure_device(self, name: str) -> DeviceCert:
        """The device's certificate and key, issued on first use (CN = `name`)."""
        if not name or any(c in name for c in "/+#\0") or name.startswith("$"):
            raise ValueError(f"invalid device name {name!r}")
        paths = self.device_paths(name)
        if paths.cert_path.exists() and paths.key_path.exists():
            return paths
        self.devices_dir.mkdir(parents=True, exist_ok=True)
        cert, key = self._issue(name, server=False)
        _write(paths.key_path, _key_pem(key), 0o600)
        _write(paths.cert_path, cert.public_bytes(serialization.Encoding.PEM))
        return paths

    def devices(self) -> list[str]:
        if not self.devices_dir.exists():
            return []
        return sorted(p.stem for p in self.devices_dir.glob("*.crt"))
