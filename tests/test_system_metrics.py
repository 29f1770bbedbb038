"""System metrics: MLflow's names and settings, a real sampling thread per run writing into a
real store, stopping with the run, on process exit and surviving a failing store."""

from __future__ import annotations

import itertools
import json
import os
import statistics
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import pytest

import jupyter_mltrack as mlflow
from jupyter_mltrack import system_metrics
from jupyter_mltrack.exceptions import InvalidParameterValue
from jupyter_mltrack.system_metrics import gpu, monitor, samplers

NAMES = {
    "system/cpu_utilization_percentage",
    "system/system_memory_usage_megabytes",
    "system/system_memory_usage_percentage",
    "system/disk_usage_megabytes",
    "system/disk_usage_percentage",
    "system/disk_available_megabytes",
    "system/network_receive_megabytes",
    "system/network_transmit_megabytes",
}
PERCENT = {n for n in NAMES if n.endswith("_percentage")}
VARS = [
    f"{prefix}_{name}"
    for prefix in ("MLFLOW", "MLTRACK")
    for name in (
        "ENABLE_SYSTEM_METRICS_LOGGING",
        "SYSTEM_METRICS_SAMPLING_INTERVAL",
        "SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING",
        "SYSTEM_METRICS_NODE_ID",
    )
]


@pytest.fixture(autouse=True)
def _clean_settings(monkeypatch, tmp_path):
    """No setting leaks in or out: the functions write os.environ, monkeypatch restores it."""
    for var in VARS:
        monkeypatch.setenv(var, "x")  # recorded as absent before, so it is removed afterwards
        monkeypatch.delenv(var)
    mlflow.set_tracking_uri(str(tmp_path / "store"))
    yield
    mlflow.end_run()


def _history(run_id: str, key: str = "system/cpu_utilization_percentage"):
    return mlflow.MlflowClient().get_metric_history(run_id, key)


def _system_keys(run_id: str) -> set[str]:
    return {k for k in mlflow.get_run(run_id).data.metrics if k.startswith("system/")}


# -- sampling into a run ---------------------------------------------------------------------------
def test_metrics_at_the_interval_with_mlflow_names_and_plausible_values():
    """Interval 0.2 s over a 1.1 s run: samples are due at 0.2, 0.4 ... 1.0 s after the thread
    starts (no drift; an Event wait never returns early), so at most 5 steps; a busy machine
    may push the 5th past the end, and a thread starved for a whole interval loses one more:
    4 or 5, and 3 on a badly overloaded machine. Never more than 5."""
    mlflow.set_system_metrics_sampling_interval(0.2)
    with mlflow.start_run(log_system_metrics=True) as run:
        time.sleep(1.1)
    run_id = run.info.run_id
    assert _system_keys(run_id) == NAMES  # no GPU here: no gpu_* keys, and no warning
    cpu = _history(run_id)
    steps = [m.step for m in cpu]
    assert steps == list(range(len(steps))) and 3 <= len(steps) <= 5, steps
    gaps = [b.timestamp - a.timestamp for a, b in itertools.pairwise(cpu)]
    assert 150 <= statistics.median(gaps) <= 400, gaps
    for key in NAMES:
        points = _history(run_id, key)
        assert [m.step for m in points] == steps, key  # every step logs every metric
        for m in points:
            assert m.value >= 0, (key, m.value)
            if key in PERCENT:
                assert m.value <= 100, (key, m.value)
    memory = _history(run_id, "system/system_memory_usage_megabytes")
    assert all(m.value > 10 for m in memory)  # a machine running this uses more than 10 MB
    disk = _history(run_id, "system/disk_available_megabytes")
    assert all(m.value > 0 for m in disk)


def test_one_batched_write_per_step_and_nothing_after_end_run(monkeypatch):
    mlflow.set_system_metrics_sampling_interval(0.05)
    client = mlflow.tracking.fluent._client()
    calls = []
    real = client.log_batch

    def counting(run_id, metrics=(), params=(), tags=(), synchronous=None):
        if any(m.key.startswith("system/") for m in metrics):
            calls.append([(m.key, m.step) for m in metrics])
        return real(run_id, metrics, params, tags, synchronous)

    monkeypatch.setattr(client, "log_batch", counting)
    run = mlflow.start_run(log_system_metrics=True)
    watcher = monitor.monitor_of(run.info.run_id)
    assert watcher is not None and watcher.running
    time.sleep(0.4)
    mlflow.end_run()
    assert not watcher.running and monitor.monitor_of(run.info.run_id) is None
    assert len(calls) >= 3
    for step, call in enumerate(calls):  # one call per step, holding all of that step's metrics
        assert sorted(call) == sorted((name, step) for name in NAMES)
    count = len(_history(run.info.run_id))
    assert count == len(calls)
    time.sleep(0.25)  # five intervals
    assert len(_history(run.info.run_id)) == count and len(calls) == count


