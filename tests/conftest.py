"""Shared test setup: quiet TensorFlow, the shared data/weights folder, small thread pools."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("I2I_SHARED_DIR", os.path.join(os.path.dirname(REPO), "shared"))
if os.path.isdir(os.path.join(SHARED, "weights")):
    os.environ.setdefault("I2I_WEIGHTS_DIR", os.path.join(SHARED, "weights"))


@pytest.fixture(scope="session")
def shared_dir():
    """The project's shared folder (real facades, pretrained weights); set I2I_SHARED_DIR to move it."""
    return SHARED


@pytest.fixture(scope="session")
def repo_dir():
    return REPO
