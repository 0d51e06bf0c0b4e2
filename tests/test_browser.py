"""A real browser (Debian's chromium driven by Playwright) uses built Spaces the way a visitor does."""

import runpy
import time
from pathlib import Path

import pytest
from test_demos import grid_size, serving_threads, tile_size, trained_model  # noqa: F401

from genkit.ui.demo import launch
from genkit.ui.spaces import build_space

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


# Records every distinct value the output box shows, once per animation frame, from before the click on.
# Polled every 5 ms with a timer: requestAnimationFrame callbacks can be throttled in a headless page, and a busy
# machine then saw only two of the streamed texts.
WATCH_TEXT = """() => {
    window.seen = [];
    setInterval(() => {
        const box = document.querySelector('#genkit-text textarea');
        if (box && box.value !== window.seen[window.seen.length - 1]) window.seen.push(box.value);
    }, 5);
}"""


def test_lstm_space_streams_text_into_the_page(browser, tmp_path_factory, tmp_path):
    model = trained_model(tmp_path_factory, "lstm", "lstm", "--no-eval")
    demo, url = open_space(model, tmp_path / "space")
    page = browser.new_page()
    try:
        page.goto(url)
        page.get_by_label("Prompt").fill("def ")
        page.evaluate(WATCH_TEXT)
        page.get_by_role("button", name="Generate").click()
        page.wait_for_function("() => window.seen.some(v => v.length > 40)", timeout=60_000)
        final, deadline = None, time.time() + 60
        while time.time() < deadline:  # generation has ended when the text stops changing
            value = page.evaluate("() => window.seen[window.seen.length - 1]")
            if value == final:
                break
            final = value
            time.sleep(1)
        seen = [v for v in page.evaluate("() => window.seen") if v]
        page.screenshot(path=str(tmp_path / "lstm.png"))
    finally:
        page.close()
        demo.close()
    assert final.startswith("def ") and len(final) > 40
    # The visitor saw the text grow: partial texts, each extending the one before, before the final one (a page that
    # only shows the result sees one text). How many partial texts the page renders depends on the machine's speed:
    # a tiny model generates 200 characters within a few frames (a fast CI run saw 1 partial text, so not ">= 2").
    assert len(seen) >= 2 and seen[-1] == final and len(seen[0]) < len(final)
    assert all(b.startswith(a) for a, b in zip(seen, seen[1:], strict=False))


VISIBLE_IMAGE = (
    "() => [...document.querySelectorAll('.genkit-pixels img')].find(i => i.offsetParent !== null && i.complete"
    " && i.naturalWidth > 0)"
)


def upload_and_run(
    browser, url: str, tab: str, button: str, image: Path, screenshot: Path, paint: bool = False
) -> tuple[int, int]:
    """Open ``tab``, upload ``image`` into its first image field (with ``paint``, an image to paint on: a stroke is
    drawn across it with the mouse), click ``button``; the size of the image shown."""
    page = browser.new_page()
    try:
        page.goto(url)
        page.get_by_role("tab", name=tab).click()
        with page.expect_file_chooser() as chooser:  # the upload area, as a visitor clicks it
            page.get_by_text("Upload an image" if paint else "Click to Upload").locator("visible=true").first.click()
        chooser.value.set_files(str(image))
        page.wait_for_timeout(500)  # the upload is processed before the click is sent
        if paint:  # the brush is the editor's tool once an image is there: one stroke through the middle
            page.get_by_role("button", name="Brush", exact=True).click()
            box = page.locator("canvas").locator("visible=true").first.bounding_box()
            x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
            page.mouse.move(x - 20, y)
            page.mouse.down()
            page.mouse.move(x + 20, y, steps=10)
            page.mouse.up()
            page.wait_for_timeout(500)
        page.get_by_role("button", name=button, exact=True).click()
        page.wait_for_function(f"() => !!({VISIBLE_IMAGE})()", timeout=60_000)
        size = page.evaluate(f"() => {{ const i = ({VISIBLE_IMAGE})(); return [i.naturalWidth, i.naturalHeight]; }}")
        page.screenshot(path=str(screenshot))
    finally:
        page.close()
    return tuple(size)


@pytest.mark.parametrize(
    "family, train_args, tab, button, tiles",
    [
        ("autoencoder", ["autoencoder", "--variant", "denoising"], "Denoise", "Corrupt and denoise", 3),
        ("ddpm", ["ddpm"], "Inpaint", "Fill in", 2),  # a painted mask: the tab's image is one to paint on
        ("flow", ["flow", "--architecture", "glow"], "Encode and decode", "Encode and decode", 2),
    ],
)
def test_an_uploaded_image_is_edited_in_the_page(
    browser, tmp_path_factory, tmp_path, family, train_args, tab, button, tiles
):
    """A visitor opens a tab, uploads a digit (and, to inpaint, paints over part of it) and clicks: the input, (the
    corrupted input,) and the result appear."""
    from genkit.data import load_splits

    model = trained_model(tmp_path_factory, f"{family}-edit", *train_args, "--no-eval")
    digit = tmp_path / "digit.png"
    load_splits("digits", "image")["test"][0]["image"].save(digit)
    demo, url = open_space(model, tmp_path / "space")
    try:
        size = upload_and_run(browser, url, tab, button, digit, tmp_path / f"{family}.png", paint=tab == "Inpaint")
    finally:
        demo.close()
    assert size == grid_size(tiles, tile_size(8), nrow=tiles)
