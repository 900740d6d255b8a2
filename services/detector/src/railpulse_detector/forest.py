"""A streaming Random Cut Forest for a whole fleet of series, in numpy.

All trees of all series live in preallocated flat arrays; one call advances any
subset of series by one (already shingled, normalised) point each, with a
handful of vectorised passes whose Python-level loop runs once per tree *level*,
never per tree or per series.

Tree layout (per tree, ``S`` = sample size): internal nodes have ids ``[0, S)``
and hold a cut ``x[dim] <= val`` (left) and the bounding box ``[lo | hi]`` of
their subtree (one row, one gather); id ``S`` is the tree's sentinel, which cuts
nothing away and leads to itself, so a descent that reached its leaf can keep
stepping with the others; leaves have ids ``[S + 1, 2S + 2)`` and hold one point
plus a mass (duplicates share a leaf). One spare leaf and internal node exist
because the new point is inserted before the evicted one is deleted. No parent
links: every structural change works from the path its walk recorded.

Score (AWS random-cut-forest-by-aws ``AnomalyScoreVisitor``). For a query ``q``
following the cuts to a leaf at depth ``L``:

* leaf: ``s_L = 1 / (L + 1)`` when ``q`` differs from the leaf point, else
  ``s_L = (1 - m / 2M) / (L + log2(m + 1))`` (leaf mass ``m``, tree mass ``M``);
* each ancestor at depth ``k``, with box ``B``:
  ``p_k = sum_d ext_d(B, q) / sum_d range_d(B + q)`` (``B + q``: the box grown to hold ``q``) (the probability that a
  random cut of ``B + q`` separates ``q``) and ``s_k = p_k / (k + 1) + (1 - p_k) s_{k+1}``;
* tree score ``s_0 * log2(1 + M)``; forest score = mean over trees.

Unrolled, ``s_0 = sum_k p_k/(k+1) prod_{j<k}(1-p_j) + s_L prod_{j<L}(1-p_j)``, which
is what is computed, for all levels at once. Attribution (AWS
``AnomalyAttributionVisitor``, the DiVector behind RANDOM_CUT_FOREST_WITH_EXPLANATION)
splits each term ``p_k`` into its per-dimension, per-direction parts
``ext_d^{high|low} / sum range``, so it sums to the score exactly.

Insertion reuses the scoring path: the AWS insert draws, top-down, a random cut
of ``B + q`` at each node and stops at the first that separates ``q`` (probability
``p_k``, the same quantity as above), so one traversal serves both.
Sampling is the AWS time-decayed reservoir: a point arriving at step ``t`` gets
weight ``-λ t + log(-log U)``; a tree keeps the ``S`` smallest weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from railpulse_detector import _mutate
from railpulse_detector._arrays import F32, NIL, FloatArray, IntArray
from railpulse_detector._rng import STREAM_SAMPLER, uniform
from railpulse_detector._walk import walk

__all__ = ["FloatArray", "ForestConfig", "ForestOutput", "IntArray", "RandomCutForest"]

_REBASE_STEPS = 1 << 20  # keeps float32 sampler weights precise on endless streams


@dataclass(frozen=True, slots=True)
class ForestConfig:
    """Shape of every forest in the fleet.

    ``dimensions`` is the length of a shingled point (channels x shingle size).
    ``time_decay`` (λ) defaults to ``1 / (10 * sample_size)`` as in AWS RCF: the
    sample then spans roughly the last ``1/λ`` points.
    """

    dimensions: int
    num_trees: int = 50
    sample_size: int = 256
    time_decay: float = 0.0

    @property
    def decay(self) -> float:
        return self.time_decay if self.time_decay > 0 else 1.0 / (10.0 * self.sample_size)


@dataclass(frozen=True, slots=True)
class ForestOutput:
    """Scores (n, B) and attributions (n, B, 2, D) as [high, low] per dimension.

    With one point per series (``points`` of shape (n, D)) the ``B`` axis is dropped.
    """

    score: FloatArray
    attribution: FloatArray


class RandomCutForest:
    """The forests of ``len(seeds)`` series, advanced together.

    Series ``i`` owns trees ``[i * T, (i + 1) * T)``. Its random draws depend only
    on ``seeds[i]``, its step count and the tree's local index, so a series
    scores the same alone as inside any fleet.
    """

    STATE_FIELDS = (
        "box", "pt", "cut_dim", "cut_val", "child", "mass", "root",
        "int_free", "n_int_free", "leaf_free", "n_leaf_free", "w", "slot_leaf",
        "n_slots", "wmax", "wmax_slot", "seeds", "steps", "w_base",
    )  # fmt: skip

    def __init__(self, config: ForestConfig, seeds: npt.ArrayLike) -> None:
        self.config = config
        seeds_arr = np.asarray(seeds, dtype=np.uint64).reshape(-1)
        n, t, s, d = seeds_arr.size, config.num_trees, config.sample_size, config.dimensions
        if s >= 16000:
            raise ValueError("sample_size must be below 16000 (int16 node ids)")
        g = n * t
        # Per tree: internal nodes 0..S-1 and the sentinel S (stride S + 1), leaves
        # S+1..2S+1 (points at row id - S - 1), masses by node id (stride 2S + 2).
        self.box = np.zeros((g * (s + 1), 2 * d), np.float32)  # [lo | hi]
        self.pt = np.zeros((g * (s + 1), d), np.float32)
        self.cut_dim = np.zeros(g * (s + 1), np.int16)
        self.cut_val = np.zeros(g * (s + 1), np.float32)
        self.child = np.full((g * (s + 1), 2), NIL, np.int16)
        sentinel = np.arange(g) * (s + 1) + s
        self.box[sentinel, :d] = -np.inf
        self.box[sentinel, d:] = np.inf
        self.cut_val[sentinel] = np.inf
        self.child[sentinel] = s
        self.mass = np.zeros(g * (2 * s + 2), np.int16)
        self.root = np.full(g, NIL, np.int16)
        self.int_free = np.tile(np.arange(s - 1, -1, -1, dtype=np.int16), (g, 1))
        self.n_int_free = np.full(g, s, np.int16)
        self.leaf_free = np.tile(np.arange(2 * s + 1, s, -1, dtype=np.int16), (g, 1))
        self.n_leaf_free = np.full(g, s + 1, np.int16)
        self.w = np.full((g, s), -np.inf, np.float32)
        self.slot_leaf = np.full((g, s), NIL, np.int16)
        self.n_slots = np.zeros(g, np.int16)
        self.wmax = np.full(g, -np.inf, np.float32)
        self.wmax_slot = np.zeros(g, np.int16)
        self.seeds = seeds_arr
        self.steps = np.zeros(n, np.int64)
        self.w_base = np.zeros(n, np.int64)

    # ------------------------------------------------------------------ sizes
    @property
    def n_series(self) -> int:
        return int(self.seeds.size)

    def nbytes(self) -> int:
        """Bytes of model state held for the whole fleet."""
        return int(sum(getattr(self, f).nbytes for f in self.STATE_FIELDS))

    # -------------------------------------------------------------- helpers
    def boxes(self, g: IntArray, n: IntArray) -> F32:
        """Bounding boxes ``[lo | hi]`` of nodes ``n`` of trees ``g`` (a leaf's is its point)."""
        s, d = self.config.sample_size, self.config.dimensions
        out = self.box.take(g * (s + 1) + np.minimum(n, s), axis=0)
        li = np.flatnonzero(n > s)
        if li.size:
            p = self.pt.take(g[li] * (s + 1) + n[li] - s - 1, axis=0)
            out[li, :d] = p
            out[li, d:] = p
        return out

    # --------------------------------------------------------------- update
    def update(
        self,
        series: npt.ArrayLike,
        points: npt.ArrayLike,
        lengths: npt.ArrayLike | None = None,
        explain: bool = True,
    ) -> ForestOutput:
        """Score each point against its series' forest, then insert it (sampler permitting).

        ``series`` (n,) distinct series indices; ``points`` (n, B, D): ``B`` consecutive
        points per series (or (n, D) for one each); ``lengths`` (n,) how many of the
        ``B`` are real (default all). Returns scores (n, B) and attribution (n, B, 2, D),
        each computed before that point was inserted; padding and empty forests score 0.
        ``explain=False`` skips the attribution (left 0).

        Exactly equivalent to ``B`` single-point calls: each tree's own sequence of
        queries and insertions is kept, but since the sampler (not the tree shape)
        decides which points a tree takes, the queries between two insertions into a
        tree are batched. One round handles, in every tree, all queries up to and
        including its next accepted point, then that insertion and eviction.
        """
        cfg = self.config
        t_, s, d = cfg.num_trees, cfg.sample_size, cfg.dimensions
        ser = np.asarray(series, dtype=np.int64).reshape(-1)
        pts = np.asarray(points, dtype=np.float32)
        single = pts.ndim == 2
        pts = pts.reshape(ser.size, -1, d)
        n, b = ser.size, pts.shape[1]
        pts_flat = pts.reshape(n * b, d)
        lens = np.full(n, b, np.int64) if lengths is None else np.asarray(lengths, np.int64)
        self._rebase(ser)

        g = (ser[:, None] * t_ + np.arange(t_)).reshape(-1)
        owner = np.repeat(np.arange(n), t_)  # row of ``pts`` feeding each tree
        local = np.tile(np.arange(t_, dtype=np.uint64), n)
        seed = self.seeds[ser][owner]
        step0 = self.steps[ser][owner]
        end = lens[owner]
        cols = np.arange(b)

        # Sampler weights of every (tree, point) of the block, fixed in advance.
        steps_gb = step0[:, None] + cols[None, :]
        u = uniform(seed[:, None], steps_gb.astype(np.uint64), local[:, None], STREAM_SAMPLER)
        base = self.w_base[ser][owner]
        w_new = (-cfg.decay * (steps_gb - base[:, None]) + np.log(-np.log(u))).astype(np.float32)

        score = np.zeros((g.size, b))
        attr = np.zeros((g.size, b, 2 * d)) if explain else None
        score_flat = score.reshape(-1)
        pos = np.zeros(g.size, np.int64)
        act = np.flatnonzero(pos < end)
        while act.size:
            ga = g[act]
            full = self.n_slots[ga] >= s
            want = (cols[None, :] >= pos[act, None]) & (cols[None, :] < end[act, None])
            want &= ~full[:, None] | (w_new.take(act, axis=0) < self.wmax[ga][:, None])
            has = want.any(axis=1)
            nxt = np.where(has, np.argmax(want, axis=1), end[act] - 1)
            seg = nxt - pos[act] + 1

            # Rows: every point of each tree's segment, then the points to evict.
            qi = np.repeat(np.arange(act.size), seg)
            seg_end = np.cumsum(seg)
            qstep = pos[act][qi] + np.arange(qi.size) - np.repeat(seg_end - seg, seg)
            acc = np.flatnonzero(has)
            ev = acc[full[acc]]
            ev_slot = self.wmax_slot[ga[ev]].astype(np.int64)
            ev_leaf = self.slot_leaf[ga[ev], ev_slot].astype(np.int64)
            ev_pt = self.pt.take(ga[ev] * (s + 1) + ev_leaf - s - 1, axis=0)
            qq = pts_flat.take(owner[act][qi] * b + qstep, axis=0)
            nq = qi.size
            last = (seg_end - 1)[acc]  # query row of each accepted point
            w_score, w_attr, kept = walk(
                self,
                np.concatenate([ga[qi], ga[ev]]),
                np.concatenate([qq, ev_pt]),
                nq,
                np.concatenate([last, nq + np.arange(ev.size)]),
                explain,
            )
            at = act[qi] * b + qstep
            score_flat[at] = w_score
            if attr is not None and w_attr is not None:
                attr.reshape(-1, 2 * d)[at] = w_attr

            if acc.size:
                ta = act[acc]
                k = acc.size
                new_leaf, kstar, m_new = _mutate.insert(self,
                    ga[acc], qq.take(last, axis=0), kept.path[:k], kept.depth[:k], kept.p[:k],
                    seed[ta], (step0[ta] + nxt[acc]).astype(np.uint64), local[ta],
                )  # fmt: skip
                if ev.size:
                    where = np.searchsorted(acc, ev)
                    _mutate.delete(self,
                        ga[ev], ev_leaf, kept.path[k:], kept.depth[k:],
                        kept.path[where], kstar[where], m_new[where],
                    )  # fmt: skip
                self._record_samples(
                    ga[acc], w_new.reshape(-1)[ta * b + nxt[acc]], new_leaf, full[acc]
                )
            pos[act] = nxt + 1
            act = act[pos[act] < end[act]]

        self.steps[ser] += lens
        # Mean over trees along a contiguous axis: same rounding whatever ``b`` is.
        score_sb = np.ascontiguousarray(score.reshape(n, t_, b).transpose(0, 2, 1)).mean(axis=2)
        if attr is None:
            attr_sb = np.zeros((n, b, 2, d))
        else:
            attr_sb = np.ascontiguousarray(
                attr.reshape(n, t_, b, 2 * d).transpose(0, 2, 3, 1)
            ).mean(axis=3)
            attr_sb = attr_sb.reshape(n, b, 2, d)
        if single:
            return ForestOutput(score=score_sb[:, 0], attribution=attr_sb[:, 0])
        return ForestOutput(score=score_sb, attribution=attr_sb)

    def _rebase(self, ser: IntArray) -> None:
        old = ser[self.steps[ser] - self.w_base[ser] >= _REBASE_STEPS]
        for i in old.tolist():
            delta = np.float32(self.config.decay * float(self.steps[i] - self.w_base[i]))
            trees = slice(i * self.config.num_trees, (i + 1) * self.config.num_trees)
            self.w[trees] += delta
            self.wmax[trees] += delta
            self.w_base[i] = self.steps[i]

    def _record_samples(
        self, g: IntArray, w_new: F32, leaf: IntArray, full: npt.NDArray[np.bool_]
    ) -> None:
        slot = np.where(full, self.wmax_slot[g], self.n_slots[g]).astype(np.int64)
        self.n_slots[g] += (~full).astype(np.int16)
        self.w[g, slot] = w_new
        self.slot_leaf[g, slot] = leaf
        rows = self.w.take(g, axis=0)
        best = np.argmax(rows, axis=1)
        self.wmax_slot[g] = best
        self.wmax[g] = rows[np.arange(g.size), best]
