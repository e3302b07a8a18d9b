"""The search page in headless Chromium (Debian's chromium and chromium-driver)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from indexer import BuildOptions, FoodIndex
from tests.conftest import SAMPLE
from tests.fakes import FakeEmbedder
from tests.servers import Server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).exists() and Path(DRIVER).exists()),
    reason="needs Debian's chromium and chromium-driver (.ci/run installs them)",
)


def test_type_a_query_and_see_results(home):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    with FoodIndex(home, embedder=FakeEmbedder(64)) as idx:
        idx.build([SAMPLE], BuildOptions(progress=False))
    server = Server(home)
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
    ):
        opts.add_argument(flag)
    service = webdriver.ChromeService(executable_path=DRIVER)
    browser = webdriver.Chrome(options=opts, service=service)
    try:
        browser.get(server.url + "/")
        box = browser.find_element(By.ID, "q")
        box.send_keys("두부: 식물성 단백질과 칼슘 풍부, 뼈 건강 지원")
        browser.find_element(By.ID, "k").clear()
        browser.find_element(By.ID, "k").send_keys("3")
        browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        WebDriverWait(browser, 20).until(
            ec.presence_of_element_located((By.CSS_SELECTOR, "li.hit"))
        )
        hits = browser.find_elements(By.CSS_SELECTOR, "li.hit")
        assert len(hits) == 3
        assert "두부" in hits[0].find_element(By.CLASS_NAME, "text").text
        assert hits[0].find_element(By.CLASS_NAME, "id").text == "k097"
        assert "category=콩류" in hits[0].find_element(By.CLASS_NAME, "meta").text
        # a filter, typed as a person would
        browser.find_element(By.ID, "filters").send_keys("category=유제품")
        browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        WebDriverWait(browser, 20).until(
            lambda b: (
                all(
                    "category=유제품" in h.find_element(By.CLASS_NAME, "meta").text
                    for h in b.find_elements(By.CSS_SELECTOR, "li.hit")
                )
                and b.find_elements(By.CSS_SELECTOR, "li.hit")
            )
        )
        browser.save_screenshot(str(home / "page.png"))
    finally:
        browser.quit()
        server.stop()
