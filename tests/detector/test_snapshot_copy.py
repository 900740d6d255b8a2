"""The copy a snapshot is written from (issue 18): what the models held when it was taken, byte
for byte, whatever the models do afterwards; a copy into an earlier copy's arrays is the same."""

from __future__ import annotations

from railpulse_detector.model import ModelBank
from railpulse_detector.snapshot_writer import detached
from railpulse_shared.catalogue import load_catalogue
from railpulse_shared.contracts import AcceptedFrame, Reading


def frames(seqs: range, trains: int = 3) -> list[AcceptedFrame]:
    return [
        AcceptedFrame(
            train=f"train-{t}",
            seq=seq,
            ts_ms=1_764_000_000_000 + seq * 1000,
            readings={f"bearing_temp_{i}": Reading(value=40.0 + i + (seq * t % 5) * 0.3)
                      for i in range(1, 9)},
        )
        for seq in seqs
        for t in range(trains)
    ]


def test_a_detached_copy_encodes_what_the_models_held_when_it_was_taken() -> None:
    bank = ModelBank(load_catalogue())
    bank.score(frames(range(1, 40)))
    expected = bank.dumps()
    copy = detached(bank)
    bank.score(frames(range(40, 60)))  # the models move on while the copy is written
    assert copy.dumps() == expected != bank.dumps()

    expected = bank.dumps()
    again = detached(bank, reuse=copy)  # into the written copy's arrays
    bank.score(frames(range(60, 70), trains=4))  # and a new train: the fleet grows
    assert again.dumps() == expected
    grown = detached(bank, reuse=again)  # shapes differ now: fresh arrays where they must
    assert grown.dumps() == bank.dumps()
