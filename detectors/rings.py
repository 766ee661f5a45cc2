"""Order-brushing rings: dense blocks in the buyer x (shop, device, address, card) graph.

Pure scoring code (no Flask, database or Redis). Input is a sequence of :class:`Order`
(buyer, shop, and the pseudonymised device, shipping-address and payment tokens it used,
plus its amount); output is a list of :class:`Ring`, densest first.

Method (FRAUDAR, Hooi et al., KDD 2016)
---------------------------------------
Rows are buyers. Columns are shops and device, address and card tokens, each kept only if
at least two buyers used it (a column only one buyer touched links nobody; it would only add
noise to the background). A buyer has an edge to every shop it
bought from and every shared entity its orders carried (0/1, however many orders).

Each edge into column ``j`` weighs ``1 / log(deg_j + c)`` (``deg_j`` = distinct buyers of the
column in the whole graph, ``c`` = ``log_offset``). A shop with thousands of honest buyers
thus contributes almost nothing per edge, which makes the metric resist *camouflage*: fake
accounts that also buy from popular shops to look normal add edges outside the block, and
FRAUDAR's density ``g(S) = f(S) / |S|`` (total weight of the edges inside ``S`` over its
number of nodes) only counts edges inside. Shop edges are further multiplied by
``shop_weight`` (0.3): buying at the same shop is weak evidence that two accounts belong
together (people share tastes), sharing a device, address or card is strong; at full weight,
honest heavy buyers of mid-sized shops form blocks as dense as a ring.

Greedy peeling finds the block: start from the whole graph, repeatedly remove the node
(buyer or column) whose remaining edges weigh least — a binary heap with lazy deletion,
``O(E log V)`` — and keep the intermediate node set of highest ``g``; FRAUDAR proves ``g``
of that set is at least half the optimum. Greedy peeling first strips every node of weighted
degree below ``tau = min_ratio x background`` (the ``tau``-core); that stretch is done
vectorised with scipy (:func:`core`) and only the core goes through the heap. The block's
buyers are then removed and peeling repeats, up to ``max_rings`` rings, stopping once the
densest block left is less than ``min_ratio`` times denser than the whole graph (the
background density).

One block can hold several rings of similar density, so it is split into connected pieces,
linked only through columns the block's buyers dominate (at least ``min_shop_share`` of a
shop's buyers, ``min_entity_share`` of an entity's): a popular shop or a busy parcel pickup
point two rings both used as camouflage does not join them. A piece is a ring if it has at
least ``min_buyers`` buyers, a shop that at least half of them bought from and that they are
at least ``min_shop_share`` of the buyers of (the ring's shops, main shop first), and at
least two buyers linked through a shared entity. Peeling drops members hanging on by a
single edge, so each ring takes back the buyers, not yet in a ring, who bought from its
shops and used one of its shared entities.

Score (0-100)
-------------
``100 x (1 - 1/ratio) x (1 - exp(-(buyers - 1) / size_scale)) x (0.5 + 0.5 x linked share)``:
how much denser than the background (ratio 2 gives at most 50, ratio 4 at most 75), how big
(with the default ``size_scale`` 3: four buyers give 0.63 of it, five 0.74, ten 0.95), and
how many of the buyers share a device, address or card with another buyer of the ring. A
scan opens cases from 50 up: a family of five at one address who all use the corner shop
scores in the 30s (ratio about 2), five accounts on shared devices, addresses and cards
that make up half of a shop's buyers about 50, twenty such accounts about 75.
"""

from __future__ import annotations

import hashlib
import heapq
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components

ENTITY_TYPES = ("device", "address", "payment")
_SHOP = "shop"


@dataclass(frozen=True, slots=True)
class Order:
    """One order. ``device``/``address``/``payment`` are opaque (pseudonymised) tokens."""

    buyer: str
    shop: str
    device: str | None = None
    address: str | None = None
    payment: str | None = None
    amount: float = 0.0


