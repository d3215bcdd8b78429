"""Charts as inline SVG: text the page's embedded font draws (Hangul included), crisp at any zoom, and
nothing to load. Each function takes plain values and returns one <svg> element as text.

Every chart draws the numbers it shows as text too, so a reader never has to estimate a bar.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from html import escape

BLUE = "#2563eb"
GREEN = "#16a34a"
RED = "#dc2626"
AMBER = "#d97706"
GREY = "#9ca3af"
INK = "#111827"
MUTED = "#6b7280"
# Distinct colours for clusters and reasons (by position), readable on white.
PALETTE = (
    "#2563eb",
    "#dc2626",
    "#16a34a",
    "#d97706",
    "#7c3aed",
    "#0891b2",
    "#db2777",
    "#65a30d",
    "#ea580c",
    "#4f46e5",
    "#0d9488",
    "#a16207",
)


# Reasons a use or stage lost people: no green, which means "reached" on every chart.
REASON_COLOURS = (
    "#dc2626",
    "#d97706",
    "#7c3aed",
    "#0891b2",
    "#db2777",
    "#6b7280",
    "#ea580c",
    "#4f46e5",
    "#a16207",
    "#0d9488",
)


def number(value: float, digits: int = 0) -> str:
    """1,234 or 1,234.5: the page's one way of writing a number."""
    return f"{value:,.{digits}f}"


def fit(text: str, width: float, size: int = 12) -> str:
    """The text cut with an ellipsis to about `width` pixels: Hangul and other wide characters count
    about a font size each, the rest a little over half."""
    used = 0.0
    for n, char in enumerate(text):
        used += size * (1.0 if ord(char) >= 0x1100 else 0.56)
        if used > width:
            return text[: max(0, n - 1)] + "…"
    return text


def _text(x: float, y: float, body: str, *, size: int = 12, anchor: str = "start", fill: str = INK,
          weight: str = "normal") -> str:  # fmt: skip
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{fill}"'
        f' font-weight="{weight}">{escape(body)}</text>'
    )


def _svg(width: float, height: float, body: Sequence[str], label: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}"'
        f' height="{height:.0f}" role="img" aria-label="{escape(label)}">' + "".join(body) + "</svg>"
    )


@dataclass(frozen=True)
class Bar:
    """One bar: its labels (English, Korean), value, and a note drawn under it (e.g. a drop)."""

    en: str
    ko: str
    value: float
    note: str = ""
    colour: str = BLUE


def bars(items: Sequence[Bar], label: str, *, width: int = 760, unit: str = "") -> str:
    """Horizontal bars on one scale, the value beside each bar and an optional note under it."""
    label_width, row = 230, 44
    scale = width - label_width - 110
    top = max((b.value for b in items), default=0) or 1
    body = []
    for n, b in enumerate(items):
        y = 8 + n * row
        w = max(2.0, scale * b.value / top) if b.value else 0.0
        body.append(_text(label_width - 10, y + 13, fit(b.en, label_width - 16), anchor="end", weight="bold"))
        body.append(_text(label_width - 10, y + 28, fit(b.ko, label_width - 16, 11), anchor="end", size=11,
                          fill=MUTED))  # fmt: skip
        body.append(f'<rect x="{label_width}" y="{y + 2}" width="{w:.1f}" height="22" rx="3" fill="{b.colour}"/>')
        body.append(_text(label_width + w + 6, y + 18, number(b.value) + (f" {unit}" if unit else ""), weight="bold"))
        if b.note:
            body.append(_text(label_width, y + 38, b.note, size=11, fill=RED))
    return _svg(width, 16 + row * len(items), body, label)


