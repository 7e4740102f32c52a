"""Small static SVG charts written beside training results: a loss curve and bars with intervals. Pure.

No plotting library: the project draws its own charts (STYLE.md), and an SVG opens in any browser and
renders on GitHub.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

WIDTH, HEIGHT = 640, 320
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 36, 48
FONT = 'font-family="sans-serif" font-size="12"'


def _frame(title: str, body: list[str], width: int = WIDTH, height: int = HEIGHT) -> str:
    return "\n".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}">',
            f'<rect width="{width}" height="{height}" fill="white"/>',
            f'<text x="{width / 2}" y="20" text-anchor="middle" {FONT} font-weight="bold">{escape(title)}</text>',
            *body,
            "</svg>",
            "",
        ]
    )


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        return [low]
    step = (high - low) / (count - 1)
    return [low + i * step for i in range(count)]


def loss_curve(steps: Sequence[int], losses: Sequence[float], *, title: str = "training loss") -> str:
    """A line of loss per step, with a moving average over a tenth of the run drawn over it."""
    if not steps:
        return _frame(title, [f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" {FONT}>no steps</text>'])
    low, high = min(losses), max(losses)
    if high == low:
        high = low + 1e-9
    first, last = steps[0], max(steps[-1], steps[0] + 1)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def point(step: float, loss: float) -> str:
        x = LEFT + (step - first) / (last - first) * plot_w
        y = TOP + (high - loss) / (high - low) * plot_h
        return f"{x:.1f},{y:.1f}"

    window = max(1, len(losses) // 10)
    smooth = [
        sum(losses[max(0, i - window + 1) : i + 1]) / len(losses[max(0, i - window + 1) : i + 1])
        for i in range(len(losses))
    ]
    raw = " ".join(point(s, v) for s, v in zip(steps, losses, strict=True))
    averaged = " ".join(point(s, v) for s, v in zip(steps, smooth, strict=True))
    body = [
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}" stroke="#444"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}" stroke="#444"/>',
        f'<polyline fill="none" stroke="#9ab" stroke-width="1" points="{raw}"/>',
        f'<polyline fill="none" stroke="#024" stroke-width="2" points="{averaged}"/>',
        f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 12}" text-anchor="middle" {FONT}>step</text>',
    ]
    for value in _ticks(low, high):
        y = TOP + (high - value) / (high - low) * plot_h
        body.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" {FONT}>{value:.4g}</text>')
    for value in _ticks(first, last):
        x = LEFT + (value - first) / (last - first) * plot_w
        body.append(f'<text x="{x:.1f}" y="{TOP + plot_h + 16}" text-anchor="middle" {FONT}>{value:.0f}</text>')
    return _frame(title, body)


def interval_bars(
    groups: Sequence[str],
    series: Sequence[tuple[str, Sequence[tuple[float, float, float]]]],
    *,
    title: str,
    reference: tuple[float, str] | None = None,
) -> str:
    """Bars per group and series on a 0-1 scale, each (value, low, high) drawn with its interval.

    `series` is [(name, [(value, low, high) per group])]; `reference` draws a dashed line (a floor
    or a target) with its label.
    """
    colours = ["#c33", "#37a", "#2a6", "#a6c", "#e90"]
    width = max(WIDTH, LEFT + RIGHT + len(groups) * (len(series) * 44 + 40))
    plot_w, plot_h = width - LEFT - RIGHT, HEIGHT - TOP - BOTTOM - 24
    slot = plot_w / max(1, len(groups))
    bar = min(40.0, (slot - 24) / max(1, len(series)))

    def y(value: float) -> float:
        return TOP + (1 - max(0.0, min(1.0, value))) * plot_h

    body = [f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}" stroke="#444"/>']
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        body.append(f'<line x1="{LEFT}" y1="{y(tick):.1f}" x2="{LEFT + plot_w}" y2="{y(tick):.1f}" stroke="#eee"/>')
        body.append(f'<text x="{LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" {FONT}>{tick:.2f}</text>')
    for g, group in enumerate(groups):
        start = LEFT + g * slot + (slot - bar * len(series)) / 2
        for s, (_, values) in enumerate(series):
            value, low, high = values[g]
            x = start + s * bar
            colour = colours[s % len(colours)]
            tip = f"{escape(group)}: {value:.3f} [{low:.3f}, {high:.3f}]"
            body.append(
                f'<rect x="{x:.1f}" y="{y(value):.1f}" width="{bar - 4:.1f}" height="{TOP + plot_h - y(value):.1f}" '
                f'fill="{colour}" opacity="0.8"><title>{tip}</title></rect>'
            )
            middle = x + (bar - 4) / 2
            body.append(
                f'<line x1="{middle:.1f}" y1="{y(low):.1f}" x2="{middle:.1f}" y2="{y(high):.1f}" stroke="#000"/>'
            )
            body.append(f'<text x="{middle:.1f}" y="{y(value) - 4:.1f}" text-anchor="middle" {FONT}>{value:.2f}</text>')
        centre = LEFT + g * slot + slot / 2
        body.append(
            f'<text x="{centre:.1f}" y="{TOP + plot_h + 16}" text-anchor="middle" {FONT}>{escape(group)}</text>'
        )
    if reference is not None:
        level, label = reference
        dash = 'stroke="#555" stroke-dasharray="5,4"'
        body.append(f'<line x1="{LEFT}" y1="{y(level):.1f}" x2="{LEFT + plot_w}" y2="{y(level):.1f}" {dash}/>')
        body.append(
            f'<text x="{LEFT + plot_w - 4}" y="{y(level) - 4:.1f}" text-anchor="end" {FONT}>{escape(label)}</text>'
        )
    legend_y = HEIGHT - 14
    for s, (name, _) in enumerate(series):
        x = LEFT + s * 180
        body.append(f'<rect x="{x}" y="{legend_y - 10}" width="12" height="12" fill="{colours[s % len(colours)]}"/>')
        body.append(f'<text x="{x + 18}" y="{legend_y}" {FONT}>{escape(name)}</text>')
    return _frame(title, body, width=int(width))
