"""The page at / in headless Chromium (Debian's chromium + chromium-driver through selenium), against a real
`deepmf serve` on loopback with an MF model of ML-100K (CPU): each mode clicked through, the rendered lists
checked against the Python API. With DEEPMF_SCREENSHOTS=DIR it saves a PNG of each mode there (docs/ holds the
README's)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

import deepmf
from deepmf.recommender import Recommender

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (Path(CHROMIUM).exists() and Path(DRIVER).exists()),
                       reason="needs Debian's chromium and chromium-driver (.ci/run installs them)"),
]


@pytest.fixture(scope="module")
def ml100k_model(ml100k_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    rec = deepmf.fit(deepmf.load(ml100k_dir), model="mf", seed=0)
    return rec.save(tmp_path_factory.mktemp("page") / "mf")


@pytest.fixture()
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="deepmf-chromium-")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--window-size=1280,900", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def _wait(driver, condition, seconds: float = 30):
    return WebDriverWait(driver, seconds, poll_frequency=0.1).until(lambda d: condition(d))


# Read a list in one script call: the page re-renders lists as answers arrive, so element handles go stale.
def _texts(driver, selector: str) -> list[str]:
    return driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map(n => n.textContent.trim())", selector)


def _items(driver, selector: str) -> list[int]:
    return [int(v) for v in driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map(n => n.dataset.item)", selector)]


def _click(driver, rows: str, title: str, target: str | None = None) -> None:
    """Click the row of ``rows`` whose title is ``title`` (or ``target`` inside it), retrying while it re-renders."""

    def attempt(d) -> bool:
        try:
            for row in d.find_elements(By.CSS_SELECTOR, rows):
                if row.find_element(By.CSS_SELECTOR, ".title").text == title:
                    (row.find_element(By.CSS_SELECTOR, target) if target else row).click()
                    return True
        except StaleElementReferenceException:
            pass
        return False

    _wait(driver, attempt)


def _screenshot(driver, name: str) -> None:
    folder = os.environ.get("DEEPMF_SCREENSHOTS")
    if folder:
        # The pointer rests on the header (no hover effects in the picture), the page at its top.
        webdriver.ActionChains(driver).move_to_element(driver.find_element(By.CLASS_NAME, "brand")).perform()
        driver.execute_script("document.activeElement.blur(); window.scrollTo(0, 0);")
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / f"page-{name}.png"))


def test_page_modes(ml100k_model: Path, start_server, browser) -> None:
    rec = Recommender.load(ml100k_model)
    server = start_server(ml100k_model)
    browser.get(server.url + "/")
    _wait(browser, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")
    assert "943 users" in browser.find_element(By.ID, "model-info").text

    # Users: search by id, pick, see top-N next to rated vs predicted.
    browser.find_element(By.ID, "user-search").send_keys("42")
    _wait(browser, lambda d: "42" in _texts(d, "#user-suggestions li .title"))
    _click(browser, "#user-suggestions li", "42")
    _wait(browser, lambda d: len(_items(d, "#user-recs li")) == 10 and _items(d, "#user-rated li"))
    expected = rec.recommend(42, n=10)
    assert _items(browser, "#user-recs li") == expected["item"].tolist()
    assert _texts(browser, "#user-recs li .title") == expected["title"].tolist()
    assert _items(browser, "#user-rated li") == rec.rated_vs_predicted(42)["item"].tolist()
    _screenshot(browser, "users")

    # Movies: search by title, pick, see similar movies.
    browser.find_element(By.ID, "tab-movies").click()
    browser.find_element(By.ID, "movie-search").send_keys("star wars")
    _wait(browser, lambda d: "Star Wars (1977)" in _texts(d, "#movie-suggestions li .title"))
    _click(browser, "#movie-suggestions li", "Star Wars (1977)")
    _wait(browser, lambda d: len(_items(d, "#similar-list li")) == 12)
    assert _items(browser, "#similar-list li") == rec.similar_items(50, n=12, min_ratings=20)["item"].tolist()
    assert browser.find_element(By.ID, "similar-title").text == "Movies like Star Wars (1977)"
    _screenshot(browser, "movies")

    # New user: rate a few movies on the page; recommendations follow each rating (fold-in).
    browser.find_element(By.ID, "tab-newuser").click()
    _wait(browser, lambda d: len(_items(d, "#new-candidates li")) == 10)
    rated = {}
    for stars in (5, 4, 1):
        item = _items(browser, "#new-candidates li")[0]
        title = rec.title(rec.item_ids.index(item))
        _click(browser, "#new-candidates li", title, f".star[data-value='{stars}']")
        rated[item] = float(stars)
        _wait(browser, lambda d, n=len(rated): _texts(d, "#new-status")[0].startswith(f"From your {n} rating"))
    search = browser.find_element(By.ID, "new-search")
    search.send_keys("toy story")
    _wait(browser, lambda d: "Toy Story (1995)" in _texts(d, "#new-candidates li .title"))
    _click(browser, "#new-candidates li", "Toy Story (1995)", ".star[data-value='5']")
    rated[1] = 5.0
    _wait(browser, lambda d: _texts(d, "#new-status")[0].startswith("From your 4 ratings"))
    assert sorted(_items(browser, "#new-rated li")) == sorted(rated)
    shown = _items(browser, "#new-recs li")
    assert len(shown) == 10 and not set(shown) & set(rated)
    assert shown == rec.recommend_new_user(rated, n=10, min_ratings=20)["item"].tolist()
    search.send_keys(Keys.BACK_SPACE * len("toy story"))  # typed away: the popular movies come back
    _wait(browser, lambda d: len(_items(d, "#new-candidates li")) >= 5)
    _screenshot(browser, "new-user")
    assert "Traceback" not in server.logged()


def test_page_new_user_likes_for_an_implicit_model(ml100k_dir: Path, tmp_path: Path, start_server, browser) -> None:
    """An implicit model (iALS, ML-100K ratings >= 4): the new-user mode offers one like button per movie, which
    sends the model's positive threshold, and the list follows the Python API's fold-in."""
    from deepmf.data.implicit import to_implicit

    rec = deepmf.fit(to_implicit(deepmf.load(ml100k_dir), positive=4), model="ials", seed=0)
    folder = rec.save(tmp_path / "ials")
    server = start_server(folder)
    browser.get(server.url + "/")
    _wait(browser, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")
    assert "implicit feedback" in browser.find_element(By.ID, "model-info").text
    browser.find_element(By.ID, "tab-newuser").click()
    _wait(browser, lambda d: len(_items(d, "#new-candidates li")) == 10)
    assert set(_texts(browser, "#new-candidates li .star")) == {"♥"}  # one like button, no stars
    liked = {}
    for _ in range(2):
        item = _items(browser, "#new-candidates li")[0]
        _click(browser, "#new-candidates li", rec.title(rec.item_ids.index(item)), ".star[data-value='4']")
        liked[item] = 4.0
        _wait(browser, lambda d, n=len(liked): _texts(d, "#new-status")[0].startswith(f"From your {n} rating"))
    shown = _items(browser, "#new-recs li")
    assert len(shown) == 10 and not set(shown) & set(liked)
    assert shown == rec.recommend_new_user(liked, n=10, min_ratings=20)["item"].tolist()
    assert "Traceback" not in server.logged()