def test_averages_of_samples_before_logging_and_node_id():
    mlflow.set_system_metrics_sampling_interval(0.05)
    mlflow.set_system_metrics_samples_before_logging(3)
    mlflow.set_system_metrics_node_id("node-1")
    with mlflow.start_run(log_system_metrics=True) as run:
        time.sleep(0.5)  # ten samples: three full windows and a partial one at the end
    keys = _system_keys(run.info.run_id)
    assert keys == {k.replace("system/", "system/node-1/") for k in NAMES}
    steps = [m.step for m in _history(run.info.run_id, "system/node-1/disk_usage_percentage")]
    assert steps == list(range(len(steps))) and 2 <= len(steps) <= 4, steps


def test_window_averages_rounds_and_keeps_counters_last():
    window = samplers.Window()
    window.add({"cpu_utilization_percentage": 10.0, "network_receive_megabytes": 1.0})
    window.add({"cpu_utilization_percentage": 20.04, "network_receive_megabytes": 3.5})
    assert window.samples == 2
    assert window.values() == {
        "cpu_utilization_percentage": 15.0,
        "network_receive_megabytes": 3.5,  # cumulative since the start: the last value
    }
    window.clear()
    assert window.values() == {} and window.samples == 0


def test_cpu_percent_from_two_readings():
    import psutil

    before = psutil.cpu_times()
    deadline = time.perf_counter() + 0.1
    while time.perf_counter() < deadline:  # keep one core busy
        pass
    busy = samplers.cpu_busy_percent(before, psutil.cpu_times())
    assert 100 / os.cpu_count() / 2 < busy <= 100  # at least half a core of all cores
    assert samplers.cpu_busy_percent(before, before) == 0.0


def test_a_short_run_gets_one_step_and_the_thread_stops_on_failure():
    with pytest.raises(ValueError), mlflow.start_run(log_system_metrics=True) as run:
        watcher = monitor.monitor_of(run.info.run_id)
        raise ValueError("boom")
    assert mlflow.get_run(run.info.run_id).info.status == "FAILED"
    assert not watcher.running
    assert [m.step for m in _history(run.info.run_id)] == [0]  # default 10 s interval


def test_resumed_run_continues_the_steps():
    with mlflow.start_run(log_system_metrics=True) as run:
        pass
    with mlflow.start_run(run_id=run.info.run_id, log_system_metrics=True):
        pass
    assert [m.step for m in _history(run.info.run_id)] == [0, 1]


def test_reset_state_stops_the_threads():
    run = mlflow.start_run(log_system_metrics=True)
    watcher = monitor.monitor_of(run.info.run_id)
    mlflow.tracking.fluent.reset_state()
    assert not watcher.running and monitor.monitor_of(run.info.run_id) is None


# -- global switches and environment variables ----------------------------------------------------
def test_enable_disable_globally_and_per_run():
    def logged(**kwargs) -> bool:
        with mlflow.start_run(**kwargs) as run:
            pass
        return bool(_system_keys(run.info.run_id))

    assert not logged()  # off by default, as in MLflow
    mlflow.enable_system_metrics_logging()
    assert os.environ["MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING"] == "true"  # children inherit it
    assert logged()
    assert not logged(log_system_metrics=False)  # one run opts out
    mlflow.disable_system_metrics_logging()
    assert not logged()
    assert logged(log_system_metrics=True)  # one run opts in
    assert not any(t.name.startswith("mltrack-system-metrics") for t in threading.enumerate())


