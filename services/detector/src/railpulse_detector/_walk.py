"""The walk of points down their trees: descent, then the AWS score of every path at once.

The descent is the only loop over tree levels: four gathers per level over the
rows. It yields the internal nodes visited as level-major pairs (level, row,
node); scoring is then a handful of array operations over all pairs, laid out
dimension-major so that every operation runs over contiguous memory.

Two regimes, with identical results (every per-row sum and product runs in level
order either way): few rows (one series) pay per numpy call, so rows that reached
their leaf simply park on their tree's sentinel (a node that cuts nothing away
and leads to itself) and the level products run over a dense (levels x rows)
matrix; many rows (a fleet) pay per element, so finished rows are dropped at
every level and the products run over the pairs themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import numpy.typing as npt

from railpulse_detector._arrays import F32, NIL, FloatArray, IntArray

if TYPE_CHECKING:
    from railpulse_detector.forest import RandomCutForest

__all__ = ["Kept", "walk"]

_T = TypeVar("_T", bound=np.generic)

_CHUNK = 1 << 14  # rows per pass: keeps a big fleet's per-pass arrays in cache
_MANY = 1 << 11  # from this many rows, drop finished rows and work on pairs only


@dataclass(frozen=True, slots=True)
class Kept:
    """What insertion and deletion need of some walked rows, one row each.

    ``path`` (k, W) node ids from the root to the leaf, then the sentinel ``S``;
    ``depth`` (k,) leaf level, -1 in an empty tree; ``p`` (k, W) the separation
    probability at each level (at the leaf: 1 unless the point is already there).
    """

    path: IntArray
    depth: IntArray
    p: FloatArray


@dataclass(frozen=True, slots=True)
class _Pairs:
    """The internal nodes on the rows' paths, level-major (rows ascending per level)."""

    row: IntArray
    node: IntArray  # index into the forest's node arrays (tree base + node id)
    offsets: list[int]  # level j is [offsets[j], offsets[j + 1])
    leaf: IntArray  # (m,) leaf id, S for an empty tree
    depth: IntArray  # (m,) leaf level

    def level(self, j: int) -> slice:
        return slice(self.offsets[j], self.offsets[j + 1])


def walk(
    f: RandomCutForest, g: IntArray, q: F32, nq: int, keep: IntArray, explain: bool
) -> tuple[FloatArray, FloatArray | None, Kept]:
    """Walk points ``q`` down trees ``g``; the first ``nq`` rows are scored.

    Returns the normalised tree score (nq,) and, with ``explain``, the attribution
    (nq, 2D) of the scored rows, and the paths of rows ``keep`` (sorted).
    """
    s, d = f.config.sample_size, f.config.dimensions
    score = np.zeros(nq)
    attr = np.zeros((nq, 2 * d)) if explain else None
    kept: list[Kept] = []
    for a in range(0, g.size, _CHUNK):
        z = min(a + _CHUNK, g.size)
        pairs = _descend(f, g[a:z], q[a:z])
        zq = max(min(z, nq), a)
        sc, at, p = _score(f, g[a:z], q[a:z], pairs, zq - a, explain)
        score[a:zq] = sc
        if attr is not None and at is not None:
            attr[a:zq] = at
        lo, hi = np.searchsorted(keep, [a, z])
        kept.append(_keep(pairs, p, keep[lo:hi] - a, g[a:z] * (s + 1), s))
    width = max(k.path.shape[1] for k in kept)
    return (
        score,
        attr,
        Kept(
            path=np.concatenate([_pad(k.path, width, s) for k in kept]),
            depth=np.concatenate([k.depth for k in kept]),
            p=np.concatenate([_pad(k.p, width, 0.0) for k in kept]),
        ),
    )


def _pad(x: npt.NDArray[_T], width: int, value: float) -> npt.NDArray[_T]:
    if x.shape[1] == width:
        return x
    out = np.full((x.shape[0], width), value, x.dtype)
    out[:, : x.shape[1]] = x
    return out


