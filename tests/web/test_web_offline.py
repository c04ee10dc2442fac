"""Pages and API docs reference nothing outside the server (no browser needed)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from suite.app import create_app
from suite.context import SuiteContext
from suite.web import CONTENT_SECURITY_POLICY

EXTERNAL = re.compile(r"""(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}""", re.IGNORECASE)
SVG_NAMESPACE = "http://www.w3.org/2000/svg"
WEB_FOLDERS = [Path("suite/web"), *Path("plugins").glob("*/web")]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory):
    ctx = SuiteContext.create(None, data_dir=tmp_path_factory.mktemp("offline"))
    with TestClient(create_app(ctx)) as client:
        yield client


class References(HTMLParser):
    """Assets a page loads (scripts, stylesheets, images) and the links it offers."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.assets: list[str] = []
        self.links: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag in ("script", "img") and values.get("src"):
            self.assets.append(values["src"])
        elif tag == "link" and values.get("href"):
            self.assets.append(values["href"])
        elif tag == "a" and values.get("href"):
            self.links.append(values["href"])


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_api_docs_load_their_assets_from_the_server(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert not EXTERNAL.findall(response.text), f"{path} references an external URL"
    assets = References(response.text).assets
    assert assets, "the docs page loads no script or stylesheet"
    for asset in assets:
        assert asset.startswith("/"), asset
        assert client.get(asset).status_code == 200, asset


@pytest.mark.parametrize("path", ["/", "/chatbot", "/sentiment", "/recommender"])
def test_pages_are_open_same_origin_and_load_only_local_assets(client, path):
    response = client.get(path, headers={"Accept": "text/html"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "default-src 'self'" in CONTENT_SECURITY_POLICY
    found = References(response.text)
    assert len(found.assets) >= 3  # icon, stylesheet, suite.js (+ the page's script)
    for ref in found.assets + found.links:
        assert ref.startswith(("/", "data:")) and not ref.startswith("//"), f"{path} references {ref}"
    for asset in found.assets:
        assert asset.startswith("data:") or client.get(asset).status_code == 200, asset


def test_page_sources_name_no_external_host():
    files = [f for folder in WEB_FOLDERS for f in (ROOT / folder).rglob("*") if f.suffix in (".html", ".js", ".css")]
    assert len(files) >= 8
    for file in files:
        text = file.read_text(encoding="utf-8").replace(SVG_NAMESPACE, "")  # a name, never fetched
        assert not EXTERNAL.findall(text), file


def test_static_files_stay_inside_their_folder(client):
    assert client.get("/chatbot/static/chat.js").status_code == 200
    for path in ("/chatbot/static/../pages.py", "/chatbot/static/%2e%2e/pages.py", "/static/suite/../__init__.py"):
        assert client.get(path).status_code == 404, path
