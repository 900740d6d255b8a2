"""Fixtures for the edge agent's tests against the running stack."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog
from edgehelpers import AgentProcess, agent_env
from tunnel import TcpProxy


@pytest.fixture(autouse=True)
def _fresh_structlog() -> Iterator[None]:
    # Another test may have configured structlog onto a stream pytest has since closed.
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


@pytest.fixture
def ensure_train(stack: dict[str, str]) -> Callable[[str], str]:
    """Issue (once, reused across runs) and register a train's certificate with the stack."""
    from railpulse_edge.fleet import ensure_certs

    def make(name: str) -> str:
        ensure_certs([name], Path(stack["RAILPULSE_CERTS_DIR"]), stack["AWS_ENDPOINT_URL"])
        return name

    return make


@pytest.fixture
def tunnel(stack: dict[str, str]) -> Iterator[TcpProxy]:
    proxy = TcpProxy((stack["RAILPULSE_MQTT_HOST"], int(stack["RAILPULSE_MQTT_PORT"])))
    yield proxy
    proxy.close()


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[Callable[..., AgentProcess]]:
    started: list[AgentProcess] = []

    def make(thing: str, env: dict[str, str], *args: str) -> AgentProcess:
        agent = AgentProcess(thing, env, tmp_path / "spool", list(args))
        started.append(agent)
        return agent

    yield make
    for agent in started:
        if agent.proc is not None and agent.proc.poll() is None:
            agent.proc.kill()
            agent.proc.wait(10)


__all__ = ["agent_env"]
