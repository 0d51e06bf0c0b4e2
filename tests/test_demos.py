"""Every plugin's Gradio demo, served on 127.0.0.1 and driven with gradio_client like a remote user would."""

import math
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from conftest import train_cli
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

pytest.importorskip("gradio")

import gradio as gr  # noqa: E402

import genkit  # noqa: E402
from genkit.ui import demo as core  # noqa: E402


# ---- shared with test_spaces.py and test_browser.py ---------------------------------------------------------------
def trained_model(tmp_path_factory, name: str, *train_args: str) -> Path:
    """A tiny model trained once per test session: ``genkit train <train_args> --preset tiny``."""
    folder = tmp_path_factory.getbasetemp() / "demo-models" / name
    if not (folder / "genkit.json").exists():
        assert train_cli(*train_args, "--preset", "tiny", "--log-with", "none", "--output", str(folder)) == 0
    return folder


@contextmanager
def served(demo):
    """Launch ``demo`` on a free local port and yield a gradio_client connected to it."""
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    try:
        yield Client(url, verbose=False, download_files=True)
    finally:
        demo.close()


def tile_size(image_size: int) -> int:
    return image_size * math.ceil(core.DISPLAY_SIZE / image_size)


def grid_size(n: int, tile: int, nrow: int | None = None) -> tuple[int, int]:
    """Size of a grid of ``n`` tiles with a 2-pixel border, ``nrow`` per row (default square-ish)."""
    cols = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    return cols * (tile + 2) + 2, rows * (tile + 2) + 2


def tiles(image: Image.Image, tile: int, count: int) -> list[np.ndarray]:
    """The ``count`` tiles of a one-row strip, as arrays."""
    a = np.asarray(image.convert("L"))
    return [a[2 : 2 + tile, 2 + i * (tile + 2) : 2 + i * (tile + 2) + tile] for i in range(count)]


def to_paint(image: Path | None, stroke: Path | None = None) -> dict | None:
    """The value of an inpainting tab's image editor through the API: the image, and the painted layer if any."""
    if image is None:
        return None
    return {"background": handle_file(image), "layers": [handle_file(stroke)] if stroke else [], "composite": None}


def stroke_file(path: Path, size: int, box: tuple[int, int, int, int]) -> Path:
    """A painted layer as the editor sends it: transparent, with an opaque white stroke over ``box``."""
    layer = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    layer.paste((255, 255, 255, 255), box)
    layer.save(path)
    return path


def digit_images(n: int) -> list[Image.Image]:
    from genkit.data import load_splits

    return [load_splits("digits", "image")["test"][i]["image"] for i in range(n)]


