"""The search page in headless Chromium (Debian's chromium and chromium-driver)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from indexer import BuildOptions, FoodIndex
from tests.conftest import SAMPLE
from tests.fakes import FakeEmbedder
from tests.servers import Server

SHOT = Path("/tmp/foodvec-page.png")  # kept after the test, to look at
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
        # the score's parts and the index's stats are shown
        assert "score" in hits[0].find_element(By.CLASS_NAME, "score").text
        assert "234 items" in browser.find_element(By.ID, "stats").text
        # a filter offered from the metadata present: pick 유제품 from the category list
        from selenium.webdriver.support.ui import Select

        menu = browser.find_element(By.CSS_SELECTOR, "select.facet-value[data-key=category]")
        Select(menu).select_by_value("유제품")
        browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        WebDriverWait(browser, 20).until(
            lambda b: (
                b.find_elements(By.CSS_SELECTOR, "li.hit")
                and all(
                    "category=유제품" in h.find_element(By.CLASS_NAME, "meta").text
                    for h in b.find_elements(By.CSS_SELECTOR, "li.hit")
                )
            )
        )
        # "more like this" searches with the item's text: the item itself comes first
        first = browser.find_elements(By.CSS_SELECTOR, "li.hit")[0]
        first_id = first.find_element(By.CLASS_NAME, "id").text
        first.find_element(By.CLASS_NAME, "more").click()
        WebDriverWait(browser, 20).until(
            lambda b: b.find_element(By.ID, "mode").get_attribute("value") == "dense"
            and b.find_elements(By.CSS_SELECTOR, "li.hit")
            and b.find_elements(By.CSS_SELECTOR, "li.hit")[0]
            .find_element(By.CLASS_NAME, "id")
            .text
            == first_id
        )
        # mining from the page: a job runs and its pairs are listed
        browser.find_element(By.ID, "mine").click()
        WebDriverWait(browser, 60).until(
            lambda b: b.find_elements(By.CSS_SELECTOR, "#pairs li")
            and b.find_elements(By.CSS_SELECTOR, "#jobs li.job")
        )
        assert "done" in browser.find_elements(By.CSS_SELECTOR, "#jobs li.job")[0].text
        browser.set_window_size(1280, 1100)
        browser.execute_script("window.scrollTo(0, 0)")
        browser.save_screenshot(str(SHOT))
    finally:
        browser.quit()
        server.stop()
