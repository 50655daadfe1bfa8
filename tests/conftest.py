"""Shared test setup: quiet TensorFlow, the shared data/weights folder, fixtures used by several test files, the
order in which the test files run.

Helper functions live in importable modules (``run_helpers``), not here: a test file never imports conftest."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# The train scripts' own default (set before TensorFlow is imported): in-process runs of the tests then use the same
# kernels as the scripts run in subprocesses. TensorFlow's own default depends on the CPU it runs on,
# and a run resumed in another process would differ from the uninterrupted one in the last bits.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import pytest  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("I2I_SHARED_DIR", os.path.join(os.path.dirname(REPO), "shared"))
if os.path.isdir(os.path.join(SHARED, "weights")):
    os.environ.setdefault("I2I_WEIGHTS_DIR", os.path.join(SHARED, "weights"))


# The test files that took longest in a whole run (``python -m pytest --durations=0``, 2026-12-07), longest first.
# Under ``--dist loadfile`` each file goes whole to the next free worker, in collection order: starting with the
# longest keeps both workers busy to the end, instead of one finishing a long file alone while the other waits.
LONGEST_FIRST = ("test_latent_diffusion.py", "test_distribute.py", "test_cyclegan.py", "test_distribute_diffusion.py",
                 "test_compare.py", "test_multiworker.py", "test_resume.py", "test_export.py",
                 "test_compare_seeds.py", "test_fid_weights.py", "test_ddim_learns.py", "test_cgan.py")


def pytest_collection_modifyitems(items):
    """Run the longest test files first (a stable sort: the order within a file and of the others is kept)."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.fixture(scope="session")
def shared_dir():
    """The project's shared folder (real facades, pretrained weights); set I2I_SHARED_DIR to move it."""
    return SHARED


@pytest.fixture(scope="session")
def repo_dir():
    return REPO


# ------------------------------------------------------------------ tiny training runs (run_helpers.tiny_args)

@pytest.fixture(scope="session")
def tiny_facades(tmp_path_factory):
    """A 32 px synthetic facades folder in the pix2pix A|B layout: 8 train, 4 val, 4 test pairs."""
    from data.synthetic import write_ab_folder

    root = tmp_path_factory.mktemp("tiny_facades")
    write_ab_folder(root, size=32, counts={"train": 8, "val": 4, "test": 4})
    return root


@pytest.fixture(scope="session", autouse=True)
def synthetic_splits_rendered_once():
    """Each synthetic split at each size is rendered once per pytest process, not by every ``load``: a split is a
    pure function of (split, size, seed) and takes seconds to draw (a learning test loads its training and
    validation splits again after the run has). Every caller gets its own copy of the arrays."""
    from data import synthetic

    render, rendered = synthetic.make_split, {}

    def make_split(split, size=256, seed=0):
        if size > 128:  # a 256 px set is 240 MB: rendered anew
            return render(split, size=size, seed=seed)
        if (split, size, seed) not in rendered:
            rendered[split, size, seed] = render(split, size=size, seed=seed)
        return tuple(a.copy() for a in rendered[split, size, seed])

    synthetic.make_split = make_split
    yield
    synthetic.make_split = render


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """A user without the weight files and without network: empty weight folders, downloads fail."""
    import keras

    def no_network(*args, **kwargs):
        raise OSError("network disabled in tests")

    monkeypatch.setattr(keras.utils, "get_file", no_network)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setenv("I2I_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setenv("I2I_SHARED_DIR", str(tmp_path / "shared"))  # its weights/ does not exist
    (tmp_path / "weights").mkdir()
    return tmp_path