@pytest.fixture(scope="module", autouse=True)
def serving_threads():
    """Torch threads as `genkit demo` and Spaces set them for serving (genkit.demo.launch); restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(core.model_threads())
    yield
    torch.set_num_threads(before)


# ---- VAE -----------------------------------------------------------------------------------------------------------
VAE_ENDPOINTS = {
    "/sample",
    "/interpolate_seeds",
    "/interpolate_images",
    "/arithmetic",
    "/reconstruct",
    "/anomaly_score",
    "/inpaint",
    "/inpaint_test_image",
}


@pytest.fixture(scope="module")
def vae(tiny_vae):
    pipeline = genkit.load(tiny_vae)
    demo = genkit.get_plugin("vae").build_demo(pipeline)
    with served(demo) as client:
        yield pipeline, demo, client


@pytest.fixture(scope="module")
def digit_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("digits")
    paths = []
    for i, im in enumerate(digit_images(3)):
        im.save(folder / f"digit{i}.png")
        paths.append(str(folder / f"digit{i}.png"))
    Image.new("L", (8, 8), 255).save(folder / "white.png")  # nothing like a digit: every pixel on
    return paths, str(folder / "white.png")


def test_vae_demo_names_every_event(vae):
    _, demo, client = vae
    assert set(client.view_api(print_info=False, return_format="dict")["named_endpoints"]) == VAE_ENDPOINTS
    assert all(fn.api_name for fn in demo.fns.values())


def test_vae_samples_are_a_seeded_grid_of_the_right_size(vae):
    pipeline, _, client = vae
    tile = tile_size(pipeline.vae.config.image_size)
    for n in (1, 5, 16):
        image = Image.open(client.predict(3, n, api_name="/sample"))
        assert image.size == grid_size(n, tile)
    a = np.asarray(Image.open(client.predict(3, 16, api_name="/sample")))
    b = np.asarray(Image.open(client.predict(3, 16, api_name="/sample")))
    c = np.asarray(Image.open(client.predict(4, 16, api_name="/sample")))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.std() > 0  # not a blank picture


def test_vae_interpolation_runs_from_seed_a_to_seed_b(vae):
    pipeline, _, client = vae
    tile = tile_size(pipeline.vae.config.image_size)
    strip = Image.open(client.predict(5, 9, 6, api_name="/interpolate_seeds"))
    assert strip.size == grid_size(6, tile, nrow=6)
    parts = tiles(strip, tile, 6)
    start = tiles(Image.open(client.predict(5, 1, api_name="/sample")), tile, 1)[0]
    end = tiles(Image.open(client.predict(9, 1, api_name="/sample")), tile, 1)[0]
    assert np.abs(parts[0].astype(int) - start).max() <= 1  # the strip starts on seed A's sample
    assert np.abs(parts[-1].astype(int) - end).max() <= 1  # and ends on seed B's
    assert not np.array_equal(parts[0], parts[-1])


def test_vae_image_endpoints(vae, digit_files):
    pipeline, _, client = vae
    tile = tile_size(pipeline.vae.config.image_size)
    (a, b, c), _ = digit_files
    strip = Image.open(client.predict(handle_file(a), handle_file(b), 4, api_name="/interpolate_images"))
    assert strip.size == grid_size(4, tile, nrow=4)
    arithmetic = Image.open(client.predict(handle_file(a), handle_file(b), handle_file(c), api_name="/arithmetic"))
    assert arithmetic.size == grid_size(4, tile, nrow=4)  # reconstructions of A, B, C and A - B + C
    pair = Image.open(client.predict(handle_file(a), api_name="/reconstruct"))
    assert pair.size == grid_size(2, tile, nrow=2)
    # The first tile is the upload as the encoder sees it: the digit itself, enlarged.
    seen, _ = tiles(pair, tile, 2)
    expected = Image.open(a).convert("L").resize((pipeline.vae.config.image_size,) * 2, Image.BILINEAR)
    assert np.array_equal(seen, np.asarray(expected.resize((tile, tile), Image.NEAREST)))


def test_vae_anomaly_score_is_higher_for_an_image_unlike_the_data(vae, digit_files):
    _, _, client = vae
    (digit, _, _), white = digit_files
    normal = client.predict(handle_file(digit), api_name="/anomaly_score")
    odd = client.predict(handle_file(white), api_name="/anomaly_score")
    assert isinstance(normal, float) and normal > 0
    assert odd > normal  # even a 20-step model puts a blank white square well above real digits


def test_vae_rejects_out_of_range_inputs_with_a_message(vae):
    _, _, client = vae
    with pytest.raises(AppError, match="greater than maximum value 64"):
        client.predict(0, 65, api_name="/sample")
    with pytest.raises(AppError, match="less than minimum value 1"):
        client.predict(0, 0, api_name="/sample")
    with pytest.raises(AppError, match="less than minimum value 0"):
        client.predict(-1, 4, api_name="/sample")
    with pytest.raises(AppError, match="greater than maximum value 16"):
        client.predict(0, 1, 17, api_name="/interpolate_seeds")
    with pytest.raises(AppError, match="upload an image"):
        client.predict(None, api_name="/reconstruct")
    assert Image.open(client.predict(0, 2, api_name="/sample")).size  # still serving


def test_vae_demo_serves_eight_users_at_once(vae):
    _, demo, client = vae

    def user(seed):
        c = Client(client.src, verbose=False)
        return Image.open(c.predict(seed, 64, api_name="/sample")).size

    with ThreadPoolExecutor(8) as pool:
        sizes = list(pool.map(user, range(8)))
    assert len(set(sizes)) == 1
    # Every model event shares one concurrency group, capped at CONCURRENCY_LIMIT calls at a time.
    queues = demo._queue.event_queue_per_concurrency_id
    assert {fn.concurrency_id for fn in demo.fns.values()} == {core.MODEL_QUEUE}
    assert queues[core.MODEL_QUEUE].concurrency_limit == core.CONCURRENCY_LIMIT


def test_conditional_vae_samples_by_class(tmp_path_factory):
    folder = trained_model(tmp_path_factory, "cvae", "vae", "--conditional", "--no-eval")
    pipeline = genkit.load(folder)
    k = pipeline.vae.config.num_classes
    tile = tile_size(pipeline.vae.config.image_size)
    with served(genkit.get_plugin("vae").build_demo(pipeline)) as client:
        api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
        assert [p["label"] for p in api["/sample"]["parameters"]] == ["Seed", "Images", "Class"]
        one = np.asarray(Image.open(client.predict(0, 4, 3, api_name="/sample")))
        other = np.asarray(Image.open(client.predict(0, 4, 7, api_name="/sample")))
        assert one.shape == other.shape and not np.array_equal(one, other)
        every = Image.open(client.predict(0, 5, core.ALL_CLASSES, api_name="/sample"))
        assert every.size == grid_size(5 * k, tile, nrow=5)  # one row of 5 per class
        with pytest.raises(AppError, match="at most 256"):
            client.predict(0, 64, core.ALL_CLASSES, api_name="/sample")
        with pytest.raises(AppError, match="not in the list of choices"):
            client.predict(0, 4, k, api_name="/sample")
        strip = Image.open(client.predict(0, 1, 5, 3, api_name="/interpolate_seeds"))
        assert strip.size == grid_size(5, tile, nrow=5)


def test_vae_demo_fills_in_a_chosen_painted_or_uploaded_region(vae, digit_files, tmp_path):
    pipeline, _, client = vae
    tile = tile_size(pipeline.vae.config.image_size)
    (digit, _, _), _ = digit_files
    strip = Image.open(client.predict(to_paint(digit), "Bottom half", None, 20, api_name="/inpaint"))
    assert strip.size == grid_size(2, tile, nrow=2)
    kept, filled = tiles(strip, tile, 2)
    half = tile // 2
    assert np.array_equal(kept[:half], filled[:half])  # the top half kept as given
    assert (kept[half:] == 128).all() and not (filled[half:] == 128).all()  # shown gray, then filled in
    # painted strokes win over the choice: a stroke over the bottom half is the same mask as "Bottom half"
    painted = to_paint(digit, stroke_file(tmp_path / "stroke.png", 8, (0, 4, 8, 8)))
    assert np.array_equal(
        np.asarray(Image.open(client.predict(painted, "Centre square", None, 20, api_name="/inpaint"))),
        np.asarray(strip),
    )
    mask = Image.new("L", (8, 8), 0)
    mask.paste(255, (0, 4, 8, 8))
    mask.save(tmp_path / "mask.png")
    left = to_paint(digit, stroke_file(tmp_path / "left.png", 8, (0, 0, 4, 8)))
    uploaded = Image.open(
        client.predict(left, "Centre square", handle_file(tmp_path / "mask.png"), 20, api_name="/inpaint")
    )
    assert np.array_equal(np.asarray(uploaded), np.asarray(strip))  # an uploaded mask wins over strokes and choice
    Image.new("L", (5, 5), 255).save(tmp_path / "small.png")
    with pytest.raises(AppError, match="the mask is 5x5 but the image is 8x8"):
        client.predict(to_paint(digit), "Centre square", handle_file(tmp_path / "small.png"), 20, api_name="/inpaint")
    with pytest.raises(AppError, match="upload an image"):
        client.predict(None, "Centre square", None, 20, api_name="/inpaint")


def test_a_test_image_of_the_models_data_can_be_picked(vae):
    """The model was trained on digits: test image #i of its own split goes into the editor, enlarged."""
    from genkit.data import load_splits

    pipeline, _, client = vae
    size = pipeline.vae.config.image_size
    test = load_splits("digits", "image", image_size=size)["test"]
    picked = Image.open(client.predict(3, api_name="/inpaint_test_image")["background"])
    assert picked.width == picked.height and picked.width % size == 0 and picked.width >= core.DISPLAY_SIZE
    assert np.array_equal(
        np.asarray(picked.resize((size, size), Image.Resampling.NEAREST)), np.asarray(test[3]["image"])
    )
    with pytest.raises(AppError, match=f"maximum value {len(test) - 1}"):
        client.predict(len(test), api_name="/inpaint_test_image")
    from genkit.ui.demo import held_out_images

    assert held_out_images(pipeline) is held_out_images(pipeline)  # made once for all the pickers of a demo


