"""A layered ("Sugiyama") layout of a directed acyclic graph, in pure Python.

:func:`layered_layout` places boxes of given sizes so that every edge points the same way
(down for ``rankdir="TB"``):

1. **Layering** by longest path: a node's rank is one more than the largest rank of its
   predecessors; sources are then pulled down to just above their first successor (a second
   input merged late starts beside the merge, not at the top).
2. Edges spanning several ranks get a **dummy node** per rank they cross, so every edge
   joins adjacent ranks and long edges are routed around the boxes in between.
3. **Ordering** within ranks to reduce crossings: barycenter sweeps (each node moves to the
   mean position of its neighbours in the rank above, then below), keeping the order with
   the fewest crossings seen.
4. **Coordinates**: ranks are stacked with a gap; within a rank each node is pulled to the
   mean coordinate of its neighbours, subject to the order and the minimum spacing (solved
   exactly per rank by pool-adjacent-violators), sweeping down and up.
5. **Routing**: each edge leaves the bottom of its source and enters the top of its target
   (several edges on one side are spread across it), passing vertically through the ranks it
   crosses.

Everything is computed for top-to-bottom, then turned for ``LR``, ``BT`` and ``RL``.

Example:
    >>> from unidl.utils.layout import layered_layout
    >>> lay = layered_layout([(80, 30), (60, 30), (80, 30)], [(0, 2), (1, 2)])
    >>> lay.ranks
    [0, 0, 1]
    >>> [round(b[1]) for b in lay.boxes]  # the merge sits below both inputs
    [16, 16, 82]
    >>> lay.edges[0][-1][1] == lay.boxes[2][1]  # an edge ends on its target's top side
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Layout", "layered_layout", "assign_ranks", "count_crossings", "RANKDIRS"]

RANKDIRS = ("TB", "LR", "BT", "RL")


@dataclass
class Layout:
    """Where the boxes and edges go, in pixels from the top-left corner.

    ``boxes[i]``: ``(x, y, width, height)`` of node ``i`` (top-left corner); ``edges[k]``:
    the polyline of the ``k``-th edge given, from its source's side to its target's side;
    ``ranks[i]``: node ``i``'s layer; ``order``: the nodes of each layer in order (dummies
    left out); ``crossings``: edge crossings that remain.
    """

    width: float
    height: float
    boxes: list
    edges: list
    ranks: list
    order: list = field(default_factory=list)
    crossings: int = 0


# -- 1. layering -----------------------------------------------------------------------------
def assign_ranks(n: int, edges) -> list[int]:
    """Longest-path layers of a DAG with nodes ``0..n-1``; sources are then placed one rank
    above their nearest successor. A ``ValueError`` if the graph has a cycle.

    Example:
        >>> assign_ranks(4, [(0, 1), (1, 2), (3, 2)])
        [0, 1, 2, 1]
    """
    preds = [[] for _ in range(n)]
    succs = [[] for _ in range(n)]
    for u, v in edges:
        preds[v].append(u)
        succs[u].append(v)
    indegree = [len(p) for p in preds]
    ready = [v for v in range(n) if indegree[v] == 0]
    rank = [0] * n
    seen = 0
    while ready:
        u = ready.pop(0)
        seen += 1
        for v in succs[u]:
            rank[v] = max(rank[v], rank[u] + 1)
            indegree[v] -= 1
            if indegree[v] == 0:
                ready.append(v)
    if seen != n:
        raise ValueError("the graph has a cycle; a layered layout needs a DAG")
    for v in range(n):
        if not preds[v] and succs[v]:
            rank[v] = min(rank[s] for s in succs[v]) - 1
    return rank


# -- 2. dummy nodes --------------------------------------------------------------------------
def _split_long_edges(ranks, edges):
    """``(ranks, chains, segments)``: ``ranks`` extended with one dummy node per rank an edge
    crosses, each edge's chain of nodes, and the edges between adjacent ranks."""
    ranks = list(ranks)
    chains, segments = [], []
    for u, v in edges:
        chain = [u]
        for r in range(ranks[u] + 1, ranks[v]):
            ranks.append(r)
            chain.append(len(ranks) - 1)
        chain.append(v)
        chains.append(chain)
        segments.extend(zip(chain, chain[1:]))
    return ranks, chains, list(dict.fromkeys(segments))


