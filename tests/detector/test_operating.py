"""A train's operating state from its frames: power-up after a gap, first move, met in service."""

from __future__ import annotations

import math

from railpulse_detector.operating import PowerClock

T0 = 1_700_000_000_000


def test_a_morning_start_then_service_and_the_next_morning_afresh() -> None:
    clock = PowerClock()
    state, fresh = clock.update("t", T0, 0.0)
    assert fresh and state.seconds_in_service(T0) is None
    clock.update("t", T0 + 600_000, 0.0)
    state, fresh = clock.update("t", T0 + 1_200_000, 30.0)
    assert not fresh and state.seconds_in_service(T0 + 1_500_000) == 300.0
    assert state.seconds_powered(T0 + 1_500_000) == 1500.0
    # A backfilled older frame moves nothing; a tunnel's few minutes are no power-down.
    assert clock.update("t", T0 + 1_000, 0.0) == (state, False)
    assert not clock.update("t", T0 + 1_500_000, 30.0)[1]
    # Eight hours in the depot: the next frame is a new morning.
    state, fresh = clock.update("t", T0 + 1_500_000 + 8 * 3_600_000, 0.0)
    assert fresh and state.seconds_in_service(state.powered_ms) is None


def test_a_train_met_moving_has_no_morning_start() -> None:
    state, fresh = PowerClock().update("t", T0, 80.0)
    assert fresh and state.seconds_in_service(T0) == math.inf