def test_no_test_image_picker_for_data_that_is_not_built_in(tmp_path):
    from genkit.ui.demo import held_out_images

    class Saved:
        name_or_path = str(tmp_path)

    (tmp_path / "genkit.json").write_text('{"config": {"dataset": "/home/me/photos"}}')
    assert held_out_images(Saved()) is None
    (tmp_path / "genkit.json").write_text('{"config": {"dataset": "stdlib"}}')  # a text source
    assert held_out_images(Saved()) is None


# ---- DDPM ----------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ddpm(tmp_path_factory):
    folder = trained_model(tmp_path_factory, "ddpm", "ddpm", "--no-eval")
    pipeline = genkit.load(folder)
    with served(genkit.get_plugin("ddpm").build_demo(pipeline)) as client:
        yield pipeline, client


def test_ddpm_demo_shows_the_denoising_progression(ddpm):
    pipeline, client = ddpm
    endpoints = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert endpoints == {"/generate", "/inpaint", "/img2img", "/inpaint_test_image", "/img2img_test_image"}
    tile = tile_size(pipeline.unet.config.sample_size)
    final, frames = client.predict(0, "ddim", 10, 4, api_name="/generate")
    final = np.asarray(Image.open(final))
    assert final.shape[:2] == grid_size(4, tile)[::-1]
    # x_T, then every 2nd step of 10 (about FRAMES pictures), the last one being the samples themselves.
    assert [f["caption"] for f in frames] == ["x_T (noise)"] + [f"step {s}/10" for s in (2, 4, 6, 8, 10)]
    pictures = [np.asarray(Image.open(f["image"])) for f in frames]
    assert all(p.shape == final.shape for p in pictures)
    assert np.array_equal(pictures[-1], final) and not np.array_equal(pictures[0], final)
    again, _ = client.predict(0, "ddim", 10, 4, api_name="/generate")
    assert np.array_equal(np.asarray(Image.open(again)), final)  # DDIM is deterministic for a seed

    final, frames = client.predict(0, "ddpm", 25, 2, api_name="/generate")
    assert Image.open(final).size == grid_size(2, tile) and len(frames) == 10


