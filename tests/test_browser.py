"""Real-browser test: ``streamlit run app.py`` in Debian's chromium (Playwright), every page opens
without an exception box, and an image uploaded on Classify gets a prediction."""

from __future__ import annotations

import shutil

import pytest

from fashion_core import dashboard

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


@pytest.fixture(scope="module")
def trained_server(trained_registry):
    """One dashboard over the tiny trained registry, shared by the tests that only read it (kept
    on one worker by their xdist group): a server start costs seconds of a 5-minute suite."""
    if shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed (CI installs it with apt-get install chromium)")
    with dashboard.running(1, env={"FASHION_MODELS_DIR": str(trained_registry.root)}) as running:
        yield running


def _assert_no_exception(page, where):
    exceptions = page.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, f"{where}: {exceptions.first.inner_text()[:500]}"
    body = page.locator('[data-testid="stMain"]').inner_text()
    assert "Traceback" not in body, f"{where}: traceback in the page"


@pytest.mark.xdist_group("browser_trained")
def test_every_page_opens_and_classify_predicts(trained_server, browser_page):
    shots, page = browser_page
    url = trained_server.url
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


def _set_field(page, label, value):
    field = page.get_by_label(label, exact=True)
    field.fill(str(value))
    field.press("Enter")
    page.wait_for_timeout(600)


def _start_run_on_train(shots, page, url, name, epochs, images):
    page.goto(f"{url}/train")
    shots.wait_until_idle(page)
    page.get_by_text("Choose the architecture and settings").click()  # not the quick preset
    shots.wait_until_idle(page)
    _set_field(page, "Epochs", epochs)
    _set_field(page, "Training images", images)  # "Train on a subset" is on for Fashion-MNIST
    _set_field(page, "Model name", name)
    page.get_by_role("button", name="Start training").click()
    page.get_by_text(f"{name} is queued").or_(page.get_by_text("Training the classifier")).first.wait_for(timeout=60_000)
    _assert_no_exception(page, "train after start")


def _sidebar_link(page, label):
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=label).click()


def test_a_run_started_on_train_appears_on_home_and_evaluate(registry, browser_page):
    shots, page = browser_page
    with shots.streamlit_server({"FASHION_MODELS_DIR": str(registry.root)}) as url:
        _start_run_on_train(shots, page, url, "browser_net", epochs=1, images=500)
        _sidebar_link(page, "Home")  # leave Train while the job runs
        shots.wait_until_idle(page)
        page.get_by_text("There are no models in the registry yet").first.wait_for(timeout=30_000)
        # No click from here on: the job ends, the sidebar indicator reruns the page, the model is listed.
        page.locator('[data-testid="stMain"] [data-testid="stDataFrame"]').first.wait_for(timeout=300_000)
        assert registry.names() == ["browser_net"]
        assert page.get_by_text("There are no models in the registry yet").count() == 0
        assert page.locator('[data-testid="stSidebar"]').get_by_text("browser_net").count() >= 1
        _sidebar_link(page, "Evaluate")
        shots.wait_until_idle(page)
        _assert_no_exception(page, "evaluate")
        assert page.locator('[data-testid="stMain"]').get_by_text("browser_net").count() >= 1


def test_cancel_stops_a_run_and_registers_nothing(registry, browser_page):
    shots, page = browser_page
    with shots.streamlit_server({"FASHION_MODELS_DIR": str(registry.root)}) as url:
        _start_run_on_train(shots, page, url, "never_saved", epochs=200, images=5000)
        running = page.locator(".st-key-running_job")
        running.get_by_text("Training the classifier").wait_for(timeout=120_000)
        running.get_by_role("button", name="Cancel").click()
        page.locator('[data-testid="stSidebar"]').get_by_text("nothing was saved").first.wait_for(timeout=120_000)
        _assert_no_exception(page, "train after cancel")
        assert registry.names() == [] and not any(registry.root.glob(".never_saved*"))


