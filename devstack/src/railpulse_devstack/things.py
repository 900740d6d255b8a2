"""Device identities: a certificate per device, registered as a thing in moto's IoT registry."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from botocore.exceptions import ClientError

from railpulse_devstack.aws import client
from railpulse_devstack.pki import DeviceCert, Pki

__all__ = ["Registry"]


class Registry:
    """Registers devices (create_thing, register_certificate_without_ca, attach_thing_principal)."""

    def __init__(self, endpoint: str, pki: Pki) -> None:
        self._iot: Any = client("iot", endpoint)
        self._pki = pki
        self._known: set[str] | None = None

    def _things(self) -> set[str]:
        if self._known is None:
            names: set[str] = set()
            for page in self._iot.get_paginator("list_things").paginate():
                names.update(t["thingName"] for t in page.get("things", []))
            self._known = names
        return self._known

    def ensure(self, name: str) -> DeviceCert:
        """Issue the device's certificate if needed and register it as a thing if it is not."""
        paths = self._pki.ensure_device(name)
        if name in self._things():
            return paths
        try:
            self._iot.create_thing(thingName=name)
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") != "ResourceAlreadyExistsException":
                raise
        cert = self._iot.register_certificate_without_ca(
            certificatePem=paths.pem(), status="ACTIVE"
        )
        self._iot.attach_thing_principal(thingName=name, principal=cert["certificateArn"])
        self._things().add(name)
        return paths

    def ensure_all(self, names: Iterable[str]) -> list[DeviceCert]:
        return [self.ensure(n) for n in names]
