"""One module per model that the toolkit trains: its presets, builder and flags as a ``ModelSpec`` (``SPEC``).
Listed by name in ``train_scripts/training/registry.py``; each is trained by ``train_scripts/<name>.py``."""
