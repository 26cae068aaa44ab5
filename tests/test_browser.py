"""The browser fixture itself (tests/browser.py): real headless Chromium, a screenshot when a test fails."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from tests.browser import chromium  # noqa: F401  (the fixture)
from tests.conftest import ROOT

PAGE = b"""<html><head><title>Sign In</title></head><body>
<form method="post" action="/login"><input id="username" name="username"><input id="password" name="password" type="password">
<input type="submit" value="Sign In"></form></body></html>"""


class _Login(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        self._send(PAGE)

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        self._send(f"<html><head><title>DAGs</title></head><body>posted {body}</body></html>".encode())

    def _send(self, body: bytes):
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def login_page():
    server = HTTPServer(("127.0.0.1", 0), _Login)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()


def test_chromium_fills_and_submits_a_form(chromium, login_page):  # noqa: F811
    """The fixture's Chromium loads a page, types into a form and follows its POST."""
    from selenium.webdriver.common.by import By

    chromium.get(login_page)
    assert chromium.title == "Sign In"
    chromium.find_element(By.ID, "username").send_keys("ana.lopez@example.com")
    chromium.find_element(By.ID, "password").send_keys("pw")
    chromium.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    assert chromium.title == "DAGs"
    assert "username=ana.lopez%40example.com&password=pw" in chromium.find_element(By.TAG_NAME, "body").text


def test_a_failing_browser_test_leaves_a_screenshot_and_says_where(tmp_path):
    """A test using the fixture that fails saves a PNG under .envctl/screenshots/ and names it; one that
    passes saves none."""
    (tmp_path / "test_inner.py").write_text(
        "from tests.browser import chromium  # noqa: F401\n"
        "def test_fails(chromium):\n    chromium.get('data:text/html,<h1>where it failed</h1>')\n    assert False\n"
        "def test_passes(chromium):\n    chromium.get('data:text/html,<h1>fine</h1>')\n")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", "-q", "--rootdir", str(tmp_path),
         str(tmp_path / "test_inner.py")],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert "1 failed, 1 passed" in result.stdout, result.stdout + result.stderr
    shots = sorted((tmp_path / ".envctl" / "screenshots").iterdir())
    assert [shot.name for shot in shots] == ["test_fails.png"]
    assert shots[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"screenshot: {shots[0]}" in result.stdout
