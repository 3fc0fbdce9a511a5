"""The page's HTML from a view: every panel, escaped, self-contained (no browser)."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from markupsafe import escape

from stream_mlops.ui.digest import StreamDigest
from stream_mlops.ui.render import PANELS, page_title, render_page, render_panels
from tests.ui import events
from tests.ui.views import HOSTILE, NOW, full_view


class Tags(HTMLParser):
    """Every start tag with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags_of(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Tags()
    parser.feed(html)
    return parser.tags


@pytest.mark.parametrize("view", [StreamDigest().view(now=NOW), full_view()], ids=["empty", "full"])
def test_the_page_needs_nothing_from_elsewhere_and_styles_nothing_inline(view: object) -> None:
    html = render_page(view)  # type: ignore[arg-type]
    tags = tags_of(html)
    for tag, attrs in tags:
        assert "style" not in attrs, tag
        assert not [name for name in attrs if name.startswith("on")], (tag, attrs)
        for name in ("src", "href"):
            value = attrs.get(name)
            if value is not None:
                assert value.startswith(("static/", "api/")), (tag, value)
    scripts = [attrs["src"] for tag, attrs in tags if tag == "script"]
    assert scripts == ["static/page.js"]
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in html
    for panel in PANELS:
        assert f'<section id="{panel}"' in html


def test_what_other_programs_wrote_is_escaped_everywhere() -> None:
    panels = render_panels(full_view())
    for panel, html in panels.items():
        assert "<img" not in html, panel
    escaped = str(escape(HOSTILE))
    for panel in ("overview", "models", "alerts", "dead-letters"):
        assert escaped in panels[panel], panel


def test_the_panels_show_the_views_facts() -> None:
    panels = render_panels(full_view())
    models = panels["models"]
    assert 'data-champion="v3"' in models
    assert 'serving <b class="serving">v2</b>' in models
    assert "the scoring system still serves v2" in models
    assert "p-value 1e-06 · loss 40.0% lower than v2" in models
    alerts = panels["alerts"]
    assert alerts.count('class="alert state-drift"') == 2
    assert 'data-alert-id="a1"' in alerts and 'data-alert-id="a2"' in alerts
    assert "0.05 → <b>0.2</b>" in alerts
    retraining = panels["retraining"]
    assert 'data-outcome="promoted"' in retraining and "PROMOTED v3" in retraining
    assert "loss 40.0% lower" in retraining
    pipeline = panels["pipeline"]
    assert 'lag <b class="lag">40</b>' in pipeline
    assert "consumes <b>45/s</b>" in pipeline and "arriving <b>50/s</b>" in pipeline
    assert "1 in all, by reason" in panels["dead-letters"]


def test_an_empty_view_says_so_in_each_panel() -> None:
    panels = render_panels(StreamDigest().view(now=NOW))
    assert "No model yet" in panels["models"]
    assert "No alert yet" in panels["alerts"]
    assert "No retrain request yet" in panels["retraining"]
    assert "No dead letter" in panels["dead-letters"]
    assert "No alert or promotion yet" in panels["timeline"]


def test_the_title_names_the_drifting_models_first() -> None:
    assert page_title(StreamDigest().view(now=1.0)) == "OK · stream-mlops"
    digest = StreamDigest()
    digest.add_record("alert", events.alert(model_id="demand", severity="warning"), seen_ts=1.0)
    assert page_title(digest.view(now=2.0)) == "WARNING · stream-mlops"
    digest.add_record("alert", events.alert(model_id="fraud"), seen_ts=1.0)
    digest.add_record("alert", events.alert(model_id="demand", severity="warning"), seen_ts=1.0)
    assert page_title(digest.view(now=2.0)) == "DRIFT fraud · stream-mlops"
