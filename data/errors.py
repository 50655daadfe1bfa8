"""Errors a user can act on, and :class:`I2IError`, the root of every error class of the project.

Every command catches :class:`I2IError` and prints its message (which names the
file and the problem) instead of a stack trace, then exits with status 2. Each package defines
its own subclasses next to the code that raises them (``metrics.weights.WeightsError``,
``train_scripts.compare.CompareError``, ...).
"""


class I2IError(Exception):
    """The project's root error: the errors that are reported to the user as plain text."""


class ImageError(I2IError):
    """An image file cannot be used: names the file and says why."""

    def __init__(self, path, problem):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class LayoutError(I2IError):
    """A data folder does not have one of the layouts we read."""
