"""Atomic, versioned push of a SavedModel into a TF Serving model base path.

TF Serving watches ``<base>/<integer version>/`` and loads the highest version it finds. Copying
a model straight into ``<base>/<version>/`` lets the server (or any reader) see a half-written
version. ``push_atomically`` copies into a hidden staging directory in the same base path (a name
that is not an integer, which TF Serving ignores) and renames it to its version in one step; if
the copy fails, the staging directory is removed and nothing else changes.

If the newest version already is this model (the same SavedModel fingerprint), nothing is copied
and that version is returned: a re-run that blesses the same model again (a scheduled run with no
new data) does not make TF Serving load a duplicate.

The rename is atomic on POSIX filesystems (local disk, NFS). Object stores (GCS, S3) have no
atomic directory rename; there TF Serving relies on ``saved_model.pb`` being written last, which
``push_atomically`` also does.

Example::

    version_dir = push_atomically("/tmp/trainer/serving_model", "saved_models/ranker")
    # -> "saved_models/ranker/1763900000"
"""
from __future__ import annotations

import os
import time
import uuid

import tensorflow as tf

STAGING_PREFIX = ".incoming-"
_LAST_FILE = "saved_model.pb"
_FINGERPRINT_FILE = "fingerprint.pb"   # hashes of the graph, signatures and variables


def model_versions(base_directory: str) -> list[int]:
    """The integer version directories under ``base_directory``, ascending (none if it is missing)."""
    if not tf.io.gfile.isdir(base_directory):
        return []
    names = (name.rstrip("/") for name in tf.io.gfile.listdir(base_directory))
    return sorted(int(name) for name in names if name.isdigit())


def next_version(base_directory: str, now: float | None = None) -> int:
    """The current Unix time, or one past the newest version if that is not older (versions only grow)."""
    newest = max(model_versions(base_directory), default=0)
    return max(int(time.time() if now is None else now), newest + 1)


def _fingerprint(model_dir: str) -> bytes | None:
    path = os.path.join(model_dir, _FINGERPRINT_FILE)
    return tf.io.gfile.GFile(path, "rb").read() if tf.io.gfile.exists(path) else None


def served_copy(model_dir: str, base_directory: str) -> str | None:
    """The newest version directory if it holds the same SavedModel as ``model_dir``, else None."""
    versions, fingerprint = model_versions(base_directory), _fingerprint(model_dir)
    if not versions or fingerprint is None:
        return None
    newest = os.path.join(base_directory, str(versions[-1]))
    return newest if _fingerprint(newest) == fingerprint else None


def _copy_tree(source: str, target: str) -> None:
    """Copies ``source`` into ``target``, ``saved_model.pb`` last."""
    files = []
    for directory, _, names in tf.io.gfile.walk(source):
        relative = os.path.relpath(directory, source)
        tf.io.gfile.makedirs(os.path.join(target, relative))
        files += [os.path.join(relative, name) for name in names]
    files.sort(key=lambda path: path == _LAST_FILE)
    for path in files:
        tf.io.gfile.copy(os.path.join(source, path), os.path.join(target, path), overwrite=False)


def push_atomically(model_dir: str, base_directory: str) -> str:
    """Copies the SavedModel in ``model_dir`` to ``<base_directory>/<new version>/`` atomically.

    Returns:
      The new version directory (or the newest one, if it already holds this model).
    Raises:
      FileNotFoundError: ``model_dir`` holds no ``saved_model.pb`` (nothing is written).
    """
    if not tf.io.gfile.exists(os.path.join(model_dir, _LAST_FILE)):
        raise FileNotFoundError(f"No SavedModel to push: {model_dir} has no {_LAST_FILE}.")
    already_served = served_copy(model_dir, base_directory)
    if already_served:
        return already_served
    tf.io.gfile.makedirs(base_directory)
    version = next_version(base_directory)
    staging = os.path.join(base_directory, f"{STAGING_PREFIX}{version}-{uuid.uuid4().hex[:8]}")
    try:
        _copy_tree(model_dir, staging)
        target = os.path.join(base_directory, str(version))
        tf.io.gfile.rename(staging, target, overwrite=False)
    finally:
        if tf.io.gfile.exists(staging):
            tf.io.gfile.rmtree(staging)
    return target
