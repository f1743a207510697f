"""An SVG picture of the platform: namespaces as boxes, workloads coloured by mesh membership,
flows as arrows coloured by outcome. Deterministic layout, no scripts, embeddable in HTML."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from html import escape

from runbook_engine.report.model import FlowRow, Membership, WorkloadRow

MEMBER_COLOUR: dict[Membership, str] = {
    Membership.MESHED: "#2e7d32",
    Membership.AMBIENT: "#00838f",
    Membership.EXCLUDED: "#757575",
    Membership.NOT_MESHED: "#ef6c00",
    Membership.OUTSIDE: "#9e9e9e",
}
OUTCOME_COLOUR: dict[str, str] = {
    "ok": "#2e7d32",
    "reset": "#c62828",
    "denied_403": "#c62828",
    "tls_error": "#6a1b9a",
    "hang": "#ef6c00",
}

BOX_W, BOX_H, GAP, NS_PAD, COL_W = 150, 22, 6, 26, 190


@dataclass(frozen=True)
class _Box:
    x: float
    y: float

    @property
    def centre(self) -> tuple[float, float]:
        return self.x + BOX_W / 2, self.y + BOX_H / 2


def _source_nodes(flows: tuple[FlowRow, ...], known: set[str]) -> list[str]:
    return sorted({f.source for f in flows if f.source not in known})


def _layout(workloads: tuple[WorkloadRow, ...], outside: list[str]) -> tuple[dict[str, _Box], list[str], int]:
    by_ns: dict[str, list[WorkloadRow]] = defaultdict(list)
    for w in workloads:
        by_ns[w.namespace].append(w)
    boxes: dict[str, _Box] = {}
    parts: list[str] = []
    columns: list[tuple[str, list[tuple[str, WorkloadRow | None]]]] = []
    if outside:
        columns.append(("outside the mesh", [(name, None) for name in outside]))
    columns += [(ns, [(f"{ns}/{w.name}", w) for w in rows]) for ns, rows in sorted(by_ns.items())]
    height = 0
    for col, (title, members) in enumerate(columns):
        x = 10 + col * COL_W
        h = NS_PAD + len(members) * (BOX_H + GAP) + GAP
        parts.append(
            f'<rect x="{x - 5}" y="10" width="{BOX_W + 10}" height="{h}" rx="6" fill="#fafafa" stroke="#bdbdbd"/>'
        )
        parts.append(f'<text x="{x}" y="27" font-weight="bold">{escape(title)}</text>')
        for row, (key, member) in enumerate(members):
            y = 10 + NS_PAD + GAP + row * (BOX_H + GAP)
            boxes[key] = _Box(x, y)
            colour = MEMBER_COLOUR[member.membership] if member else "#455a64"
            label = member.name if member else key
            tip = f"{key}: {member.membership.value} {member.form}".strip() if member else key
            parts.append(
                f'<g><title>{escape(tip)}</title><rect x="{x}" y="{y}" width="{BOX_W}" '
                f'height="{BOX_H}" rx="4" fill="{colour}"/><text x="{x + 6}" y="{y + 15}" '
                f'fill="#fff">{escape(label[:22])}</text></g>'
            )
        height = max(height, h + 20)
    return boxes, parts, height


def _dest_key(flow: FlowRow) -> str:
    return flow.to.rsplit(":", 1)[0]


def _edge(f: FlowRow, a: _Box, b: _Box) -> str:
    """A curve from the caller's box to the callee's; within one column it bows out to the right."""
    (x1, y1), (x2, y2) = a.centre, b.centre
    if a.x == b.x:
        x1 = x2 = a.x + BOX_W
        cx, cy = x1 + 30, (y1 + y2) / 2
    else:
        x1, x2 = (a.x + BOX_W, b.x) if a.x < b.x else (a.x, b.x + BOX_W)
        cx, cy = (x1 + x2) / 2, min(y1, y2) - 12
    colour = OUTCOME_COLOUR.get(f.outcome, "#000")
    dash = "" if f.as_expected else ' stroke-dasharray="5,3"'
    return (
        f'<path d="M {x1:.0f} {y1:.0f} Q {cx:.0f} {cy:.0f} {x2:.0f} {y2:.0f}" fill="none" stroke="{colour}" '
        f'stroke-opacity="0.7" stroke-width="1.5" marker-end="url(#arrow)"{dash}>'
        f"<title>{escape(f.flow_id)}: {escape(f.outcome)}</title></path>"
    )


def render_svg(workloads: tuple[WorkloadRow, ...], flows: tuple[FlowRow, ...]) -> str:
    known = {f"{w.namespace}/{w.name}" for w in workloads}
    outside = _source_nodes(flows, known) + sorted(
        {_dest_key(f) for f in flows if _dest_key(f) not in known and f.to.startswith("external:")}
    )
    boxes, parts, height = _layout(workloads, sorted(set(outside)))
    columns = len({w.namespace for w in workloads}) + (1 if outside else 0)
    edges = [_edge(f, a, b) for f in flows if (a := boxes.get(f.source)) and (b := boxes.get(_dest_key(f)))]
    width = max(columns, 1) * COL_W + 20
    defs = (
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" '
        'markerHeight="6" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/>'
        "</marker></defs>"
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{max(height, 60)}" '
        f'font-family="sans-serif" font-size="11" role="img" aria-label="platform">{defs}'
        + "".join(parts)
        + "".join(edges)
        + "</svg>"
    )
