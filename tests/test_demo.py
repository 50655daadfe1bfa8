"""The demo's server (no browser): page and assets, translations equal to the run's own model, diffusion settings and
seeds, bad uploads and requests, unloadable runs, concurrent requests and a burst of them, the command line
(by path and as a module)."""

import base64
import concurrent.futures
import http.client
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import types
import urllib.request

import numpy as np
import pytest
from PIL import Image

from data.layouts import find_pairs
from data.pipeline import to_model_range, to_uint8
from data.sources import read_pair, resize
from data.synthetic import PALETTE, make_pairs
from run_helpers import tiny_args
from train_scripts.demo.app import DemoApp, Examples
from train_scripts.demo.runs import display_names, finished_runs, resolve_runs
from train_scripts.demo.server import PAGE_DIR, make_server
from train_scripts.demo.translators import load_models
from train_scripts.training.inference import load_trained
from train_scripts.training.models import cvae, ddim, pix2pix
from train_scripts.training.runner import main as train_main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZES = {"pix2pix": 32, "ddim": 32, "cvae": 16}  # the canvas is the largest: 32


# ------------------------------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_facades):
    """Tiny trained runs (pix2pix and ddim at 32 px, cvae at 16 px) and two run folders that cannot be loaded."""
    root = tmp_path_factory.mktemp("demo_runs")
    for name, spec in (("pix2pix", pix2pix.SPEC), ("ddim", ddim.SPEC), ("cvae", cvae.SPEC)):
        args = tiny_args(name, tiny_facades, image_size=SIZES[name])
        assert train_main(spec, [*args, "--out", str(root / "compare" / name)]) == 0
    bad = root / "bad"
    (bad / "missing-weights").mkdir(parents=True)
    shutil.copy(root / "compare" / "pix2pix" / "config.json", bad / "missing-weights" / "config.json")
    (bad / "no-such-model").mkdir()
    (bad / "no-such-model" / "config.json").write_text(json.dumps({"model": "nosuchmodel", "config": {}}))
    return types.SimpleNamespace(root=root, compare=root / "compare", bad=bad, data=tiny_facades)


