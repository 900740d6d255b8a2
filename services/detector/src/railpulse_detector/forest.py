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
  ``p_k = sum_d ext_d(B, q) / sum_d range_d(B ∪ q)`` (the probability that a
  random cut of ``B ∪ q`` separates ``q``) and ``s_k = p_k / (k + 1) + (1 - p_k) s_{k+1}``;
* tree score ``s_0 * log2(1 + M)``; forest score = mean over trees.

Unrolled, ``s_0 = sum_k p_k/(k+1) prod_{j<k}(1-p_j) + s_L prod_{j<L}(1-p_j)``, which
is what is computed, for all levels at once. Attribution (AWS
``AnomalyAttributionVisitor``, the DiVector behind RANDOM_CUT_FOREST_WITH_EXPLANATION)
splits each term ``p_k`` into its per-dimension, per-direction parts
``ext_d^{high|low} / sum range``, so it sums to the score exactly.

Insertion reuses the scoring path: the AWS insert draws, top-down, a random cut
of ``B ∪ q`` at each node and stops at the first that separates ``q`` (probability
``p_k``, the same quantity as above), so one traversal serves both.
Sampling is the AWS time-decayed reservoir: a point arriving at step ``t`` gets
weight ``-λ t + log(-log U)``; a tree keeps the ``S`` smallest weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from railpulse_detector._rng import uniform

__all__ = ["FloatArray", "ForestConfig", "ForestOutput", "IntArray", "RandomCutForest"]

FloatArray = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

_NIL = -1
_REBASE_STEPS = 1 << 20  # keeps float32 sampler weights precise on endless streams
_STREAM_SAMPLER, _STREAM_SEPARATE, _STREAM_CUT = 0, 1, 2


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


