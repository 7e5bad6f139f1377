"""Flattening nested lists, tuples and dicts of tensors (the structures ``grad`` accepts).

Example:
    >>> from unidl.tree import flatten, unflatten
    >>> leaves, treedef = flatten({"b": [1, 2], "a": 3})
    >>> leaves
    [3, 1, 2]
    >>> unflatten(treedef, [30, 10, 20])
    {'a': 30, 'b': [10, 20]}
"""

from __future__ import annotations

__all__ = ["flatten", "unflatten", "map_structure"]

_LEAF = None


def flatten(tree):
    """``(leaves, treedef)``; dict keys are visited in sorted order; None is a leaf-less node."""
    leaves: list = []
    treedef = _flatten(tree, leaves)
    return leaves, treedef


def _flatten(tree, leaves):
    if isinstance(tree, (list, tuple)) and not hasattr(tree, "_fields"):
        return (type(tree), [_flatten(t, leaves) for t in tree])
    if isinstance(tree, tuple):  # namedtuple
        return (type(tree), [_flatten(t, leaves) for t in tree])
    if isinstance(tree, dict):
        keys = sorted(tree)
        return (dict, keys, [_flatten(tree[k], leaves) for k in keys])
    if tree is None:
        return ("none",)
    leaves.append(tree)
    return _LEAF


def unflatten(treedef, leaves):
    it = iter(leaves)
    return _build(treedef, it)


def _build(treedef, it):
    if treedef is _LEAF:
        return next(it)
    kind = treedef[0]
    if kind == "none":
        return None
    if kind is dict:
        return {k: _build(t, it) for k, t in zip(treedef[1], treedef[2])}
    items = [_build(t, it) for t in treedef[1]]
    if kind is list:
        return items
    if kind is tuple:
        return tuple(items)
    return kind(*items)  # namedtuple


def map_structure(fn, tree):
    leaves, treedef = flatten(tree)
    return unflatten(treedef, [fn(x) for x in leaves])
