"""Client.get_metric_series: histories for plotting, downsampled inside the database."""

from __future__ import annotations

import math

import pytest

from jupyter_mltrack import MlflowClient
from jupyter_mltrack.entities import Metric
from jupyter_mltrack.exceptions import InvalidParameterValue
from jupyter_mltrack.store.downsample import min_max_buckets

T0 = 1_700_000_000_000


def _log(client: MlflowClient, run_id: str, key: str, values: list[float], start: int = 0) -> None:
    metrics = [Metric(key, v, T0 + 10 * i, start + i) for i, v in enumerate(values)]
    for i in range(0, len(metrics), 5000):
        client.log_batch(run_id, metrics=metrics[i : i + 5000])


@pytest.fixture
def runs(store_uri: str) -> tuple[MlflowClient, list[str]]:
    client = MlflowClient(store_uri)
    experiment = client.create_experiment("series")
    ids = [client.create_run(experiment).info.run_id for _ in range(3)]
    long_values = [math.sin(i / 500) for i in range(20_000)]
    long_values[12_345] = 50.0  # a spike that downsampling must keep
    long_values[777] = -40.0
    _log(client, ids[0], "loss", long_values)
    _log(client, ids[1], "loss", [1.0, 0.5, float("nan"), 0.25], start=10)
    _log(client, ids[2], "acc", [0.1, 0.2])
    return client, ids


def test_short_history_comes_back_whole_without_nan(runs) -> None:
    client, ids = runs
    series = client.get_metric_series([ids[1]], "loss", max_points=100)[ids[1]]
    assert series.x == [10, 11, 13]
    assert series.values == [1.0, 0.5, 0.25]
    assert not series.downsampled and series.total_points == 3


def test_long_history_is_bucketed_and_keeps_extremes(runs) -> None:
    client, ids = runs
    series = client.get_metric_series(ids, "loss", max_points=500)
    long = series[ids[0]]
    assert long.downsampled and long.total_points is None
    assert 16 <= len(long.x) <= 500
    assert max(long.values) == 50.0 and min(long.values) == -40.0
    assert long.x == sorted(long.x) and long.x[0] == 0 and long.x[-1] == 19_999
    # the spike sits at (about) its own step, not smeared across the range
    spike_x = long.x[long.values.index(50.0)]
    assert abs(spike_x - 12_345) <= 20_000 / 250
    assert ids[2] not in series  # never logged "loss"
    assert set(series) == {ids[0], ids[1]}


def test_timestamp_axis(runs) -> None:
    client, ids = runs
    long = client.get_metric_series([ids[0]], "loss", 500, x_axis="timestamp")[ids[0]]
    assert long.x[0] == T0 and long.x[-1] == T0 + 10 * 19_999
    whole = client.get_metric_series([ids[1]], "loss", 500, x_axis="timestamp")[ids[1]]
    assert whole.x == [T0, T0 + 10, T0 + 30]


def test_matches_the_in_memory_downsampler(runs) -> None:
    client, ids = runs
    history = client.get_metric_history(ids[0], "loss")
    in_memory = min_max_buckets(
        ids[0], "loss", "step", [m.step for m in history], [m.value for m in history], 500
    )
    from_sql = client.get_metric_series([ids[0]], "loss", 500)[ids[0]]
    assert (max(in_memory.values), min(in_memory.values)) == (
        max(from_sql.values),
        min(from_sql.values),
    )
    assert abs(len(in_memory.x) - len(from_sql.x)) <= 4


def test_bad_arguments_are_refused(runs) -> None:
    client, ids = runs
    with pytest.raises(InvalidParameterValue, match="x_axis"):
        client.get_metric_series(ids, "loss", 500, x_axis="wall")
    with pytest.raises(InvalidParameterValue, match="at least 16"):
        client.get_metric_series(ids, "loss", 3)
    assert client.get_metric_series([], "loss") == {}
    assert client.get_metric_series(["0" * 32], "loss") == {}
