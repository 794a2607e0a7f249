"""Real-browser test: ``streamlit run app.py`` in Debian's chromium (Playwright), every page opens
without an exception box, and an image uploaded on Classify gets a prediction."""

from __future__ import annotations

import shutil

import pytest

pytestmark = pytest.mark.browser


def _screenshots_module():
    from scripts import screenshots

    return screenshots


@pytest.fixture()
def browser_page():
    if shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed (CI installs it with apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
    shots = _screenshots_module()
    with shots.chromium_page() as page:
        yield shots, page


def _assert_no_exception(page, where):
    exceptions = page.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, f"{where}: {exceptions.first.inner_text()[:500]}"
    body = page.locator('[data-testid="stMain"]').inner_text()
    assert "Traceback" not in body, f"{where}: traceback in the page"


def test_every_page_opens_and_classify_predicts(models_env, browser_page):
    shots, page = browser_page
    with shots.streamlit_server({"FASHION_MODELS_DIR": str(models_env.root)}) as url:
        for slug in shots.PAGES:
            page.goto(f"{url}/{slug}")
            shots.wait_until_idle(page)
            _assert_no_exception(page, slug or "home")
            assert page.locator("h1").count() >= 1, f"{slug}: no page title"
            if slug == "classify":
                shots.upload_on_classify(page, shots.sample_png())
                page.get_by_text("What the model sees").first.wait_for(timeout=120_000)
                shots.wait_until_idle(page)
                _assert_no_exception(page, "classify after upload")
                assert page.get_by_text("sure. Search for:").count() >= 1


def _click_until(page, chart, done, positions):
    """Click ``chart`` at the relative ``positions`` until ``done()`` (the page settled after each)."""
    from scripts import screenshots

    box = chart.bounding_box()
    for fx, fy in positions:
        page.mouse.click(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy)
        page.wait_for_timeout(500)
        screenshots.wait_until_idle(page)
        if done():
            return True
    return False


def test_clicks_on_the_vega_lite_charts_select(models_env, browser_page):
    """A click on the Latent space map makes that image the query; a click on Evaluate's
    confusion matrix shows that cell's images."""
    shots, page = browser_page
    grid = [(x / 10, y / 10) for y in range(2, 10) for x in range(2, 10)]
    with shots.streamlit_server({"FASHION_MODELS_DIR": str(models_env.root)}) as url:
        page.goto(f"{url}/latent")
        shots.wait_until_idle(page)
        chart = page.locator('[data-testid="stVegaLiteChart"]').first
        assert _click_until(page, chart, lambda: page.get_by_text("nearest neighbours of the clicked image").count() > 0,
                            grid)
        page.goto(f"{url}/evaluate")
        shots.wait_until_idle(page)

        def cell_caption():
            captions = page.locator('[data-testid="stCaptionContainer"]').all_inner_texts()
            return next(c for c in captions if "test image(s)" in c)

        first = cell_caption()
        chart = page.locator('[data-testid="stVegaLiteChart"]').first
        assert _click_until(page, chart, lambda: cell_caption() != first, grid)
        _assert_no_exception(page, "evaluate after a click")
