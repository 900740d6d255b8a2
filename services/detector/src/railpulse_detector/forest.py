"""A streaming Random Cut Forest for a whole fleet of series, in numpy.

All trees of all series live in preallocated flat arrays; one call advances any
subset of series by one (already shingled, normalised) point each, with a
handful of vectorised passes whose Python-level loop runs once per tree *level*,
never per tree or per series.

Tree layout (per tree, ``S`` = sample size): internal nodes have ids ``[0, S)``
and hold a cut ``x[dim] <= val`` (left) and the bounding box of their subtree;
leaves have ids ``[S, 2S + 1)`` and hold one point plus a mass (duplicates
share a leaf). One spare leaf and internal node exist because the new point is
inserted before the evicted one is deleted.

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
from railpulse_detector._arrays import F32, NIL, FloatArray, IntArray, i64, rowsum, take_rows
from railpulse_detector._rng import STREAM_SAMPLER, uniform

__all__ = ["FloatArray", "ForestConfig", "ForestOutput", "IntArray", "RandomCutForest"]

_NIL = NIL
_REBASE_STEPS = 1 << 20  # keeps float32 sampler weights precise on endless streams
_SEPARATE_EVICTION_WALK = 256  # from this many deletions a lean descent pays for its loop


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


@dataclass(frozen=True, slots=True)
class _Walk:
    path: IntArray  # (k, W) node ids root to leaf, -1 padded
    depth: IntArray  # (k,) leaf level, -1 for an empty tree
    p: FloatArray  # (k, W) separation probability at each level
    score: FloatArray  # (k,) normalised tree score
    attribution: FloatArray  # (k, 2, D)


class RandomCutForest:
    """The forests of ``len(seeds)`` series, advanced together.

    Series ``i`` owns trees ``[i * T, (i + 1) * T)``. Its random draws depend only
    on ``seeds[i]``, its step count and the tree's local index, so a series
    scores the same alone as inside any fleet.
    """

    STATE_FIELDS = (
        "lo", "hi", "pt", "cut_dim", "cut_val", "child", "parent", "mass", "root",
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
        self.lo = np.zeros((g * s, d), np.float32)
        self.hi = np.zeros((g * s, d), np.float32)
        self.pt = np.zeros((g * (s + 1), d), np.float32)
        self.cut_dim = np.zeros(g * s, np.int16)
        self.cut_val = np.zeros(g * s, np.float32)
        self.child = np.full((g * s, 2), _NIL, np.int16)
        self.parent = np.full(g * (2 * s + 1), _NIL, np.int16)
        self.mass = np.zeros(g * (2 * s + 1), np.int16)
        self.root = np.full(g, _NIL, np.int16)
        self.int_free = np.tile(np.arange(s - 1, -1, -1, dtype=np.int16), (g, 1))
        self.n_int_free = np.full(g, s, np.int16)
        self.leaf_free = np.tile(np.arange(2 * s, s - 1, -1, dtype=np.int16), (g, 1))
        self.n_leaf_free = np.full(g, s + 1, np.int16)
        self.w = np.full((g, s), -np.inf, np.float32)
        self.slot_leaf = np.full((g, s), _NIL, np.int16)
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
    def boxes(self, g: IntArray, n: IntArray) -> tuple[F32, F32]:
        """Bounding boxes of nodes ``n`` of trees ``g`` (a leaf's box is its point)."""
        s = self.config.sample_size
        leaf = n >= s
        lo = np.empty((n.size, self.config.dimensions), np.float32)
        hi = np.empty_like(lo)
        li = np.flatnonzero(leaf)
        ii = np.flatnonzero(~leaf)
        p = take_rows(self.pt, g[li] * (s + 1) + n[li] - s)
        lo[li] = p
        hi[li] = p
        flat = g[ii] * s + n[ii]
        lo[ii] = take_rows(self.lo, flat)
        hi[ii] = take_rows(self.hi, flat)
        return lo, hi

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
        ``explain=False`` skips the attribution (left 0) and about a fifth of the work.

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
        attr = np.zeros((g.size, b, 2 * d))
        score_flat, attr_flat = score.reshape(-1), attr.reshape(-1, 2 * d)
        pos = np.zeros(g.size, np.int64)
        act = np.flatnonzero(pos < end)
        while act.size:
            ga = g[act]
            full = self.n_slots[ga] >= s
            want = (cols[None, :] >= pos[act, None]) & (cols[None, :] < end[act, None])
            want &= ~full[:, None] | (take_rows(w_new, act) < self.wmax[ga][:, None])
            has = want.any(axis=1)
            nxt = np.where(has, np.argmax(want, axis=1), end[act] - 1)
            seg = nxt - pos[act] + 1

            # Queries: every point of each tree's segment, then evicted points.
            qi = np.repeat(np.arange(act.size), seg)
            qstep = pos[act][qi] + np.arange(qi.size) - np.repeat(np.cumsum(seg) - seg, seg)
            acc = np.flatnonzero(has)
            ev = acc[full[acc]]
            ev_slot = i64(self.wmax_slot[ga[ev]])
            ev_leaf = i64(self.slot_leaf[ga[ev], ev_slot])
            ev_pt = take_rows(self.pt, ga[ev] * (s + 1) + ev_leaf - s)
            qg = ga[qi]
            qq = take_rows(pts_flat, owner[act][qi] * b + qstep)
            nq = qi.size
            if ev.size >= _SEPARATE_EVICTION_WALK:
                walk = self._walk(qg, qq, explain)
                ev_path, ev_depth = self._descend(ga[ev], ev_pt)
            else:  # few evictions: one walk is cheaper than two loops
                walk = self._walk(
                    np.concatenate([qg, ga[ev]]), np.concatenate([qq, ev_pt]), explain
                )
                ev_path, ev_depth = walk.path[nq:], walk.depth[nq:]
            path, depth, p_dense = walk.path[:nq], walk.depth[:nq], walk.p[:nq]
            at = act[qi] * b + qstep
            score_flat[at] = walk.score[:nq]
            if explain:
                attr_flat[at] = walk.attribution[:nq].reshape(nq, 2 * d)

            if acc.size:
                last = (np.cumsum(seg) - 1)[acc]  # query row of each accepted point
                ta = act[acc]
                new_leaf, kstar, m_new = _mutate.insert(self,
                    ga[acc], take_rows(qq, last), take_rows(path, last), depth[last], take_rows(p_dense, last),
                    seed[ta], (step0[ta] + nxt[acc]).astype(np.uint64), local[ta],
                )  # fmt: skip
                if ev.size:
                    where = np.searchsorted(acc, ev)
                    _mutate.delete(self,
                        ga[ev], ev_leaf, ev_path, ev_depth,
                        path[last[where]], kstar[where], m_new[where],
                    )  # fmt: skip
                self._record_samples(
                    ga[acc], w_new.reshape(-1)[ta * b + nxt[acc]], new_leaf, full[acc]
                )
            pos[act] = nxt + 1
            act = act[pos[act] < end[act]]

        self.steps[ser] += lens
        # Mean over trees along a contiguous axis: same rounding whatever ``b`` is.
        score_sb = np.ascontiguousarray(score.reshape(n, t_, b).transpose(0, 2, 1)).mean(axis=2)
        attr_sb = np.ascontiguousarray(attr.reshape(n, t_, b, 2 * d).transpose(0, 2, 3, 1)).mean(
            axis=3
        )
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

    # ---------------------------------------------------------------- walk
    def _descend(self, g: IntArray, q: F32) -> tuple[IntArray, IntArray]:
        """Paths only (k, L+1), -1 padded, and leaf depths: for the points to delete."""
        s = self.config.sample_size
        d = self.config.dimensions
        cur = i64(self.root[g])
        cols = [cur.copy()]
        idx = np.flatnonzero((cur >= 0) & (cur < s))
        node, qa = cur[idx], take_rows(q, idx)
        child = self.child.reshape(-1)
        while idx.size:
            flat = g[idx] * s + node
            coord = np.take(qa.reshape(-1), np.arange(0, idx.size * d, d) + self.cut_dim[flat])
            node = i64(np.take(child, 2 * flat + (coord > self.cut_val[flat])))
            col = np.full(g.size, _NIL, np.int64)
            col[idx] = node
            cols.append(col)
            inner = np.flatnonzero(node < s)
            if inner.size < idx.size:
                idx, node, qa = idx[inner], node[inner], take_rows(qa, inner)
        path = np.stack(cols, axis=1)
        return path, (path >= 0).sum(axis=1) - 1

    def _walk(self, g: IntArray, q: F32, explain: bool = True) -> _Walk:
        """Follow the cuts with points ``q`` in trees ``g``, scoring on the way down.

        The score recursion is unrolled top-down: ``reach`` carries
        ``prod_{j<k} (1 - p_j)`` and each level adds ``p_k / (k + 1) * reach``;
        attribution adds ``ext_d / range * reach / (k + 1)`` per dimension and side.
        """
        cfg = self.config
        s, d = cfg.sample_size, cfg.dimensions
        stride = 2 * s + 1
        k = g.size
        path_cols: list[IntArray] = []
        p_cols: list[FloatArray] = []
        score = np.zeros(k)
        attr = np.zeros((k, 2, d))
        depth = np.full(k, -1, np.int64)

        root = i64(self.root[g])
        idx = np.flatnonzero(root >= 0)
        cur = root[idx]
        path_cols.append(root.copy())
        p_cols.append(np.zeros(k))
        gi = g[idx]
        qa = take_rows(q, idx)
        # Running state per active query, one matrix so compaction is one ``take``:
        # [high attribution (d) | low attribution (d) | reach | acc | tree mass].
        st = np.zeros((idx.size, 2 * d + 3), order="F")  # column updates stay contiguous
        st[:, 2 * d] = 1.0
        st[:, 2 * d + 2] = self.mass[gi * stride + cur]
        done: list[tuple[IntArray, IntArray, IntArray, IntArray, FloatArray, F32]] = []
        level = 0
        while idx.size:
            leaf = cur >= s
            if leaf.any():
                # Leaves are finished in one pass at the end; here they only leave.
                r = np.flatnonzero(leaf)
                done.append(
                    (
                        idx[r],
                        cur[r],
                        gi[r],
                        np.full(r.size, level),
                        take_rows(st, r),
                        take_rows(qa, r),
                    )
                )
                keep = np.flatnonzero(~leaf)
                idx, cur, gi = idx[keep], cur[keep], gi[keep]
                st, qa = take_rows(st, keep), take_rows(qa, keep)
                if not idx.size:
                    break
            flat = gi * s + cur
            lo = take_rows(self.lo, flat)
            hi = take_rows(self.hi, flat)
            eh = np.maximum(qa - hi, 0.0)
            el = np.maximum(lo - qa, 0.0)
            ext_sum = rowsum(eh + el)
            new_range = rowsum(hi - lo) + ext_sum
            inv = 1.0 / np.where(new_range > 0, new_range, 1.0)
            p = ext_sum * inv
            p_cols[level][idx] = p
            reach = st[:, 2 * d]
            wgt = reach / (level + 1.0)
            st[:, 2 * d + 1] += p * wgt
            if explain:
                f = (wgt * inv)[:, None]
                st[:, :d] += eh * f
                st[:, d : 2 * d] += el * f
            st[:, 2 * d] = reach * (1.0 - p)
            coord = np.take(qa.reshape(-1), np.arange(0, idx.size * d, d) + self.cut_dim[flat])
            right = coord > self.cut_val[flat]
            cur = i64(np.take(self.child.reshape(-1), 2 * flat + right))
            level += 1
            col = np.full(k, _NIL, np.int64)
            col[idx] = cur
            path_cols.append(col)
            p_cols.append(np.zeros(k))
        path = np.stack(path_cols, axis=1)
        p_all = np.stack(p_cols, axis=1)
        if done:
            rows, node, gl, lvl = (np.concatenate([x[j] for x in done]) for j in range(4))
            state = np.concatenate([x[4] for x in done])
            ql = np.concatenate([x[5] for x in done])
            diff = (ql - take_rows(self.pt, gl * (s + 1) + node - s)).astype(np.float64)
            ext = np.concatenate([np.maximum(diff, 0.0), np.maximum(-diff, 0.0)], axis=1)
            ext_sum = rowsum(ext)
            dup = ext_sum == 0
            m = self.mass[gl * stride + node].astype(np.float64)
            tm = state[:, 2 * d + 2]
            with np.errstate(divide="ignore", invalid="ignore"):
                seen = (1.0 - m / (2.0 * tm)) / (lvl + np.log2(m + 1.0))
                share = np.where(dup[:, None], 1.0 / (2 * d), ext / ext_sum[:, None])
            s_leaf = np.where(dup, seen, 1.0 / (lvl + 1.0)) * state[:, 2 * d]
            norm = np.log2(1.0 + tm)
            score[rows] = (state[:, 2 * d + 1] + s_leaf) * norm
            att = (state[:, : 2 * d] + share * s_leaf[:, None]) * norm[:, None]
            attr[rows] = att.reshape(-1, 2, d)
            p_all[rows, lvl] = np.where(dup, 0.0, 1.0)
            depth[rows] = lvl
        return _Walk(path, depth, p_all, score, attr)

    def _record_samples(
        self, g: IntArray, w_new: F32, leaf: IntArray, full: npt.NDArray[np.bool_]
    ) -> None:
        slot = np.where(full, self.wmax_slot[g], self.n_slots[g]).astype(np.int64)
        self.n_slots[g] += (~full).astype(np.int16)
        self.w[g, slot] = w_new
        self.slot_leaf[g, slot] = leaf
        rows = take_rows(self.w, g)
        best = np.argmax(rows, axis=1)
        self.wmax_slot[g] = best
        self.wmax[g] = rows[np.arange(g.size), best]
