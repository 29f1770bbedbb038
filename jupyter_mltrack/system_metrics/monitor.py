"""The sampling thread of one run, and the monitors of the runs of this process.

Timing: the thread samples at ``start + k * interval`` (k = 1, 2, ...; no drift, and a thread
that fell behind skips ahead rather than bursting). Every ``samples_before_logging`` samples
their averages are logged as the next step (0, 1, 2 ... or after the run's last system step
when a run is resumed) in one ``log_batch`` call. When the run ends, the samples of an
unfinished window are logged as a last step; a run that ends before its first sample gets one
sample then, so every monitored run has at least one point. Nothing is logged after
``finish()`` returns.

Failures never reach the run: a sampler or a store write that fails is one warning per
monitor; sampling goes on (a locked or unreachable store may come back).
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import warnings
from typing import Any

from jupyter_mltrack.system_metrics import PREFIX, Settings

_log = logging.getLogger(__name__)
JOIN_TIMEOUT_S = 30.0  # how long finish() waits for a last write to a slow store


class SystemMetricsMonitor:
    """Samples system metrics in a daemon thread and logs them into ``run_id`` through
    ``client`` (a ``Client``) until ``finish()``."""

    def __init__(
        self,
        run_id: str,
        client: Any,
        sampling_interval: float = 10.0,
        samples_before_logging: int = 1,
        node_id: str | None = None,
        resume_logging: bool = False,
    ) -> None:
        self.run_id = run_id
        self.client = client
        self.sampling_interval = sampling_interval
        self.samples_before_logging = samples_before_logging
        self.node_id = node_id
        self.prefix = PREFIX + (f"{node_id}/" if node_id else "")
        self.resume_logging = resume_logging
        self.step = 0
        self.steps_logged = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned = False

    # -- control --------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"mltrack-system-metrics-{self.run_id[:8]}", daemon=True
        )
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def finish(self, timeout: float = JOIN_TIMEOUT_S) -> None:
        """Stop sampling; the last (partial) window is logged before this returns."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    # -- the thread -----------------------------------------------------------------------
    def _run(self) -> None:
        try:
            samplers = self._open_samplers()
        except Exception as err:  # psutil missing or broken: nothing to sample
            self._warn(f"cannot read system metrics ({type(err).__name__}: {err})")
            return
        from jupyter_mltrack.system_metrics.samplers import Window

        window = Window()
        if self.resume_logging:
            self.step = self._next_step()
        interval = self.sampling_interval
        next_at = time.monotonic() + interval
        try:
            while not self._stop.wait(max(0.0, next_at - time.monotonic())):
                now = time.monotonic()
                next_at += interval
                if next_at <= now:  # asleep for more than an interval: skip, do not burst
                    next_at = now + interval
                self._sample(samplers, window)
                if window.samples >= self.samples_before_logging:
                    self._publish(window)
            if window.samples == 0 and self.steps_logged == 0:
                self._sample(samplers, window)  # a run shorter than one interval
            if window.samples:
                self._publish(window)
        finally:
            for sampler in samplers:
                close = getattr(sampler, "close", None)
                if close is not None:
                    close()

    def _open_samplers(self) -> list[Any]:
        from jupyter_mltrack.system_metrics.gpu import GPUSampler
        from jupyter_mltrack.system_metrics.samplers import CPUSampler, DiskSampler, NetworkSampler

        samplers: list[Any] = [CPUSampler(), DiskSampler(), NetworkSampler()]
        gpu = GPUSampler.open()
        if gpu is not None:
            samplers.append(gpu)
        return samplers

    def _sample(self, samplers: list[Any], window: Any) -> None:
        values: dict[str, float] = {}
        for sampler in samplers:
            try:
                values.update(sampler.sample())
            except Exception as err:
                self._warn(f"{type(sampler).__name__} failed ({type(err).__name__}: {err})")
        window.add(values)

    def _publish(self, window: Any) -> None:
        from jupyter_mltrack.entities import Metric

        values = window.values()
        window.clear()
        if not values:
            return
        timestamp = int(time.time() * 1000)
        batch = [Metric(self.prefix + k, v, timestamp, self.step) for k, v in values.items()]
        try:
            self.client.log_batch(self.run_id, metrics=batch)
        except Exception as err:
            self._warn(f"could not store them ({type(err).__name__}: {err})")
            return
        self.step += 1
        self.steps_logged += 1

    def _next_step(self) -> int:
        """After a resumed run's last system step (0 for a run without system metrics)."""
        try:
            run = self.client.get_run(self.run_id)
            keys = [k for k in run.data.metrics if k.startswith(self.prefix)]
            if not keys:
                return 0
            history = self.client.get_metric_history(self.run_id, min(keys))
            return max((m.step for m in history), default=-1) + 1
        except Exception as err:
            self._warn(f"could not read the run's last system step ({err}); starting at 0")
            return 0

    def _warn(self, what: str) -> None:
        if self._warned:
            _log.debug("system metrics of run %s: %s", self.run_id, what)
            return
        self._warned = True
        message = (
            f"System metrics of run {self.run_id}: {what}. The run goes on; further problems "
            "of this monitor are not reported."
        )
        try:
            warnings.warn(message, UserWarning, stacklevel=2)
        except Warning:  # warnings turned into errors must not kill the thread
            _log.warning(message)


# -- the monitors of this process ---------------------------------------------------------------
_monitors: dict[str, SystemMetricsMonitor] = {}
_lock = threading.Lock()


def start_for_run(
    run_id: str, client: Any, resumed: bool = False, settings: Settings | None = None
) -> SystemMetricsMonitor:
    """Start monitoring ``run_id`` with the current settings (``start_run`` calls this)."""
    from jupyter_mltrack import system_metrics

    chosen = settings or system_metrics.settings()
    stop_for_run(run_id)
    monitor = SystemMetricsMonitor(
        run_id,
        client,
        chosen.sampling_interval,
        chosen.samples_before_logging,
        chosen.node_id,
        resume_logging=resumed,
    )
    with _lock:
        _monitors[run_id] = monitor
    monitor.start()
    return monitor


def stop_for_run(run_id: str) -> None:
    """Stop the monitor of ``run_id`` (if any) after its last write (``end_run`` calls this)."""
    with _lock:
        monitor = _monitors.pop(run_id, None)
    if monitor is not None:
        monitor.finish()


def monitor_of(run_id: str) -> SystemMetricsMonitor | None:
    return _monitors.get(run_id)


def stop_all() -> None:
    """Stop every monitor (interpreter exit, ``reset_state``)."""
    with _lock:
        monitors = list(_monitors.values())
        _monitors.clear()
    for monitor in monitors:
        monitor._stop.set()
    for monitor in monitors:
        monitor.finish()


def _stop_at_exit() -> None:
    try:
        stop_all()
    except Exception:  # at exit there is no caller left to tell
        pass


# registered after the metric writer's (imported with the first Client), so it runs first and
# the writer's exit flush persists the last system step
atexit.register(_stop_at_exit)