# -- 3. ordering -----------------------------------------------------------------------------
def count_crossings(layers, segments) -> int:
    """Crossings between adjacent layers (``layers``: node lists in order; ``segments``:
    edges joining adjacent layers).

    Example:
        >>> count_crossings([[0, 1], [2, 3]], [(0, 3), (1, 2)])
        1
    """
    pos = {v: i for layer in layers for i, v in enumerate(layer)}
    rank = {v: r for r, layer in enumerate(layers) for v in layer}
    by_rank: dict = {}
    for u, v in segments:
        by_rank.setdefault(rank[u], []).append((pos[u], pos[v]))
    total = 0
    for pairs in by_rank.values():
        for i, (a1, b1) in enumerate(pairs):
            for a2, b2 in pairs[i + 1:]:
                if (a1 - a2) * (b1 - b2) < 0:
                    total += 1
    return total


def _barycenter_sweep(layers, neighbours, downward: bool) -> None:
    """Reorder each layer (from the second, or from the second last going up) by the mean
    position of each node's neighbours in the layer just before it in the sweep."""
    indices = range(1, len(layers)) if downward else range(len(layers) - 2, -1, -1)
    for r in indices:
        fixed = layers[r - 1] if downward else layers[r + 1]
        pos = {v: i for i, v in enumerate(fixed)}

        def key(item, pos=pos):
            i, v = item
            near = [pos[w] for w in neighbours[v] if w in pos]
            return (sum(near) / len(near) if near else i, i)

        layers[r] = [v for _, v in sorted(enumerate(layers[r]), key=key)]


def _order(ranks, segments, sweeps: int = 12):
    """The nodes of each layer in an order with few crossings."""
    layers = [[] for _ in range(max(ranks) + 1)] if ranks else []
    for v, r in enumerate(ranks):
        layers[r].append(v)
    preds: dict = {v: [] for v in range(len(ranks))}
    succs: dict = {v: [] for v in range(len(ranks))}
    for u, v in segments:
        succs[u].append(v)
        preds[v].append(u)
    best = [list(layer) for layer in layers]
    best_count = count_crossings(best, segments)
    for k in range(sweeps):
        if best_count == 0:
            break
        downward = k % 2 == 0
        _barycenter_sweep(layers, preds if downward else succs, downward)
        count = count_crossings(layers, segments)
        if count < best_count:
            best, best_count = [list(layer) for layer in layers], count
    return best, best_count


# -- 4. coordinates --------------------------------------------------------------------------
def _pav(targets, weights):
    """The non-decreasing sequence closest to ``targets`` (weighted least squares)."""
    blocks = []  # [mean, weight, count]
    for t, w in zip(targets, weights):
        blocks.append([t, w, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2, c2 = blocks.pop()
            m1, w1, c1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, c1 + c2])
    out = []
    for mean, _, count in blocks:
        out.extend([mean] * count)
    return out


def _place_layer(layer, desired, thickness, gap, real):
    """Coordinates for the nodes of one layer, in order, as near ``desired`` as the minimum
    spacing allows."""
    offsets = [0.0]
    for a, b in zip(layer, layer[1:]):
        space = gap if real[a] and real[b] else gap / 2
        offsets.append(offsets[-1] + (thickness[a] + thickness[b]) / 2 + space)
    weights = [1.0 if real[v] else 2.0 for v in layer]  # straighten long edges
    shifted = _pav([desired[v] - o for v, o in zip(layer, offsets)], weights)
    return {v: s + o for v, s, o in zip(layer, shifted, offsets)}


def _coordinates(layers, segments, thickness, gap, real, sweeps: int = 6):
    """The centre of each node along the layers' axis."""
    x: dict = {}
    for layer in layers:  # packed, each layer centred on 0
        at = _place_layer(layer, {v: 0.0 for v in layer}, thickness, gap, real)
        middle = (at[layer[0]] + at[layer[-1]]) / 2 if layer else 0.0
        x.update({v: c - middle for v, c in at.items()})
    preds: dict = {}
    succs: dict = {}
    for u, v in segments:
        succs.setdefault(u, []).append(v)
        preds.setdefault(v, []).append(u)
    passes = [(True, preds), (False, succs)] * sweeps
    for downward, near in passes:
        indices = range(1, len(layers)) if downward else range(len(layers) - 2, -1, -1)
        for r in indices:
            desired = {v: (sum(x[w] for w in near[v]) / len(near[v]) if near.get(v) else x[v])
                       for v in layers[r]}
            x.update(_place_layer(layers[r], desired, thickness, gap, real))
    return x


# -- 5. routing and the final picture ---------------------------------------------------------
def _spread(count: int, thickness: float) -> list[float]:
    """Offsets from a side's centre for ``count`` edges meeting that side."""
    if count <= 1:
        return [0.0] * count
    span = min(thickness * 0.6, 18.0 * (count - 1))
    return [-span / 2 + span * k / (count - 1) for k in range(count)]


