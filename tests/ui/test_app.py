"""The page's web app with Starlette's test client: routes, headers, hosts, probes (no broker)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from stream_mlops.ui import app as app_module
from stream_mlops.ui.app import create_app
from stream_mlops.ui.render import PANELS
from stream_mlops.ui.view import OperatorView
from tests.ui.views import full_view


class Source:
    def __init__(self) -> None:
        self.current = full_view()
        self.is_alive = True
        self.is_ready = True

    def view(self) -> OperatorView:
        return self.current

    def alive(self) -> bool:
        return self.is_alive

    def ready(self) -> bool:
        return self.is_ready


@pytest.fixture
def source() -> Source:
    return Source()


@pytest.fixture
def client(source: Source) -> Iterator[TestClient]:
    with TestClient(create_app(source), base_url="http://127.0.0.1:8470") as test_client:
        yield test_client


def test_the_page_and_its_files(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<title>DRIFT fraud · stream-mlops</title>" in page.text
    for path, kind in (
        ("/static/page.css", "text/css"),
        ("/static/page.js", "text/javascript"),
        ("/static/favicon.svg", "image/svg+xml"),
    ):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith(kind), path
    assert client.get("/static/../app.py").status_code == 404


def test_every_response_forbids_anything_from_elsewhere(client: TestClient) -> None:
    for path in ("/", "/api/panels", "/api/view", "/static/page.js", "/healthz", "/nope"):
        headers = client.get(path).headers
        policy = headers["content-security-policy"]
        assert "default-src 'self'" in policy and "script-src 'self'" in policy, path
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["cache-control"] == "no-store"


def test_panels_are_what_the_page_swaps_in(client: TestClient, source: Source) -> None:
    body = client.get("/api/panels").json()
    assert body["title"] == "DRIFT fraud · stream-mlops"
    assert body["state"] == "drift"
    assert body["generated_ts"] == source.current.generated_ts
    assert list(body["panels"]) == list(PANELS)
    assert 'data-alert-id="a1"' in body["panels"]["alerts"]


def test_panels_render_once_per_view(
    client: TestClient, source: Source, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    render = app_module.render_panels

    def counting(view: OperatorView, refresh_s: float) -> dict[str, str]:
        calls.append(view)
        return render(view, refresh_s)

    monkeypatch.setattr(app_module, "render_panels", counting)
    for _ in range(3):
        client.get("/api/panels")
    source.current = full_view()
    client.get("/api/panels")
    assert len(calls) == 2


def test_the_view_as_json(client: TestClient) -> None:
    view = client.get("/api/view").json()
    assert [m["model_id"] for m in view["models"]] == ["fraud"]
    assert view["models"][0]["champion"] == "v3"
    assert [a["alert_id"] for a in view["alerts"]] == ["a2", "a1"]
    assert view["groups"][0]["lag"] == 40


def test_probes_follow_the_feed(client: TestClient, source: Source) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    source.is_alive, source.is_ready = False, False
    assert client.get("/healthz").status_code == 503
    assert client.get("/readyz").status_code == 503


def test_a_loopback_page_refuses_other_host_names(source: Source) -> None:
    with TestClient(create_app(source), base_url="http://127.0.0.1") as client:
        for host in ("127.0.0.1:8470", "localhost", "[::1]:8470"):
            assert client.get("/", headers={"host": host}).status_code == 200, host
        # A name that resolves to 127.0.0.1 in an attacker's DNS (rebinding).
        assert client.get("/", headers={"host": "evil.example"}).status_code == 400
    with TestClient(
        create_app(source, allowed_hosts=None), base_url="http://ops.internal"
    ) as open_:
        assert open_.get("/").status_code == 200
