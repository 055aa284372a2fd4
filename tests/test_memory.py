"""The benchmarks' memory helpers: handing freed heap back to the system."""
import numpy as np

from benchmarks import memory


def test_freed_small_blocks_stay_resident_until_released():
    arrays = [np.ones(1000, np.uint8) for _ in range(300_000)]  # ~0.3 GB of small heap blocks
    kept = arrays[::1000]  # a few survivors pin the heap, as a block's data does after its generator ran
    del arrays
    held = memory.rss_mb()

    memory.release_free_memory()

    assert held - memory.rss_mb() > 150
    assert len(kept) == 300