@dataclass(frozen=True)
class Ring:
    buyers: tuple[str, ...]
    shops: tuple[str, ...]  # the ring's shops, main shop first
    entities: dict[str, tuple[str, ...]]  # shared device/address/payment tokens inside the ring
    edges: int  # buyer-column edges inside the block
    orders: int  # orders of the ring's buyers at the ring's shops
    amount: float  # their total amount
    density: float  # weighted edges per node of the block
    background: float  # density of the whole graph
    score: float  # 0-100
    linked_buyers: int  # buyers sharing at least one entity with another buyer of the ring
    shop_share: dict[str, float]  # per ring shop: share of its buyers that are in the ring
    other_shops: int  # shops some ring buyers also bought from (camouflage or real purchases)
    explanation: str = ""

    @property
    def main_shop(self) -> str:
        return self.shops[0]

    @property
    def members(self) -> tuple[str, ...]:
        """Sorted ``buyer:<id>`` and ``shop:<id>`` strings: the identity of the ring."""
        return tuple(sorted([f"buyer:{b}" for b in self.buyers] + [f"shop:{s}" for s in self.shops]))

    @property
    def ring_id(self) -> str:
        """Stable id: the same members give the same id, whatever order they were found in."""
        digest = hashlib.sha256("\n".join(self.members).encode()).hexdigest()
        return f"ring-{digest[:16]}"

    @property
    def ratio(self) -> float:
        return self.density / self.background if self.background > 0 else math.inf

    def as_dict(self) -> dict[str, Any]:
        return {
            "ring_id": self.ring_id,
            "buyers": list(self.buyers),
            "shops": list(self.shops),
            "entities": {k: list(v) for k, v in self.entities.items()},
            "edges": self.edges,
            "orders": self.orders,
            "amount": round(self.amount, 2),
            "density": round(self.density, 4),
            "background": round(self.background, 4),
            "ratio": round(self.ratio, 2),
            "score": round(self.score, 2),
            "linked_buyers": self.linked_buyers,
            "shop_share": {k: round(v, 3) for k, v in self.shop_share.items()},
            "other_shops": self.other_shops,
            "explanation": self.explanation,
        }


@dataclass
class _Graph:
    buyers: list[str]
    columns: list[tuple[str, str]]  # (type, id)
    matrix: sparse.csr_matrix  # buyers x columns, 0/1
    weights: np.ndarray  # per column
    col_degree: np.ndarray  # distinct buyers per column (whole graph)
    orders: sparse.csr_matrix  # buyers x columns: order count (shop columns only)
    amounts: sparse.csr_matrix  # buyers x columns: order amount (shop columns only)
    background: float = 0.0
    shop_cols: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))


def _codes(values: Sequence[str | None], index: dict[str, int]) -> np.ndarray:
    """Integer code per value (-1 for a missing one), extending ``index``."""
    add = index.setdefault
    return np.fromiter((add(v, len(index)) if v else -1 for v in values), dtype=np.int64, count=len(values))


def build_graph(orders: Iterable[Order], *, log_offset: float = 5.0, shop_weight: float = 0.3) -> _Graph:
    orders = orders if isinstance(orders, Sequence) else list(orders)
    buyer_ix: dict[str, int] = {}
    b = _codes([o.buyer for o in orders], buyer_ix)
    # Columns: shops first, then each entity type; codes are offset into one column space.
    columns: list[tuple[str, str]] = []
    parts: list[tuple[np.ndarray, np.ndarray]] = []
    shop_codes = np.zeros(0, dtype=np.int64)
    for ctype in (_SHOP, *ENTITY_TYPES):
        index: dict[str, int] = {}
        codes = _codes([getattr(o, ctype) for o in orders], index)
        present = codes >= 0
        codes = codes + len(columns)
        if ctype == _SHOP:
            shop_codes = codes
        parts.append((b[present], codes[present]))
        columns.extend((ctype, v) for v in index)
    shape = (len(buyer_ix), len(columns))
    rows = np.concatenate([r for r, _ in parts])
    cols = np.concatenate([c for _, c in parts])
    m = sparse.csr_matrix((np.ones(rows.size), (rows, cols)), shape)
    m.sum_duplicates()
    m.data[:] = 1.0
    degree = np.asarray(m.sum(axis=0)).ravel()
    is_shop = np.zeros(len(columns), dtype=bool)
    is_shop[: int(shop_codes.max()) + 1 if shop_codes.size else 0] = True
    # A column with one buyer links nobody (an entity only one buyer used, a shop with one
    # buyer): drop its edges.
    keep = degree >= 2
    m = (m @ sparse.diags(keep.astype(np.float64))).tocsr()
    m.eliminate_zeros()
    weights = np.where(keep, 1.0 / np.log(degree + log_offset), 0.0)
    weights[is_shop] *= shop_weight
    amount = np.fromiter((float(o.amount or 0.0) for o in orders), dtype=np.float64, count=len(orders))
    counts = sparse.csr_matrix((np.ones(b.size), (b, shop_codes)), shape)
    amounts = sparse.csr_matrix((amount, (b, shop_codes)), shape)
    counts.sum_duplicates()
    amounts.sum_duplicates()
    g = _Graph(list(buyer_ix), columns, m, weights, degree, counts, amounts, shop_cols=is_shop)
    n_nodes = int((np.diff(m.indptr) > 0).sum() + (np.asarray(m.sum(axis=0)).ravel() > 0).sum())
    g.background = float((m @ weights).sum()) / n_nodes if n_nodes else 0.0
    return g


