"""The Snakemake HTML report opens in a real browser (headless Chromium) without JavaScript
errors, and its front page is saved as a screenshot.

Skipped, with the reason, where no Chromium is installed (`apt-get install chromium`; .ci/run
tries that). The first tests prove that the error collection really catches errors.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from headless_chromium import HeadlessChromium, find_chromium

REPO = Path(__file__).resolve().parents[1]
# where the screenshot of the report's front page is copied for people to look at
SCREENSHOT_COPY = REPO / "results" / "test-artifacts" / "report-front-page.png"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    binary = find_chromium()
    if binary is None:
        pytest.skip("no Chromium on PATH (apt-get install chromium; or set SCGB_CHROMIUM)")
    home = tmp_path_factory.mktemp("chromium")
    with HeadlessChromium(binary, home / "profile", log_path=home / "chromium.log") as b:
        yield b


def page(tmp_path: Path, body: str) -> str:
    path = tmp_path / "page.html"
    path.write_text(f"<!doctype html><html><body><h1>test page</h1>{body}</body></html>")
    return path.as_uri()


def test_a_clean_page_has_no_errors(browser, tmp_path):
    visit = browser.open(page(tmp_path, "<script>console.log('fine')</script>"), settle_s=0.5)
    assert visit.errors == []
    assert visit.text.strip() == "test page"
    assert visit.screenshot.startswith(PNG_MAGIC)


@pytest.mark.parametrize(("script", "expected"), [
    ("throw new Error('boom at load')", "Error: boom at load"),
    ("setTimeout(() => { null.x; }, 200)", "TypeError: Cannot read properties of null"),
    ("Promise.reject(new Error('nobody caught me'))", "Error: nobody caught me"),
    ("console.error('the app says no')", "console.error: the app says no"),
    ("document.body.appendChild(Object.assign(document.createElement('script'), "
     "{src: 'missing.js'}))", "ERR_FILE_NOT_FOUND"),
])
def test_errors_are_caught(browser, tmp_path, script, expected):
    visit = browser.open(page(tmp_path, f"<script>{script}</script>"), settle_s=1.0)
    assert any(expected in e for e in visit.errors), visit.errors


@pytest.mark.slow
def test_snakemake_report_front_page_renders_without_errors(browser, tiny_report, tmp_path):
    visit = browser.open(tiny_report.as_uri(), settle_s=5.0)
    shot = tmp_path / "report-front-page.png"
    shot.write_bytes(visit.screenshot)
    SCREENSHOT_COPY.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, SCREENSHOT_COPY)
    print(f"screenshot of the report's front page: {SCREENSHOT_COPY}")
    assert visit.errors == [], visit.errors
    assert visit.screenshot.startswith(PNG_MAGIC) and len(visit.screenshot) > 10_000
    # the React app rendered, not an empty shell: the menu with the result categories of
    # workflow/rules/*.smk and the workflow description of workflow/report/workflow.rst
    menu = {line.strip().lower() for line in visit.text.splitlines()}
    assert {"workflow", "statistics", "results", "figures", "tables"} <= menu, visit.text[:2000]
    assert "scgraphbench compares gene-graph models" in visit.text, visit.text[:2000]
