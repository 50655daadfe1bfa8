"""Draw a facade, watch every model translate it: a local web page serving trained runs.

    python -m train_scripts.demo                                # every finished run under runs/, newest first
    python -m train_scripts.demo runs/compare-synthetic-quick   # the runs of one compare.py folder
    python -m train_scripts.demo runs/pix2pix-quick runs/ddim-quick --port 8080
    python -m train_scripts.demo EXPORT_DIR                     # an exported model (export.py), as a run
    python train_scripts/demo RUN_DIR                           # the same, by path

Starts a web server on 127.0.0.1 only (``--port``, default 8000, or a free port when 8000 is taken; ``--port 0``:
always a free port) and prints its address. The page (``train_scripts/demo/page/``: plain HTML/JS/CSS served by this
server, nothing fetched from anywhere else) has a canvas at the largest resolution of the runs, the 12 facade classes
of :data:`data.synthetic.PALETTE` by name and colour, a rectangle tool, a brush, undo, clear, "load an example" (a
label map of the val split of a run's data when that data is a folder on this machine, else of the synthetic
generator) and upload of your own label map. "Translate" sends the canvas to every selected model; each output comes
back with the model's name and the milliseconds it took, and can be downloaded as PNG. The sampler settings a model's
spec declares (``ModelSpec.sampler_settings``: the diffusion models' sampler, sampling steps, eta, guidance) and, where
a seed changes the output (``ModelSpec.seeded``), the seed can be set per model; "sample again" draws another photo of
the same label map with a new seed (also for the CVAE and cGAN, whose test-time noise is then drawn from that seed).

Models are loaded once, at start, with ``inference.load_translator`` (``inference.load_trained``); every label map is
read with ``data.images.read_image`` and resized to each model's own resolution with the data loaders' ``resize``,
then translated with ``inference.translate_batch`` (``inference.translate_split``), as ``translate.py`` does. A run
that cannot be loaded is reported on the page and on stderr; the others are served. Requests are served by threads;
translations run one at a time under one lock (concurrent requests are safe, and each output's milliseconds are its
model's own time); every request translates with ``model.translate(label_maps, seed=...)`` and the request's seed or
the run's, so its test-time noise is drawn afresh from that seed: the same label map and seed give the same output,
equal to a freshly loaded run's ``model.translate``.

JSON API (all images PNG data URLs): ``GET /api/models``, ``GET /api/example?index=N``, ``POST /api/label``
``{"image"}`` (an upload, checked and resized to the canvas), ``POST /api/translate`` ``{"label", "models",
"settings": {name: {...}}}``. Bad input (not an image, over ``--max-pixels``, a channel count other than gray, RGB
or RGBA, an unknown model, a malformed body, a body over ``--max-body-mb``) gets a 4xx JSON ``{"error": ...}``.

Modules: ``runs`` (finding runs), ``translators`` (the loaded models), ``app`` (the API apart from HTTP), ``server``
(HTTP, the page), ``__main__`` (the command line).
"""
