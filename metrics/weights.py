"""Finding pretrained weight files: explicit path, weights folders, Keras cache, an installed package, download.

The order:

1. ``explicit_path``: a file is used as given (it may be a converted or re-saved copy; the
   format readers check its contents; a checksum mismatch is only logged as a warning);
   a folder is searched like 2.
2. ``$I2I_WEIGHTS_DIR/<filename>``.
3. ``$I2I_SHARED_DIR/weights/<filename>`` (default: ``shared/weights`` beside the repository, where the
   project keeps its offline weights).
4. The Keras cache ``$KERAS_HOME/models/<filename>`` (default ``~/.keras/models``), where
   ``keras.applications`` keeps its own downloads.
5. For :func:`find_any_weights`: the folder of an installed Python package that ships the file, found
   without importing the package.
6. For :func:`find_weights` with a URL: ``keras.utils.get_file`` from the official URL into the Keras cache.

A file found in 2-4 must match the official checksum; a truncated or corrupt copy is
reported, never silently used. If nothing is found and the download fails (offline), one
:class:`WeightsError` names the file, the URL and the folders where it can be put.
"""

import hashlib
import importlib.util
import logging
import os

from data.errors import I2IError

log = logging.getLogger("i2i")

WEIGHTS_DIR_ENV = "I2I_WEIGHTS_DIR"
SHARED_DIR_ENV = "I2I_SHARED_DIR"
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class WeightsError(I2IError):
    """A pretrained weight file is missing, corrupt or not the expected network."""


def keras_cache_dir():
    """The folder where ``keras.applications`` keeps downloaded weights (honours ``KERAS_HOME``)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(home, "models")


def file_digest(path, algorithm):
    """Hex digest (``"sha256"`` or ``"md5"``) of a file, read in 1 MiB chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _checksum_mismatch(path, sha256, md5):
    """None if the file matches the given checksums, else what differs.

    ``sha256`` may be a prefix (torch hub file names carry the first 8 hex digits).
    """
    for algorithm, expected in (("sha256", sha256), ("md5", md5)):
        if not expected:
            continue
        actual = file_digest(path, algorithm)
        if not actual.startswith(expected.lower()):
            size = os.path.getsize(path)
            return f"its {algorithm} is {actual[: len(expected)]}, expected {expected} ({size:,} bytes)"
    return None


def shared_weights_dir():
    """``$I2I_SHARED_DIR/weights``, by default ``shared/weights`` beside the repository."""
    shared = os.environ.get(SHARED_DIR_ENV) or os.path.join(os.path.dirname(REPO_ROOT), "shared")
    return os.path.join(shared, "weights")