def test_environment_variables(monkeypatch):
    monkeypatch.setenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "TRUE")
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.5")
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING", "4")
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_NODE_ID", "gpu-box")
    assert system_metrics.settings() == system_metrics.Settings(True, 0.5, 4, "gpu-box")
    monkeypatch.setenv("MLTRACK_SYSTEM_METRICS_SAMPLING_INTERVAL", "2")  # ours wins
    assert system_metrics.settings().sampling_interval == 2.0
    mlflow.set_system_metrics_sampling_interval(3)  # an explicit call wins over both
    assert system_metrics.settings().sampling_interval == 3.0
    assert "MLTRACK_SYSTEM_METRICS_SAMPLING_INTERVAL" not in os.environ
    mlflow.set_system_metrics_sampling_interval(None)
    mlflow.set_system_metrics_node_id(None)
    assert system_metrics.settings() == system_metrics.Settings(True, 10.0, 4, None)
    with mlflow.start_run() as run:  # enabled by the variable alone
        pass
    assert _system_keys(run.info.run_id) == NAMES


def test_bad_environment_values_warn_once_and_use_defaults(monkeypatch):
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "fast")
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING", "2.5")
    monkeypatch.setenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "yes please")
    with pytest.warns(UserWarning) as record:
        found = system_metrics.settings()
    assert found == system_metrics.Settings(False, 10.0, 1, None)
    text = "\n".join(str(w.message) for w in record)
    assert "MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL='fast' is not a number of seconds" in text
    assert "MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING='2.5' is not a whole number" in text
    assert "'yes please' is not one of true, false, 1, 0" in text
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        system_metrics.settings()  # the same bad values: no second warning


_AT_EXIT = """
import json, sys, time
import jupyter_mltrack as mlflow
mlflow.set_tracking_uri(sys.argv[1])
run = mlflow.start_run()  # enabled and configured by the environment alone; never ended
time.sleep(0.35)
print(json.dumps(run.info.run_id))
"""


def test_environment_enables_it_in_a_child_process_and_exit_stops_it(tmp_path):
    """A script that never ends its run: the thread must neither block the exit nor lose the
    last window (the exit hook logs it before the writer's last flush)."""
    store = str(tmp_path / "child-store")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLTRACK_"))}
    env.update(
        MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING="1",
        MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL="0.1",
        MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING="100",
    )
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_AT_EXIT), store],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 30
    run_id = json.loads(done.stdout.strip().splitlines()[-1])
    client = mlflow.MlflowClient(store)
    history = client.get_metric_history(run_id, "system/disk_usage_percentage")
    # the window of 100 samples never filled: only the exit hook can have logged it
    assert [m.step for m in history] == [0]
    assert client.get_run(run_id).data.metrics.keys() >= NAMES


# -- failures -------------------------------------------------------------------------------------
def test_failing_store_is_one_warning_and_the_run_goes_on(monkeypatch):
    mlflow.set_system_metrics_sampling_interval(0.05)
    client = mlflow.tracking.fluent._client()
    real = client.log_batch
    attempts = []

    def broken(run_id, metrics=(), params=(), tags=(), synchronous=None):
        attempts.append(run_id)
        raise OSError("disk full")

    errors = []
    monkeypatch.setattr(threading, "excepthook", lambda args: errors.append(args))
    with pytest.warns(UserWarning) as record, mlflow.start_run(log_system_metrics=True) as run:
        monkeypatch.setattr(client, "log_batch", broken)
        for step in range(5):
            mlflow.log_metric("loss", 1 / (step + 1), step=step)  # the user's logging works
            time.sleep(0.06)
        monkeypatch.setattr(client, "log_batch", real)  # the store works again
    messages = [str(w.message) for w in record if "System metrics" in str(w.message)]
    assert len(messages) == 1 and "disk full" in messages[0], messages
    assert "The run goes on" in messages[0]
    assert len(attempts) >= 3  # it kept trying (each step), and said so once
    assert errors == []  # no exception escaped the thread
    stored = mlflow.get_run(run.info.run_id)
    assert stored.info.status == "FINISHED"
    assert len(mlflow.MlflowClient().get_metric_history(run.info.run_id, "loss")) == 5


