"""The pages in headless Chromium (Debian's chromium and chromium-driver): the search
page for people (``/``) at desktop and phone widths, and the administration page
(``/admin``) behind the token.

The server is a real one on loopback with the fake embedder and a health head fitted on
the fake embedder's vectors (so every hit carries a health score, as with the trained
model), over the sample corpus with an energy value (kcal) on some foods. Screenshots go
to the temporary folder (``foodvec-page-desktop.png``, ``foodvec-page-phone.png``, and
the admin page's); the two in ``docs/img`` are copies of the first two.
"""

from __future__ import annotations

import csv
import json
import shutil
import tempfile
from pathlib import Path

import httpx
import numpy as np
import pytest

from indexer import BuildOptions, FoodIndex
from indexer.health import save_head, train_head
from tests.conftest import ROOT, SAMPLE
from tests.fakes import FakeEmbedder
from tests.servers import Server

SHOTS = Path(tempfile.gettempdir())  # the screenshots are kept after the test, to look at
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
TOKEN = "page-admin-token"
QUERY = "콜레스테롤"
# Approximate energy per 100 g (rounded) of some sample foods; the others have no kcal.
# fmt: off
KCAL = {
    "k001": 23, "k002": 34, "k023": 22, "k025": 160, "k028": 89, "k030": 61, "k042": 43,
    "k044": 389, "k046": 368, "k052": 96, "k056": 455, "k062": 115, "k067": 205,
    "k088": 330, "k090": 280, "k097": 84, "k104": 60, "k107": 380, "k112": 65,
    "k116": 717, "k131": 20, "k169": 263, "k192": 42, "k213": 55, "k217": 387, "k222": 90,
}
# fmt: on
OATS, CHEESEBURGER, GOPCHANG, SOY_MILK = "k044", "k169", "k090", "k104"
SIZES = {"desktop": (1280, 900, 1, False), "phone": (390, 844, 2, True)}

pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).exists() and Path(DRIVER).exists()),
    reason="needs Debian's chromium and chromium-driver (.ci/run installs them)",
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A server with the token over the sample (with kcal) and a model with a head."""
    tmp = tmp_path_factory.mktemp("page")
    corpus = tmp / "foods.jsonl"
    with open(SAMPLE, encoding="utf-8") as fh, open(corpus, "w", encoding="utf-8") as out:
        for row in csv.DictReader(fh):
            rec = {**row, "healthy": int(row["healthy"])}
            if row["id"] in KCAL:
                rec["kcal"] = KCAL[row["id"]]
            out.write(json.dumps(rec, ensure_ascii=False) + "\n")
    fake = FakeEmbedder(64)
    model = tmp / "model"
    model.mkdir()
    with open(ROOT / "indexer" / "data" / "train.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    labels = np.array([int(r["label"]) for r in rows])
    save_head(model, train_head(fake.encode, [r["text"] for r in rows], labels))
    home = tmp / "home"
    with FoodIndex(home, embedder=fake) as idx:
        idx.build([corpus], BuildOptions(progress=False))
    srv = Server(home, "--model", str(model), "--token", TOKEN)
    yield srv
    srv.stop()


def _chrome(width: int, height: int, scale: int, mobile: bool):
    webdriver = pytest.importorskip("selenium.webdriver")
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
        "--hide-scrollbars",
    ):
        opts.add_argument(flag)
    browser = webdriver.Chrome(
        options=opts, service=webdriver.ChromeService(executable_path=DRIVER)
    )
    browser.set_window_size(width, height)
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": scale, "mobile": mobile},
    )
    return browser


@pytest.fixture(params=list(SIZES))
def sized(request):
    browser = _chrome(*SIZES[request.param])
    yield request.param, browser
    browser.quit()


def _wait(browser, until, seconds: float = 20):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # the cards are drawn anew by each answer: one read between two draws is tried again
    wait = WebDriverWait(browser, seconds, ignored_exceptions=[StaleElementReferenceException])
    return wait.until(lambda b: until(b))


def _cards(browser) -> dict:
    from selenium.webdriver.common.by import By

    return {
        c.get_attribute("data-id"): c for c in browser.find_elements(By.CSS_SELECTOR, "li.card")
    }


def _search(browser, query: str | None = None) -> None:
    """Submit the search form and wait for its answer (the status line changes)."""
    from selenium.webdriver.common.by import By

    if query is not None:
        box = browser.find_element(By.ID, "q")
        box.clear()
        box.send_keys(query)
    browser.execute_script("document.getElementById('status').textContent = ''")
    browser.find_element(By.ID, "go").click()
    _wait(
        browser,
        lambda b: (
            (s := b.find_element(By.ID, "status").text) and s not in ("찾는 중…", "Searching…")
        ),
    )


def _rgb(css: str) -> tuple[int, int, int]:
    inside = css[css.index("(") + 1 : css.index(")")]
    r, g, b = (int(float(x)) for x in inside.split(",")[:3])
    return r, g, b


def _no_overflow(browser, width: int) -> None:
    """Nothing wider than the screen (a phone would widen its layout to fit it, so the
    screen's width is the measure, not the window's)."""
    wide = browser.execute_script(
        "return Math.max(document.documentElement.scrollWidth, document.body.scrollWidth,"
        " window.innerWidth)"
    )
    assert wide <= width, f"the page is {wide} px wide on a {width} px screen"


def test_the_search_page_for_people(server, sized):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    size, browser = sized
    expected = httpx.post(server.url + "/search", json={"query": QUERY, "k": 12}).json()["results"]
    health = {h["id"]: h["health"] for h in expected}
    assert health[OATS] >= 0.5 > health[GOPCHANG]  # the fixture's premise
    browser.get(server.url + "/")
    _wait(browser, lambda b: b.find_element(By.ID, "go").text == "검색")
    # no administration here: no mining, no jobs, no deletion
    assert not browser.find_elements(By.ID, "mine")
    assert not browser.find_elements(By.ID, "jobs")
    source = browser.page_source
    assert "jobs/mine" not in source and "Mine now" not in source and "DELETE" not in source
    assert browser.find_element(By.CSS_SELECTOR, "html").get_attribute("lang") == "ko"
    # the filters offered come from the data: its categories and its kcal range
    _wait(browser, lambda b: b.find_element(By.ID, "category").is_displayed())
    categories = [
        o.get_attribute("value") for o in Select(browser.find_element(By.ID, "category")).options
    ]
    assert categories[0] == "" and "콩류" in categories and "유제품" in categories
    assert browser.find_element(By.ID, "kcal-max").get_attribute("placeholder") == "최대 717"
    assert "음식 234개" in browser.find_element(By.ID, "stats").text

    _search(browser, QUERY)
    cards = _cards(browser)
    assert list(cards) == [h["id"] for h in expected]
    oats, gopchang = cards[OATS], cards[GOPCHANG]
    assert oats.find_element(By.CLASS_NAME, "name").text == "귀리"
    assert gopchang.find_element(By.CLASS_NAME, "name").text == "곱창"
    assert oats.find_element(By.CLASS_NAME, "desc").text == "베타글루칸 풍부, 콜레스테롤 감소"
    assert "389 kcal" in oats.find_element(By.CLASS_NAME, "meta").text
    assert "곡류" in oats.find_element(By.CLASS_NAME, "meta").text
    # the badge: green for a healthy food, red for an unhealthy one, its meaning on hover
    good, bad = (c.find_element(By.CLASS_NAME, "badge") for c in (oats, gopchang))
    assert "healthy" in good.get_attribute("class").split() and good.text == "건강에 좋음"
    assert "unhealthy" in bad.get_attribute("class").split() and bad.text == "건강에 나쁨"
    r, g, _ = _rgb(good.value_of_css_property("color"))
    assert g > r
    r, g, _ = _rgb(bad.value_of_css_property("color"))
    assert r > g
    r, g, _ = _rgb(bad.value_of_css_property("background-color"))
    assert r > g
    meaning = good.get_attribute("title")
    assert "건강 헤드" in meaning and f"{health[OATS]:.2f}" in meaning
    for card in cards.values():  # every badge agrees with the score the API gave
        b = card.find_element(By.CLASS_NAME, "badge")
        green = "unhealthy" not in b.get_attribute("class").split()
        assert green == (float(b.get_attribute("data-health")) >= 0.5)
    # the reason it matched: the clauses of its description that serve the query
    assert "콜레스테롤 감소" in oats.find_element(By.CLASS_NAME, "why").text
    assert "맞는 이유" in oats.find_element(By.CLASS_NAME, "why").text
    # a tap on the badge shows its meaning (a phone has no hover)
    note = oats.find_element(By.CLASS_NAME, "health-note")
    assert not note.is_displayed()
    good.click()
    assert note.is_displayed() and "건강 헤드" in note.text
    good.click()
    _no_overflow(browser, SIZES[size][0])
    if size == "phone":
        small = browser.execute_script(
            """return [...document.querySelectorAll('button, input, select, a')]
                 .filter(e => e.offsetParent !== null)
                 .map(e => [e.id || e.className || e.tagName, e.getBoundingClientRect()])
                 .filter(([, r]) => r.height < 40 || r.width < 40).map(([n]) => n)"""
        )
        assert small == [], f"tap targets under 40 px: {small}"
    browser.execute_script("window.scrollTo(0, 0)")
    browser.save_screenshot(str(SHOTS / f"foodvec-page-{size}.png"))

    # the English switch changes every label, and is remembered
    browser.find_element(By.ID, "lang").click()
    assert browser.find_element(By.ID, "go").text == "Search"
    assert browser.find_element(By.CSS_SELECTOR, "html").get_attribute("lang") == "en"
    assert browser.find_element(By.ID, "lang").text == "한국어"
    cards = _cards(browser)
    good = cards[OATS].find_element(By.CLASS_NAME, "badge")
    assert good.text == "Healthy" and "health head" in good.get_attribute("title")
    assert cards[GOPCHANG].find_element(By.CLASS_NAME, "badge").text == "Unhealthy"
    assert "Why it matched" in cards[OATS].find_element(By.CLASS_NAME, "why").text
    assert "results" in browser.find_element(By.ID, "status").text
    browser.refresh()
    _wait(browser, lambda b: b.find_element(By.ID, "go").text == "Search")
    _wait(browser, lambda b: _cards(b))  # the search is in the address: it runs again
    browser.save_screenshot(str(SHOTS / f"foodvec-page-{size}-en.png"))
    browser.find_element(By.ID, "lang").click()
    assert browser.find_element(By.ID, "go").text == "검색"

    # a kcal range: a food above it goes, one inside it stays
    browser.find_element(By.ID, "kcal-max").send_keys("300")
    _search(browser)
    cards = _cards(browser)
    assert OATS not in cards and SOY_MILK in cards and cards
    for card in cards.values():
        kcal = card.find_element(By.CSS_SELECTOR, ".chip.kcal").text
        assert int(kcal.split()[0]) <= 300
    assert "kcal_max=300" in browser.current_url
    _no_overflow(browser, SIZES[size][0])
    # a category
    browser.find_element(By.ID, "clear").click()
    _wait(browser, lambda b: OATS in _cards(b))
    Select(browser.find_element(By.ID, "category")).select_by_value("유제품")
    _wait(browser, lambda b: (cs := _cards(b)) and OATS not in cs)
    for card in _cards(browser).values():
        assert card.find_element(By.CSS_SELECTOR, ".chip.category").text == "유제품"
    # "similar foods": foods like this one, itself left out
    first_id, first = next(iter(_cards(browser).items()))
    name = first.find_element(By.CLASS_NAME, "name").text
    first.find_element(By.CLASS_NAME, "more").click()
    _wait(browser, lambda b: name in b.find_element(By.ID, "status").text)
    assert first_id not in _cards(browser) and _cards(browser)
    _no_overflow(browser, SIZES[size][0])


def test_the_admin_page_needs_the_token(server):
    from selenium.webdriver.common.by import By

    browser = _chrome(*SIZES["desktop"])
    try:
        browser.get(server.url + "/admin")
        _wait(browser, lambda b: b.find_element(By.ID, "login").is_displayed())
        assert not browser.find_element(By.ID, "admin").is_displayed()
        assert not browser.find_elements(By.CSS_SELECTOR, "li.job")
        # without a token, or with a wrong one: refused, nothing shown
        browser.find_element(By.ID, "enter").click()
        assert browser.find_element(By.ID, "login-msg").text == "토큰을 입력하세요."
        browser.find_element(By.ID, "token").send_keys("wrong")
        browser.find_element(By.ID, "enter").click()
        _wait(browser, lambda b: "거절" in b.find_element(By.ID, "login-msg").text)
        assert not browser.find_element(By.ID, "admin").is_displayed()
        # with it: the jobs, mining, deleting
        browser.find_element(By.ID, "token").clear()
        browser.find_element(By.ID, "token").send_keys(TOKEN)
        browser.find_element(By.ID, "enter").click()
        _wait(browser, lambda b: b.find_element(By.ID, "admin").is_displayed())
        assert not browser.find_element(By.ID, "login").is_displayed()
        _wait(browser, lambda b: "항목 234개" in b.find_element(By.ID, "stats").text)
        browser.find_element(By.ID, "mine").click()
        _wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#pairs li.pair"), 60)
        jobs = browser.find_elements(By.CSS_SELECTOR, "#jobs li.job")
        assert len(jobs) == 1 and jobs[0].get_attribute("data-status") == "done"
        assert "완료" in jobs[0].text
        listed = httpx.get(server.url + "/jobs").json()["jobs"]
        assert jobs[0].get_attribute("data-job") == str(listed[0]["id"])
        browser.execute_script("window.scrollTo(0, 0)")
        browser.save_screenshot(str(SHOTS / "foodvec-page-admin.png"))
        # an item: found, shown, deleted
        browser.find_element(By.ID, "item-id").send_keys("k213")
        browser.find_element(By.ID, "find").click()
        _wait(browser, lambda b: "간장" in b.find_element(By.ID, "item").text)
        browser.find_element(By.ID, "delete-item").click()
        _wait(browser, lambda b: "삭제했습니다" in b.find_element(By.ID, "status").text)
        assert httpx.get(server.url + "/items/k213").status_code == 404
        # a job: deleted
        jobs[0].find_element(By.CLASS_NAME, "delete-job").click()
        _wait(browser, lambda b: not b.find_elements(By.CSS_SELECTOR, "#jobs li.job"))
        assert httpx.get(server.url + "/jobs").json()["jobs"] == []
        # the English switch here too; a reload keeps the token for this tab
        browser.find_element(By.ID, "lang").click()
        assert browser.find_element(By.ID, "mine").text == "Mine now"
        browser.refresh()
        _wait(browser, lambda b: b.find_element(By.ID, "admin").is_displayed())
        browser.find_element(By.ID, "leave").click()
        assert browser.find_element(By.ID, "login").is_displayed()
        assert not browser.find_element(By.ID, "admin").is_displayed()
    finally:
        browser.execute_script("localStorage.clear(); sessionStorage.clear()")
        browser.quit()


def test_the_pages_over_a_plain_corpus_and_an_open_server(home):
    """The sample as it is (no kcal), a model without a health head, no token: no kcal
    range is offered, a hit without a health score has no badge, and the admin page
    opens without asking, saying that anyone may write."""
    from selenium.webdriver.common.by import By

    with FoodIndex(home, embedder=FakeEmbedder(64)) as idx:
        idx.build([SAMPLE], BuildOptions(progress=False))
    srv = Server(home)
    browser = _chrome(*SIZES["phone"])
    try:
        browser.get(srv.url + "/?q=" + "두부")
        _wait(browser, lambda b: _cards(b))
        assert browser.find_element(By.ID, "category").is_displayed()
        assert not browser.find_element(By.ID, "kcal-box").is_displayed()
        cards = _cards(browser)
        assert next(iter(cards)) == "k097"
        assert cards["k097"].find_element(By.CLASS_NAME, "name").text == "두부"
        assert not browser.find_elements(By.CSS_SELECTOR, ".badge")  # no score, no badge
        assert not browser.find_elements(By.CSS_SELECTOR, ".chip.kcal")
        _no_overflow(browser, SIZES["phone"][0])
        browser.get(srv.url + "/admin")
        _wait(browser, lambda b: b.find_element(By.ID, "admin").is_displayed())
        assert not browser.find_element(By.ID, "login").is_displayed()
        assert "토큰이 없어" in browser.find_element(By.ID, "who").text
        _wait(browser, lambda b: "아직 작업이 없습니다" in b.find_element(By.ID, "jobs").text)
        _no_overflow(browser, SIZES["phone"][0])
        browser.save_screenshot(str(SHOTS / "foodvec-page-admin-phone.png"))
    finally:
        browser.quit()
        srv.stop()
