"""Headless matplotlib for the benchmarks' PNGs: a figure, and saving it the same way everywhere."""
from __future__ import annotations

import pathlib


def subplots(*args, **kwargs):
    """``matplotlib.pyplot.subplots`` on the Agg backend (no display needed)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def save(figure, path: pathlib.Path) -> None:
    """Lays the figure out, writes it as a 120-dpi PNG and frees it."""
    import matplotlib.pyplot as plt

    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
