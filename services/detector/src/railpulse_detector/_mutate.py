"""Structural changes to the trees of a :class:`RandomCutForest`: insert and delete.

Both act on one tree per row, for any number of trees at once, in a fixed number
of vectorised steps (no loop over tree levels): insertion reuses the path and
separation probabilities of the scoring walk; deletion repairs the ancestors'
boxes as suffix unions of the subtrees hanging off the path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from railpulse_detector._arrays import F32, NIL, FloatArray, IntArray
from railpulse_detector._rng import STREAM_CUT, STREAM_SEPARATE, uniform

if TYPE_CHECKING:
    from railpulse_detector.forest import RandomCutForest

__all__ = ["delete", "insert"]


def pop_internal(f: RandomCutForest, g: IntArray) -> IntArray:
    f.n_int_free[g] -= 1
    return f.int_free[g, f.n_int_free[g]].astype(np.int64)


def pop_leaf(f: RandomCutForest, g: IntArray) -> IntArray:
    f.n_leaf_free[g] -= 1
    return f.leaf_free[g, f.n_leaf_free[g]].astype(np.int64)


def insert(
    f: RandomCutForest,
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
    s, d = f.config.sample_size, f.config.dimensions
    k, width = path.shape
    ni, nm = s + 1, 2 * s + 2
    levels = np.arange(width, dtype=np.uint64)
    u = uniform(seed[:, None], step[:, None], local[:, None], STREAM_SEPARATE, levels)
    sep = u < p  # p is 0 past the leaf
    has_sep = sep.any(axis=1)
    first = np.argmax(sep, axis=1)
    leaf_out = np.full(k, NIL, np.int64)
    kstar = np.full(k, NIL, np.int64)
    m_out = np.full(k, NIL, np.int64)

    empty = np.flatnonzero(depth < 0)
    if empty.size:
        ge = g[empty]
        leaf = pop_leaf(f, ge)
        f.pt[ge * ni + leaf - ni] = q.take(empty, axis=0)
        f.mass[ge * nm + leaf] = 1
        f.root[ge] = leaf
        leaf_out[empty] = leaf

    dup = np.flatnonzero((depth >= 0) & ~has_sep)
    if dup.size:
        pd = path[dup]
        rows, cols = np.nonzero(pd != s)
        f.mass[g[dup][rows] * nm + pd[rows, cols]] += 1
        leaf_out[dup] = pd[np.arange(dup.size), depth[dup]]

    cut = np.flatnonzero((depth >= 0) & has_sep)
    if cut.size:
        gc, qc, lvl = g[cut], q.take(cut, axis=0), first[cut]
        pc = path[cut]
        rows = np.arange(cut.size)
        nk = pc[rows, lvl]
        box = f.boxes(gc, nk)
        lo, hi = box[:, :d], box[:, d:]
        ext = np.concatenate([np.maximum(qc - hi, 0), np.maximum(lo - qc, 0)], axis=1)
        cum = np.cumsum(ext.astype(np.float64), axis=1)
        r = uniform(seed[cut], step[cut], local[cut], STREAM_CUT) * cum[:, -1]
        comp = np.minimum(np.argmax(cum > r[:, None], axis=1), 2 * d - 1)
        offset = r - np.where(comp > 0, cum[rows, comp - 1], 0.0)
        dim = comp % d
        qd = qc[rows, dim]
        high_side = comp < d
        # Cut strictly between the box and q: box on the left (<=) when q is above it.
        edge = np.where(high_side, hi[rows, dim], qd)
        limit = np.where(high_side, qd, lo[rows, dim])
        val = (edge + offset).astype(np.float32)
        val = np.clip(val, edge, np.nextafter(limit, np.float32(-np.inf)))
        m = pop_internal(f, gc)
        leaf = pop_leaf(f, gc)
        fm = gc * ni + m
        f.pt[gc * ni + leaf - ni] = qc
        f.mass[gc * nm + leaf] = 1
        f.cut_dim[fm] = dim
        f.cut_val[fm] = val
        f.child[fm, 0] = np.where(high_side, nk, leaf)
        f.child[fm, 1] = np.where(high_side, leaf, nk)
        f.box[fm] = np.concatenate([np.minimum(lo, qc), np.maximum(hi, qc)], axis=1)
        f.mass[gc * nm + m] = f.mass[gc * nm + nk] + 1
        at_root = lvl == 0
        f.root[gc[at_root]] = m[at_root]
        pi = np.flatnonzero(~at_root)
        fp = gc[pi] * ni + pc[pi, lvl[pi] - 1]
        side = (f.child[fp, 1] == nk[pi]).astype(np.intp)
        f.child[fp, side] = m[pi]
        # Ancestors above the new node: grow boxes to q, add one to masses.
        rows, cols = np.nonzero(np.arange(width)[None, :] < lvl[:, None])
        node = pc[rows, cols]
        fa = gc[rows] * ni + node
        qa = qc.take(rows, axis=0)
        grown = f.box.take(fa, axis=0)
        np.minimum(grown[:, :d], qa, out=grown[:, :d])
        np.maximum(grown[:, d:], qa, out=grown[:, d:])
        f.box[fa] = grown
        f.mass[gc[rows] * nm + node] += 1
        leaf_out[cut] = leaf
        kstar[cut] = lvl
        m_out[cut] = m
    return leaf_out, kstar, m_out


def delete(
    f: RandomCutForest,
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
    s, d = f.config.sample_size, f.config.dimensions
    ni, nm = s + 1, 2 * s + 2
    k = g.size
    width = max(path.shape[1], q_path.shape[1]) + 1
    pe = np.full((k, width), s, np.int64)
    pe[:, : path.shape[1]] = path
    qp = np.full((k, width), s, np.int64)
    qp[:, : q_path.shape[1]] = q_path
    rows = np.arange(k)
    ks = np.maximum(kstar, 0)
    shifted = (kstar >= 0) & (pe[rows, ks] == qp[rows, ks])
    if shifted.any():
        si = np.flatnonzero(shifted)
        cols = np.arange(width)[None, :]
        ksi = ks[si][:, None]
        prev = np.concatenate([np.full((si.size, 1), s), pe[si, :-1]], axis=1)
        pe[si] = np.where(cols < ksi, pe[si], np.where(cols == ksi, m_new[si][:, None], prev))
        depth = depth + shifted

    heavy = f.mass[g * nm + leaf] > 1
    hv = np.flatnonzero(heavy)
    if hv.size:
        r, c = np.nonzero(pe[hv] != s)
        f.mass[g[hv][r] * nm + pe[hv][r, c]] -= 1

    one = np.flatnonzero(~heavy)
    if not one.size:
        return
    g1, e, pe1, le = g[one], leaf[one], pe[one], depth[one]
    r1 = np.arange(one.size)
    mnode = pe1[r1, le - 1]
    fm = g1 * ni + mnode
    sib = np.where(f.child[fm, 0] == e, f.child[fm, 1], f.child[fm, 0]).astype(np.int64)

    # Siblings hanging off the path, levels 1..le, read before the splice.
    r, c = np.nonzero((pe1 != s) & (np.arange(width)[None, :] >= 1))
    fpn = g1[r] * ni + pe1[r, c - 1]
    off = np.where(f.child[fpn, 0] == pe1[r, c], f.child[fpn, 1], f.child[fpn, 0])
    dbox = np.empty((one.size, width, 2 * d), np.float32)
    dbox[:, :, :d] = np.inf
    dbox[:, :, d:] = -np.inf
    dbox[r, c] = f.boxes(g1[r], off.astype(np.int64))
    # suffix[:, j] = union of sibling boxes at levels >= j
    suf_lo = np.minimum.accumulate(dbox[:, ::-1, :d], axis=1)[:, ::-1]
    suf_hi = np.maximum.accumulate(dbox[:, ::-1, d:], axis=1)[:, ::-1]

    # Splice: the sibling takes the parent's place.
    gp = np.where(le >= 2, pe1[r1, np.maximum(le - 2, 0)], NIL)
    top = gp < 0
    f.root[g1[top]] = sib[top]
    gi = np.flatnonzero(~top)
    fg = g1[gi] * ni + gp[gi]
    side = (f.child[fg, 1] == mnode[gi]).astype(np.intp)
    f.child[fg, side] = sib[gi]
    f.mass[g1 * nm + e] = 0
    f.child[fm] = NIL
    f.leaf_free[g1, f.n_leaf_free[g1]] = e
    f.n_leaf_free[g1] += 1
    f.int_free[g1, f.n_int_free[g1]] = mnode
    f.n_int_free[g1] += 1

    # Ancestors (levels 0..le-2): one less mass, box = union of what hangs below.
    r, c = np.nonzero((pe1 != s) & (np.arange(width)[None, :] <= (le - 2)[:, None]))
    fa = g1[r] * ni + pe1[r, c]
    f.mass[g1[r] * nm + pe1[r, c]] -= 1
    f.box[fa] = np.concatenate([suf_lo[r, c + 1], suf_hi[r, c + 1]], axis=1)
