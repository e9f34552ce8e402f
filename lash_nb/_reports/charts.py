"""Charts without new dependencies: a Vega-Lite spec with an inline SVG fallback.

A :class:`Chart` displays as one bundle: ``application/vnd.vegalite.v5+json`` (JupyterLab and
Notebook 7 render it natively and apply their light or dark theme), ``image/svg+xml`` with a
small SVG (nbconvert and GitHub show it as an image; its text is ``currentColor`` of the theme's
text colour variable, else a mid grey that reads on white and on near-black) and ``text/plain``.
Both are plain data: a saved notebook shows the chart with no kernel. A chart of many bars keeps the ``max_bars - 1``
largest and sums the rest into one "other" bar, so a big store is one screen tall.

``Chart.plot()`` hands the same data to pandas plotting when matplotlib is installed.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

_COLORS = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948")
_W, _BAR_H, _GAP, _LABEL_W, _VALUE_W = 640, 18, 6, 180, 90
MAX_BARS = 30
VEGALITE = "application/vnd.vegalite.v5+json"


@dataclass(frozen=True)
class Chart:
    """A horizontal stacked bar chart: one bar per label, one segment per series."""

    title: str
    labels: tuple[str, ...]
    series: tuple[tuple[str, tuple[float, ...]], ...]  # (name, one value per label)
    unit: str = ""

    def to_frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame({name: list(v) for name, v in self.series}, index=list(self.labels))

    def plot(self, **kw: Any) -> Any:
        """pandas plotting (needs matplotlib): a stacked horizontal bar chart."""
        return self.to_frame().plot.barh(stacked=True, title=self.title, **kw)

    def to_svg(self) -> str:
        totals = [sum(v[i] for _, v in self.series) for i in range(len(self.labels))]
        top = max(totals, default=0.0) or 1.0
        plot_w = _W - _LABEL_W - _VALUE_W
        legend_h = 22
        h = 30 + legend_h + len(self.labels) * (_BAR_H + _GAP)
        out = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{h}" '
               'font-family="sans-serif" font-size="12" fill="currentColor" '
               'style="color: var(--jp-content-font-color1, #767676)">'),
               f'<text x="0" y="16" font-weight="bold">{_esc(self.title)}</text>']
        for k, (name, _) in enumerate(self.series):
            x: float = _LABEL_W + k * 130
            out.append(f'<rect x="{x}" y="26" width="10" height="10" fill="{_color(k)}"/>'
                       f'<text x="{x + 14}" y="35">{_esc(name)}</text>')
        y = 30 + legend_h
        if not self.labels:
            out.append(f'<text x="{_LABEL_W}" y="{y + 12}">no data</text>')
        for i, label in enumerate(self.labels):
            out.append(f'<text x="{_LABEL_W - 6}" y="{y + 13}" text-anchor="end">'
                       f'{_esc(_short(label))}</text>')
            x = float(_LABEL_W)
            for k, (name, values) in enumerate(self.series):
                w = plot_w * values[i] / top
                if w > 0:
                    out.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{_BAR_H}" '
                               f'fill="{_color(k)}"><title>{_esc(name)}: {_fmt(values[i])}'
                               '</title></rect>')
                x += w
            out.append(f'<text x="{x + 4:.1f}" y="{y + 13}">{_fmt(totals[i])}{_esc(self.unit)}'
                       '</text>')
            y += _BAR_H + _GAP
        out.append("</svg>")
        return "".join(out)

    def to_html(self) -> str:
        # deliberately not _repr_html_: IPython would add text/html to the display bundle and
        # JupyterLab ranks HTML above Vega-Lite
        return f"<div>{self.to_svg()}</div>"

    def to_vegalite(self) -> dict[str, Any]:
        """The chart as a Vega-Lite v5 spec (data inline, one row per label and series)."""
        values = [
            {"label": label, "order": i, "series": name, "value": float(v[i])}
            for i, label in enumerate(self.labels) for name, v in self.series
        ]
        unit = self.unit.strip()
        return {
            "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
            "title": self.title,
            "data": {"values": values},
            "mark": {"type": "bar", "tooltip": True},
            "width": 480,
            "height": {"step": 18},
            # text and axes take the page's text colour (SVG renderer): right on a light or
            # dark theme even when the chart was drawn before the theme was applied
            "background": "transparent",
            "config": {
                "axis": {"labelColor": "currentColor", "titleColor": "currentColor",
                         "domainColor": "currentColor", "tickColor": "currentColor",
                         "gridColor": "rgba(127,127,127,0.3)"},
                "legend": {"labelColor": "currentColor", "titleColor": "currentColor"},
                "title": {"color": "currentColor"},
                "view": {"stroke": None},
            },
            "encoding": {
                "y": {"field": "label", "type": "nominal", "title": None,
                      "sort": {"field": "order", "order": "ascending"}},
                "x": {"field": "value", "type": "quantitative", "stack": "zero",
                      "title": unit or None},
                "color": {"field": "series", "type": "nominal", "title": None,
                          "scale": {"range": list(_COLORS)},
                          "sort": [name for name, _ in self.series]},
            },
        }

    def _repr_mimebundle_(self, **_kw: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        # the fallback is image/svg+xml, not text/html: JupyterLab ranks HTML above Vega and
        # would never show the Vega-Lite chart; SVG ranks below it, and nbconvert inlines it
        if not self.labels:  # Vega-Lite draws no data as a bare frame: the SVG says "no data"
            return {"image/svg+xml": self.to_svg(), "text/plain": f"<{self.title}: no data>"}, {}
        data = {VEGALITE: self.to_vegalite(), "image/svg+xml": self.to_svg(),
                "text/plain": f"<{self.title}: {len(self.labels)} bars>"}
        # JupyterLab passes embed_options to vega-embed: SVG text, themed by Lab (dark too)
        return data, {VEGALITE: {"embed_options": {"renderer": "svg"}}}

    def aggregated(self, max_bars: int = MAX_BARS) -> Chart:
        """At most ``max_bars`` bars: the ``max_bars - 1`` largest, then one bar summing the rest."""
        n = len(self.labels)
        if n <= max_bars:
            return self
        totals = [sum(v[i] for _, v in self.series) for i in range(n)]
        keep = set(sorted(range(n), key=lambda i: -totals[i])[: max_bars - 1])
        rest = [i for i in range(n) if i not in keep]
        idx = [i for i in range(n) if i in keep]
        labels = (*tuple(self.labels[i] for i in idx), f"other ({len(rest)})")
        series = tuple(
            (name, (*tuple(v[i] for i in idx), sum(v[i] for i in rest))) for name, v in self.series
        )
        title = f"{self.title} ({max_bars - 1} largest of {n}; the rest summed)"
        return Chart(title, labels, series, self.unit)


def _color(k: int) -> str:
    return _COLORS[k % len(_COLORS)]


def _esc(text: str) -> str:
    return html.escape(str(text), quote=True)


def _short(label: str) -> str:
    return label if len(label) <= 28 else label[:27] + "…"


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 or float(v).is_integer() else f"{v:,.2f}"


def _is_frame(obj: Any) -> bool:
    return hasattr(obj, "columns") and hasattr(obj, "iloc")


def _labels(frame: Any, keys: Sequence[str]) -> tuple[str, ...]:
    if not len(frame):
        return ()
    parts = [(frame[k].dt.strftime("%Y-%m-%d") if k == "day" and hasattr(frame[k], "dt")
              else frame[k].astype(str)).fillna("-") for k in keys]
    joined = parts[0]
    for p in parts[1:]:
        joined = joined + " · " + p
    return tuple(joined.tolist())


def usage_chart(frame_or_source: Any, by: str = "turn") -> Chart:
    """Tokens per ``by`` group (turn, model, source, session, day), stacked by bucket.

    Takes a ``usage_frame`` result or any report source (session, core, store, path, trace).
    """
    from .frames import USAGE_KEYS, usage_frame

    frame = (frame_or_source if _is_frame(frame_or_source)
             else usage_frame(frame_or_source, by=by))  # type: ignore[arg-type]  # checked there
    keys = [k for k in ("day", "session_id", "turn_id", "source", "model") if k in frame.columns]
    if by == "turn":
        keys = [k for k in ("turn_id", "model") if k in frame.columns]
    elif by in USAGE_KEYS:
        keys = [k for k in USAGE_KEYS[by] if k in frame.columns] or keys
    names = ("input_tokens", "cache_read_input_tokens", "cache_write_input_tokens",
             "output_tokens")
    series = tuple((n.replace("_tokens", "").replace("_input", "").replace("_", " "),
                    tuple(float(x) for x in frame[n].tolist())) for n in names)
    return Chart(f"tokens per {by}", _labels(frame, keys), series, " tokens").aggregated()


def turn_duration_chart(frame_or_source: Any) -> Chart:
    """Duration of each turn (from ``turns_frame``) in milliseconds."""
    from .frames import turns_frame

    frame = frame_or_source if _is_frame(frame_or_source) else turns_frame(frame_or_source)
    values = tuple(float(x) for x in frame["duration_ms"].fillna(0.0).tolist())
    return Chart("turn duration", _labels(frame, ["turn_id"]), (("duration", values),),
                 " ms").aggregated()


def queue_wait_chart(frame_or_source: Any) -> Chart:
    """Queue wait (enqueue to claim) of each batch that was claimed, in milliseconds."""
    from .frames import queue_frame

    frame = frame_or_source if _is_frame(frame_or_source) else queue_frame(frame_or_source)
    frame = frame[frame["wait_ms"].notna()]
    values = tuple(float(x) for x in frame["wait_ms"].tolist())
    return Chart("queue wait", _labels(frame, ["batch_id"]), (("wait", values),), " ms").aggregated()
