"""Certificate status from the IoT registry (moto) to the broker: the deny file.

IoT Core refuses a certificate that is not ACTIVE and drops the connections of one that stops
being ACTIVE. Here the stand-in polls the registry (`ListCertificates`, every `interval`, 2 s) and
writes every non-ACTIVE certificate as `<sha256 of its DER> <CN>` to the deny file, which the
broker plugin re-reads when it changes (see `railpulse_devstack.broker`). Fingerprints are
computed here from the PEM, so they do not depend on how moto derives certificate ids.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Any

import structlog
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

__all__ = ["RegistryWatch", "deny_lines", "fingerprint"]

logger = structlog.get_logger()


def fingerprint(pem: str) -> tuple[str, str]:
    """(SHA-256 hex of the DER certificate, its CN)."""
    cert = x509.load_pem_x509_certificate(pem.encode())
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    cn = str(names[0].value) if names else ""
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest(), cn


def deny_lines(denied: dict[str, str]) -> str:
    return "".join(f"{fp} {cn}\n" for fp, cn in sorted(denied.items()) if cn and " " not in cn)


class RegistryWatch:
    def __init__(self, iot: Any, path: Path, *, interval: float = 2.0) -> None:
        # A revoked certificate is refused within seconds. Every 0.5 s, the listing (20 ms of
        # moto's one process at 100 trains, growing with the fleet) took 4 % of moto's time.
        self._iot = iot
        self._path = path
        self._interval = interval
        self._known: dict[str, tuple[str, str]] = {}  # certificate id -> (fingerprint, CN)
        self._written: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="registry-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def scan(self) -> dict[str, str]:
        """fingerprint -> CN of every certificate the registry does not mark ACTIVE."""
        denied: dict[str, str] = {}
        for page in self._iot.get_paginator("list_certificates").paginate():
            for cert in page.get("certificates", []):
                if cert.get("status") == "ACTIVE":
                    continue
                cert_id = cert["certificateId"]
                if cert_id not in self._known:
                    pem = self._iot.describe_certificate(certificateId=cert_id)[
                        "certificateDescription"
                    ]["certificatePem"]
                    self._known[cert_id] = fingerprint(pem)
                fp, cn = self._known[cert_id]
                denied[fp] = cn
        return denied

    def sync(self) -> None:
        text = deny_lines(self.scan())
        if text == self._written:
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self._path)
        self._written = text
        logger.info("registry.denied_certificates", count=text.count("\n"))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync()
            except Exception as err:  # moto restarting: try again next round
                logger.warning("registry.watch_failed", error=repr(err))
            self._stop.wait(self._interval)