def heatmap(
    rows: Sequence[str],
    columns: Sequence[str],
    values: Sequence[Sequence[float]],
    texts: Sequence[Sequence[Sequence[str]]],
    label: str,
    *,
    diverging: bool = False,
    cell: tuple[int, int] = (92, 46),
    row_label_width: int = 120,
    column_label_height: int = 28,
    rotate: bool = False,
) -> str:
    """A grid of coloured cells with one or two lines of text each: sequential blues for counts, or
    red/blue around zero for z-scores (saturating at ±2)."""
    cw, ch = cell
    top = column_label_height
    finite = [abs(v) for row in values for v in row if math.isfinite(v)]
    limit = (2.0 if diverging else max(finite, default=0.0)) or 1.0
    body = []
    for c, name in enumerate(columns):
        x = row_label_width + c * cw + cw / 2
        if rotate:
            body.append(
                f'<text transform="translate({x:.1f},{top - 6}) rotate(-40)" font-size="11" fill="{INK}">'
                f"{escape(name)}</text>"
            )
        else:
            body.append(_text(x, top - 8, name, anchor="middle", size=11, weight="bold"))
    for r, name in enumerate(rows):
        y = top + r * ch
        body.append(_text(row_label_width - 8, y + ch / 2 + 4, name, anchor="end", size=11, weight="bold"))
        for c in range(len(columns)):
            value = values[r][c]
            fill, ink = _shade(value, limit, diverging)
            x = row_label_width + c * cw
            body.append(f'<rect x="{x}" y="{y}" width="{cw - 2}" height="{ch - 2}" fill="{fill}"/>')
            lines = texts[r][c]
            for i, line in enumerate(lines):
                offset = (i - (len(lines) - 1) / 2) * 14
                body.append(_text(x + cw / 2 - 1, y + ch / 2 + 4 + offset, line, anchor="middle", size=11, fill=ink))
    # Labels rotated up to the right reach past the last column by about their length.
    overhang = 5 * max((len(c) for c in columns), default=0) if rotate else 0
    width = row_label_width + cw * len(columns) + 10 + overhang
    height = top + ch * len(rows) + 6
    return _svg(width, height, body, label)


def _shade(value: float, limit: float, diverging: bool) -> tuple[str, str]:
    """The cell's colour and the ink that reads on it."""
    if not math.isfinite(value):
        return "#f3f4f6", MUTED
    t = min(1.0, abs(value) / limit)
    if diverging:
        base = (220, 38, 38) if value > 0 else (37, 99, 235)
    else:
        base = (37, 99, 235)
    colour = tuple(round(255 + (b - 255) * (0.08 + 0.92 * t)) for b in base)
    ink = "#ffffff" if t > 0.55 else INK
    return "#{:02x}{:02x}{:02x}".format(*colour), ink


@dataclass(frozen=True)
class Point:
    key: str
    x: float
    y: float
    size: float
    text: str
    colour: str


def bubbles(points: Sequence[Point], axes: tuple[str, str], label: str, *, width: int = 560, height: int = 380) -> str:
    """Points on two axes, each a circle whose area is its size, numbered, with the axes' names."""
    pad = 56
    xs = [p.x for p in points] or [0.0]
    ys = [p.y for p in points] or [0.0]
    span_x = (max(xs) - min(xs)) or 1.0
    span_y = (max(ys) - min(ys)) or 1.0
    biggest = max((p.size for p in points), default=1.0) or 1.0
    body = [
        f'<rect x="{pad}" y="12" width="{width - pad - 12}" height="{height - pad - 12}" fill="#f9fafb"'
        f' stroke="#e5e7eb"/>',
        _text((width + pad) / 2, height - 14, axes[0], anchor="middle", size=11, fill=MUTED),
        f'<text transform="translate(16,{(height - pad) / 2:.0f}) rotate(-90)" font-size="11" fill="{MUTED}"'
        f' text-anchor="middle">{escape(axes[1])}</text>',
    ]
    margin = 44  # the largest bubble's radius and a little: no bubble is cut by the frame
    left, right, top, bottom = pad + margin, width - 12 - margin, 12 + margin, height - pad - margin
    for p in sorted(points, key=lambda q: -q.size):
        # One point, or all on a line: those axes put them in the middle.
        fx = (p.x - min(xs)) / span_x if max(xs) > min(xs) else 0.5
        fy = (p.y - min(ys)) / span_y if max(ys) > min(ys) else 0.5
        cx = left + (right - left) * fx
        cy = bottom - (bottom - top) * fy
        radius = 8 + 34 * math.sqrt(p.size / biggest)
        body.append(
            f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{radius:.1f}" fill="{p.colour}" fill-opacity="0.55"'
            f' stroke="{p.colour}" stroke-width="2"/>'
        )
        body.append(_text(cx, cy + 4, p.text, anchor="middle", size=12, weight="bold"))
    return _svg(width, height, body, label)


@dataclass(frozen=True)
class Part:
    key: str
    value: int
    colour: str


def stacked(rows: Sequence[tuple[str, Sequence[Part]]], label: str, *, width: int = 760) -> str:
    """One 100 % bar per row, split into parts (the first is the share reached), its share written on it."""
    label_width, row = 210, 30
    scale = width - label_width - 70
    body = []
    for n, (name, parts) in enumerate(rows):
        y = 6 + n * row
        total = sum(p.value for p in parts)
        body.append(_text(label_width - 8, y + 16, fit(name, label_width - 14), anchor="end", size=12, weight="bold"))
        x = float(label_width)
        for p in parts:
            if not p.value or not total:
                continue
            w = scale * p.value / total
            body.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="22" fill="{p.colour}"/>')
            if w > 34:
                body.append(_text(x + w / 2, y + 15, f"{p.value / total:.0%}", anchor="middle", size=11, fill="#fff"))
            x += w
        if not total:
            body.append(f'<rect x="{label_width}" y="{y}" width="{scale}" height="22" fill="#f3f4f6"/>')
        share = parts[0].value / total if total and parts else 0.0
        body.append(_text(label_width + scale + 8, y + 16, f"{share:.0%}", weight="bold"))
    return _svg(width, 12 + row * len(rows), body, label)


