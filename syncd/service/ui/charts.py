"""The overview's charts: small inline SVG drawn on the server, from an environment's latest runs.

Each chart is one ``<svg role="img">`` with an ``aria-label`` and a ``<title>`` that say what it
shows; the page puts the same numbers in a table next to it (the text alternative). Bars and
points carry classes (``o-<outcome>``), coloured by the stylesheet; nothing is scripted and no
style attribute is used (the pages' Content-Security-Policy allows none). Every text is escaped,
so the SVG is well-formed XML whatever the environment's name.

Pure: takes `syncd.service.ui.data.RunPoint`s (oldest first), returns markup.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

from syncd.service.ui.data import RunPoint

WIDTH = 600
HEIGHT = 170
LEFT = 44  # room for the axis labels
RIGHT = 6
SVG_NS = "http://www.w3.org/2000/svg"


def _num(value: float) -> str:
    """A number for an axis label: whole when it is, else one decimal, or two significant digits
    below 1 (a run of 0.03 s is not "0.0")."""
    if float(value).is_integer() or value >= 100:
        return f"{value:.0f}"
    return f"{value:.2g}" if abs(value) < 1 else f"{value:.1f}"


def _svg(label: str, body: list[str], height: int = HEIGHT) -> Markup:
    text = escape(label)
    return Markup(
        f'<svg xmlns="{SVG_NS}" class="chart" role="img" aria-label="{text}" '
        f'viewBox="0 0 {WIDTH} {height}" preserveAspectRatio="xMinYMin meet">'
        f"<title>{text}</title>" + "".join(body) + "</svg>"
    )


def _empty(label: str, note: str) -> Markup:
    height = 48
    return _svg(
        label,
        [
            f'<rect class="frame" x="0.5" y="0.5" width="{WIDTH - 1}" height="{height - 1}" fill="none"/>',
            f'<text class="note" x="{WIDTH / 2:.0f}" y="{height / 2 + 5:.0f}" text-anchor="middle">'
            f"{escape(note)}</text>",
        ],
        height,
    )


def _bars(
    points: Sequence[RunPoint], values: Sequence[float], top: float, height: float, caption: str
) -> list[str]:
    """One panel of bars, ``height`` tall from ``top``, with its caption and largest value."""
    peak = max(values) if values else 0.0
    slot = (WIDTH - LEFT - RIGHT) / max(len(points), 1)
    out = [
        f'<text class="axis" x="0" y="{top + 10:.1f}">{escape(_num(peak))}</text>',
        f'<text class="axis" x="0" y="{top + height:.1f}">0</text>',
        f'<text class="caption" x="{LEFT}" y="{top - 4:.1f}">{escape(caption)}</text>',
        f'<line class="base" x1="{LEFT}" y1="{top + height:.1f}" x2="{WIDTH - RIGHT}" '
        f'y2="{top + height:.1f}" stroke="#888"/>',
    ]
    for i, (p, v) in enumerate(zip(points, values, strict=True)):
        h = 0.0 if peak <= 0 else max(v / peak * height, 1.0 if v > 0 else 0.0)
        x = LEFT + i * slot + slot * 0.15
        out.append(
            f'<rect class="bar o-{escape(p.outcome)}" x="{x:.1f}" y="{top + height - h:.1f}" '
            f'width="{max(slot * 0.7, 1):.1f}" height="{h:.1f}" fill="#4a78b5">'
            f"<title>run {p.run_id} ({escape(p.kind)}, {escape(p.outcome)}): {escape(_num(v))}</title></rect>"
        )
    return out


def runs_chart(environment: str, points: Sequence[RunPoint]) -> Markup:
    """Duration (seconds) and changes (rows created, updated, enabled, disabled) of each run, as
    two rows of bars sharing the run axis. aria-label "Runs of <environment>: ..."."""
    if not points:
        return _empty(f"Runs of {environment}: no finished runs yet", "no finished runs yet")
    label = (
        f"Runs of {environment}: duration in seconds and rows changed, "
        f"for each of the last {len(points)} runs, oldest first"
    )
    durations = [p.duration_s or 0.0 for p in points]
    changes = [float(p.changes) for p in points]
    body = _bars(points, durations, 16, 56, "duration (s)")
    body += _bars(points, changes, 100, 56, "rows changed")
    return _svg(label, body)


def enabled_chart(environment: str, points: Sequence[RunPoint]) -> Markup:
    """The environment's enabled users after each run that recorded them, as a line with a point
    per run. aria-label "Enabled users of <environment>: ..."."""
    known = [(i, p) for i, p in enumerate(points) if p.users_enabled is not None]
    if not known:
        return _empty(
            f"Enabled users of {environment}: not recorded by these runs", "enabled users not recorded yet"
        )
    values = [float(p.users_enabled or 0) for _, p in known]
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    top, height = 16.0, HEIGHT - 36.0
    slot = (WIDTH - LEFT - RIGHT) / max(len(points), 1)

    def xy(i: int, v: float) -> tuple[float, float]:
        return LEFT + i * slot + slot / 2, top + height - (v - low) / span * height

    coords = [xy(i, v) for (i, _), v in zip(known, values, strict=True)]
    label = (
        f"Enabled users of {environment}: from {_num(low)} to {_num(high)} "
        f"over the last {len(known)} runs that recorded them, oldest first"
    )
    body = [
        f'<text class="axis" x="0" y="{top + 10:.1f}">{escape(_num(high))}</text>',
        f'<text class="axis" x="0" y="{top + height:.1f}">{escape(_num(low))}</text>',
        f'<text class="caption" x="{LEFT}" y="{top - 4:.1f}">enabled users</text>',
        '<polyline class="line" fill="none" stroke="#2f6f3e" stroke-width="2" points="'
        + " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        + '"/>',
    ]
    for (_, p), (x, y), v in zip(known, coords, values, strict=True):
        body.append(
            f'<circle class="dot o-{escape(p.outcome)}" cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#2f6f3e">'
            f"<title>run {p.run_id}: {escape(_num(v))} enabled</title></circle>"
        )
    return _svg(label, body)