def _i64(a: npt.NDArray[np.generic]) -> IntArray:
    return a.astype(np.int64)


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
    def _boxes(self, g: IntArray, n: IntArray) -> tuple[F32, F32]:
        """Bounding boxes of nodes ``n`` of trees ``g`` (a leaf's box is its point)."""
        s = self.config.sample_size
        leaf = n >= s
        lo = np.empty((n.size, self.config.dimensions), np.float32)
        hi = np.empty_like(lo)
        li = np.flatnonzero(leaf)
        ii = np.flatnonzero(~leaf)
        p = self.pt[g[li] * (s + 1) + n[li] - s]
        lo[li] = p
        hi[li] = p
        flat = g[ii] * s + n[ii]
        lo[ii] = self.lo[flat]
        hi[ii] = self.hi[flat]
        return lo, hi

    def _descend(self, g: IntArray, q: F32) -> tuple[IntArray, IntArray]:
        """Root-to-leaf paths of points ``q`` in trees ``g``: (k, L+1) ids, -1 padded; leaf depth."""
        s = self.config.sample_size
        cur = _i64(self.root[g])
        cols = [cur.copy()]
        idx = np.flatnonzero((cur >= 0) & (cur < s))
        while idx.size:
            flat = g[idx] * s + cur[idx]
            right = q[idx, self.cut_dim[flat]] > self.cut_val[flat]
            nxt = _i64(self.child[flat, right.astype(np.intp)])
            cur[idx] = nxt
            col = np.full(g.size, _NIL, np.int64)
            col[idx] = nxt
            cols.append(col)
            idx = idx[nxt < s]
        path = np.stack(cols, axis=1)
        return path, (path >= 0).sum(axis=1) - 1

    # --------------------------------------------------------------- update
    def update(
        self,
        series: npt.ArrayLike,
        points: npt.ArrayLike,
        lengths: npt.ArrayLike | None = None,
    ) -> ForestOutput:
        """Score each point against its series' forest, then insert it (sampler permitting).

        ``series`` (n,) distinct series indices; ``points`` (n, B, D): ``B`` consecutive
        points per series (or (n, D) for one each); ``lengths`` (n,) how many of the
        ``B`` are real (default all). Returns scores (n, B) and attribution (n, B, 2, D),
        each computed before that point was inserted; padding and empty forests score 0.

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
        u = uniform(seed[:, None], steps_gb.astype(np.uint64), local[:, None], _STREAM_SAMPLER)
        base = self.w_base[ser][owner]
        w_new = (-cfg.decay * (steps_gb - base[:, None]) + np.log(-np.log(u))).astype(np.float32)

        score = np.zeros((g.size, b))
        attr = np.zeros((g.size, b, 2 * d))
        pos = np.zeros(g.size, np.int64)
        act = np.flatnonzero(pos < end)
        while act.size:
            ga = g[act]
            full = self.n_slots[ga] >= s
            want = (cols[None, :] >= pos[act, None]) & (cols[None, :] < end[act, None])
            want &= ~full[:, None] | (w_new[act] < self.wmax[ga][:, None])
            has = want.any(axis=1)
            nxt = np.where(has, np.argmax(want, axis=1), end[act] - 1)
            seg = nxt - pos[act] + 1

            # Queries: every point of each tree's segment, then evicted points.
            qi = np.repeat(np.arange(act.size), seg)
            qstep = pos[act][qi] + np.arange(qi.size) - np.repeat(np.cumsum(seg) - seg, seg)
            acc = np.flatnonzero(has)
            ev = acc[full[acc]]
            ev_slot = _i64(self.wmax_slot[ga[ev]])
            ev_leaf = _i64(self.slot_leaf[ga[ev], ev_slot])
            ev_pt = self.pt[ga[ev] * (s + 1) + ev_leaf - s]
            qg = ga[qi]
            qq = pts[owner[act][qi], qstep]
            path_all, depth_all = self._descend(
                np.concatenate([qg, ga[ev]]), np.concatenate([qq, ev_pt])
            )
            nq = qi.size
            path, depth = path_all[:nq], depth_all[:nq]
            st, at, p_dense = self._score(qg, qq, path, depth)
            score[act[qi], qstep] = st
            attr[act[qi], qstep] = at.reshape(nq, 2 * d)

            if acc.size:
                last = (np.cumsum(seg) - 1)[acc]  # query row of each accepted point
                ta = act[acc]
                new_leaf, kstar, m_new = self._insert(
                    ga[acc], qq[last], path[last], depth[last], p_dense[last],
                    seed[ta], (step0[ta] + nxt[acc]).astype(np.uint64), local[ta],
                )  # fmt: skip
                if ev.size:
                    where = np.searchsorted(acc, ev)
                    self._delete(
                        ga[ev], ev_leaf, path_all[nq:], depth_all[nq:],
                        path[last[where]], kstar[where], m_new[where],
                    )  # fmt: skip
                self._record_samples(ga[acc], w_new[ta, nxt[acc]], new_leaf, full[acc])
            pos[act] = nxt + 1
            act = act[pos[act] < end[act]]

        self.steps[ser] += lens
        # Mean over trees along a contiguous axis: same rounding whatever ``b`` is.
        score_sb = np.ascontiguousarray(score.reshape(n, t_, b).transpose(0, 2, 1)).mean(axis=2)
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

    # ---------------------------------------------------------------- score
    def _score(
        self, g: IntArray, q: F32, path: IntArray, depth: IntArray
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Per-tree normalised score, attribution (k, 2, D) and the separation probabilities.

        ``p_dense[i, level]`` is the probability that a random cut at that level of
        the path separates ``q`` (1 at a leaf that differs from ``q``, 0 at a duplicate).
        """
        s, d = self.config.sample_size, self.config.dimensions
        k, width = path.shape
        ti, lv = np.nonzero(path >= 0)  # tree-major: each tree's pairs are contiguous
        node = path[ti, lv]
        lo, hi = self._boxes(g[ti], node)
        qq = q[ti]
        ext = np.concatenate([np.maximum(qq - hi, 0), np.maximum(lo - qq, 0)], axis=1)
        ext = ext.astype(np.float64)
        ext_sum = ext.sum(axis=1)
        new_range = (hi - lo).astype(np.float64).sum(axis=1) + ext_sum
        p = np.divide(ext_sum, new_range, out=np.zeros_like(ext_sum), where=new_range > 0)
        is_leaf = lv == depth[ti]

        p_dense = np.zeros((k, width))
        p_dense[ti, lv] = p
        keep = np.ones((k, width))
        keep[ti, lv] = np.where(is_leaf, 1.0, 1.0 - p)
        before = np.ones((k, width))
        before[:, 1:] = np.cumprod(keep, axis=1)[:, :-1]
        reach = before[ti, lv]  # prod_{j<level} (1 - p_j)

        unseen = 1.0 / (lv + 1.0)
        leaf_mass = self.mass[g[ti] * (2 * s + 1) + node].astype(np.float64)
        tree_mass = self.mass[g * (2 * s + 1) + np.maximum(path[:, 0], 0)].astype(np.float64)
        tm = tree_mass[ti]
        dup = is_leaf & (ext_sum == 0)
        seen = (1.0 - leaf_mass / (2.0 * np.maximum(tm, 1.0))) / (lv + np.log2(leaf_mass + 1.0))
        term = np.where(dup, seen, p * unseen) * reach
        share = np.divide(
            ext, ext_sum[:, None], out=np.zeros_like(ext), where=ext_sum[:, None] > 0
        )
        vec = np.where(dup[:, None], 1.0 / (2 * d), share) * term[:, None]

        score = np.zeros(k)
        attr = np.zeros((k, 2 * d))
        nonempty = np.flatnonzero(depth >= 0)
        if nonempty.size:
            starts = np.searchsorted(ti, nonempty)
            norm = np.log2(1.0 + tree_mass[nonempty])
            score[nonempty] = np.add.reduceat(term, starts) * norm
            attr[nonempty] = np.add.reduceat(vec, starts, axis=0) * norm[:, None]
        return score, attr.reshape(k, 2, d), p_dense

    # --------------------------------------------------------------- insert
    def _pop_internal(self, g: IntArray) -> IntArray:
        self.n_int_free[g] -= 1
        return _i64(self.int_free[g, self.n_int_free[g]])

    def _pop_leaf(self, g: IntArray) -> IntArray:
        self.n_leaf_free[g] -= 1
        return _i64(self.leaf_free[g, self.n_leaf_free[g]])

    def _insert(
        self,
        g: IntArray,
        q: F32,
        path: IntArray,
        depth: IntArray,
        p: FloatArray,
        seed: npt.NDArray[np.uint64],
        step: npt.NDArray[np.uint64],
        local: npt.NDArray[np.uint64],
    ) -> tuple[IntArray, IntArray, IntArray]:
        """Insert ``q`` into trees ``g`` along their scoring paths.

        Returns the leaf now holding ``q``, the level of the new internal node
        (-1 when none was made) and that node's id.
        """
        s, d = self.config.sample_size, self.config.dimensions
        k, width = path.shape
        stride = 2 * s + 1
        levels = np.arange(width, dtype=np.uint64)
        u = uniform(seed[:, None], step[:, None], local[:, None], _STREAM_SEPARATE, levels)
        sep = (u < p) & (path >= 0)
        has_sep = sep.any(axis=1)
        first = np.argmax(sep, axis=1)
        leaf_out = np.full(k, _NIL, np.int64)
        kstar = np.full(k, _NIL, np.int64)
        m_out = np.full(k, _NIL, np.int64)

        empty = np.flatnonzero(depth < 0)
        if empty.size:
            ge = g[empty]
            leaf = self._pop_leaf(ge)
            self.pt[ge * (s + 1) + leaf - s] = q[empty]
            self.mass[ge * stride + leaf] = 1
            self.parent[ge * stride + leaf] = _NIL
            self.root[ge] = leaf
            leaf_out[empty] = leaf

        dup = np.flatnonzero((depth >= 0) & ~has_sep)
        if dup.size:
            rows, cols = np.nonzero(path[dup] >= 0)
            self.mass[g[dup][rows] * stride + path[dup][rows, cols]] += 1
            leaf_out[dup] = path[dup, depth[dup]]

        cut = np.flatnonzero((depth >= 0) & has_sep)
        if cut.size:
            gc, qc, lvl = g[cut], q[cut], first[cut]
            nk = path[cut, lvl]
            lo, hi = self._boxes(gc, nk)
            ext = np.concatenate([np.maximum(qc - hi, 0), np.maximum(lo - qc, 0)], axis=1)
            cum = np.cumsum(ext.astype(np.float64), axis=1)
            r = uniform(seed[cut], step[cut], local[cut], _STREAM_CUT) * cum[:, -1]
            comp = np.minimum(np.argmax(cum > r[:, None], axis=1), 2 * d - 1)
            offset = r - np.where(comp > 0, cum[np.arange(cut.size), comp - 1], 0.0)
            dim = comp % d
            rows = np.arange(cut.size)
            qd = qc[rows, dim]
            high_side = comp < d
            # Cut strictly between the box and q: box on the left (<=) when q is above it.
            edge = np.where(high_side, hi[rows, dim], qd)
            limit = np.where(high_side, qd, lo[rows, dim])
            val = (edge + offset).astype(np.float32)
            val = np.clip(val, edge, np.nextafter(limit, np.float32(-np.inf)))
            m = self._pop_internal(gc)
            leaf = self._pop_leaf(gc)
            fm = gc * s + m
            self.pt[gc * (s + 1) + leaf - s] = qc
            self.mass[gc * stride + leaf] = 1
            self.parent[gc * stride + leaf] = m
            self.cut_dim[fm] = dim
            self.cut_val[fm] = val
            self.child[fm, 0] = np.where(high_side, nk, leaf)
            self.child[fm, 1] = np.where(high_side, leaf, nk)
            self.lo[fm] = np.minimum(lo, qc)
            self.hi[fm] = np.maximum(hi, qc)
            self.mass[gc * stride + m] = self.mass[gc * stride + nk] + 1
            par = _i64(self.parent[gc * stride + nk])
            self.parent[gc * stride + m] = par
            self.parent[gc * stride + nk] = m
            at_root = par < 0
            self.root[gc[at_root]] = m[at_root]
            pi = np.flatnonzero(~at_root)
            fp = gc[pi] * s + par[pi]
            side = (self.child[fp, 1] == nk[pi]).astype(np.intp)
            self.child[fp, side] = m[pi]
            # Ancestors above the new node: grow boxes to q, add one to masses.
            pc = path[cut]
            rows, cols = np.nonzero((np.arange(width)[None, :] < lvl[:, None]) & (pc >= 0))
            fa = gc[rows] * s + pc[rows, cols]
            self.lo[fa] = np.minimum(self.lo[fa], qc[rows])
            self.hi[fa] = np.maximum(self.hi[fa], qc[rows])
            self.mass[gc[rows] * stride + pc[rows, cols]] += 1
            leaf_out[cut] = leaf
            kstar[cut] = lvl
            m_out[cut] = m
        return leaf_out, kstar, m_out

    # --------------------------------------------------------------- delete
    def _delete(
        self,
        g: IntArray,
        leaf: IntArray,
        path: IntArray,
        depth: IntArray,
        q_path: IntArray,
        kstar: IntArray,
        m_new: IntArray,
    ) -> None:
        """Delete one unit of mass at ``leaf`` in trees ``g``.

        ``path`` was traced before the insertion; where the new node ``m_new`` was
        put on that path (same node at level ``kstar`` on both paths) it is spliced in.
        """
        s = self.config.sample_size
        stride = 2 * s + 1
        k = g.size
        width = max(path.shape[1], q_path.shape[1]) + 1
        pe = np.full((k, width), _NIL, np.int64)
        pe[:, : path.shape[1]] = path
        qp = np.full((k, width), _NIL, np.int64)
        qp[:, : q_path.shape[1]] = q_path
        rows = np.arange(k)
        ks = np.maximum(kstar, 0)
        shifted = (kstar >= 0) & (pe[rows, ks] == qp[rows, ks]) & (pe[rows, ks] >= 0)
        if shifted.any():
            si = np.flatnonzero(shifted)
            cols = np.arange(width)[None, :]
            ksi = ks[si][:, None]
            prev = np.concatenate([np.full((si.size, 1), _NIL), pe[si, :-1]], axis=1)
            pe[si] = np.where(cols < ksi, pe[si], np.where(cols == ksi, m_new[si][:, None], prev))
            depth = depth + shifted

        heavy = self.mass[g * stride + leaf] > 1
        hv = np.flatnonzero(heavy)
        if hv.size:
            r, c = np.nonzero(pe[hv] >= 0)
            self.mass[g[hv][r] * stride + pe[hv][r, c]] -= 1

        one = np.flatnonzero(~heavy)
        if not one.size:
            return
        g1, e, pe1, le = g[one], leaf[one], pe[one], depth[one]
        r1 = np.arange(one.size)
        mnode = pe1[r1, le - 1]
        fm = g1 * s + mnode
        sib = np.where(self.child[fm, 0] == e, self.child[fm, 1], self.child[fm, 0]).astype(np.int64)

        # Siblings hanging off the path, levels 1..le, read before the splice.
        r, c = np.nonzero((pe1 >= 0) & (np.arange(width)[None, :] >= 1))
        parent_nodes = pe1[r, c - 1]
        fpn = g1[r] * s + parent_nodes
        off = np.where(self.child[fpn, 0] == pe1[r, c], self.child[fpn, 1], self.child[fpn, 0])
        slo, shi = self._boxes(g1[r], off.astype(np.int64))
        d = self.config.dimensions
        dlo = np.full((one.size, width, d), np.inf, np.float32)
        dhi = np.full((one.size, width, d), -np.inf, np.float32)
        dlo[r, c] = slo
        dhi[r, c] = shi
        # suffix[:, j] = union of sibling boxes at levels >= j
        suf_lo = np.minimum.accumulate(dlo[:, ::-1], axis=1)[:, ::-1]
        suf_hi = np.maximum.accumulate(dhi[:, ::-1], axis=1)[:, ::-1]

        # Splice: the sibling takes the parent's place.
        gp = np.where(le >= 2, pe1[r1, np.maximum(le - 2, 0)], _NIL)
        self.parent[g1 * stride + sib] = gp
        top = gp < 0
        self.root[g1[top]] = sib[top]
        gi = np.flatnonzero(~top)
        fg = g1[gi] * s + gp[gi]
        side = (self.child[fg, 1] == mnode[gi]).astype(np.intp)
        self.child[fg, side] = sib[gi]
        self.mass[g1 * stride + e] = 0
        self.parent[g1 * stride + e] = _NIL
        self.child[fm] = _NIL
        self.leaf_free[g1, self.n_leaf_free[g1]] = e
        self.n_leaf_free[g1] += 1
        self.int_free[g1, self.n_int_free[g1]] = mnode
        self.n_int_free[g1] += 1

        # Ancestors (levels 0..le-2): one less mass, box = union of what hangs below.
        r, c = np.nonzero((pe1 >= 0) & (np.arange(width)[None, :] <= (le - 2)[:, None]))
        fa = g1[r] * s + pe1[r, c]
        self.mass[g1[r] * stride + pe1[r, c]] -= 1
        self.lo[fa] = suf_lo[r, c + 1]
        self.hi[fa] = suf_hi[r, c + 1]

    # -------------------------------------------------------------- sampler
    def _record_samples(self, g: IntArray, w_new: F32, leaf: IntArray, full: npt.NDArray[np.bool_]) -> None:
        slot = np.where(full, self.wmax_slot[g], self.n_slots[g]).astype(np.int64)
        self.n_slots[g] += (~full).astype(np.int16)
        self.w[g, slot] = w_new
        self.slot_leaf[g, slot] = leaf
        rows = self.w[g]
        best = np.argmax(rows, axis=1)
        self.wmax_slot[g] = best
        self.wmax[g] = rows[np.arange(g.size), best]
