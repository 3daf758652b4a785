"""Bar charts as inline SVG, drawn on the server: no JavaScript library, works offline. Every
value is written as text beside its bar, so that a chart reads without colour."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

WIDTH = 720
HEIGHT = 180
_LEFT = 48  # room for the scale's labels
_BOTTOM = 20  # room for the first and last labels
_TOP = 8


@dataclass(frozen=True)
class Bar:
    label: str  # shown under the first and last bars, and in every bar's tooltip
    value: float


def bar_chart(
    bars: Sequence[Bar],
    title: str,
    value_text: Callable[[float], str] = lambda v: f"{v:,.0f}",
    scale_max: float | None = None,
) -> Markup:
    """An ``<svg class="chart">`` of ``bars``, each with a tooltip (``<title>``).

    ``scale_max`` fixes the top of the scale (1.0 for a rate); by default the largest value.
    """
    top = scale_max if scale_max is not None else max((b.value for b in bars), default=0)
    plot_width = WIDTH - _LEFT
    plot_height = HEIGHT - _TOP - _BOTTOM
    step = plot_width / max(len(bars), 1)
    parts = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}"'
        f' role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<line class="axis" x1="{_LEFT}" y1="{HEIGHT - _BOTTOM}" x2="{WIDTH}"'
        f' y2="{HEIGHT - _BOTTOM}"/>',
        f'<text class="scale" x="{_LEFT - 4}" y="{_TOP + 10}" text-anchor="end">'
        f"{escape(value_text(top))}</text>",
        f'<text class="scale" x="{_LEFT - 4}" y="{HEIGHT - _BOTTOM}" text-anchor="end">'
        f"{escape(value_text(0))}</text>",
    ]
    for n, bar in enumerate(bars):
        height = plot_height * bar.value / top if top > 0 else 0
        x = _LEFT + n * step
        parts.append(
            f'<rect class="bar" x="{x + step * 0.1:.1f}" y="{HEIGHT - _BOTTOM - height:.1f}"'
            f' width="{step * 0.8:.1f}" height="{height:.1f}">'
            f"<title>{escape(bar.label)}: {escape(value_text(bar.value))}</title></rect>"
        )
    if bars:
        parts.append(_label(bars[0].label, _LEFT, "start"))
        parts.append(_label(bars[-1].label, WIDTH, "end"))
    parts.append("</svg>")
    return Markup("".join(parts))


def _label(text: str, x: float, anchor: str) -> str:
    return (
        f'<text class="label" x="{x}" y="{HEIGHT - 4}" text-anchor="{anchor}">{escape(text)}</text>'
    )


#: The funnel's rows: the step's name on the left, its bar, then its figures as text.
FUNNEL_ROW = 30
_FUNNEL_LABELS = 140
_FUNNEL_BAR = 300
#: Room for the longest figures after the longest bar: "10,000,000 · not yet sent: ...".
_FUNNEL_WIDTH = 880


@dataclass(frozen=True)
class Stage:
    label: str  # the step's name
    value: int
    note: str  # its figures in words, written after the bar (rates, ...)


def funnel_chart(stages: Sequence[Stage], title: str) -> Markup:
    """An ``<svg class="chart funnel">``: one horizontal bar per stage, as long as its share of
    the largest stage, with the stage's name, count and ``note`` written out."""
    top = max((s.value for s in stages), default=0)
    height = FUNNEL_ROW * len(stages) + 4
    parts = [
        f'<svg class="chart funnel" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {_FUNNEL_WIDTH} {height}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    for n, stage in enumerate(stages):
        y = n * FUNNEL_ROW + 4
        length = _FUNNEL_BAR * stage.value / top if top > 0 else 0
        text = f"{stage.value:,}" + (f" · {stage.note}" if stage.note else "")
        middle = y + FUNNEL_ROW / 2 + 4
        parts += [
            f'<text class="label" x="{_FUNNEL_LABELS - 8}" y="{middle:.1f}" '
            f'text-anchor="end">{escape(stage.label)}</text>',
            f'<rect class="bar" x="{_FUNNEL_LABELS}" y="{y + 4}" width="{length:.1f}" '
            f'height="{FUNNEL_ROW - 8}"><title>{escape(stage.label)}: {escape(text)}</title>'
            "</rect>",
            f'<text class="value" x="{_FUNNEL_LABELS + length + 6:.1f}" y="{middle:.1f}">'
            f"{escape(text)}</text>",
        ]
    parts.append("</svg>")
    return Markup("".join(parts))
