"""A stacked bar chart as SVG geometry, computed here and drawn by a template: the console's
decisions over time render on the server, with no script and no inline style (the bars'
colours come from the stylesheet, by series)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

WIDTH, HEIGHT = 720, 260
_LEFT, _RIGHT, _TOP, _BOTTOM = 48, 8, 12, 36  # room for the axes' labels


@dataclass(frozen=True, slots=True)
class Bar:
    series: str
    x: float
    y: float
    width: float
    height: float
    title: str  # what a pointer over the bar shows


@dataclass(frozen=True, slots=True)
class Tick:
    at: float  # x for a bucket label, y for a value
    text: str


@dataclass(frozen=True, slots=True)
class StackedBars:
    width: int
    height: int
    plot_left: int
    plot_bottom: int
    plot_right: int
    bars: tuple[Bar, ...]
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]
    totals: tuple[tuple[str, int], ...]  # per series, for the legend


def stacked_bars(
    labels: Sequence[str], series: Mapping[str, Sequence[int]], label_every: int = 1
) -> StackedBars:
    """One column per label, the series stacked in the order given. `series[name][i]` is the
    count of `name` in column i; every series has one count per label."""
    if any(len(counts) != len(labels) for counts in series.values()):
        raise ValueError("every series needs one count per label")
    plot_width = WIDTH - _LEFT - _RIGHT
    plot_height = HEIGHT - _TOP - _BOTTOM
    columns = max(len(labels), 1)
    slot = plot_width / columns
    bar_width = max(slot * 0.8, 1.0)
    peak = max((sum(c[i] for c in series.values()) for i in range(len(labels))), default=0)
    top = _nice_ceiling(peak)
    scale = plot_height / top
    bars = []
    for i, label in enumerate(labels):
        base = float(HEIGHT - _BOTTOM)
        x = _LEFT + i * slot + (slot - bar_width) / 2
        for name, counts in series.items():
            if counts[i] == 0:
                continue
            height = counts[i] * scale
            base -= height
            bars.append(
                Bar(
                    name,
                    round(x, 2),
                    round(base, 2),
                    round(bar_width, 2),
                    round(height, 2),
                    f"{label}: {counts[i]} {name}",
                )
            )
    x_ticks = tuple(
        Tick(round(_LEFT + i * slot + slot / 2, 2), label)
        for i, label in enumerate(labels)
        if i % max(label_every, 1) == 0
    )
    y_ticks = tuple(
        Tick(round(HEIGHT - _BOTTOM - value * scale, 2), str(value)) for value in (0, top // 2, top)
    )
    return StackedBars(
        width=WIDTH,
        height=HEIGHT,
        plot_left=_LEFT,
        plot_bottom=HEIGHT - _BOTTOM,
        plot_right=WIDTH - _RIGHT,
        bars=tuple(bars),
        x_ticks=x_ticks,
        y_ticks=y_ticks,
        totals=tuple((name, sum(counts)) for name, counts in series.items()),
    )


def _nice_ceiling(value: int) -> int:
    """The smallest of 2, 4, 10, 20, 40, 100, … that is at least `value` (an even axis top)."""
    top = 2
    while top < value:
        top = top * 5 // 2 if str(top).startswith("4") else top * 2
    return top
