"""The toolkit's commands and the library behind them.

Commands (``python train_scripts/<name>.py`` or ``python -m train_scripts.<name>``): one train script per model
(``cvae``, ``cgan``, ``pix2pix``, ``cyclegan``, ``ddim``, ``autoencoder``), the tools (``evaluate``, ``compare``,
``translate``, ``export``, ``launch``, ``facade_parser``), the demo (``python -m train_scripts.demo``) and the
benchmarks (``python -m train_scripts.bench.<name>``). The library they share is ``train_scripts.training``: the
model registry and the training glue. No module imports a command.

Importing the package sets TensorFlow's environment defaults, which must precede TensorFlow's import: oneDNN kernels
on, and TensorFlow's C++ log without its INFO and WARNING lines. A value set by the user is kept.
"""

import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
