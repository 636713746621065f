"""Server-rendered SVG charts (no JavaScript; presentation attributes, no style=)."""

from __future__ import annotations

from dataclasses import dataclass, field

WIDTH, HEIGHT = 720, 220
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 44, 12, 12, 28


@dataclass
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str


@dataclass
class Series:
    name: str
    colour: str
    bars: list[Bar] = field(default_factory=list)
    points: str = ""  # for lines: "x,y x,y ..."


@dataclass
class Chart:
    title: str
    width: int
    height: int
    series: list[Series]
    y_ticks: list[tuple[float, int]]  # (y, value)
    x_labels: list[tuple[float, str]]
    baseline: float
    left: float
    right: float


def _nice_max(value: int) -> int:
    if value <= 4:
        return 4
    step = 10 ** (len(str(value)) - 1)
    for multiple in (1, 2, 2.5, 5, 10):
        if value <= multiple * step:
            return int(multiple * step) if multiple * step >= 4 else 4
    return value


def daily_chart(title: str, labels: list[str], bars: dict[str, tuple[str, list[int]]],
                lines: dict[str, tuple[str, list[int]]] | None = None) -> Chart:
    """Grouped bars per day (and optional lines) on one shared axis."""
    lines = lines or {}
    values = [v for _, vs in [*bars.values(), *lines.values()] for v in vs]
    top = _nice_max(max(values, default=0))
    plot_w = WIDTH - PAD_LEFT - PAD_RIGHT
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    baseline = PAD_TOP + plot_h
    n = max(len(labels), 1)
    slot = plot_w / n
    bar_w = max(slot * 0.8 / max(len(bars), 1), 1)

    def y_of(value: int) -> float:
        return round(baseline - value / top * plot_h, 1)

    series = []
    for index, (name, (colour, vs)) in enumerate(bars.items()):
        s = Series(name, colour)
        for i, v in enumerate(vs):
            x = PAD_LEFT + i * slot + slot * 0.1 + index * bar_w
            s.bars.append(Bar(round(x, 1), y_of(v), round(bar_w, 1),
                              round(baseline - y_of(v), 1), f"{labels[i]}: {v} {name.lower()}"))
        series.append(s)
    for name, (colour, vs) in lines.items():
        points = " ".join(
            f"{round(PAD_LEFT + i * slot + slot / 2, 1)},{y_of(v)}" for i, v in enumerate(vs)
        )
        series.append(Series(name, colour, points=points))
    step = max(1, n // 8)
    x_labels = [
        (round(PAD_LEFT + i * slot + slot / 2, 1), labels[i]) for i in range(0, n, step)
    ] if labels else []
    y_ticks = [(y_of(top * k // 4), top * k // 4) for k in range(5)]
    return Chart(title, WIDTH, HEIGHT, series, y_ticks, x_labels, baseline, PAD_LEFT,
                 WIDTH - PAD_RIGHT)
