"""The demo in a real browser: headless Chromium (Debian's /usr/bin/chromium) driven by Playwright draws two label maps
with the rectangle tool, translates each, and checks every model's output, "sample again", an error shown on the page
and that the page fetched nothing but its own server."""

import base64
import io
import os
import threading
import types

import numpy as np
import pytest
from PIL import Image

from data.synthetic import PALETTE
from run_helpers import tiny_args
from train_scripts.demo.app import DemoApp
from train_scripts.demo.server import make_server
from train_scripts.demo.translators import load_models
from train_scripts.training.models import ddim, pix2pix
from train_scripts.training.runner import main as train_main

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SIZE = 32

if not os.path.exists(CHROMIUM):
    pytest.skip(f"{CHROMIUM} is missing (Debian: apt-get install chromium); the browser test needs it",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api",
                               reason="Playwright for Python is missing (pip install playwright; no 'playwright "
                                      "install' needed: /usr/bin/chromium is used)")


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_facades):
    root = tmp_path_factory.mktemp("demo_browser_runs")
    for name, spec in (("pix2pix", pix2pix.SPEC), ("ddim", ddim.SPEC)):
        assert train_main(spec, [*tiny_args(name, tiny_facades, image_size=SIZE), "--out", str(root / name)]) == 0
    models, failures = load_models([str(root / "pix2pix"), str(root / "ddim")])
    httpd = make_server(DemoApp(models, failures), 0)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield types.SimpleNamespace(url=f"http://127.0.0.1:{httpd.server_address[1]}/")
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def page(server):
    with sync_api.sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        except Exception as e:  # e.g. a Chromium too old for this Playwright
            pytest.skip(f"cannot start {CHROMIUM} with Playwright: {str(e).splitlines()[0]}")
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        page.requests, page.errors = [], []
        page.on("request", lambda r: page.requests.append(r.url))
        page.on("pageerror", lambda e: page.errors.append(str(e)))
        yield page
        browser.close()


def decode(url):
    assert url and url.startswith("data:image/png;base64,"), (url or "")[:40]
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB"))


def drag(page, box, x0, y0, x1, y1):
    """A mouse drag on the canvas between fractions of its width and height."""
    page.mouse.move(box["x"] + x0 * box["width"], box["y"] + y0 * box["height"])
    page.mouse.down()
    page.mouse.move(box["x"] + x1 * box["width"], box["y"] + y1 * box["height"], steps=6)
    page.mouse.up()


def draw(page, rectangles):
    """Clear the canvas, then draw each (class, x0, y0, x1, y1) with the rectangle tool."""
    box = page.locator("#overlay").bounding_box()
    page.click("#tool-rect")
    page.click("#clear")
    for name, *corners in rectangles:
        page.click(f".swatch[data-class='{name}']")
        drag(page, box, *corners)


def translate(page, done):
    page.click("#translate")
    page.wait_for_selector(f"body[data-pending='0'][data-translations='{done}']", timeout=120_000)
    outputs = {name: decode(page.locator(f".card[data-model='{name}'] img.output").get_attribute("src"))
               for name in ("pix2pix", "ddim")}
    return decode(page.locator(".card.input img").get_attribute("src")), outputs


def at(label, x, y):
    """The class colour of the label map at fractions (x, y) of its size."""
    return tuple(int(v) for v in label[int(y * SIZE), int(x * SIZE)])


@pytest.mark.slow
def test_draw_translate_and_compare_in_chromium(page, server, tmp_path):
    page.goto(server.url)
    page.wait_for_selector("body[data-ready='1']", timeout=60_000)
    assert page.locator(".swatch").all_inner_texts() == list(PALETTE)
    assert page.locator(".model .select-model").count() == 2

    draw(page, [("facade", 0.05, 0.05, 0.95, 0.95), ("window", 0.15, 0.15, 0.4, 0.4),
                ("window", 0.6, 0.15, 0.85, 0.4), ("door", 0.4, 0.65, 0.6, 0.95)])
    first_label, first = translate(page, 2)
    assert at(first_label, 0.27, 0.27) == PALETTE["window"] and at(first_label, 0.5, 0.8) == PALETTE["door"]
    assert at(first_label, 0.5, 0.5) == PALETTE["facade"] and at(first_label, 0.01, 0.01) == PALETTE["background"]

    draw(page, [("facade", 0.0, 0.2, 1.0, 1.0), ("shop", 0.0, 0.7, 1.0, 1.0), ("balcony", 0.1, 0.45, 0.9, 0.55),
                ("window", 0.3, 0.3, 0.7, 0.45)])
    second_label, second = translate(page, 4)
    assert at(second_label, 0.5, 0.85) == PALETTE["shop"] and at(second_label, 0.5, 0.1) == PALETTE["background"]
    assert (first_label != second_label).any()
    for name in ("pix2pix", "ddim"):
        assert first[name].shape == second[name].shape == (SIZE, SIZE, 3), name
        assert (first[name] != second[name]).any(), f"{name}: the same output for two different label maps"
        caption = page.locator(f".card[data-model='{name}'] figcaption").inner_text()
        assert name in caption and " ms" in caption and "PNG" in caption
    assert page.locator(".card[data-model='ddim'] a.download").get_attribute("download") == "ddim-seed0.png"

    page.click(".card[data-model='ddim'] button.again")  # another draw of the same label map
    page.wait_for_selector("body[data-pending='0'][data-translations='5']", timeout=120_000)
    seed = page.locator(".card[data-model='ddim']").get_attribute("data-seed")
    assert seed not in ("", "0") and page.locator(".model[data-model='ddim'] input[name='seed']").input_value() == seed
    again = decode(page.locator(".card[data-model='ddim'] img.output").get_attribute("src"))
    assert (again != second["ddim"]).any()
    page.screenshot(path=str(tmp_path / "demo.png"), full_page=True)
    assert os.path.getsize(tmp_path / "demo.png") > 10_000

    page.set_input_files("#upload", files=[{"name": "notes.png", "mimeType": "image/png", "buffer": b"not an image"}])
    page.wait_for_selector("#error:not([hidden])", timeout=30_000)
    assert "notes.png: upload: not an image" in page.locator("#error").inner_text()

    assert not page.errors
    own = server.url.rstrip("/")
    assert page.requests and all(u.startswith((own + "/", "data:")) for u in page.requests), page.requests
