"""What one sample reads: CPU and memory, disk, network (psutil), in MLflow's metric names and
units (megabytes are 10**6 bytes, as MLflow's).

Each sampler's ``sample()`` returns ``{name: value}`` without the ``system/`` prefix;
``Window`` collects samples and averages them into the values logged at one step.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

MB = 1e6


class CPUSampler:
    """CPU utilisation since the previous sample (not since boot), and system memory."""

    def __init__(self) -> None:
        import psutil

        self._psutil = psutil
        self._last = psutil.cpu_times()

    def sample(self) -> dict[str, float]:
        now = self._psutil.cpu_times()
        busy = cpu_busy_percent(self._last, now)
        self._last = now
        memory = self._psutil.virtual_memory()
        return {
            "cpu_utilization_percentage": busy,
            "system_memory_usage_megabytes": memory.used / MB,
            "system_memory_usage_percentage": memory.used / memory.total * 100,
        }


def cpu_busy_percent(before: Any, after: Any) -> float:
    """Percent of CPU time spent busy between two ``psutil.cpu_times()`` readings (psutil's
    own rule: busy = all time but idle and iowait), clamped to [0, 100]."""
    total = _total(after) - _total(before)
    idle = (after.idle - before.idle) + (
        getattr(after, "iowait", 0.0) - getattr(before, "iowait", 0.0)
    )
    if total <= 0:
        return 0.0
    return min(100.0, max(0.0, (total - idle) / total * 100))


def _total(times: Any) -> float:
    # Linux counts guest time inside user time as well: psutil leaves it out of the total
    return sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)


class DiskSampler:
    """Usage of the file system holding ``path`` (the root, as MLflow)."""

    def __init__(self, path: str = os.sep) -> None:
        import psutil

        self._psutil = psutil
        self.path = path

    def sample(self) -> dict[str, float]:
        usage = self._psutil.disk_usage(self.path)
        return {
            "disk_usage_percentage": float(usage.percent),
            "disk_usage_megabytes": usage.used / MB,
            "disk_available_megabytes": usage.free / MB,
        }


class NetworkSampler:
    """Megabytes received and sent since the run's monitoring started."""

    LAST_VALUE = frozenset({"network_receive_megabytes", "network_transmit_megabytes"})

    def __init__(self) -> None:
        import psutil

        self._psutil = psutil
        start = psutil.net_io_counters()
        self._recv, self._sent = start.bytes_recv, start.bytes_sent

    def sample(self) -> dict[str, float]:
        now = self._psutil.net_io_counters()
        return {
            "network_receive_megabytes": max(0, now.bytes_recv - self._recv) / MB,
            "network_transmit_megabytes": max(0, now.bytes_sent - self._sent) / MB,
        }


class Window:
    """Samples since the last logged step; ``values()`` is what the next step logs: the mean
    of each metric rounded to 0.1 (MLflow's rounding), the last value of cumulative counters."""

    def __init__(self, last_value: Iterable[str] = NetworkSampler.LAST_VALUE) -> None:
        self._last_value = frozenset(last_value)
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}
        self._last: dict[str, float] = {}
        self.samples = 0

    def add(self, values: dict[str, float]) -> None:
        self.samples += 1
        for key, value in values.items():
            self._sums[key] = self._sums.get(key, 0.0) + value
            self._counts[key] = self._counts.get(key, 0) + 1
            self._last[key] = value

    def values(self) -> dict[str, float]:
        return {
            key: self._last[key] if key in self._last_value else round(total / self._counts[key], 1)
            for key, total in self._sums.items()
        }

    def clear(self) -> None:
        self._sums.clear()
        self._counts.clear()
        self._last.clear()
        self.samples = 0