def _keep(pairs: _Pairs, p: FloatArray, rows: IntArray, base: IntArray, s: int) -> Kept:
    """Dense paths (node ids) and probabilities of ``rows`` from the pairs."""
    width = len(pairs.offsets)  # internal levels, plus the leaf's
    where = np.full(base.size, NIL, np.int64)
    where[rows] = np.arange(rows.size)
    at = where.take(pairs.row)
    sel = np.flatnonzero(at >= 0)
    lv = np.repeat(np.arange(width - 1), np.diff(pairs.offsets)).take(sel)
    path = np.full((rows.size, width), s, np.int64)
    prob = np.zeros((rows.size, width))
    path[at.take(sel), lv] = pairs.node.take(sel) - base.take(pairs.row.take(sel))
    prob[at.take(sel), lv] = p[: pairs.row.size].take(sel)
    depth = pairs.depth.take(rows)
    cols = np.arange(rows.size)
    path[cols, depth] = pairs.leaf.take(rows)
    prob[cols, depth] = p[pairs.row.size :].take(rows)
    empty = pairs.leaf.take(rows) == s
    return Kept(path=path, depth=np.where(empty, NIL, depth), p=prob)


def _descend(f: RandomCutForest, g: IntArray, q: F32) -> _Pairs:
    s, d = f.config.sample_size, f.config.dimensions
    m = g.size
    many = m >= _MANY
    base = g * (s + 1)
    cur = f.root.take(g)
    cur = np.where(cur < 0, np.int16(s), cur)  # an empty tree: its sentinel
    qf = q.reshape(-1)
    qoff = np.arange(0, m * d, d)
    child = f.child.reshape(-1)
    rows = np.arange(m)
    leaf = np.full(m, s, np.int64)
    depth = np.zeros(m, np.int64)
    found: list[IntArray] = []  # level j: the rows still on internal nodes (many)
    nodes: list[npt.NDArray[np.integer]] = []  # level j: their nodes (many); every row's (few)
    level = 0
    while True:
        if many:
            inner = cur < s
            done = np.flatnonzero(~inner)
            if done.size:
                leaf[rows.take(done)] = cur.take(done)
                depth[rows.take(done)] = level
                on = np.flatnonzero(inner)
                rows, cur, base, qoff = rows.take(on), cur.take(on), base.take(on), qoff.take(on)
            if not rows.size:
                break
            node = cur + base
            found.append(rows)
            nodes.append(node)
        else:
            nodes.append(cur)
            if cur.min() >= s:
                break
            node = np.minimum(cur, s) + base
        right = qf.take(f.cut_dim.take(node) + qoff) > f.cut_val.take(node)
        twice = node + node
        twice += right
        cur = child.take(twice)
        level += 1
    if many:
        sizes = [r.size for r in found]
        row = np.concatenate(found) if found else rows
        node_ids = np.concatenate(nodes) if nodes else rows
    else:
        path = np.stack(nodes)  # (levels, rows); the last level holds no internal node
        inner = path < s
        lv, row = np.nonzero(inner[:-1])
        node_ids = path[:-1][inner[:-1]] + base.take(row)
        sizes = np.bincount(lv, minlength=path.shape[0] - 1).tolist()
        depth = inner.sum(axis=0)
        leaf = path[depth, np.arange(m)].astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).tolist()
    return _Pairs(row=row, node=node_ids, offsets=offsets, leaf=leaf, depth=depth)