def test_a_job_killed_with_its_server_shows_as_interrupted(registry, browser_page):
    import os
    import signal
    import time

    from fashion_core.jobs import JobStore, train_params
    from fashion_core.training import TrainConfig

    shots, page = browser_page
    store = JobStore.for_registry(registry)
    env = {"FASHION_MODELS_DIR": str(registry.root)}
    with shots.streamlit_server(env) as url:
        page.goto(f"{url}/train")
        shots.wait_until_idle(page)  # the first visit starts the server's runner
        config = TrainConfig(arch="seed004_cnn", epochs=200, limit=5000)
        job = store.submit("train", train_params({"kind": "fashion-mnist"}, config, "killed_net"), owner="test")
        deadline = time.time() + 120
        while not (store.get(job.id).progress.get("batch") or store.get(job.id).progress.get("epoch")):
            assert time.time() < deadline and store.get(job.id).state in ("queued", "running")
            time.sleep(0.5)
        os.kill(store.get(job.id).worker["pid"], signal.SIGKILL)  # kill -9 the server mid-epoch
        time.sleep(1)
        assert store.get(job.id).state == "interrupted"
    assert registry.names() == []
    with shots.streamlit_server(env) as url:  # started again
        page.goto(f"{url}/train")
        shots.wait_until_idle(page)
        _assert_no_exception(page, "train after a restart")
        assert page.locator(".st-key-running_job").count() == 0
        deadline = time.time() + 30
        while store._read(store.root / job.id)["state"] != "interrupted":  # the new runner stores it
            assert time.time() < deadline
            time.sleep(0.5)
    assert store.get(job.id).state == "interrupted" and registry.names() == []


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


@pytest.mark.xdist_group("browser_trained")
@pytest.mark.parametrize("photo", ["small", "phone"])
def test_the_load_client_uploads_on_classify_like_a_browser(trained_server, photo):
    """``scripts.upload_load`` drives sessions at the protocol level (XSRF cookie, upload URL, PUT,
    rerun with the uploader's state) and gets every answer, for the small product shot and the
    12-megapixel phone JPEG; no timing is asserted."""
    from scripts import upload_load

    result = upload_load.measure_url(trained_server.url, trained_server.pids, sessions=2, rounds=1, repeats=1, photo=photo)
    assert result["photo"] == photo and result["photo_bytes"] > (1_000_000 if photo == "phone" else 0)
    assert len(result["rounds_s"]) == 1 and len(result["rounds_s"][0]) == 2
    assert all(t > 0 for t in result["rounds_s"][0]) and result["alone_runs_s"][0] > 0
    assert result["server_cpu_s_per_answer"] >= 0


@pytest.mark.xdist_group("browser_trained")
def test_clicks_on_the_vega_lite_charts_select(trained_server, browser_page):
    """A click on the Latent space map makes that image the query; a click on Evaluate's
    confusion matrix shows that cell's images."""
    shots, page = browser_page
    grid = [(x / 10, y / 10) for y in range(2, 10) for x in range(2, 10)]
    url = trained_server.url
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


def test_two_browsers_behind_haproxy_each_get_their_answer(trained_registry):
    """``python -m fashion_core dashboard --processes 2`` in real browsers: the pages load through
    HAProxy (websocket included), the two visitors land on different processes and each upload
    is answered on its own page (its upload reached the process holding its session)."""
    if shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed (CI installs it with apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
    from fashion_core.errors import FashionError

    try:
        dashboard.haproxy_binary()
    except FashionError as exc:
        pytest.skip(str(exc))
    shots = _screenshots_module()
    with dashboard.running(2, env={"FASHION_MODELS_DIR": str(trained_registry.root)}) as running, \
            shots.chromium_pages(2) as (first, second):
        servers = []
        for page in (first, second):  # the first stays open (its websocket too) while the second arrives
            page.goto(f"{running.url}/classify")
            shots.wait_until_idle(page)
            servers += [c["value"] for c in page.context.cookies() if c["name"] == dashboard.SERVER_COOKIE]
        for page in (first, second):
            shots.upload_on_classify(page, shots.sample_png())
        for page in (first, second):
            page.get_by_text("What the model sees").first.wait_for(timeout=120_000)
            shots.wait_until_idle(page)
            _assert_no_exception(page, "classify behind HAProxy")
    assert sorted(servers) == ["p1", "p2"]
