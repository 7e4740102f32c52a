"""/api/docs/: Swagger UI served entirely from our static files, with no inline script or style."""

from __future__ import annotations

import re

import pytest
from django.contrib.staticfiles import finders
from django.test import Client

pytestmark = pytest.mark.django_db


def test_docs_page_has_no_inline_script_and_only_local_assets():
    response = Client().get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<title>PopArena API</title>" in html
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, flags=re.S)
    assert len(scripts) == 3
    for attributes, body in scripts:
        assert body.strip() == "", "an inline script body would be blocked by our CSP"
        assert 'src="/' in attributes
    assert "<style" not in html
    assert " style=" not in html
    urls = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert urls
    for url in urls:
        assert url.startswith("/"), f"{url} is not on this site"
        assert not url.startswith("//")
    assert "cdn" not in html.lower()
    assert "script-src 'self';" in response["Content-Security-Policy"]


def test_every_docs_asset_is_one_of_our_static_files():
    html = Client().get("/api/docs/").content.decode()
    static = [url for url in re.findall(r'(?:src|href)="(/static/[^"?]+)"', html)]
    assert any(url.endswith("swagger-ui-bundle.js") for url in static)
    assert any(url.endswith("swagger-ui.css") for url in static)
    for url in static:
        assert finders.find(url.removeprefix("/static/")), url


def test_the_start_up_script_is_served_from_our_url_and_points_at_the_schema():
    html = Client().get("/api/docs/").content.decode()
    script_url = re.search(r'<script src="(/api/docs/\?[^"]*script[^"]*)"', html)
    assert script_url, html
    script = Client().get(script_url.group(1).replace("&amp;", "&"))
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
    assert 'url: "/api/schema/",' in script.content.decode()
    schema = Client().get("/api/schema/")
    assert schema.status_code == 200
    assert b"PopArena API" in schema.content