def _score(
    f: RandomCutForest, g: IntArray, q: F32, pairs: _Pairs, nq: int, explain: bool
) -> tuple[FloatArray, FloatArray | None, FloatArray]:
    """AWS score (and attribution) of the first ``nq`` rows.

    ``reach_k = prod_{j<k} (1 - p_k)``; the score sums ``p_k / (k + 1) * reach_k``
    over the internal levels, in level order, plus the leaf term times ``reach_L``.
    Also returns the separation probability of every pair, then every row's leaf's
    (1 unless the point is already there); 0 for rows past ``nq``.
    """
    s, d = f.config.sample_size, f.config.dimensions
    m, n_pairs = g.size, pairs.row.size
    scored = None
    if nq < m:  # only the scored rows' pairs
        scored = pairs.row < nq
        pairs = _first_rows(pairs, scored, nq)
    g, q = g[:nq], q[:nq]
    row, width = pairs.row, len(pairs.offsets) - 1
    bt = f.box.take(pairs.node, axis=0).T.copy()  # (2D, pairs)
    qt = q.T.copy().take(row, axis=1)  # (D, pairs)
    eh = qt - bt[d:]
    np.maximum(eh, 0.0, out=eh)
    el = bt[:d] - qt
    np.maximum(el, 0.0, out=el)
    ext = _dimsum(eh + el)
    inv = 1.0 / (_dimsum(bt[d:] - bt[:d]) + ext)
    p = ext * inv
    if nq * width <= _MANY * 8:  # dense: a few calls over (levels, rows)
        lv = np.repeat(np.arange(width), np.diff(pairs.offsets))
        dense = np.zeros((width, nq))
        dense[lv, row] = p
        reach_all = np.ones((width + 1, nq))
        np.cumprod(1.0 - dense, axis=0, out=reach_all[1:])
        wgt_dense = reach_all[:-1] / np.arange(1.0, width + 1.0)[:, None]
        acc = np.cumsum(dense * wgt_dense, axis=0)[-1] if width else np.zeros(nq)
        reach = reach_all[-1]
        wgt = wgt_dense[lv, row] if explain else p
    else:  # per level over its pairs only
        acc = np.zeros(nq)
        reach = np.ones(nq)
        wgt = np.empty_like(p)
        for j in range(width):
            sl = pairs.level(j)
            r = row[sl]
            rch = reach.take(r)
            w_j = rch / (j + 1.0)
            wgt[sl] = w_j
            acc[r] = acc.take(r) + p[sl] * w_j
            reach[r] = rch * (1.0 - p[sl])

    # The leaf: 1 / (L + 1) when q is new there, else AWS's damped duplicate score.
    leaf, depth = pairs.leaf[:nq], pairs.depth[:nq]
    has = leaf > s
    pt = f.pt.take(g * (s + 1) + np.maximum(leaf - s - 1, 0), axis=0)
    diff = (q - pt).astype(np.float64)
    dup = ~(diff != 0).any(axis=1)
    mass_base = g * (2 * s + 2)
    root = f.root.take(g).astype(np.int64)
    mass = f.mass.take(mass_base + np.where(has, leaf, 0)).astype(np.float64)
    total = f.mass.take(mass_base + np.where(has, root, 0)).astype(np.float64)
    lvl = depth.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        seen = (1.0 - mass / (2.0 * total)) / (lvl + np.log2(mass + 1.0))
        s_leaf = np.where(dup, seen, 1.0 / (lvl + 1.0)) * reach
        norm = np.log2(1.0 + total)
        score = np.where(has, (acc + s_leaf) * norm, 0.0)
    p_all = np.zeros(n_pairs + m)
    if scored is None:
        p_all[:n_pairs] = p
    else:
        p_all[:n_pairs][scored] = p
    p_all[n_pairs : n_pairs + nq] = np.where(dup | ~has, 0.0, 1.0)
    if not explain:
        return score, None, p_all

    # Attribution: each p_k split into its per-dimension, per-side parts, summed in level order.
    share_w = wgt * inv
    att = np.zeros((2 * d, nq))
    for k, part in enumerate(np.concatenate([eh * share_w, el * share_w])):
        np.add.at(att[k], row, part)
    ext_leaf = np.concatenate([np.maximum(diff, 0.0), np.maximum(-diff, 0.0)], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        total_ext = np.cumsum(ext_leaf, axis=1)[:, -1:]  # in column order
        share = np.where(dup[:, None], 1.0 / (2 * d), ext_leaf / total_ext)
        out = (att.T + share * s_leaf[:, None]) * norm[:, None]
    return score, np.where(has[:, None], out, 0.0), p_all


def _dimsum(x: F32) -> FloatArray:
    """Sum over the leading (dimension) axis in float64, in dimension order."""
    out: FloatArray = x[0].astype(np.float64)
    for row in x[1:]:
        out += row
    return out


def _first_rows(pairs: _Pairs, sel: npt.NDArray[np.bool_], nq: int) -> _Pairs:
    counts = np.add.reduceat(sel, pairs.offsets[:-1]) if pairs.row.size else np.zeros(0, np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)]).tolist()
    return _Pairs(
        row=pairs.row[sel],
        node=pairs.node[sel],
        offsets=offsets,
        leaf=pairs.leaf[:nq],
        depth=pairs.depth[:nq],
    )
