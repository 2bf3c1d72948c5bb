"""How many subschemas one value can be checked against: a bound on a schema's work.

A validator checks a value against every subschema that applies to its location, and
reaches each of them once per route through ``allOf``/``anyOf``/``oneOf``/``$ref``. Routes
multiply: twenty ``$defs`` that each ``allOf`` the previous one twice make a 2 KB schema
that checks one string a million times (2^20), and forty make it run for hours. Such a
schema is refused when it is submitted, by counting routes per value location here.

The count follows local ``$ref``/``$dynamicRef`` (JSON pointers, anchors, embedded ``$id``
resources) and descends one level per value depth, up to the deepest body PIE accepts. It
is an upper bound: ``patternProperties`` and ``additionalProperties`` are counted for every
member, ``if``/``then``/``else`` all at once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urljoin

_ROOT_URI = "http://schema.pie.invalid/root.json"  # never fetched: a base for relative $ids
# keyword -> (how its subschemas apply, the shape holding them)
_APPLICATORS: dict[str, tuple[str, str]] = {
    **dict.fromkeys(("allOf", "anyOf", "oneOf"), ("in", "list")),
    **dict.fromkeys(("not", "if", "then", "else"), ("in", "one")),
    "dependentSchemas": ("in", "map"),
    "properties": ("named", "map"),
    "prefixItems": ("named", "list"),
    **dict.fromkeys(
        (
            "items",
            "additionalProperties",
            "propertyNames",
            "contains",
            "unevaluatedItems",
            "unevaluatedProperties",
        ),
        ("any", "one"),
    ),
    "patternProperties": ("any", "map"),
    **dict.fromkeys(("$defs", "definitions"), ("def", "map")),
}
_REFS = ("$ref", "$dynamicRef")
_MAX_LOCATIONS = 100_000  # distinct location shapes explored before giving up (too complex)


class SchemaShapeError(ValueError):
    """A ``$ref`` this analysis cannot follow, or a cycle that never reaches a child value."""


def _children(node: dict[str, Any]) -> Iterator[tuple[str, str, Any]]:
    """(how, key, subschema): ``in`` place, a ``named`` child, ``any`` child, or a ``def``."""
    for keyword in _APPLICATORS.keys() & node.keys():
        how, shape = _APPLICATORS[keyword]
        value = node[keyword]
        if shape == "one":
            yield how, "", value
        elif shape == "list" and isinstance(value, list):
            for index, item in enumerate(value):
                yield how, f"i:{index}", item
        elif shape == "map" and isinstance(value, dict):
            for name, item in value.items():
                yield how, f"p:{name}", item


class _Graph:
    def __init__(self, root: dict[str, Any]) -> None:
        self.index: dict[int, int] = {}
        self.nodes: list[dict[str, Any]] = []
        self.bases: list[str] = []
        self.resources: dict[str, Any] = {_ROOT_URI: root}
        self.anchors: dict[tuple[str, str], dict[str, Any]] = {}
        self.dynamic: dict[str, list[dict[str, Any]]] = {}
        self.in_place: list[list[int]] = []
        self.named: list[list[tuple[str, int]]] = []
        self.anywhere: list[list[int]] = []
        self._discover(root, _ROOT_URI)
        done = 0
        while done < len(self.nodes):  # resolving a ref may discover more nodes
            self._link(done)
            done += 1

    def _discover(self, start: dict[str, Any], base: str) -> int:
        stack = [(start, base)]
        while stack:
            node, parent_base = stack.pop()
            if id(node) in self.index:
                continue
            own = node.get("$id")
            node_base = urljoin(parent_base, own).partition("#")[0] if isinstance(own, str) else ""
            node_base = node_base or parent_base
            if isinstance(own, str):
                self.resources.setdefault(node_base, node)
            for keyword in ("$anchor", "$dynamicAnchor"):
                name = node.get(keyword)
                if isinstance(name, str):
                    self.anchors.setdefault((node_base, name), node)
                    if keyword == "$dynamicAnchor":
                        self.dynamic.setdefault(name, []).append(node)
            self.index[id(node)] = len(self.nodes)
            self.nodes.append(node)
            self.bases.append(node_base)
            self.in_place.append([])
            self.named.append([])
            self.anywhere.append([])
            stack.extend((c, node_base) for _, _, c in _children(node) if isinstance(c, dict))
        return self.index[id(start)]

    def _link(self, at: int) -> None:
        node, base = self.nodes[at], self.bases[at]
        for how, key, child in _children(node):
            if not isinstance(child, dict):
                continue
            target = self.index[id(child)]
            if how == "in":
                self.in_place[at].append(target)
            elif how == "named":
                self.named[at].append((key, target))
            elif how == "any":
                self.anywhere[at].append(target)
        for keyword in _REFS:
            ref = node.get(keyword)
            if isinstance(ref, str):
                uri, found = self._resolve(ref, base, dynamic=keyword == "$dynamicRef")
                if found is not None:
                    self.in_place[at].append(self._discover(found, uri))

    def _resolve(self, ref: str, base: str, *, dynamic: bool) -> tuple[str, Any]:
        full = base + ref if ref.startswith("#") else urljoin(base, ref)
        uri, _, fragment = full.partition("#")
        fragment = unquote(fragment)
        resource = self.resources.get(uri)
        if resource is None:
            raise SchemaShapeError(f"$ref '{ref}' does not point inside the schema")
        if not fragment:
            found = resource
        elif fragment.startswith("/"):
            found = _pointer(resource, fragment)
        else:
            found = self.anchors.get((uri, fragment))
            # The dynamic scope picks one anchor of that name at run time; which one is not
            # known here, and counting all of them would multiply at every level.
            others = {id(n) for n in self.dynamic.get(fragment, []) if n is not found}
            if dynamic and others:
                raise SchemaShapeError(f"$dynamicRef '{ref}' has more than one possible target")
        if found is None:
            raise SchemaShapeError(f"$ref '{ref}' cannot be followed")
        return uri, found if isinstance(found, dict) else None


def _pointer(document: Any, pointer: str) -> Any:
    current = document
    for token in pointer.split("/")[1:]:
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(current, dict):
            current = current.get(token)
        elif isinstance(current, list) and _is_index(token) and int(token) < len(current):
            current = current[int(token)]
        else:
            return None
    return current


def _is_index(token: str) -> bool:
    return token.isascii() and token.isdigit() and len(token) <= 9


def _topological(graph: _Graph) -> list[int]:
    """In-place edges in dependency order; a cycle among them is refused."""
    order: list[int] = []
    state = [0] * len(graph.nodes)  # 0 new, 1 on the stack, 2 done
    for start in range(len(graph.nodes)):
        if state[start]:
            continue
        stack: list[tuple[int, int]] = [(start, 0)]
        state[start] = 1
        while stack:
            node, next_edge = stack[-1]
            edges = graph.in_place[node]
            if next_edge < len(edges):
                stack[-1] = (node, next_edge + 1)
                child = edges[next_edge]
                if state[child] == 1:
                    raise SchemaShapeError("a $ref cycle that never descends into the value")
                if state[child] == 0:
                    state[child] = 1
                    stack.append((child, 0))
            else:
                state[node] = 2
                order.append(node)
                stack.pop()
    order.reverse()
    return order


def _in_place_closure(
    graph: _Graph, entries: Counter[int], position: dict[int, int]
) -> Counter[int]:
    """Every subschema that applies at one location, with how many routes reach it."""
    if not any(graph.in_place[node] for node in entries):
        return entries  # the common case: plain property schemas
    reached: set[int] = set()
    stack = list(entries)
    while stack:
        node = stack.pop()
        if node not in reached:
            reached.add(node)
            stack.extend(graph.in_place[node])
    counts = Counter(entries)
    for node in sorted(reached, key=position.__getitem__):
        for child in graph.in_place[node]:
            counts[child] += counts[node]
    return counts


def evaluation_cost(schema: Any, *, limit: int, max_depth: int) -> int:
    """Most subschema checks one value location can need (stops counting past ``limit``).

    Locations are explored by the set of subschemas that reach them (one per property
    name, plus one for any other member or item), each distinct set once. Raises
    :class:`SchemaShapeError` for a ``$ref`` it cannot follow or an in-place cycle.
    """
    if not isinstance(schema, dict):
        return 1
    graph = _Graph(schema)
    position = {node: at for at, node in enumerate(_topological(graph))}
    seen: set[frozenset[tuple[int, int]]] = set()
    frontier: list[Counter[int]] = [Counter({0: 1})]
    worst = 0
    for _ in range(max_depth + 1):
        following: list[Counter[int]] = []
        for entries in frontier:
            shape = frozenset(entries.items())
            if shape in seen:
                continue
            seen.add(shape)
            if len(seen) > _MAX_LOCATIONS:
                return limit + 1
            counts = _in_place_closure(graph, entries, position)
            worst = max(worst, sum(counts.values()))
            if worst > limit:
                return worst
            named: dict[str, Counter[int]] = {}
            anywhere: Counter[int] = Counter()
            for node, count in counts.items():
                for key, child in graph.named[node]:
                    named.setdefault(key, Counter())[child] += count
                for child in graph.anywhere[node]:
                    anywhere[child] += count
            following.extend(own + anywhere for own in named.values())
            if anywhere:
                following.append(anywhere)
        if not following:
            break
        frontier = following
    return worst
