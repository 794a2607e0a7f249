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