def _route(chains, x, depth, extent, thickness, rank_of, band):
    """Each edge as ``(o, r)`` points: out of the source's far side, through its dummies
    (vertically across each layer it crosses), into the target's near side."""
    outgoing: dict = {}
    incoming: dict = {}
    for k, chain in enumerate(chains):
        outgoing.setdefault(chain[0], []).append(k)
        incoming.setdefault(chain[-1], []).append(k)
    start, end = {}, {}
    for node, ks in outgoing.items():
        ks.sort(key=lambda k: x[chains[k][1]])
        for k, off in zip(ks, _spread(len(ks), thickness[node])):
            start[k] = x[node] + off
    for node, ks in incoming.items():
        ks.sort(key=lambda k: start[k] if len(chains[k]) == 2 else x[chains[k][-2]])
        for k, off in zip(ks, _spread(len(ks), thickness[node])):
            end[k] = x[node] + off
    routes = []
    for k, chain in enumerate(chains):
        u, v = chain[0], chain[-1]
        points = [(start[k], depth[u] + extent[u] / 2)]
        for d in chain[1:-1]:
            top, bottom = band[rank_of[d]]
            points += [(x[d], top), (x[d], bottom)]
        points.append((end[k], depth[v] - extent[v] / 2))
        routes.append(points)
    return routes


def _turn(rankdir, width, height):
    """A function from ``(o, r)`` (top-to-bottom coordinates) to ``(x, y)``."""
    if rankdir == "TB":
        return lambda o, r: (o, r)
    if rankdir == "BT":
        return lambda o, r: (o, height - r)
    if rankdir == "LR":
        return lambda o, r: (r, o)
    return lambda o, r: (width - r, o)  # RL


def layered_layout(sizes, edges, rankdir: str = "TB", rank_gap: float | None = None,
                   node_gap: float = 24.0, margin: float = 16.0) -> Layout:
    """Lay out nodes of ``sizes`` (``(width, height)`` each) joined by directed ``edges``
    (``(source, target)`` index pairs, acyclic) in layers along ``rankdir`` (``"TB"``,
    ``"LR"``, ``"BT"``, ``"RL"``). ``rank_gap``: the space between layers (default 36 top to
    bottom, 56 left to right); ``node_gap``: between neighbours in a layer."""
    if rankdir not in RANKDIRS:
        raise ValueError(f"rankdir must be one of {', '.join(RANKDIRS)}; got {rankdir!r}")
    n = len(sizes)
    across = rankdir in ("LR", "RL")
    if rank_gap is None:
        rank_gap = 56.0 if across else 36.0
    edges = list(dict.fromkeys((int(u), int(v)) for u, v in edges if u != v))
    ranks, chains, segments = _split_long_edges(assign_ranks(n, edges), edges)
    real = [v < n for v in range(len(ranks))]
    # thickness: size along a layer; extent: size across it
    thickness = [(sizes[v][1] if across else sizes[v][0]) if real[v] else 0.0
                 for v in range(len(ranks))]
    extent = [(sizes[v][0] if across else sizes[v][1]) if real[v] else 0.0
              for v in range(len(ranks))]
    layers, crossings = _order(ranks, segments)
    x = _coordinates(layers, segments, thickness, node_gap, real)
    if x:
        low = min(x[v] - thickness[v] / 2 for v in x)
        x = {v: c - low + margin for v, c in x.items()}
    depth, band, at = {}, [], margin
    for layer in layers:
        size = max((extent[v] for v in layer), default=0.0)
        band.append((at, at + size))
        for v in layer:
            depth[v] = at + size / 2
        at += size + rank_gap
    total_o = max((x[v] + thickness[v] / 2 for v in x), default=0.0) + margin
    total_r = (at - rank_gap + margin) if layers else 2 * margin
    routes = _route(chains, x, depth, extent, thickness, ranks, band)
    width, height = (total_r, total_o) if across else (total_o, total_r)
    turn = _turn(rankdir, width, height)
    boxes = []
    for v in range(n):
        cx, cy = turn(x[v], depth[v])
        w, h = sizes[v]
        boxes.append((cx - w / 2, cy - h / 2, float(w), float(h)))
    lines = [[turn(o, r) for o, r in points] for points in routes]
    order = [[v for v in layer if real[v]] for layer in layers]
    return Layout(width, height, boxes, lines, ranks[:n], order, crossings)
