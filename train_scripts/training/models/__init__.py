"""One module per model that the toolkit trains: its settings dataclass (defaults and flags), presets and builder
as a ``ModelSpec`` (``SPEC``).
Listed by name in ``train_scripts/training/registry.py``; each is trained by ``train_scripts/<name>.py``."""
