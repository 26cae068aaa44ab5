"""A real headless Chromium for tests that use the Airflow UI as a person does (Debian's `chromium` and
`chromium-driver`, which scripts/test-prereqs.sh installs; selenium drives it through chromedriver).

`chromium` is a fixture: a test that takes it gets a WebDriver; when the test fails, a screenshot of
the page it was on is saved under .envctl/screenshots/ (git-ignored) and the path is reported in the
warnings summary. Without chromium or chromedriver the test fails, saying what to install.
"""

from __future__ import annotations

import re
import shutil
import warnings
from pathlib import Path
from typing import Iterator

import pytest

WINDOW = "1280,900"


def screenshot_dir(root: Path) -> Path:
    return root / ".envctl" / "screenshots"


def _tools() -> tuple[str, str]:
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (browser and driver):
        pytest.fail("the browser tests need Debian's chromium and chromium-driver "
                    "(scripts/test-prereqs.sh installs them: apt-get install chromium chromium-driver)")
    return browser, driver


@pytest.fixture
def chromium(request) -> Iterator:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = _tools()
    options = webdriver.ChromeOptions()
    options.binary_location = browser  # with both paths given, selenium downloads nothing
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", f"--window-size={WINDOW}"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(60)
    failed_before = request.session.testsfailed  # the call's report is counted before the teardown
    try:
        yield driver
    finally:
        if request.session.testsfailed > failed_before:
            folder = screenshot_dir(request.config.rootpath)
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / (re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name) + ".png")
            if driver.save_screenshot(str(path)):
                warnings.warn(f"{request.node.nodeid} failed at {driver.current_url}; screenshot: {path}", stacklevel=1)
        driver.quit()