def package_dir(name):
    """The folder of the installed package ``name``, or None; the package is not imported (it may need torch)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    locations = list(getattr(spec, "submodule_search_locations", None) or []) if spec else []
    return locations[0] if locations else None


def _search_dirs(explicit_dir, package=None):
    dirs = []
    if explicit_dir:
        dirs.append(("the given folder", explicit_dir))
    if os.environ.get(WEIGHTS_DIR_ENV):
        dirs.append((f"${WEIGHTS_DIR_ENV}", os.environ[WEIGHTS_DIR_ENV]))
    dirs.append((f"${SHARED_DIR_ENV}/weights", shared_weights_dir()))
    dirs.append(("the Keras cache", keras_cache_dir()))
    if package and package_dir(package):
        dirs.append((f"the installed {package} package", package_dir(package)))
    return dirs


def _where_to_put_it(filename, explicit_dir):
    places = [f"{folder} ({label})" for label, folder in _search_dirs(explicit_dir)]
    if not os.environ.get(WEIGHTS_DIR_ENV):
        places.append(f"any folder named by ${WEIGHTS_DIR_ENV}")
    return f"put {filename} in one of: " + "; ".join(places) + ", or pass its path explicitly"


def _download(filename, url, sha256, md5):
    """Download into the Keras cache with ``keras.utils.get_file``; returns the path."""
    import keras  # imported here so that the readers work without TensorFlow

    full_sha256 = sha256 if sha256 and len(sha256) == 64 else None
    file_hash = full_sha256 or md5
    cache_home = os.path.dirname(keras_cache_dir())
    return keras.utils.get_file(
        filename, url, file_hash=file_hash, cache_subdir="models", cache_dir=cache_home
    )


def find_any_weights(candidates, *, explicit_path=None, package=None, install_hint=None):
    """Local path of the first of several weight files (``[(filename, {"sha256": ...}), ...]``, equivalent copies
    of one network) found in the folders above, with its checksum checked; no download.

    An explicit file is used as given, with a warning if it matches none of the official checksums.
    Raises :class:`WeightsError` naming the files and where to put them.
    """
    names = " or ".join(name for name, _ in candidates)
    explicit_dir = None
    if explicit_path is not None:
        explicit_path = os.fspath(explicit_path)
        if os.path.isfile(explicit_path):
            if all(_checksum_mismatch(explicit_path, c.get("sha256"), c.get("md5")) for _, c in candidates):
                log.warning("%s: not the official %s (checksum differs); using it as given: its scores are not "
                            "comparable with published ones", explicit_path, names)
            return explicit_path
        if not os.path.isdir(explicit_path):
            raise WeightsError(f"{explicit_path}: weight file not found (expected {names})")
        explicit_dir = explicit_path
    for _, folder in _search_dirs(explicit_dir, package):
        for filename, checksum in candidates:
            candidate = os.path.join(folder, filename)
            if os.path.isfile(candidate):
                mismatch = _checksum_mismatch(candidate, checksum.get("sha256"), checksum.get("md5"))
                if mismatch:
                    raise WeightsError(f"{candidate}: {mismatch}: the file is truncated or corrupt, or another "
                                       "file under the official name (pass a re-saved copy explicitly)")
                return candidate
    places = "; ".join(f"{folder} ({label})" for label, folder in _search_dirs(explicit_dir, package))
    hint = f", or `{install_hint}`" if install_hint else ""
    raise WeightsError(f"{names}: weight file not found (nothing is downloaded); put it in one of: {places}; "
                       f"or any folder named by ${WEIGHTS_DIR_ENV}{hint}, or pass its path explicitly")


def find_weights(filename, *, url=None, sha256=None, md5=None, explicit_path=None):
    """Local path of the weight file ``filename``, found or downloaded as described above.

    ``sha256`` (full or a prefix of at least 8 hex digits) and ``md5`` are the official
    file's checksums. Raises :class:`WeightsError` naming the file and what to do.
    """
    explicit_dir = None
    if explicit_path is not None:
        explicit_path = os.fspath(explicit_path)
        if os.path.isfile(explicit_path):
            mismatch = _checksum_mismatch(explicit_path, sha256, md5)
            if mismatch:
                log.warning("%s: not the official %s (%s); using it as given: its scores are not comparable "
                            "with published ones", explicit_path, filename, mismatch)
            return explicit_path
        if not os.path.isdir(explicit_path):
            raise WeightsError(f"{explicit_path}: weight file not found (expected {filename})")
        explicit_dir = explicit_path

    for _, folder in _search_dirs(explicit_dir):
        candidate = os.path.join(folder, filename)
        if os.path.isfile(candidate):
            mismatch = _checksum_mismatch(candidate, sha256, md5)
            if mismatch:
                hint = f"; delete it and download it again from {url}" if url else ""
                raise WeightsError(f"{candidate}: {mismatch}: the file is truncated or corrupt{hint}")
            return candidate

    where = _where_to_put_it(filename, explicit_dir)
    if not url:
        raise WeightsError(f"{filename}: weight file not found; {where}")
    try:
        path = _download(filename, url, sha256, md5)
    except Exception as e:  # urllib, HTTP and Keras' own hash errors all end here
        partial = os.path.join(keras_cache_dir(), filename)
        if os.path.isfile(partial):  # it was not there before: Keras keeps a download whose hash is wrong
            os.remove(partial)
        raise WeightsError(
            f"{filename}: weight file not found locally and the download from {url} failed "
            f"({type(e).__name__}: {e}); download it on a machine with network access and {where}"
        ) from None
    mismatch = _checksum_mismatch(path, sha256, md5)
    if mismatch:
        os.remove(path)
        raise WeightsError(f"{filename}: the file downloaded from {url} was removed: {mismatch}")
    return path
