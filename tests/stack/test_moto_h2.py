"""The stand-in keeps an HTTP/2 connection open however many requests it carries, as Kinesis does.

The KCL's Java client reads each stream over one HTTP/2 connection (h2c here). hypercorn's default
ended a connection after 1,000 requests with a GOAWAY; the GetRecords calls in flight then were
dropped and every shard's reads stopped for 10 s, every two minutes (issue 18's latency tail).
This client speaks HTTP/2 with prior knowledge, like the SDK's, over a real socket.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.events
import pytest

pytestmark = pytest.mark.stack

REQUESTS = 1_200
"""More than hypercorn's default limit of 1,000 requests a connection."""


def _list_streams(conn: h2.connection.H2Connection, host: str) -> int:
    stream_id = conn.get_next_available_stream_id()
    body = b"{}"
    conn.send_headers(
        stream_id,
        [
            (":method", "POST"),
            (":scheme", "http"),
            (":authority", host),
            (":path", "/"),
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", "Kinesis_20131202.ListStreams"),
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/kinesis/aws4_request, "
                "SignedHeaders=host, Signature=x",
            ),
            ("content-length", str(len(body))),
        ],
    )
    conn.send_data(stream_id, body, end_stream=True)
    return stream_id


def test_one_http2_connection_carries_more_than_a_thousand_requests(
    stack: dict[str, str],
) -> None:
    url = urlsplit(stack["AWS_ENDPOINT_URL"])
    host, port = url.hostname or "127.0.0.1", url.port or 80
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    with socket.create_connection((host, port), timeout=10) as sock:
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        answered: dict[int, int] = {}
        for _ in range(REQUESTS):
            stream_id = _list_streams(conn, f"{host}:{port}")
            sock.sendall(conn.data_to_send())
            while stream_id not in answered:
                data = sock.recv(65536)
                assert data, f"the server closed the connection after {len(answered)} requests"
                for event in conn.receive_data(data):
                    assert not isinstance(event, h2.events.ConnectionTerminated), (
                        f"GOAWAY after {len(answered)} requests: {event}"
                    )
                    if isinstance(event, h2.events.ResponseReceived):
                        status = dict(event.headers)[b":status"]
                        answered[event.stream_id] = int(status)
                    elif isinstance(event, h2.events.DataReceived):
                        conn.acknowledge_received_data(
                            event.flow_controlled_length, event.stream_id
                        )
                sock.sendall(conn.data_to_send())
    assert len(answered) == REQUESTS
    assert set(answered.values()) == {200}
