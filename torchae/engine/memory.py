"""Keeping freed memory in the process, so that a CPU step does not fault its activations in afresh.

glibc's ``malloc`` gives large freed blocks back to the system (``munmap``, and trimming the top of the heap) and
adjusts the sizes at which it does so as a program runs. A micro-batched conv step frees and reallocates megabytes of
activations per part, and those thresholds leave it taking ~15,000-28,000 page faults per 256-image step on a 2-core
CPU (each new page is faulted in and zeroed by the kernel); with the thresholds fixed high it takes none
(``benchmarks/results/2026-12-03-zen5-conv-kernels.md``). PyTorch's CPU tuning guide recommends a caching allocator
(jemalloc, tcmalloc) for the same reason; this is glibc's own setting of the same effect, made with ``mallopt``
while the process runs, and needs nothing installed.

The freed memory stays with the process for reuse: its resident size stays at its peak instead of shrinking
between steps. glibc has no call that returns to its adaptive thresholds, so the setting lasts for the rest of the
process (the engine says so in its log line).
"""

from __future__ import annotations

import ctypes
import functools
import platform

__all__ = ["KEPT_BELOW", "keep_freed_memory"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
KEPT_BELOW = 32 * 1024 * 1024
"""Blocks up to this size come from (and go back to) the heap, not their own mappings: glibc's largest threshold on
64-bit systems. Larger ones (a whole dataset) are still mapped and unmapped on their own."""
_TRIM_ABOVE = 1024**3
"""The heap's free top is given back to the system only beyond this."""


@functools.cache
def keep_freed_memory() -> bool:
    """Fix glibc's ``malloc`` thresholds high for the rest of the process (once; later calls return the first
    answer).

    Returns:
        Whether the thresholds are now fixed: ``False`` where the C library is not glibc (macOS, musl, Windows),
        whose allocators this does not touch.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, KEPT_BELOW)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_ABOVE))
