"""Charts display as Vega-Lite with an SVG fallback, follow the theme's text colour, and stay
one screen tall for a big store."""

from __future__ import annotations

import re

from lash_nb.reports import Chart

VEGALITE = "application/vnd.vegalite.v5+json"


def small() -> Chart:
    return Chart("tokens per turn", ("t1", "t2"), (("input", (10.0, 4.0)), ("output", (5.0, 1.0))),
                 " tokens")


def test_a_chart_displays_as_vegalite_with_the_svg_as_fallback_in_one_bundle():
    bundle, meta = small()._repr_mimebundle_()
    # SVG, not HTML, as the fallback: JupyterLab ranks text/html above Vega-Lite
    assert set(bundle) == {VEGALITE, "image/svg+xml", "text/plain"}
    assert meta == {VEGALITE: {"embed_options": {"renderer": "svg"}}}
    spec = bundle[VEGALITE]
    assert spec["$schema"].endswith("/vega-lite/v5.json")
    assert spec["data"]["values"] == [
        {"label": "t1", "order": 0, "series": "input", "value": 10.0},
        {"label": "t1", "order": 0, "series": "output", "value": 5.0},
        {"label": "t2", "order": 1, "series": "input", "value": 4.0},
        {"label": "t2", "order": 1, "series": "output", "value": 1.0},
    ]
    assert spec["encoding"]["x"]["stack"] == "zero"
    assert bundle["image/svg+xml"].count("<svg") == 1


def test_svg_text_takes_the_page_text_colour_so_it_reads_on_a_dark_theme():
    svg = small().to_svg()
    assert 'fill="currentColor"' in svg.split(">", 1)[0]
    assert "var(--jp-content-font-color1, #767676)" in svg.split(">", 1)[0]
    assert not re.search(r"<text[^>]*fill=", svg)  # no text with a colour of its own (black)


def test_a_big_chart_keeps_the_largest_bars_and_sums_the_rest_into_one():
    labels = tuple(f"t{i}" for i in range(1, 101))
    chart = Chart("turn duration", labels, (("duration", tuple(float(i) for i in range(1, 101))),),
                  " ms").aggregated(30)
    assert len(chart.labels) == 30
    assert chart.labels[:2] == ("t72", "t73") and chart.labels[28] == "t100"
    assert chart.labels[-1] == "other (71)"
    assert chart.series[0][1][-1] == 2556.0  # 1 + 2 + ... + 71
    assert chart.title == "turn duration (29 largest of 100; the rest summed)"
    height = int(re.search(r'height="(\d+)"', chart.to_svg()).group(1))
    assert height < 1000


def test_a_chart_within_the_limit_is_unchanged():
    c = small()
    assert c.aggregated(30) is c


def test_displayed_through_ipython_the_bundle_has_no_html_that_would_hide_the_chart_in_lab():
    from IPython.core.formatters import DisplayFormatter

    data, _meta = DisplayFormatter().format(small())
    assert VEGALITE in data and "image/svg+xml" in data
    assert "text/html" not in data


def test_vegalite_text_takes_the_page_colour_not_a_theme_guess():
    spec = small().to_vegalite()
    assert spec["background"] == "transparent"
    assert spec["config"]["axis"]["labelColor"] == "currentColor"
    assert spec["config"]["legend"]["labelColor"] == "currentColor"
    assert spec["config"]["title"]["color"] == "currentColor"
