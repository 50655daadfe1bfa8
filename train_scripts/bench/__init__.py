"""Benchmarks: speed on this machine, printed as figures and never asserted (``python -m train_scripts.bench.<name>``):
``training`` (training steps/s, input pipeline), ``metrics`` (backbones, the five metrics, intervals), ``sampling``
(seconds per translated image), ``workers`` (one process against several workers), ``export`` (float16 against
float32 exports). Run them as modules: by path, ``bench/metrics.py`` would hide the ``metrics`` package."""