def series(
    days: Sequence[date],
    size: Sequence[int],
    entered: Sequence[int],
    exited: Sequence[int],
    title: str,
    *,
    width: int = 360,
    height: int = 150,
) -> str:
    """A segment's size as a line over the days, entries (green, up) and exits (red, down) as bars
    under it, with the first and last day and the last size written out."""
    left, right, top = 8, 8, 24
    plot_h = height - top - 50
    base = top + plot_h
    n = max(1, len(days))
    step = (width - left - right) / n
    high = max(size, default=0) or 1
    flows = max([*entered, *exited, 1])
    body = [_text(left, 14, fit(title, width - left - right - 60), size=12, weight="bold")]
    points = " ".join(f"{left + step * (i + 0.5):.1f},{base - plot_h * v / high:.1f}" for i, v in enumerate(size))
    body.append(f'<rect x="{left}" y="{top}" width="{width - left - right}" height="{plot_h}" fill="#f9fafb"/>')
    if size:
        body.append(f'<polyline points="{points}" fill="none" stroke="{BLUE}" stroke-width="2.5"/>')
    flow_base = base + 22
    for i, (e, x_) in enumerate(zip(entered, exited, strict=True)):
        x = left + step * i + step * 0.15
        if e:
            h = 18 * e / flows
            body.append(
                f'<rect x="{x:.1f}" y="{flow_base - h:.1f}" width="{step * 0.7:.1f}" height="{h:.1f}" fill="{GREEN}"/>'
            )
        if x_:
            h = 18 * x_ / flows
            body.append(
                f'<rect x="{x:.1f}" y="{flow_base:.1f}" width="{step * 0.7:.1f}" height="{h:.1f}" fill="{RED}"/>'
            )
    body.append(f'<line x1="{left}" x2="{width - right}" y1="{flow_base}" y2="{flow_base}" stroke="#d1d5db"/>')
    if days:
        body.append(_text(left, height - 4, days[0].isoformat(), size=10, fill=MUTED))
        body.append(_text(width - right, height - 4, days[-1].isoformat(), size=10, fill=MUTED, anchor="end"))
    last = size[-1] if size else 0
    body.append(_text(width - right, 14, number(last), size=12, anchor="end", weight="bold", fill=BLUE))
    return _svg(width, height, body, title)


def lags(items: Sequence[tuple[str, float | None, float, bool]], label: str, *, width: int = 760) -> str:
    """Each stage's age against its limit: the bar's length is the age, the dashed line the limit
    (the scale runs to twice it), red when stale, grey when there is no record."""
    label_width, row = 170, 28
    scale = width - label_width - 150
    body = []
    for n, (name, lag, limit, stale) in enumerate(items):
        y = 6 + n * row
        body.append(_text(label_width - 8, y + 16, name, anchor="end", size=12, weight="bold"))
        body.append(f'<rect x="{label_width}" y="{y + 2}" width="{scale}" height="18" fill="#f3f4f6"/>')
        if lag is None:
            body.append(_text(label_width + 6, y + 16, "no record / 기록 없음", size=11, fill=MUTED))
        else:
            w = max(2.0, scale * min(lag / (2 * limit), 1.0))
            body.append(
                f'<rect x="{label_width}" y="{y + 2}" width="{w:.1f}" height="18" fill="{RED if stale else GREEN}"/>'
            )
            body.append(_text(label_width + scale + 8, y + 16, _age(lag), size=12, weight="bold",
                              fill=RED if stale else INK))  # fmt: skip
        x = label_width + scale / 2
        body.append(f'<line x1="{x}" x2="{x}" y1="{y}" y2="{y + 22}" stroke="{INK}" stroke-dasharray="3,2"/>')
    return _svg(width, 12 + row * len(items), body, label)


def _age(hours: float) -> str:
    if hours < 1:
        return f"{hours * 60:.0f} min"
    if hours < 48:
        return f"{hours:.1f} h"
    return f"{hours / 24:.1f} d"


def age(hours: float | None) -> str:
    """How the page writes a lag: minutes, hours or days."""
    return "—" if hours is None else _age(hours)
