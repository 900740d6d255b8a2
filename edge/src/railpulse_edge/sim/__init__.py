"""The fleet simulator's parts: the vectorised signal model, failure modes, generic payloads."""

from railpulse_edge.sim.model import CHANNELS, FleetModel, Snapshot
from railpulse_edge.sim.scenario import FAULT_KINDS, Fault, Scenario, ScenarioRunner, load_scenario

__all__ = [
    "CHANNELS",
    "FAULT_KINDS",
    "Fault",
    "FleetModel",
    "Scenario",
    "ScenarioRunner",
    "Snapshot",
    "load_scenario",
]
