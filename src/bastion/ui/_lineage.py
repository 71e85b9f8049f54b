"""Server-side layout of a lineage graph as SVG: datasets -> model versions -> aliases, left to right.

No JavaScript: the nodes are SVG links to the dataset and model pages.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Any
from urllib.parse import quote

__all__ = ["lineage_svg"]

_W, _H, _COL, _ROW, _PAD = 190, 38, 250, 56, 16


@dataclass
class _Node:
    key: str
    kind: str  # source | dataset | model | alias
    label: str
    href: str | None
    rank: int = 0
    row: int = 0
    current: bool = False


def _href(kind: str, ref: str, root: str) -> str | None:
    if ":" not in ref:
        return None
    name, version = ref.rsplit(":", 1)
    base = root + ("/models" if kind == "model" else "/datasets")
    return f"{base}/{quote(name, safe='')}/{quote(version, safe='')}"


def _flatten(tree: dict[str, Any], root_path: str) -> tuple[dict[str, _Node], set[tuple[str, str]]]:
    nodes: dict[str, _Node] = {}
    edges: set[tuple[str, str]] = set()  # (from upstream, to downstream)

    def visit(n: dict[str, Any]) -> str:
        kind = n.get("kind", "dataset")
        if kind == "source":
            key = f"source:{n.get('digest', '')}"
            label = "source " + str(n.get("digest", ""))[7:19]
            href = None
        else:
            key = f"{kind}:{n['ref']}"
            suffix = " (deleted)" if n.get("deleted") else " (missing)" if n.get("missing") else ""
            label = str(n["ref"]) + suffix
            href = None if n.get("missing") else _href(kind, str(n["ref"]), root_path)
        node = nodes.setdefault(key, _Node(key, kind, label, href))
        rank = 0
        for child in n.get("children", []):
            ck = visit(child)
            edges.add((ck, key))
            rank = max(rank, nodes[ck].rank + 1)
        node.rank = max(node.rank, rank)
        if kind == "model":
            for alias in n.get("aliases", []):
                ak = f"alias:{n['ref'].rsplit(':', 1)[0]}@{alias}"
                nodes.setdefault(ak, _Node(ak, "alias", "@" + alias, None))
                edges.add((key, ak))
        return key

    root = visit(tree)
    nodes[root].current = True
    top = max((n.rank for n in nodes.values() if n.kind != "alias"), default=0)
    for n in nodes.values():
        if n.kind == "alias":
            n.rank = top + 1
    return nodes, edges


def lineage_svg(tree: dict[str, Any], *, root_path: str = "") -> str:
    """The lineage tree of ``Project.lineage(ref)`` as an inline SVG document fragment.

    ``root_path`` prefixes the links when the dashboard is mounted below another app.
    """
    nodes, edges = _flatten(tree, root_path)
    columns: dict[int, list[_Node]] = {}
    for n in sorted(nodes.values(), key=lambda n: (n.rank, n.kind, n.label)):
        n.row = len(columns.setdefault(n.rank, []))
        columns[n.rank].append(n)
    rows = max(len(c) for c in columns.values())
    width = _PAD * 2 + (max(columns) + 1) * _COL - (_COL - _W)
    height = _PAD * 2 + rows * _ROW - (_ROW - _H)

    def pos(n: _Node) -> tuple[int, int]:
        offset = (rows - len(columns[n.rank])) * _ROW // 2  # centre short columns
        return _PAD + n.rank * _COL, _PAD + offset + n.row * _ROW

    out = [
        f'<svg class="lineage" role="img" aria-label="lineage graph" xmlns="http://www.w3.org/2000/svg" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" class="edge-head"/></marker></defs>',
    ]
    for a, b in sorted(edges):
        (x1, y1), (x2, y2) = pos(nodes[a]), pos(nodes[b])
        sx, sy, ex, ey = x1 + _W, y1 + _H // 2, x2, y2 + _H // 2
        mid = (sx + ex) // 2
        out.append(f'<path class="edge" marker-end="url(#arrow)" d="M {sx} {sy} C {mid} {sy}, {mid} {ey}, {ex} {ey}"/>')
    for n in nodes.values():
        x, y = pos(n)
        cls = f"node node-{n.kind}" + (" node-current" if n.current else "")
        label = n.label if len(n.label) <= 26 else n.label[:25] + "…"
        shape = (
            f'<rect class="{cls}" x="{x}" y="{y}" width="{_W}" height="{_H}" rx="6"/>'
            f'<text class="node-label" x="{x + _W // 2}" y="{y + _H // 2 + 5}" text-anchor="middle">'
            f"{escape(label)}<title>{escape(n.kind)}: {escape(n.label)}</title></text>"
        )
        if n.href:
            shape = f'<a href="{escape(n.href)}" data-node="{escape(n.key)}">{shape}</a>'
        else:
            shape = f'<g data-node="{escape(n.key)}">{shape}</g>'
        out.append(shape)
    out.append("</svg>")
    return "".join(out)