@pytest.mark.parametrize(
    ("call", "value", "message"),
    [
        ("set_system_metrics_sampling_interval", 0, "must be > 0 seconds"),
        ("set_system_metrics_sampling_interval", -1.5, "must be > 0 seconds"),
        ("set_system_metrics_sampling_interval", float("nan"), "must be > 0 seconds"),
        ("set_system_metrics_sampling_interval", float("inf"), "finite"),
        ("set_system_metrics_sampling_interval", "5", "must be a number of seconds, got str"),
        ("set_system_metrics_sampling_interval", True, "must be a number of seconds, got bool"),
        ("set_system_metrics_samples_before_logging", 2.5, "whole number of samples, got float"),
        ("set_system_metrics_samples_before_logging", "3", "whole number of samples, got str"),
        ("set_system_metrics_samples_before_logging", 0, "must be >= 1, got 0"),
        ("set_system_metrics_samples_before_logging", True, "whole number of samples, got bool"),
        ("set_system_metrics_node_id", "", "non-empty string"),
        ("set_system_metrics_node_id", 7, "non-empty string"),
        ("set_system_metrics_node_id", "a//b", "cannot be part of a metric name"),
        ("set_system_metrics_node_id", "node*1", "cannot be part of a metric name"),
    ],
)
def test_bad_inputs_are_clear_errors(call, value, message):
    with pytest.raises(InvalidParameterValue, match=message.replace("*", r"\*")):
        getattr(mlflow, call)(value)
    assert not any(os.environ.get(v) for v in VARS)  # nothing was set


def test_setters_accept_what_mlflow_accepts():
    mlflow.set_system_metrics_sampling_interval(1)
    mlflow.set_system_metrics_samples_before_logging(2)
    mlflow.set_system_metrics_node_id("rank 0")
    assert system_metrics.settings() == system_metrics.Settings(False, 1.0, 2, "rank 0")


# -- GPUs (there is none here) --------------------------------------------------------------------
def test_no_nvidia_library_or_gpu_is_silent(monkeypatch):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not a word: most machines have no NVIDIA GPU
        assert gpu.GPUSampler.open() is None  # this machine: no nvidia-ml-py, or no driver/GPU
        monkeypatch.setitem(sys.modules, "pynvml", None)  # the package missing: ImportError
        assert gpu.GPUSampler.open() is None


def test_gpu_values_in_mlflow_names_and_units():
    values = gpu.gpu_values(1, memory=(2e9, 8e9), utilization=42, power=(150_000.0, 300_000.0))
    assert values == {
        "gpu_1_memory_usage_megabytes": 2000.0,
        "gpu_1_memory_usage_percentage": 25.0,
        "gpu_1_utilization_percentage": 42.0,
        "gpu_1_power_usage_watts": 150.0,
        "gpu_1_power_usage_percentage": 50.0,
    }
    # a board without a power sensor (NVML says NotSupported): that reading is left out
    assert gpu.gpu_values(0, memory=(0.0, 0.0), utilization=None, power=None) == {
        "gpu_0_memory_usage_megabytes": 0.0
    }


def test_importing_the_package_samples_nothing():
    code = (
        "import sys, jupyter_mltrack as m; m.enable_system_metrics_logging; "
        "import jupyter_mltrack.system_metrics; "
        "print(sorted(n for n in ('psutil', 'pynvml', 'pandas') if n in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# -- %%track cells ---------------------------------------------------------------------------------
def test_track_cell_with_the_flag_or_the_global_switch(ip):
    mlflow.set_system_metrics_sampling_interval(0.05)
    ip.run_cell("import time")
    assert ip.run_cell("%%track flagged --system-metrics\ntime.sleep(0.3)").success
    assert ip.run_cell("%%track plain\ntime.sleep(0.01)").success
    mlflow.enable_system_metrics_logging()
    assert ip.run_cell("%%track switched-on\ntime.sleep(0.01)").success
    failed = ip.run_cell("%%track broken --system-metrics\nraise ValueError('x')")
    assert not failed.success
    client = mlflow.MlflowClient()
    runs = {r.info.run_name: r for r in client.search_runs(["0"])}
    flagged = runs["flagged"].info.run_id
    assert _system_keys(flagged) == NAMES
    assert 3 <= len(_history(flagged)) <= 6  # 0.3 s at 0.05 s
    assert _system_keys(runs["plain"].info.run_id) == set()
    assert _system_keys(runs["switched-on"].info.run_id) == NAMES
    assert runs["broken"].info.status == "FAILED"
    assert _system_keys(runs["broken"].info.run_id) == NAMES
    assert not any(t.name.startswith("mltrack-system-metrics") for t in threading.enumerate())
    count = len(_history(flagged))
    time.sleep(0.15)
    assert len(_history(flagged)) == count  # stopped with the cell
