"""Peak resident memory of this process over a stretch of work (Linux: ``/proc/self``).

``reset_peak()`` clears the kernel's high-water mark (``VmHWM``) so that ``peak_rss_mb()`` then
reports the peak since the reset, not since the process started: one benchmark run's peak, which
includes whatever the process already held (the dataset) at the reset."""
from __future__ import annotations

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