def peel(matrix: sparse.csr_matrix, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Greedy FRAUDAR peeling of one weighted bipartite graph.

    Returns (row indices, column indices, density) of the densest node set met on the way.
    """
    n_rows = matrix.shape[0]
    w = matrix @ sparse.diags(weights)
    w = sparse.csr_matrix(w)
    w.eliminate_zeros()
    wt = w.T.tocsr()
    row_deg = np.asarray(w.sum(axis=1)).ravel()
    col_deg = np.asarray(w.sum(axis=0)).ravel()
    deg = np.concatenate([row_deg, col_deg]).tolist()
    alive = [d > 0 for d in deg]
    n_alive = sum(alive)
    if n_alive == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), 0.0
    # Neighbour lists as Python lists: the loop below is the hot path.
    r_ptr, r_ind, r_dat = w.indptr.tolist(), w.indices.tolist(), w.data.tolist()
    c_ptr, c_ind, c_dat = wt.indptr.tolist(), wt.indices.tolist(), wt.data.tolist()
    heap = [(d, i) for i, d in enumerate(deg) if d > 0]
    heapq.heapify(heap)
    total = float(w.sum())
    best = total / n_alive
    best_step = 0
    removed_order: list[int] = []
    pop, push = heapq.heappop, heapq.heappush
    while heap:
        d, i = pop(heap)
        if not alive[i] or d != deg[i]:
            continue
        alive[i] = False
        removed_order.append(i)
        total -= d
        n_alive -= 1
        if i < n_rows:
            lo, hi, ind, dat, off = r_ptr[i], r_ptr[i + 1], r_ind, r_dat, n_rows
        else:
            j = i - n_rows
            lo, hi, ind, dat, off = c_ptr[j], c_ptr[j + 1], c_ind, c_dat, 0
        for k in range(lo, hi):
            v = ind[k] + off
            if alive[v]:
                nd = deg[v] - dat[k]
                deg[v] = nd
                push(heap, (nd, v))
        if n_alive > 0:
            density = total / n_alive
            # Ties (many identical households) keep the earliest, largest set: one peel takes
            # them all instead of one peel each.
            if density > best * (1.0 + 1e-9):
                best = density
                best_step = len(removed_order)
    gone = set(removed_order[:best_step])
    block = [i for i, d in enumerate(np.concatenate([row_deg, col_deg]).tolist()) if d > 0 and i not in gone]
    arr = np.asarray(block, dtype=np.int64)
    return arr[arr < n_rows], arr[arr >= n_rows] - n_rows, best


class RingDetector:
    """Find brushing rings by repeated FRAUDAR peeling (see the module docstring)."""

    def __init__(
        self,
        *,
        max_rings: int = 10,
        min_buyers: int = 4,
        min_ratio: float = 2.0,
        min_shop_share: float = 0.25,
        min_entity_share: float = 0.5,
        log_offset: float = 5.0,
        shop_weight: float = 0.3,
        size_scale: float = 3.0,
        max_peels: int | None = None,
    ) -> None:
        self.max_rings = max_rings
        self.min_buyers = min_buyers
        self.min_ratio = min_ratio
        self.min_shop_share = min_shop_share
        self.min_entity_share = min_entity_share
        self.log_offset = log_offset
        self.shop_weight = shop_weight
        self.size_scale = size_scale
        self.max_peels = max_peels

    def detect(self, orders: Iterable[Order]) -> list[Ring]:
        g = build_graph(orders, log_offset=self.log_offset, shop_weight=self.shop_weight)
        return self.detect_graph(g)

    def detect_graph(self, g: _Graph) -> list[Ring]:
        if g.matrix.nnz == 0:
            return []
        weighted = sparse.csr_matrix(g.matrix @ sparse.diags(g.weights))
        remaining = g.matrix.copy()
        taken = np.zeros(g.matrix.shape[0], dtype=bool)  # in a ring
        peeled = np.zeros(g.matrix.shape[0], dtype=bool)  # in a block already peeled
        rings: list[Ring] = []
        peels = self.max_peels if self.max_peels is not None else 5 * self.max_rings
        for _ in range(peels):
            if len(rings) >= self.max_rings or remaining.nnz == 0:
                break
            tau = self.min_ratio * g.background
            core_rows, core_cols = core(sparse.csr_matrix(remaining @ sparse.diags(g.weights)), tau)
            if core_rows.size == 0:
                break
            rows, cols, density = peel(remaining[core_rows][:, core_cols], g.weights[core_cols])
            rows, cols = core_rows[rows], core_cols[cols]
            if rows.size == 0 or density < tau:
                break
            # The densest set can hold several disconnected blocks of similar density (two
            # rings, or a ring and a household): judge each connected piece on its own.
            for piece_rows, piece_cols in _components(
                g, remaining, rows, cols, self.min_shop_share, self.min_entity_share
            ):
                found = self._ring(g, weighted, piece_rows, piece_cols, taken)
                if found is not None:
                    rings.append(found[0])
                    taken[found[1]] = True
            # A buyer belongs to one ring at most: drop the block's buyers (and the ring's) and
            # peel again. Buyers of a piece that made no ring may still join a later ring.
            peeled[rows] = True
            keep = (~(taken | peeled)).astype(np.float64)
            remaining = (sparse.diags(keep) @ remaining).tocsr()
            remaining.eliminate_zeros()
        rings.sort(key=lambda r: (-r.score, r.ring_id))
        return rings[: self.max_rings]

    def _ring(
        self, g: _Graph, weighted: sparse.csr_matrix, rows: np.ndarray, cols: np.ndarray, taken: np.ndarray
    ) -> tuple[Ring, np.ndarray] | None:
        rows = rows[~taken[rows]]  # an earlier piece's ring may have taken some back already
        if rows.size < self.min_buyers:
            return None
        # The ring's shops: bought from by at least half of these buyers, and these buyers are
        # a large share of the shop's buyers (a popular shop used as camouflage is not).
        per_shop = np.asarray((g.orders[rows] > 0).sum(axis=0)).ravel()
        candidates = np.flatnonzero(per_shop >= max(2.0, 0.5 * rows.size))
        share = per_shop[candidates] / np.maximum(g.col_degree[candidates], 1.0)
        ring_cols = candidates[share >= self.min_shop_share]
        if ring_cols.size == 0:
            return None
        bought = np.asarray(g.orders[rows][:, ring_cols].sum(axis=1)).ravel() > 0
        rows = rows[bought]
        if rows.size < self.min_buyers:
            return None
        # Peeling drops members hanging on by one edge (a fake account alone on its device,
        # sharing only the address): take back every buyer not yet in a ring who bought from a
        # ring shop *and* used an entity that two ring buyers share.
        in_block = np.asarray(g.matrix[rows][:, cols].sum(axis=0)).ravel()
        shared = (in_block >= 2) & (in_block >= self.min_entity_share * g.col_degree[cols])
        linking = cols[~g.shop_cols[cols] & shared]
        if linking.size:
            touches = np.asarray(g.matrix[:, linking].sum(axis=1)).ravel() > 0
            buys = np.asarray(g.orders[:, ring_cols].sum(axis=1)).ravel() > 0
            extra = np.flatnonzero(touches & buys & ~taken)
            rows = np.union1d(rows, extra)
        block = g.matrix[rows][:, cols]
        in_block = np.asarray(block.sum(axis=0)).ravel()  # ring buyers per block column
        entities: dict[str, list[str]] = {t: [] for t in ENTITY_TYPES}
        entity_k: list[int] = []
        for k, c in enumerate(cols.tolist()):
            ctype, cid = g.columns[c]
            if ctype != _SHOP and in_block[k] >= 2 and in_block[k] >= self.min_entity_share * g.col_degree[c]:
                entities[ctype].append(cid)
                entity_k.append(k)
        linked_rows = (
            np.asarray(block[:, entity_k].sum(axis=1)).ravel() > 0 if entity_k else np.zeros(rows.size, bool)
        )
        linked = int(linked_rows.sum())
        if linked < 2:
            return None
        # Density of the ring itself: its buyers, the block's columns they touch, its shops.
        all_cols = np.union1d(cols[in_block > 0], ring_cols)
        density = float(weighted[rows][:, all_cols].sum()) / (rows.size + all_cols.size)
        ratio = density / g.background if g.background > 0 else math.inf
        if ratio < self.min_ratio:
            return None
        order = np.lexsort((-per_shop[ring_cols], -(per_shop[ring_cols] / g.col_degree[ring_cols])))
        ring_cols = ring_cols[order]
        shops = tuple(g.columns[c][1] for c in ring_cols.tolist())
        shop_share = {g.columns[c][1]: float(per_shop[c] / g.col_degree[c]) for c in ring_cols.tolist()}
        bought_elsewhere = np.asarray((g.orders[rows] > 0).sum(axis=0)).ravel() > 0
        other = int(bought_elsewhere.sum()) - ring_cols.size
        size = rows.size
        score = (
            100.0
            * (1.0 - 1.0 / ratio)
            * (1.0 - math.exp(-(size - 1) / self.size_scale))
            * (0.5 + 0.5 * linked / size)
        )
        ring = Ring(
            buyers=tuple(sorted(g.buyers[r] for r in rows.tolist())),
            shops=shops,
            entities={t: tuple(sorted(v)) for t, v in entities.items() if v},
            edges=int(g.matrix[rows][:, all_cols].nnz),
            orders=int(g.orders[rows][:, ring_cols].sum()),
            amount=float(g.amounts[rows][:, ring_cols].sum()),
            density=density,
            background=g.background,
            score=max(0.0, min(100.0, score)),
            linked_buyers=linked,
            shop_share=shop_share,
            other_shops=other,
        )
        return _explained(ring), rows


def _components(
    g: _Graph,
    matrix: sparse.csr_matrix,
    rows: np.ndarray,
    cols: np.ndarray,
    min_shop_share: float,
    min_entity_share: float,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Connected pieces of the block ``rows x cols``, largest first.

    Pieces connect through the shops and entities the block's buyers are a large share of the
    users of; not through a popular shop or a busy parcel pickup point that two rings (or a ring
    and honest buyers) both used.
    """
    sub = matrix[rows][:, cols]
    in_block = np.asarray(sub.sum(axis=0)).ravel()
    share = np.where(g.shop_cols[cols], min_shop_share, min_entity_share)
    linking = in_block >= share * np.maximum(g.col_degree[cols], 1.0)
    sub = sparse.csr_matrix(sub @ sparse.diags(linking.astype(np.float64)))
    sub.eliminate_zeros()
    n_r = rows.size
    adj = sparse.bmat([[None, sub], [sub.T, None]], format="csr")
    n, labels = connected_components(adj, directed=False)
    pieces = []
    for label in range(n):
        members = np.flatnonzero(labels == label)
        r = rows[members[members < n_r]]
        c = cols[members[members >= n_r] - n_r]
        if r.size:
            pieces.append((r, c))
    pieces.sort(key=lambda p: -p[0].size)
    return pieces


def core(weighted: sparse.csr_matrix, tau: float) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the ``tau``-core: every node keeps weighted degree >= ``tau``.

    Every node of a block of density >= ``tau`` that is densest among its subsets has degree
    >= ``tau`` inside it, so such blocks survive; greedy peeling of the whole graph passes
    through this core anyway. Pruning first, vectorised, leaves the heap little to do.
    """
    rmask = np.ones(weighted.shape[0], dtype=bool)
    cmask = np.ones(weighted.shape[1], dtype=bool)
    wt = weighted.T.tocsr()
    while True:
        rdeg = weighted @ cmask.astype(np.float64)
        cdeg = wt @ rmask.astype(np.float64)
        new_r = rmask & (rdeg >= tau)
        new_c = cmask & (cdeg >= tau)
        if (new_r == rmask).all() and (new_c == cmask).all():
            return np.flatnonzero(rmask), np.flatnonzero(cmask)
        rmask, cmask = new_r, new_c


def _explained(ring: Ring) -> Ring:
    shared = ", ".join(f"{len(v)} {k}{'s' if len(v) != 1 else ''}" for k, v in ring.entities.items())
    main = ring.main_shop
    text = (
        f"{len(ring.buyers)} buyers placed {ring.orders} orders ({ring.amount:,.2f}) at "
        f"{'shop ' + main if len(ring.shops) == 1 else f'{len(ring.shops)} shops (main {main})'}, "
        f"making {ring.shop_share[main]:.0%} of its buyers; {ring.linked_buyers} of them share "
        f"{shared}. Block density {ring.density:.2f} is {ring.ratio:.1f}x the background "
        f"({ring.background:.2f})"
        + (f"; they also bought from {ring.other_shops} other shops." if ring.other_shops else ".")
    )
    return Ring(**{**{f: getattr(ring, f) for f in ring.__dataclass_fields__}, "explanation": text})


def find_rings(orders: Sequence[Order] | Iterable[Order], **params: Any) -> list[Ring]:
    """Convenience: ``RingDetector(**params).detect(orders)``."""
    return RingDetector(**params).detect(orders)
