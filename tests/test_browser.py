"""The built book as a reader sees it: every page opened in headless Chromium, offline.

Slow: it builds the book (strictly) once and opens each page over a local HTTP server, in a
Chromium started with no network access beyond localhost. Every page must typeset its math
(MathJax is served with the book), load every image, log no console error, show every line of
its code cells without sideways scrolling, and show the static fallback where a chapter has an
interactive widget.
"""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import pytest

from conftest import ROOT

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(built_book):
    """The built HTML, served on localhost for the duration of the module."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(built_book))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("Debian's chromium and chromium-driver are needed: `make browser` installs them")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage", "--window-size=1280,900",
                 # Everything but localhost is unreachable, as on a reader's offline machine.
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def pages(built_book: Path) -> list[str]:
    return sorted(str(p.relative_to(built_book)) for p in built_book.rglob("*.html")
                  if not p.relative_to(built_book).parts[0].startswith(("_", "."))
                  and p.name not in ("genindex.html", "search.html"))


def test_every_page_reads_offline(built_book, site, browser):
    from selenium.webdriver.support.ui import WebDriverWait

    checked = pages(built_book)
    assert any(p.startswith("chapters/") for p in checked), checked
    problems, typeset = [], 0
    for page in checked:
        browser.get(f"{site}/{page}")
        source = (built_book / page).read_text(encoding="utf-8")
        has_math = 'class="math' in source
        if has_math:
            try:
                WebDriverWait(browser, 30).until(lambda d: d.execute_script(
                    "return window.MathJax !== undefined && MathJax.startup !== undefined"
                    " && MathJax.startup.promise !== undefined"))
                browser.execute_async_script(
                    "const done = arguments[arguments.length - 1];"
                    "MathJax.startup.promise.then(() => done(true), () => done(false));")
            except Exception as error:  # noqa: BLE001 - reported below with the page's name
                problems.append(f"{page}: MathJax did not start ({type(error).__name__})")
            containers = browser.execute_script("return document.querySelectorAll('mjx-container').length")
            raw = browser.execute_script(
                "return Array.from(document.querySelectorAll('.math'))"
                ".filter(e => !e.querySelector('mjx-container')).length")
            if containers == 0 or raw:
                problems.append(f"{page}: {raw} formula(s) left as raw TeX, {containers} typeset")
            typeset += containers
        broken = browser.execute_script(
            "return Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0)"
            ".map(i => i.getAttribute('src'))")
        if broken:
            problems.append(f"{page}: images not loaded: {broken}")
        errors = [entry["message"] for entry in browser.get_log("browser")
                  if entry["level"] == "SEVERE" and "favicon.ico" not in entry["message"]]
        if errors:
            problems.append(f"{page}: console errors: {errors}")
        clipped = browser.execute_script(
            "return Array.from(document.querySelectorAll('div.cell_input pre'))"
            ".filter(p => p.scrollWidth > p.clientWidth + 1).map(p => p.innerText.slice(0, 60))")
        if clipped:
            problems.append(f"{page}: code cells run past the page's edge: {clipped}")
        text = browser.execute_script("return document.body.innerText")
        for marker in ("Loading widget", "Error displaying widget"):
            if marker in text:
                problems.append(f"{page}: an interactive widget shows {marker!r} instead of "
                                "its static fallback")
    assert not problems, "\n".join(problems)
    assert typeset > 0, "no page typeset any formula"


def test_widget_chapter_has_its_static_figure(built_book):
    """Chapter 05's threshold explorer cannot run on a static page: its figure must be there."""
    page = next((built_book / "chapters").glob("04_*.html")).read_text(encoding="utf-8")
    assert "threshold" in page.lower() and page.count("<img") >= 3
    assert "application/vnd.jupyter.widget-view+json" not in page
