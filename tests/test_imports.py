"""Every module of the five packages imports: the quick tier (``-m "not slow"``) reaches all of them, including the
scripts and tools whose own tests are slow, and a module in a folder pip would not install (no ``__init__.py``)
is caught."""

import importlib
import pkgutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("data", "models", "losses", "metrics", "train_scripts")


def walked_modules():
    """Module names found by walking each package and its subpackages with pkgutil (what an install holds)."""
    names = []
    for package in PACKAGES:
        names.append(package)
        names += [m.name for m in pkgutil.walk_packages([str(REPO / package)], prefix=package + ".")]
    return names


def source_modules():
    """Module names of every ``.py`` file under the packages' folders."""
    names = set()
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            names.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_every_source_file_is_a_module_of_its_package():
    assert set(walked_modules()) == source_modules()


@pytest.mark.parametrize("name", walked_modules())
def test_module_imports(name):
    importlib.import_module(name)
