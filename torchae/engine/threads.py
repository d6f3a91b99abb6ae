"""CPU threads that follow the machine's load: a busy core costs its share, not a multiple of the step.

torch runs each operation on a team of OpenMP threads, one per core by default, that meet at a barrier after
every operation. When another process keeps a core busy, the thread that shares that core is descheduled for a
whole time slice now and then, and every barrier waits for it: a step of the article's tiny models (hundreds of
small operations) then takes several times longer, though only one core in two is taken. With as many threads as
cores are free, no barrier waits on a busy core.

:class:`CpuThreads` measures how much of the cores this process may run on went to other processes since the
previous epoch (``/proc/stat`` against this process's own CPU time) and sets ``torch.set_num_threads`` to the cores
left, between 1 and the count torch started with. It adds no work to a step: two reads of small files per epoch.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch

__all__ = ["CpuThreads", "busy_cores_of_others"]

STAT = Path("/proc/stat")


def _cpu_jiffies(cpus: set[int]) -> tuple[int, int] | None:
    """Busy and total jiffies of ``cpus`` since boot, from ``/proc/stat`` (``None`` where there is none)."""
    try:
        lines = STAT.read_text().splitlines()
    except OSError:
        return None
    busy = total = 0
    for line in lines:
        name, *fields = line.split()
        if not name.startswith("cpu") or name == "cpu" or int(name[3:]) not in cpus:
            continue
        values = [int(field) for field in fields]
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle and iowait
        total += sum(values[:8])  # guest time is already counted in user
        busy += sum(values[:8]) - idle
    return busy, total


def _own_seconds() -> float:
    times = os.times()
    return times.user + times.system


class _Sample:
    def __init__(self, cpus: set[int]) -> None:
        self.jiffies = _cpu_jiffies(cpus)
        self.own = _own_seconds()
        self.wall = time.monotonic()


def busy_cores_of_others(before: _Sample, after: _Sample, cores: int) -> float | None:
    """How many of ``cores`` other processes kept busy between two samples (``None`` if unknown)."""
    if before.jiffies is None or after.jiffies is None:
        return None
    busy = after.jiffies[0] - before.jiffies[0]
    total = after.jiffies[1] - before.jiffies[1]
    if total <= 0:
        return None
    all_busy = cores * busy / total  # cores' worth of busy time, everyone's
    elapsed = after.wall - before.wall
    own = (after.own - before.own) / elapsed if elapsed > 0 else 0.0
    return max(0.0, all_busy - own)


class CpuThreads:
    """Sets torch's intra-op threads to the cores other processes leave free, epoch by epoch.

    Args:
        most: the most threads to use (torch's count when the fit starts, by default).
    """

    def __init__(self, most: int | None = None) -> None:
        self.cpus = set(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count()))
        self.most = most or torch.get_num_threads()
        self.started_with = torch.get_num_threads()
        self.threads = self.started_with
        self._sample: _Sample | None = None

    def start(self, probe_seconds: float = 0.05) -> int:
        """Sample the load over a short pause before the first epoch; returns the threads set."""
        self._sample = _Sample(self.cpus)
        time.sleep(probe_seconds)
        return self.update()

    def update(self) -> int:
        """Set the threads from the load since the previous sample; returns the threads set."""
        now = _Sample(self.cpus)
        others = busy_cores_of_others(self._sample, now, len(self.cpus)) if self._sample is not None else None
        self._sample = now
        if others is None:
            return self.threads
        free = max(1, min(self.most, round(len(self.cpus) - others)))
        if free != self.threads:
            torch.set_num_threads(free)
            self.threads = free
        return free

    def restore(self) -> None:
        torch.set_num_threads(self.started_with)
        self.threads = self.started_with
