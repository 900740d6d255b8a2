"""Properties of the fleet Random Cut Forest that must hold whatever the data."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from railpulse_detector import _walk
from railpulse_detector.forest import ForestConfig, RandomCutForest

SMALL = ForestConfig(dimensions=3, num_trees=12, sample_size=64)


def gaussian(n: int, d: int, seed: int = 0) -> npt.NDArray[np.float32]:
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def check_trees(f: RandomCutForest) -> None:
    """Every tree is a valid random cut tree over exactly its sampler's points."""
    s, d = f.config.sample_size, f.config.dimensions
    ni, nm = s + 1, 2 * s + 2
    for g in range(f.root.size):
        # The sentinel: cuts nothing away, leads to itself, scores nothing.
        assert f.child[g * ni + s].tolist() == [s, s]
        assert f.cut_val[g * ni + s] == np.inf
        assert np.all(f.box[g * ni + s, :d] == -np.inf) and np.all(f.box[g * ni + s, d:] == np.inf)
        root = int(f.root[g])
        slots = int(f.n_slots[g])
        if slots == 0:
            assert root == -1
            continue
        mass = f.mass[g * nm : (g + 1) * nm]
        seen_leaves: dict[int, int] = {}

        def visit(node: int, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
            if node > s:
                p = f.pt[g * ni + node - ni]  # noqa: B023
                assert np.all(p >= lo) and np.all(p <= hi)
                seen_leaves[node] = int(mass[node])  # noqa: B023
                return p, p, int(mass[node])  # noqa: B023
            assert node < s
            flat = g * ni + node  # noqa: B023
            dim, val = int(f.cut_dim[flat]), float(f.cut_val[flat])
            left, right = int(f.child[flat, 0]), int(f.child[flat, 1])
            hl = hi.copy()
            hl[dim] = min(hl[dim], val)
            lr = lo.copy()
            lr[dim] = max(lr[dim], np.nextafter(np.float32(val), np.float32(np.inf)))
            l_lo, l_hi, l_m = visit(left, lo, hl)
            r_lo, r_hi, r_m = visit(right, lr, hi)
            box_lo, box_hi = np.minimum(l_lo, r_lo), np.maximum(l_hi, r_hi)
            np.testing.assert_array_equal(f.box[flat, :d], box_lo)
            np.testing.assert_array_equal(f.box[flat, d:], box_hi)
            assert int(mass[node]) == l_m + r_m  # noqa: B023
            return box_lo, box_hi, l_m + r_m

        inf = np.full(d, np.inf, np.float32)
        visit(root, -inf, inf)
        assert sum(seen_leaves.values()) == slots
        refs = f.slot_leaf[g, :slots].tolist()
        assert {leaf: refs.count(leaf) for leaf in set(refs)} == seen_leaves
        assert int(f.n_leaf_free[g]) == s + 1 - len(seen_leaves)
        assert int(f.n_int_free[g]) == s - (len(seen_leaves) - 1)


@pytest.mark.usefixtures("regime")
def test_trees_stay_valid_through_inserts_deletes_and_duplicates() -> None:
    x = gaussian(400, 3)
    x[200:240] = x[100]  # duplicates of a sampled point
    x[300:320] = np.round(x[300:320])  # coarse values that repeat
    f = RandomCutForest(ForestConfig(dimensions=3, num_trees=4, sample_size=64), [5])
    for a in range(0, 400, 50):
        f.update([0], x[None, a : a + 100])
        check_trees(f)


def test_far_point_scores_higher_than_every_inlier() -> None:
    x = gaussian(400, 3)
    f = RandomCutForest(ForestConfig(dimensions=3, num_trees=20, sample_size=64), [1])
    inliers = f.update([0], x[None]).score[0, 100:]
    far = f.update([0], np.full((1, 3), 12.0, np.float32)).score[0]
    assert far > inliers.max()


def test_scores_are_deterministic_under_a_seed() -> None:
    x = gaussian(150, 3)
    a = RandomCutForest(SMALL, [42]).update([0], x[None]).score
    b = RandomCutForest(SMALL, [42]).update([0], x[None]).score
    c = RandomCutForest(SMALL, [43]).update([0], x[None]).score
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.fixture(params=["few rows", "many rows"])
def regime(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both walk regimes (per-call cost vs per-element cost) must give the same numbers."""
    if request.param == "many rows":
        monkeypatch.setattr(_walk, "_MANY", 1)
        monkeypatch.setattr(_walk, "_CHUNK", 97)


@pytest.mark.usefixtures("regime")
def test_a_block_equals_point_by_point() -> None:
    x = gaussian(260, 3)
    x[150:170] = x[120]
    one = RandomCutForest(SMALL, [9])
    step = np.concatenate([one.update([0], x[i : i + 1]).score for i in range(x.shape[0])])
    blk = RandomCutForest(SMALL, [9])
    block = np.concatenate(
        [blk.update([0], x[None, a : a + 37]).score[0] for a in range(0, 260, 37)]
    )
    np.testing.assert_array_equal(step, block)
    for field in RandomCutForest.STATE_FIELDS:
        np.testing.assert_array_equal(getattr(one, field), getattr(blk, field))


@pytest.mark.usefixtures("regime")
def test_fleet_equals_each_series_alone() -> None:
    seeds = list(range(11, 35))
    x = np.stack([gaussian(120, 3, seed=i) for i in range(24)])
    lengths = np.full(24, 120)
    lengths[1], lengths[2] = 90, 100
    fleet = RandomCutForest(SMALL, seeds)
    out = fleet.update(np.arange(24), x, lengths)
    for i in (0, 1, 2, 23):
        seed = seeds[i]
        alone = RandomCutForest(SMALL, [seed]).update([0], x[None, i, : lengths[i]])
        np.testing.assert_array_equal(out.score[i, : lengths[i]], alone.score[0])
        np.testing.assert_array_equal(out.attribution[i, : lengths[i]], alone.attribution[0])
    assert np.all(out.score[1, 90:] == 0)


def test_attribution_sums_to_the_score() -> None:
    x = gaussian(300, 3)
    x[250] = [0.0, 9.0, -7.0]
    out = RandomCutForest(SMALL, [3]).update([0], x[None])
    np.testing.assert_allclose(out.attribution.sum(axis=(2, 3)), out.score, rtol=1e-9, atol=1e-12)
    high, low = out.attribution[0, 250]
    assert high[1] > high[0] and low[2] > low[0]


def test_a_series_only_advances_when_given_points() -> None:
    f = RandomCutForest(SMALL, [1, 2])
    f.update([1], gaussian(10, 3)[None])
    assert f.steps.tolist() == [0, 10]
    with pytest.raises(ValueError):
        RandomCutForest(ForestConfig(dimensions=1, sample_size=20000), [1])


def test_both_walk_regimes_give_the_same_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    x = np.stack([gaussian(200, 3, seed=i) for i in range(6)])
    x[:, 120:140] = x[:, 100:101]  # duplicates
    few = RandomCutForest(SMALL, range(6))
    few_out = few.update(np.arange(6), x)
    monkeypatch.setattr(_walk, "_MANY", 1)
    monkeypatch.setattr(_walk, "_CHUNK", 53)
    many = RandomCutForest(SMALL, range(6))
    many_out = many.update(np.arange(6), x)
    np.testing.assert_array_equal(few_out.score, many_out.score)
    np.testing.assert_array_equal(few_out.attribution, many_out.attribution)
    for field in RandomCutForest.STATE_FIELDS:
        np.testing.assert_array_equal(getattr(few, field), getattr(many, field))
