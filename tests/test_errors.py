"""Every error class the project defines derives from its root error, ``data.errors.I2IError``.

Commands print an I2IError as ``error: <message>`` and exit 2; an error class outside that tree would reach the user
as a raw traceback. The classes are found by importing every module of the packages, not from a hand-kept list.
"""

import importlib
import inspect
import pkgutil

from data.errors import I2IError

PACKAGES = ("data", "losses", "metrics", "models", "train_scripts")


def project_error_classes():
    """``{qualified name: class}`` of the public exception classes defined in the packages' modules."""
    found = {}
    for package_name in PACKAGES:
        package = importlib.import_module(package_name)
        names = [package_name] + [info.name for info in pkgutil.walk_packages(package.__path__, package_name + ".")]
        for name in names:
            module = importlib.import_module(name)
            for class_name, cls in inspect.getmembers(module, inspect.isclass):
                # module-private classes (``_RefusedGlobal``) are caught inside their module and re-raised as an
                # I2IError naming the file; they never reach a user
                if issubclass(cls, BaseException) and cls.__module__ == name and not class_name.startswith("_"):
                    found[f"{name}.{class_name}"] = cls
    return found


def test_every_project_error_derives_from_the_root():
    errors = project_error_classes()
    # the walk reaches every package (a broken walk would find nothing and pass)
    for expected in ("data.errors.ImageError", "metrics.weights.WeightsError", "train_scripts.compare.CompareError",
                     "models.diffusion.schedules.DiffusionConfigError"):
        assert expected in errors
    outside = sorted(name for name, cls in errors.items() if not issubclass(cls, I2IError))
    assert not outside, f"error classes not derived from data.errors.I2IError: {outside}"