def test_ddpm_demo_inpaints_and_redraws_an_upload(ddpm, tmp_path):
    pipeline, client = ddpm
    size = pipeline.unet.config.sample_size
    tile = tile_size(size)
    digit = tmp_path / "digit.png"
    digit_images(1)[0].save(digit)
    strip = Image.open(client.predict(to_paint(digit), "Left half", None, 0, 20, 2, api_name="/inpaint"))
    assert strip.size == grid_size(2, tile, nrow=2)
    kept, filled = tiles(strip, tile, 2)
    half = tile // 2
    assert np.array_equal(kept[:, half:], filled[:, half:])  # the right half kept
    assert (kept[:, :half] == 128).all() and not (filled[:, :half] == 128).all()
    again = Image.open(client.predict(to_paint(digit), "Left half", None, 0, 20, 2, api_name="/inpaint"))
    assert np.array_equal(np.asarray(again), np.asarray(strip))  # one seed, one result
    # a painted stroke over the left half (on the image enlarged for painting) is the same mask
    picked = client.predict(0, api_name="/inpaint_test_image")
    big = Image.open(picked["background"])
    assert big.width > size
    enlarged = tmp_path / "big.png"
    digit_images(1)[0].resize(big.size, Image.Resampling.NEAREST).save(enlarged)
    stroke = stroke_file(tmp_path / "stroke.png", big.width, (0, 0, big.width // 2, big.height))
    painted = Image.open(client.predict(to_paint(enlarged, stroke), "Top half", None, 0, 20, 2, api_name="/inpaint"))
    kept_painted, _ = tiles(painted, tile, 2)  # the enlarged digit scaled back to 8 px
    assert (kept_painted[:, :half] == 128).all()
    assert np.abs(kept_painted[:, half:].astype(int) - kept[:, half:]).mean() < 32  # resampling blurs a little

    def redraw(strength):
        strip = Image.open(client.predict(handle_file(digit), strength, 0, "ddim", 10, api_name="/img2img"))
        assert strip.size == grid_size(2, tile, nrow=2)
        seen, result = tiles(strip, tile, 2)
        return float(np.abs(seen.astype(float) - result).mean())

    assert redraw(0.0) == 0.0 and 0 < redraw(0.2) < redraw(1.0)
    with pytest.raises(AppError, match="greater than maximum value 1"):
        client.predict(handle_file(digit), 1.5, 0, "ddim", 10, api_name="/img2img")


def test_ddpm_demo_rejects_out_of_range_inputs(ddpm):
    pipeline, client = ddpm
    T = pipeline.scheduler.config.num_train_timesteps
    with pytest.raises(AppError, match=f"greater than maximum value {T}"):
        client.predict(0, "ddim", T + 1, 4, api_name="/generate")
    with pytest.raises(AppError, match="greater than maximum value 16"):
        client.predict(0, "ddim", 10, 17, api_name="/generate")
    with pytest.raises(AppError, match="not in the list of choices"):
        client.predict(0, "euler", 10, 4, api_name="/generate")
    with pytest.raises(AppError, match="seed is empty"):
        client.predict(None, "ddim", 10, 4, api_name="/generate")


def test_conditional_ddpm_demo_takes_class_and_guidance(tmp_path_factory):
    folder = trained_model(tmp_path_factory, "cddpm", "ddpm", "--conditional", "--no-eval")
    pipeline = genkit.load(folder)
    with served(genkit.get_plugin("ddpm").build_demo(pipeline)) as client:
        api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/generate"]
        assert [p["label"] for p in api["parameters"]] == [
            "Seed",
            "Sampler",
            "Steps",
            "Images",
            "Class",
            "Guidance scale",
        ]

        def final(label, guidance):
            return np.asarray(Image.open(client.predict(0, "ddim", 5, 2, label, guidance, api_name="/generate")[0]))

        assert not np.array_equal(final(3, 1.0), final(7, 1.0))
        assert np.array_equal(final(3, 0.0), final(7, 0.0))  # guidance 0 is the unconditional model: class ignored
        with pytest.raises(AppError, match="greater than maximum value 10"):
            client.predict(0, "ddim", 5, 2, 3, 11.0, api_name="/generate")


# ---- DCGAN ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dcgan(tmp_path_factory):
    folder = trained_model(tmp_path_factory, "dcgan", "dcgan", "--no-eval")
    pipeline = genkit.load(folder)
    with served(genkit.get_plugin("dcgan").build_demo(pipeline)) as client:
        yield pipeline, client


def test_dcgan_demo_samples_interpolates_and_scores(dcgan, digit_files):
    pipeline, client = dcgan
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert set(api) == {"/sample", "/interpolate", "/arithmetic", "/realness"}
    tile = tile_size(pipeline.generator.config.image_size)
    grid = np.asarray(Image.open(client.predict(2, 9, api_name="/sample")))
    assert grid.shape[:2] == grid_size(9, tile)[::-1] and grid.std() > 0
    assert np.array_equal(grid, np.asarray(Image.open(client.predict(2, 9, api_name="/sample"))))

    def single(seed):
        return tiles(Image.open(client.predict(seed, 1, api_name="/sample")), tile, 1)[0]

    strip = Image.open(client.predict(2, 3, 5, api_name="/interpolate"))
    assert strip.size == grid_size(5, tile, nrow=5)
    parts = tiles(strip, tile, 5)
    assert np.abs(parts[0].astype(int) - single(2)).max() <= 1 and np.abs(parts[-1].astype(int) - single(3)).max() <= 1
    arithmetic = Image.open(client.predict(4, 5, 6, api_name="/arithmetic"))
    assert arithmetic.size == grid_size(4, tile, nrow=4)  # the images of A, B, C, then A - B + C
    parts = tiles(arithmetic, tile, 4)
    assert all(np.abs(parts[i].astype(int) - single(seed)).max() <= 1 for i, seed in enumerate((4, 5, 6)))

    (digit, _, _), _ = digit_files
    score = client.predict(handle_file(digit), api_name="/realness")
    assert 0 <= score <= 1  # P(real) of the BCE-trained discriminator
    with pytest.raises(AppError, match="greater than maximum value 16"):
        client.predict(2, 3, 17, api_name="/interpolate")
    with pytest.raises(AppError, match="upload an image"):
        client.predict(None, api_name="/realness")


# ---- LSTM ----------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lstm(tmp_path_factory):
    folder = trained_model(tmp_path_factory, "lstm", "lstm", "--no-eval")
    pipeline = genkit.load(folder)
    with served(genkit.get_plugin("lstm").build_demo(pipeline)) as client:
        yield pipeline, client


def test_lstm_demo_streams_text_token_by_token(lstm):
    _, client = lstm
    assert set(client.view_api(print_info=False, return_format="dict")["named_endpoints"]) == {"/generate"}
    job = client.submit("def ", 60, 0.8, 0, 1.0, 3, api_name="/generate")
    final = job.result()
    updates = job.outputs()
    assert final.startswith("def ") and 4 < len(final) <= 4 + 60
    # The text grows in many small steps, each update extending the one before (a character model: ~1 per token).
    assert len(updates) > 30 and updates[-1] == final
    assert all(b.startswith(a) and len(b) > len(a) for a, b in zip(updates, updates[1:], strict=False))
    assert client.predict("def ", 60, 0.8, 0, 1.0, 3, api_name="/generate") == final  # seeded


def test_lstm_demo_sampling_settings(lstm):
    _, client = lstm
    greedy = client.predict("import ", 40, 0, 0, 1.0, 1, api_name="/generate")
    assert len(greedy) == len("import ") + 40  # greedy char-level text: one character per new token
    assert client.predict("import ", 40, 0, 0, 1.0, 2, api_name="/generate") == greedy  # the seed has no say
    top1 = client.predict("import ", 40, 1.5, 1, 1.0, 5, api_name="/generate")
    assert top1 == greedy  # top-k = 1 keeps only the most likely token, whatever the temperature
    unseeded = {client.predict("", 30, 1.0, 0, 1.0, seed, api_name="/generate") for seed in (1, 2, 3)}
    assert len(unseeded) == 3 and all(0 < len(t) <= 30 for t in unseeded)


def test_lstm_demo_rejects_out_of_range_inputs(lstm):
    _, client = lstm
    with pytest.raises(AppError, match="greater than maximum value 1000"):
        client.predict("def ", 1001, 0.8, 0, 1.0, 0, api_name="/generate")
    with pytest.raises(AppError, match="greater than maximum value 2"):
        client.predict("def ", 10, 2.5, 0, 1.0, 0, api_name="/generate")
    with pytest.raises(AppError, match="less than minimum value 0.01"):
        client.predict("def ", 10, 0.8, 0, 0.0, 0, api_name="/generate")
    with pytest.raises(AppError, match="at most 2000"):
        client.predict("x" * 2001, 10, 0.8, 0, 1.0, 0, api_name="/generate")
    assert client.predict("def ", 5, 0, 0, 1.0, 0, api_name="/generate").startswith("def ")  # still serving


# ---- `genkit demo MODEL` -------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_genkit_demo_command_serves_the_model(tiny_vae):
    from genkit.cli.main import main

    port = free_port()
    result = {}
    thread = threading.Thread(
        target=lambda: result.setdefault("rc", main(["demo", str(tiny_vae), "--port", str(port)])), daemon=True
    )
    thread.start()
    deadline = time.time() + 60
    client = None
    while client is None and time.time() < deadline:
        try:
            client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        except Exception:
            time.sleep(0.2)
    try:
        assert client is not None, "genkit demo did not start serving"
        assert Image.open(client.predict(0, 4, api_name="/sample")).size
    finally:
        gr.close_all(verbose=False)
    thread.join(10)
    assert result == {"rc": 0}


def test_genkit_demo_command_errors_are_one_line(tiny_vae, tmp_path, capsys):
    from genkit.cli.main import main

    assert main(["demo", str(tmp_path)]) == 2
    assert "is not a genkit model" in capsys.readouterr().err
    assert main(["demo", str(tmp_path), "--port", "70000"]) == 2
    assert "--port must be from 1 to 65535" in capsys.readouterr().err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["demo", str(tiny_vae), "--port", str(port)]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("genkit: error:")]
    assert len(errors) == 1 and f"cannot serve on 127.0.0.1:{port}" in errors[0]
