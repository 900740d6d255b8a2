"""aiobotocore clients for AWS or for the local stack, from one place.

In AWS, `aws_endpoint_url` is unset and botocore finds the regional endpoints. Locally it points at
the moto server, and `iot_data_endpoint` at the IoT Core stand-in's data-plane API.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session

from railpulse_shared.config import CommonSettings

__all__ = ["AwsClients"]


class AwsClients:
    """Creates aiobotocore clients configured for one service's settings.

    Use as `async with clients.create("kinesis") as kinesis: ...`; a service opens its clients
    once at start-up and keeps them (connection pools are per client).
    """

    def __init__(self, settings: CommonSettings, *, max_pool_connections: int = 20) -> None:
        self.settings = settings
        self.session: AioSession = get_session()
        self.config = AioConfig(
            retries={"max_attempts": 5, "mode": "adaptive"},
            max_pool_connections=max_pool_connections,
            connect_timeout=5,
            read_timeout=30,
        )

    def endpoint_for(self, service: str) -> str | None:
        return self.settings.endpoint_for(service)

    def create(self, service: str, **kwargs: Any) -> AbstractAsyncContextManager[Any]:
        options: dict[str, Any] = {
            "region_name": self.settings.aws_region,
            "config": self.config,
        }
        endpoint = self.endpoint_for(service)
        if endpoint:
            options["endpoint_url"] = endpoint
        options.update(kwargs)
        client: AbstractAsyncContextManager[Any] = self.session.create_client(service, **options)
        return client
