"""Fixtures for tests against the running local stack."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from awscrt import mqtt
from stackhelpers import Device, Inbox, StreamReader, aws_client, connect


@pytest.fixture
def device(stack: dict[str, str]) -> Iterator[Callable[[str], Device]]:
    opened: list[mqtt.Connection] = []

    def make(name: str) -> Device:
        connection = connect(stack, name)
        opened.append(connection)
        return Device(name, connection, Inbox())

    yield make
    for connection in opened:
        connection.disconnect().result(10)


@pytest.fixture
def raw_stream(stack: dict[str, str]) -> StreamReader:
    return StreamReader(aws_client(stack, "kinesis"), stack["RAILPULSE_STREAM_RAW"])
