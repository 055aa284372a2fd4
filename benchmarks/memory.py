"""Peak resident memory of this process over a stretch of work (Linux: ``/proc/self``).

``reset_peak()`` clears the kernel's high-water mark (``VmHWM``) so that ``peak_rss_mb()`` then
reports the peak since the reset, not since the process started: one benchmark run's peak, which
includes whatever the process already held (the dataset) at the reset."""
from __future__ import annotations

import ctypes
import re


def reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # 5: reset the peak RSS (see proc(5))


def rss_mb() -> float:
    """The resident memory this process holds now."""
    with open("/proc/self/status") as handle:
        return int(re.search(r"VmRSS:\s+(\d+) kB", handle.read()).group(1)) / 1024


def peak_rss_mb() -> float:
    with open("/proc/self/status") as handle:
        return int(re.search(r"VmHWM:\s+(\d+) kB", handle.read()).group(1)) / 1024


def release_free_memory() -> None:
    """Hands freed heap memory back to the system (glibc's ``malloc_trim``; elsewhere a no-op).

    glibc keeps freed small blocks in its heap for reuse. After generating a long-history block
    (millions of small temporaries) the process held ~0.4 GB more than its data until this ran
    (synthetic_fine_L10000: 1,175 MB resident, 748 MB after). A training step later reuses only
    part of that freed heap, so a run's peak sat 0.2-0.3 GB higher without the trim (HiSAC)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.malloc_trim(0)
