"""Screenshot every dashboard page into artifacts/screenshots/ (Playwright + Debian's chromium).

    python -m scripts.screenshots [--models-dir models] [--out artifacts/screenshots]

Starts ``streamlit run app.py`` headless on a free port, opens each page, waits for it to finish
running, uploads a sample image on Classify and saves one full-page PNG per page.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import tempfile
import time
from pathlib import Path

from fashion_core import dashboard

REPO = Path(__file__).resolve().parent.parent
PAGES = ["", "train", "evaluate", "latent", "classify", "models"]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage"]


@contextlib.contextmanager
def streamlit_server(env=None):
    """Run the app (one process, started as the ``dashboard`` command starts it) on a free port;
    yields its URL and always stops it. ``fashion_core.dashboard.running`` yields the process too."""
    with dashboard.running(1, env=env) as running:
        yield running.url


@contextlib.contextmanager
def chromium_page(width=1400, height=1000):
    """A Playwright page in Debian's chromium with a fresh profile."""
    with chromium_pages(1, width, height) as pages:
        yield pages[0]


@contextlib.contextmanager
def chromium_pages(count, width=1400, height=1000):
    """``count`` Playwright pages in Debian's chromium, each in a fresh profile of its own (its own
    cookies: as many separate visitors)."""
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    if executable is None:
        raise RuntimeError("Debian's chromium is not installed (apt-get install chromium).")
    with contextlib.ExitStack() as stack:
        playwright = stack.enter_context(sync_playwright())
        pages = []
        for _ in range(count):
            profile = stack.enter_context(tempfile.TemporaryDirectory())
            context = playwright.chromium.launch_persistent_context(
                profile, executable_path=executable, headless=True, args=CHROMIUM_FLAGS,
                viewport={"width": width, "height": height})
            stack.callback(context.close)
            pages.append(context.pages[0] if context.pages else context.new_page())
        yield pages


def wait_until_idle(page, timeout=180):
    """Wait until the page's script has finished: a title is shown, the app reports
    ``notRunning`` and no spinner or skeleton is left (checked twice, the app may rerun)."""
    page.wait_for_selector('[data-testid="stMain"] h1', timeout=timeout * 1000)  # every page has a title
    busy = '[data-testid="stSpinner"], [data-testid="stSkeleton"], [data-testid="stApp"][data-test-script-state="running"]'
    deadline = time.time() + timeout
    quiet = 0
    while time.time() < deadline:
        quiet = quiet + 1 if page.locator(busy).count() == 0 else 0
        if quiet >= 3:
            return
        page.wait_for_timeout(500)
    raise TimeoutError("the page kept running")


def sample_png():
    """A dark shirt-like shape on white, as a product photo would be."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (160, 160), (250, 250, 250))
    draw = ImageDraw.Draw(image)
    draw.polygon([(50, 30), (110, 30), (140, 60), (120, 75), (115, 140), (45, 140), (40, 75), (20, 60)], fill=(40, 60, 110))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def sample_phone_photo(size=(4032, 3024), quality=90):
    """A 12-megapixel phone photo as a camera writes it: a dark shirt laid on a lit, grainy bed
    sheet, JPEG (~1.7 MB). Deterministic."""
    import numpy as np
    from PIL import Image, ImageDraw

    width, height = size
    rng = np.random.default_rng(0)
    shade = np.linspace(222, 246, width, dtype=np.float32)[None, :, None]  # light from one side
    sheet = np.clip(shade + rng.normal(0, 5, (height, width, 3)).astype(np.float32) + [4, 0, -6], 0, 255)
    image = Image.fromarray(sheet.astype(np.uint8))
    scale, left, top = height / 200, (width - height) / 2, 0
    shirt = [(50, 30), (110, 30), (140, 60), (120, 75), (115, 140), (45, 140), (40, 75), (20, 60)]
    ImageDraw.Draw(image).polygon([(left + x * scale * 1.2, top + y * scale * 1.2) for x, y in shirt], fill=(40, 60, 110))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def upload_on_classify(page, png):
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(
        files=[{"name": "shirt.png", "mimeType": "image/png", "buffer": png}])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", default=str(REPO / "models"))
    parser.add_argument("--out", default=str(REPO / "artifacts" / "screenshots"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with dashboard.running(1, env={"FASHION_MODELS_DIR": args.models_dir}) as running, chromium_page() as page:
        url = running.url
        for slug in PAGES:
            page.goto(f"{url}/{slug}")
            wait_until_idle(page)
            if slug == "classify":
                upload_on_classify(page, sample_png())
                wait_until_idle(page)
            if slug == "evaluate":
                page.wait_for_timeout(1500)
            target = out / f"{slug or 'home'}.png"
            page.screenshot(path=str(target), full_page=True)
            print(target)
        # Community Cloud gives an app roughly 0.7–2.7 GB: report what the shipped models cost.
        print(f"server resident memory after visiting every page: {processes_rss_mb(running.pids):.0f} MB")


def processes_rss_mb(pids):
    """Resident memory (MB) of the processes ``pids`` together (a ``Dashboard``'s; NaN if one is gone)."""
    import psutil

    try:
        return sum(psutil.Process(pid).memory_info().rss for pid in pids) / 2**20
    except psutil.Error:
        return float("nan")


if __name__ == "__main__":
    main()