@pytest.fixture(scope="module")
def server(runs):
    """The demo app on a free 127.0.0.1 port, serving from a thread of this process."""
    run_dirs, problems = resolve_runs([str(runs.compare), str(runs.bad / "missing-weights"),
                                            str(runs.bad / "no-such-model")], "unused")
    assert not problems
    models, failures = load_models(run_dirs)
    app = DemoApp(models, failures, max_body_bytes=4 * 2 ** 20)
    httpd = make_server(app, 0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    port = httpd.server_address[1]
    yield types.SimpleNamespace(app=app, port=port, url=f"http://127.0.0.1:{port}")
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def references(runs):
    """``reference(name, label, **translate_kwargs)``: what a freshly loaded run's ``model.translate`` gives for
    ``label`` (uint8, canvas size) resized to the run's resolution as the data loaders resize."""
    loaded = {}

    def reference(name, label, **kwargs):
        if name not in loaded or name == "cvae":  # the CVAE's z comes from its seed generator: load it afresh
            loaded[name] = load_trained(runs.compare / name)[2]
        model = loaded[name]
        return to_uint8(model.translate(to_model_range(resize(label, SIZES[name])[None]), **kwargs))[0]

    return reference


# ------------------------------------------------------------------------------------------ helpers

def request(server, method, path, body=None, raw=None, headers=None):
    """(status, parsed JSON or bytes, headers) of one request."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
    response = conn.getresponse()
    payload = response.read()
    conn.close()
    if response.getheader("Content-Type", "").startswith("application/json"):
        payload = json.loads(payload)
    return response.status, payload, response


def png_url(image, mode=None, fmt="PNG"):
    buffer = io.BytesIO()
    (Image.fromarray(image, mode) if isinstance(image, np.ndarray) else image).save(buffer, format=fmt)
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(buffer.getvalue()).decode()


def decode(url):
    assert url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))


def labels(n=3, size=32):
    """Synthetic label maps (val indices) at the canvas size: in the palette, distinct."""
    return make_pairs(n, size=size, seed=0, start=400)[0]


def translate(server, label, models=None, settings=None, expect=200):
    status, payload, _ = request(server, "POST", "/api/translate",
                                 {"label": png_url(label), "models": models, "settings": settings or {}})
    assert status == expect, payload
    return payload if expect != 200 else {o["model"]: o for o in payload["outputs"]}


# ------------------------------------------------------------------------------------------ the page

@pytest.mark.slow
def test_page_assets_and_model_list(server, runs):
    status, html, response = request(server, "GET", "/")
    assert status == 200 and response.getheader("Content-Type").startswith("text/html")
    html = html.decode()
    assert '<canvas id="canvas"' in html and 'src="/demo.js"' in html and 'href="/demo.css"' in html
    csp = response.getheader("Content-Security-Policy")
    assert "default-src 'self'" in csp and "connect-src 'self'" in csp  # the browser may fetch from nowhere else
    for path, kind in (("/demo.js", "text/javascript"), ("/demo.css", "text/css")):
        status, body, response = request(server, "GET", path)
        assert status == 200 and response.getheader("Content-Type").startswith(kind) and len(body) > 1000
    for name in os.listdir(PAGE_DIR):  # offline: no URL of any other host in the page's files
        with open(os.path.join(PAGE_DIR, name)) as f:
            assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", f.read(), re.I), name
    status, info, _ = request(server, "GET", "/api/models")
    assert status == 200
    assert info["canvas_size"] == 32
    assert [(p["name"], tuple(p["color"])) for p in info["palette"]] == list(PALETTE.items())
    assert {m["name"]: (m["model"], m["resolution"], m["diffusion"]) for m in info["models"]} == {
        "pix2pix": ("pix2pix", 32, False), "ddim": ("ddim", 32, True), "cvae": ("cvae", 16, False)}
    assert [m["name"] for m in info["models"]] == ["cvae", "ddim", "pix2pix"]  # compare.py's model order, then by name
    ddim_info = next(m for m in info["models"] if m["name"] == "ddim")
    assert ddim_info["defaults"]["sampling_steps"] == 2 and ddim_info["choices"] == {"sampler": ["ddim", "ddpm"]}
    assert ddim_info["settings"] == ["sampler", "sampling_steps", "eta", "guidance"]  # the spec's sampler settings
    cvae_info, pix2pix_info = (next(m for m in info["models"] if m["name"] == n) for n in ("cvae", "pix2pix"))
    assert cvae_info["seeded"] is True and cvae_info["defaults"] == {"seed": 0}  # the run's seed
    assert pix2pix_info["seeded"] is False and pix2pix_info["defaults"] == {} and pix2pix_info["settings"] == []
    status, missing, _ = request(server, "GET", "/nope.html")
    assert status == 404 and "no such page" in missing["error"]


@pytest.mark.slow
def test_unloadable_runs_are_reported_and_the_others_served(server, runs):
    _, info, _ = request(server, "GET", "/api/models")
    failed = {os.path.basename(f["run_dir"]): f["error"] for f in info["failed"]}
    assert set(failed) == {"missing-weights", "no-such-model"}
    assert "model.weights.h5: missing" in failed["missing-weights"]
    assert "unknown model 'nosuchmodel'" in failed["no-such-model"]
    payload = translate(server, labels(1)[0], ["missing-weights"], expect=404)
    assert "failed to load" in payload["error"] and "model.weights.h5: missing" in payload["error"]
    assert len(translate(server, labels(1)[0])) == 3


@pytest.mark.slow
def test_examples_come_from_the_runs_data_folder_or_the_synthetic_generator(server, runs):
    status, example, _ = request(server, "GET", "/api/example?index=5")  # 4 val pairs: index 5 is the second
    assert status == 200 and example["index"] == 1
    expected = resize(read_pair(find_pairs(runs.data, "val")[1])[0], 32)
    np.testing.assert_array_equal(decode(example["image"]), expected)
    status, bad, _ = request(server, "GET", "/api/example?index=x")
    assert status == 400 and "integer" in bad["error"]
    synthetic = Examples([types.SimpleNamespace(config={"data": "synthetic"})], 24)
    label, name = synthetic.get(3)
    np.testing.assert_array_equal(label, make_pairs(1, size=24, seed=0, start=403)[0][0])
    assert "synthetic" in name


# ------------------------------------------------------------------------------------------ translations

@pytest.mark.slow
def test_every_model_gives_what_its_run_gives(server, references):
    label = labels(1)[0]
    outputs = translate(server, label)
    assert sorted(outputs) == ["cvae", "ddim", "pix2pix"]
    for name, output in outputs.items():
        image = decode(output["image"])
        assert image.shape == (SIZES[name], SIZES[name], 3) and output["resolution"] == SIZES[name]
        assert output["ms"] > 0
        np.testing.assert_array_equal(image, references(name, label), err_msg=name)
    again = translate(server, label)  # the CVAE's noise restarts from its seed: the same label, the same output
    for name in outputs:
        np.testing.assert_array_equal(decode(again[name]["image"]), decode(outputs[name]["image"]), err_msg=name)
    other = translate(server, labels(2)[1], ["pix2pix"])
    assert list(other) == ["pix2pix"]
    assert (decode(other["pix2pix"]["image"]) != decode(outputs["pix2pix"]["image"])).any()


@pytest.mark.slow
def test_each_output_is_scored_against_the_drawn_label_map(server):
    """Without a parser the response says the score is unavailable; with one, each output's seg mIoU and pixel
    accuracy are those of metrics.segmentation on that output and the drawn label map."""
    from metrics.facade_parser import FacadeParser
    from metrics.segmentation import segmentation_scores
    from models.facade_parser import facade_parser_network

    label = labels(1)[0]
    status, payload, _ = request(server, "POST", "/api/translate", {"label": png_url(label), "models": ["pix2pix"]})
    assert status == 200 and payload["segmentation"]["available"] is False
    assert "unavailable" in payload["segmentation"]["note"] and payload["outputs"][0]["segmentation"] is None
    parser = FacadeParser(facade_parser_network(32, 4), 32)  # untrained: the wiring does not depend on what it learnt
    app = DemoApp(list(server.app.models.values()), [], parser=parser)
    assert app.describe()["segmentation"] == {"available": True, "note": ""}
    response = app.translate({"label": png_url(label), "models": ["pix2pix", "ddim"]})
    assert response["segmentation"]["available"] is True
    for output in response["outputs"]:
        expected = segmentation_scores(decode(output["image"])[None], label[None], parser)
        assert output["segmentation"]["seg_miou"] == pytest.approx(expected["seg_miou"], abs=1e-4)
        assert output["segmentation"]["seg_acc"] == pytest.approx(expected["seg_acc"], abs=1e-4)


@pytest.mark.slow
def test_diffusion_settings_and_seed(server, references):
    label = labels(1)[0]

    def ddim_output(**settings):
        output = translate(server, label, ["ddim"], {"ddim": settings})["ddim"]
        return decode(output["image"]), output["settings"]

    first, used = ddim_output(seed=1)
    assert used == {"sampler": "ddim", "sampling_steps": 2, "eta": 1.0, "guidance": 0.0, "seed": 1}
    np.testing.assert_array_equal(ddim_output(seed=1)[0], first)  # same seed, same photo
    np.testing.assert_array_equal(first, references("ddim", label, seed=1))
    assert (ddim_output(seed=2)[0] != first).any()  # "sample again"
    steps3, used = ddim_output(seed=1, sampling_steps=3)
    assert used["sampling_steps"] == 3 and (steps3 != first).any()
    eta0, used = ddim_output(seed=1, eta=0.0, sampler="ddim")
    assert used["eta"] == 0.0 and (eta0 != first).any()
    np.testing.assert_array_equal(eta0, references("ddim", label, seed=1, eta=0.0))
    # the CVAE's noise can be reseeded too, in any order of requests; pix2pix takes no seed
    def cvae_output(seed):
        return decode(translate(server, label, ["cvae"], {"cvae": {"seed": seed}})["cvae"]["image"])

    cvae_5 = cvae_output(5)
    cvae_6 = cvae_output(6)
    np.testing.assert_array_equal(cvae_output(5), cvae_5)
    assert (cvae_6 != cvae_5).any()
    np.testing.assert_array_equal(cvae_6, references("cvae", label, seed=6))  # what translate(seed=6) of the run gives
    np.testing.assert_array_equal(cvae_output(0), references("cvae", label))  # 0: the run's seed, its own noise
    refusals = [({"ddim": {"sampling_steps": 0}}, "ddim: the number of sampling steps must be a positive integer"),
                ({"ddim": {"sampling_steps": 1001}}, "sampling_steps must be at most 1000"),
                ({"ddim": {"sampling_steps": "many"}}, "sampling_steps must be an integer"),
                ({"ddim": {"sampler": "euler"}}, "choose sampler from ddim, ddpm"),
                ({"ddim": {"guidance": 2.0}}, "ddim: guidance needs a model trained with condition dropout"),
                ({"ddim": {"eta": -1}}, "ddim: DDIM eta must be >= 0"),
                ({"ddim": {"seed": -3}}, "seed must be between 0"),
                ({"ddim": {"temperature": 1}}, "unknown setting(s) temperature"),
                ({"pix2pix": {"seed": 1}}, "pix2pix: unknown setting(s) seed"),
                ({"nope": {}}, "settings for unknown model(s) 'nope'")]
    for settings, message in refusals:
        payload = translate(server, label, None, settings, expect=404 if "nope" in settings else 400)
        assert message in payload["error"], (settings, payload)


@pytest.mark.slow
def test_ten_requests_at_once(server, references):
    maps = labels(3)
    expected = {i: {n: references(n, maps[i]) for n in SIZES} for i in range(3)}

    def one(i):
        return i % 3, translate(server, maps[i % 3])

    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        results = list(pool.map(one, range(10)))
    assert len(results) == 10
    for i, outputs in results:
        assert sorted(outputs) == sorted(SIZES)
        for name, output in outputs.items():
            np.testing.assert_array_equal(decode(output["image"]), expected[i][name], err_msg=f"{name} of map {i}")


def test_a_burst_of_fifty_requests_is_queued_not_reset(server):
    """50 clients connecting at the same moment all get their translation: the listen backlog queues the burst (with
    the standard library's backlog of 5, some connections were reset)."""
    body = json.dumps({"label": png_url(labels(1)[0]), "models": ["pix2pix"]}).encode()
    together = threading.Barrier(50)

    def one(_):
        together.wait(timeout=120)
        try:
            return request(server, "POST", "/api/translate", raw=body)[0]
        except OSError as e:  # a reset or refused connection
            return f"{type(e).__name__}: {e}"

    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        statuses = list(pool.map(one, range(50)))
    assert statuses == [200] * 50, [s for s in statuses if s != 200]


# ------------------------------------------------------------------------------------------ bad input

@pytest.mark.slow
def test_uploads_are_checked_and_converted(server, caplog):
    label = labels(1, size=48)[0]
    status, ok, _ = request(server, "POST", "/api/label", {"image": png_url(label)})
    assert status == 200 and "resized from 48x48 to 32x32" in ok["notes"]
    np.testing.assert_array_equal(decode(ok["image"]), resize(label, 32))
    gray = label[..., 1]
    status, ok, _ = request(server, "POST", "/api/label", {"image": png_url(gray, "L")})
    assert status == 200 and "grayscale image converted to RGB" in ok["notes"]
    np.testing.assert_array_equal(decode(ok["image"]), resize(np.repeat(gray[..., None], 3, -1), 32))
    rgba = np.dstack([label, np.full(label.shape[:2], 99, np.uint8)])
    status, ok, _ = request(server, "POST", "/api/label", {"image": png_url(rgba, "RGBA")})
    assert status == 200 and "alpha channel dropped" in ok["notes"]
    np.testing.assert_array_equal(decode(ok["image"]), resize(label, 32))

    huge = Image.new("1", (4200, 4100))  # 17 million pixels in a few kB of PNG
    two_channels = Image.fromarray(np.dstack([gray, gray]), "LA")
    cmyk = Image.fromarray(label).convert("CMYK")
    bad = [({"image": "data:image/png;base64," + base64.b64encode(b"this is no image").decode()}, 415,
            "upload: not an image"),
           ({"image": png_url(huge)}, 413, "upload: 4200x4100 = 17,220,000 pixels is over the limit of 16,777,216"),
           ({"image": png_url(two_channels)}, 415, "upload: a 2-channel image (LA: L, A) cannot be a label map"),
           ({"image": png_url(cmyk, fmt="JPEG")}, 415, "upload: a 4-channel image (CMYK"),
           ({"image": "data:image/png;base64,@@@"}, 400, "upload: not valid base64"),
           ({"image": 12}, 400, "upload: expected a PNG/JPEG data URL"),
           ({}, 400, "upload: expected a PNG/JPEG data URL")]
    caplog.set_level("INFO", logger="i2i.demo")
    for body, code, message in bad:
        status, payload, _ = request(server, "POST", "/api/label", body)
        assert (status, payload["status"]) == (code, code) and message in payload["error"], payload
    assert "refused POST /api/label (HTTP 415): upload: a 2-channel image" in caplog.text  # the server log
    # the same checks for the label map of a translation
    status, payload, _ = request(server, "POST", "/api/translate", {"label": png_url(two_channels)})
    assert status == 415 and "label: a 2-channel image" in payload["error"]
    status, _, _ = request(server, "GET", "/api/models")
    assert status == 200  # still serving


@pytest.mark.slow
def test_malformed_requests(server, caplog):
    label = png_url(labels(1)[0])
    cases = [(b"{not json", 400, "malformed JSON body"),
             (b"[1, 2]", 400, "the JSON body must be an object, got list"),
             (json.dumps({"label": label, "models": ["nope"]}).encode(), 404,
              "unknown model 'nope': the models are: cvae, ddim, pix2pix"),
             (json.dumps({"label": label, "models": "pix2pix"}).encode(), 400, "models must be a list"),
             (json.dumps({"label": label, "models": []}).encode(), 400, "no model selected"),
             (json.dumps({"label": label, "settings": [1]}).encode(), 400, "settings must be an object")]
    caplog.set_level("INFO", logger="i2i.demo")
    for raw, code, message in cases:
        status, payload, _ = request(server, "POST", "/api/translate", raw=raw)
        assert status == code and message in payload["error"], payload
    assert "refused POST /api/translate (HTTP 400): malformed JSON body" in caplog.text
    status, payload, _ = request(server, "POST", "/api/everything", {})
    assert status == 404 and "no such API" in payload["error"]

    # a body over the limit is refused from its Content-Length, without being read
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(b"POST /api/translate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 1000000000\r\n\r\n{")
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert "request body of 1,000,000,000 bytes is over the limit of 4,194,304 bytes" in json.loads(body)["error"]
    # and it keeps serving
    assert len(translate(server, labels(1)[0], ["pix2pix"])) == 1


# ------------------------------------------------------------------------------------------ finding runs, CLI

def test_default_runs_are_the_finished_ones_newest_first(tmp_path):
    def run(path, finished, age):
        path.mkdir(parents=True)
        (path / "config.json").write_text("{}")
        (path / "model.weights.h5").write_bytes(b"")
        if finished is not None:
            (path / "progress.json").write_text(json.dumps({"finished": finished}))
        os.utime(path / "model.weights.h5", (time.time() - age, time.time() - age))
        (path / "samples").mkdir()
        return str(path)

    old = run(tmp_path / "a-old", True, 300)
    new = run(tmp_path / "compare-x" / "pix2pix-bce", True, 10)
    mid = run(tmp_path / "compare-x" / "cvae", True, 100)
    run(tmp_path / "unfinished", False, 0)
    run(tmp_path / "never-started", None, 0)
    assert finished_runs(str(tmp_path)) == [new, mid, old]
    assert resolve_runs([], str(tmp_path)) == ([new, mid, old], [])
    assert resolve_runs([str(tmp_path / "compare-x"), old], "x") == ([mid, new, old], [])  # compare order
    runs_, problems = resolve_runs([str(tmp_path / "nothing"), str(tmp_path / "a-old" / "samples")], "x")
    assert runs_ == [] and [p for _, p in problems] == [
        "no such folder", "not a run folder (no config.json) and no run folders in it"]
    assert display_names(["/r/c1/pix2pix", "/r/c2/pix2pix", "/r/c2/ddim"]) == ["pix2pix", "c2/pix2pix", "ddim"]


@pytest.mark.slow
def test_command_line_serves_on_localhost_and_reports_bad_runs(runs, tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "train_scripts/demo", str(runs.compare / "pix2pix"),
                             str(runs.bad / "missing-weights"), str(tmp_path / "nothing"), "--port", "0"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=open(tmp_path / "stderr", "w"), text=True,
                            env=env)
    try:
        line = proc.stdout.readline()
        match = re.search(r"serving 1 model\(s\) \(pix2pix; 2 not loaded\) at http://127\.0\.0\.1:(\d+)/", line)
        assert match, (line, (tmp_path / "stderr").read_text())
        port = int(match.group(1))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/models", timeout=60) as r:
            info = json.load(r)
        assert [m["name"] for m in info["models"]] == ["pix2pix"] and len(info["failed"]) == 2
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # this machine's address on another interface
            try:
                s.connect(("10.255.255.255", 1))
                other = s.getsockname()[0]
            except OSError:
                other = None
        if other and not other.startswith("127."):
            with pytest.raises(OSError):
                socket.create_connection((other, port), timeout=5).close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    log = (tmp_path / "stderr").read_text()
    assert "cannot load" in log and "model.weights.h5: missing" in log and "nothing: no such folder" in log
    assert "Traceback" not in log
    done = subprocess.run([sys.executable, "-m", "train_scripts.demo", "--port", "70000"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "error: --port must be between 0 and 65535" in done.stderr
