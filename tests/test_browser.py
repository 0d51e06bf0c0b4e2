"""A real browser (Debian's chromium driven by Playwright) uses built Spaces the way a visitor does."""

import runpy
from pathlib import Path

import pytest
from test_demos import grid_size, serving_threads, tile_size  # noqa: F401

from genkit.demo import launch
from genkit.spaces import build_space

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (.ci/run installs it)"
)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    # executable_path: Playwright drives the system chromium and never downloads a browser of its own.
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        yield browser
        browser.close()


def open_space(model: Path, out: Path):
    """Build a Space for ``model`` and start its app.py in this process; returns (demo, url)."""
    space = build_space(str(model), out)
    demo = runpy.run_path(str(space / "app.py"))["demo"]
    _, url, _ = launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    return demo, url


def test_vae_space_shows_samples_after_generate(browser, tiny_vae, tmp_path):
    demo, url = open_space(tiny_vae, tmp_path / "space")
    page = browser.new_page()
    try:
        page.goto(url)
        page.get_by_role("button", name="Generate").click()
        page.wait_for_function(
            "() => [...document.querySelectorAll('.genkit-pixels img')].some(i => i.complete && i.naturalWidth > 0)",
            timeout=60_000,
        )
        size = page.evaluate(
            "() => { const i = [...document.querySelectorAll('.genkit-pixels img')].find(i => i.naturalWidth > 0);"
            " return [i.naturalWidth, i.naturalHeight]; }"
        )
        page.screenshot(path=str(tmp_path / "vae.png"))
    finally:
        page.close()
        demo.close()
    assert tuple(size) == grid_size(16, tile_size(8))  # the default 16 samples of the 8x8 tiny model
