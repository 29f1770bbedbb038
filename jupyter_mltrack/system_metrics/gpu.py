"""NVIDIA GPU metrics through NVML (``pynvml``, from the ``nvidia-ml-py`` package: extra
``[gpu]``), in MLflow's names: ``gpu_{i}_utilization_percentage``,
``gpu_{i}_memory_usage_megabytes``, ``gpu_{i}_memory_usage_percentage``,
``gpu_{i}_power_usage_watts``, ``gpu_{i}_power_usage_percentage``.

No NVML library, no driver or no GPU is the ordinary case on most machines: ``GPUSampler.open``
returns None without a word (a debug log line says why). A reading one GPU refuses (power on
some boards) is left out of that sample, also silently.
"""

from __future__ import annotations

import logging
from typing import Any

from jupyter_mltrack.system_metrics.samplers import MB

_log = logging.getLogger(__name__)


def gpu_values(
    index: int,
    memory: tuple[float, float] | None = None,
    utilization: float | None = None,
    power: tuple[float, float] | None = None,
) -> dict[str, float]:
    """The metrics of GPU ``index`` from NVML's raw readings.

    Parameters
    ----------
    index : int
        The GPU's NVML index.
    memory : (used bytes, total bytes), optional
    utilization : float, optional
        Percent of time a kernel ran (``nvmlDeviceGetUtilizationRates().gpu``).
    power : (milliwatts, enforced limit in milliwatts), optional
    """
    out: dict[str, float] = {}
    if memory is not None:
        used, total = memory
        out[f"gpu_{index}_memory_usage_megabytes"] = used / MB
        if total > 0:
            out[f"gpu_{index}_memory_usage_percentage"] = used / total * 100
    if utilization is not None:
        out[f"gpu_{index}_utilization_percentage"] = float(utilization)
    if power is not None:
        milliwatts, limit = power
        out[f"gpu_{index}_power_usage_watts"] = milliwatts / 1000
        if limit > 0:
            out[f"gpu_{index}_power_usage_percentage"] = milliwatts / limit * 100
    return out


class GPUSampler:
    """Reads every NVIDIA GPU of the machine through an initialised NVML."""

    def __init__(self, nvml: Any, handles: list[Any]) -> None:
        self.nvml = nvml
        self.handles = handles

    @classmethod
    def open(cls) -> GPUSampler | None:
        """A sampler when NVML loads and sees at least one GPU, else None (silently)."""
        try:
            import pynvml as nvml
        except ImportError:
            _log.debug("No GPU metrics: nvidia-ml-py is not installed (pip install nvidia-ml-py).")
            return None
        try:
            nvml.nvmlInit()
        except Exception as err:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
            _log.debug("No GPU metrics: NVML did not start (%s).", err)
            return None
        try:
            handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())]
        except Exception as err:
            _log.debug("No GPU metrics: NVML lists no GPU (%s).", err)
            handles = []
        if not handles:
            _shutdown(nvml)
            return None
        return cls(nvml, handles)

    def sample(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for index, handle in enumerate(self.handles):
            out.update(
                gpu_values(
                    index,
                    memory=self._read(self._memory, handle),
                    utilization=self._read(self._utilization, handle),
                    power=self._read(self._power, handle),
                )
            )
        return out

    def close(self) -> None:
        _shutdown(self.nvml)

    def _memory(self, handle: Any) -> tuple[float, float]:
        info = self.nvml.nvmlDeviceGetMemoryInfo(handle)
        return float(info.used), float(info.total)

    def _utilization(self, handle: Any) -> float:
        return float(self.nvml.nvmlDeviceGetUtilizationRates(handle).gpu)

    def _power(self, handle: Any) -> tuple[float, float]:
        milliwatts = self.nvml.nvmlDeviceGetPowerUsage(handle)
        return float(milliwatts), float(self.nvml.nvmlDeviceGetEnforcedPowerLimit(handle))

    @staticmethod
    def _read(read: Any, handle: Any) -> Any:
        try:
            return read(handle)
        except Exception:  # NVMLError_NotSupported on boards without that sensor
            return None


def _shutdown(nvml: Any) -> None:
    try:
        nvml.nvmlShutdown()
    except Exception:
        pass
