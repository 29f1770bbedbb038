"""Batch scoring: ``mltrack models predict`` on real files, in chunks, memory bounded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from jupyter_mltrack.cli import main
from jupyter_mltrack.serving.batch import BatchPredictError, parse_json_document, predict_batch

N_ROWS = 100_000
N_COLS = 40
COLUMNS = [f"f{i}" for i in range(N_COLS)]


def _save_linear_model(path: Path, columns: list[str]) -> None:
    """A custom model computing a weighted sum (its class is local: pickled by value, so a
    subprocess loads it without this test module)."""
    import jupyter_mltrack.pyfunc as pyfunc
    from jupyter_mltrack.models import infer_signature

    class Linear(pyfunc.PythonModel):
        def __init__(self, weights: np.ndarray) -> None:
            self.weights = weights

        def predict(self, context, model_input):
            return model_input.to_numpy(dtype=np.float64) @ self.weights

    weights = np.linspace(-1.0, 1.0, len(columns))
    example = pd.DataFrame([[0.5] * len(columns)], columns=columns)
    pyfunc.save_model(
        str(path),
        python_model=Linear(weights),
        signature=infer_signature(example, np.zeros(1)),
    )


@pytest.fixture(scope="module")
def wide(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 100,000-row, 40-column CSV, its first 5,000 rows, and a model scoring them."""
    root = tmp_path_factory.mktemp("batch")
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(rng.normal(size=(N_ROWS, N_COLS)), columns=COLUMNS)
    frame.to_csv(root / "big.csv", index=False, float_format="%.5f")
    frame.head(5_000).to_csv(root / "small.csv", index=False, float_format="%.5f")
    _save_linear_model(root / "model", COLUMNS)
    return {
        "root": root,
        "big": root / "big.csv",
        "small": root / "small.csv",
        "model": root / "model",
    }


@pytest.fixture(scope="module")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("small") / "model"
    _save_linear_model(path, ["a", "b"])
    return path


def _expected(model: Path, frame: pd.DataFrame) -> np.ndarray:
    from jupyter_mltrack.pyfunc import load_model

    return np.asarray(load_model(str(model)).predict(frame))


# A fresh interpreter per measurement: RUSAGE_CHILDREN is the peak of the children it waited for.
_PEAK = (
    "import resource, subprocess, sys\n"
    "rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    "sys.exit(rc)\n"
)


def _predict_peak_mb(model: Path, source: Path, out: Path, chunk_size: int) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of ``mltrack models predict`` as its own process."""
    cmd = [sys.executable, "-m", "jupyter_mltrack.cli", "models", "predict"]
    cmd += ["-m", str(model), "-i", str(source), "-o", str(out), "--chunk-size", str(chunk_size)]
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _PEAK, *cmd], capture_output=True, text=True, timeout=300
    )
    elapsed = time.perf_counter() - started
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip().splitlines()[-1]) / 1024, elapsed


def test_100k_row_csv_memory_stays_flat_and_matches_predict(wide: dict[str, Path]) -> None:
    root, model = wide["root"], wide["model"]
    # what a whole load costs: the float frame alone (the CSV parse and the model's input
    # conversion need about as much again)
    frame_mb = N_ROWS * N_COLS * 8 / 2**20
    base, _ = _predict_peak_mb(model, wide["small"], root / "small_out.csv", 5_000)
    chunked, seconds = _predict_peak_mb(model, wide["big"], root / "big_out.csv", 5_000)
    whole, _ = _predict_peak_mb(model, wide["big"], root / "whole_out.csv", N_ROWS)
    print(
        f"\n100k rows x {N_COLS} cols ({wide['big'].stat().st_size / 2**20:.0f} MB CSV): "
        f"chunked {seconds:.2f}s peak {chunked:.0f} MB; 5k-row run {base:.0f} MB; "
        f"one chunk {whole:.0f} MB"
    )
    # the control proves the measurement sees a whole load...
    assert whole - base > frame_mb, (base, whole)
    # ...and scoring 20x the rows in chunks adds well under the frame's size
    assert chunked - base < frame_mb / 2, (base, chunked, frame_mb)

    out = pd.read_csv(root / "big_out.csv")
    assert list(out.columns) == ["prediction"]
    assert len(out) == N_ROWS
    expected = _expected(model, pd.read_csv(wide["big"]))
    np.testing.assert_allclose(out["prediction"].to_numpy(), expected, rtol=1e-12, atol=1e-12)
    whole_out = pd.read_csv(root / "whole_out.csv")
    np.testing.assert_allclose(whole_out["prediction"].to_numpy(), expected, rtol=1e-12, atol=1e-12)


def _write_inputs(folder: Path, frame: pd.DataFrame) -> dict[str, Path]:
    records = frame.to_dict(orient="records")
    paths = {
        "csv": folder / "in.csv",
        "parquet": folder / "in.parquet",
        "jsonl": folder / "in.jsonl",
        "split": folder / "split.json",
        "records": folder / "records.json",
        "instances": folder / "instances.json",
        "inputs": folder / "inputs.json",
        "plain": folder / "plain.json",
    }
    frame.to_csv(paths["csv"], index=False)
    frame.to_parquet(paths["parquet"])
    paths["jsonl"].write_text("".join(json.dumps(r) + "\n" for r in records))
    split = json.loads(frame.to_json(orient="split", index=False, double_precision=15))
    paths["split"].write_text(json.dumps({"dataframe_split": split}))
    paths["records"].write_text(json.dumps({"dataframe_records": records}))
    paths["instances"].write_text(json.dumps({"instances": records}))
    paths["inputs"].write_text(json.dumps({"inputs": frame.to_dict(orient="list")}))
    paths["plain"].write_text(json.dumps(records))
    return paths


@pytest.mark.parametrize(
    "kind", ["csv", "parquet", "jsonl", "split", "records", "instances", "inputs", "plain"]
)
def test_every_input_format(kind: str, small_model: Path, tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": np.arange(2_500) / 7, "b": np.arange(2_500) % 13 * 1.5})
    paths = _write_inputs(tmp_path, frame)
    result = predict_batch(str(small_model), paths[kind], tmp_path / "out.csv", chunk_size=1_000)
    assert (result.rows, result.chunks) == (2_500, 3)
    out = pd.read_csv(tmp_path / "out.csv")
    np.testing.assert_allclose(out["prediction"], _expected(small_model, frame), rtol=1e-12)


@pytest.mark.parametrize("suffix", [".csv", ".json", ".jsonl", ".parquet"])
def test_every_output_format(suffix: str, small_model: Path, tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": np.arange(1_234) / 3, "b": np.ones(1_234)})
    frame.to_csv(tmp_path / "in.csv", index=False)
    out = tmp_path / f"out{suffix}"
    predict_batch(str(small_model), tmp_path / "in.csv", out, chunk_size=500)
    if suffix == ".csv":
        got = pd.read_csv(out)["prediction"].to_numpy()
    elif suffix == ".json":
        got = np.asarray(json.loads(out.read_text()))
    elif suffix == ".jsonl":
        got = np.asarray([json.loads(line) for line in out.read_text().splitlines()])
    else:
        got = pd.read_parquet(out)["prediction"].to_numpy()
    np.testing.assert_array_equal(got, _expected(small_model, frame))  # exact: no digits lost


def test_cli_predict_with_content_type_and_progress(small_model: Path, tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    (tmp_path / "data.txt").write_text(frame.to_csv(index=False))
    result = CliRunner().invoke(
        main,
        [
            *("models", "predict", "-m", str(small_model), "-i", str(tmp_path / "data.txt")),
            *("-o", str(tmp_path / "out.json"), "--content-type", "csv", "--progress"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Wrote 2 prediction(s)" in result.output
    assert json.loads((tmp_path / "out.json").read_text()) == list(_expected(small_model, frame))


def _run_cli(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["models", "predict", *args])
    return result.exit_code, result.output


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_signature_violation_names_column_and_rows_and_leaves_nothing(
    small_model: Path, tmp_path: Path
) -> None:
    values = [str(v) for v in np.arange(2_500, dtype=float)]
    values[2_100] = "abc"  # in the third chunk of 1,000
    (tmp_path / "in.csv").write_text("a,b\n" + "".join(f"{v},1.0\n" for v in values))
    out = tmp_path / "out.csv"
    code, output = _run_cli(
        [
            "-m",
            str(small_model),
            "-i",
            str(tmp_path / "in.csv"),
            "-o",
            str(out),
            "--chunk-size",
            "1000",
        ]
    )
    assert code == 1
    assert "Rows 2001-2500" in output and "'a'" in output and "Traceback" not in output
    assert not out.exists()
    assert _leftovers(tmp_path) == []


def test_failure_keeps_an_existing_output_file(small_model: Path, tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text("a\n1.0\n")  # column b is missing
    out = tmp_path / "out.csv"
    out.write_text("previous results\n")
    code, output = _run_cli(
        ["-m", str(small_model), "-i", str(tmp_path / "in.csv"), "-o", str(out)]
    )
    assert code == 1 and "missing 1 column(s)" in output and "'b'" in output
    assert out.read_text() == "previous results\n"
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("input_name", "extra", "message"),
    [
        ("missing.csv", [], "does not exist"),
        ("data.xlsx", [], "Cannot tell the input format"),
        ("data.csv", ["--output-format", "xml"], "Invalid value for '--output-format'"),
    ],
)
def test_input_errors(
    small_model: Path, tmp_path: Path, input_name: str, extra: list[str], message: str
) -> None:
    if input_name != "missing.csv":
        (tmp_path / input_name).write_text("a,b\n1,2\n")
    out = tmp_path / "out.csv"
    code, output = _run_cli(
        ["-m", str(small_model), "-i", str(tmp_path / input_name), "-o", str(out), *extra]
    )
    assert code != 0 and message in output, output
    assert not out.exists()


def test_unknown_output_extension(small_model: Path, tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text("a,b\n1,2\n")
    code, output = _run_cli(
        ["-m", str(small_model), "-i", str(tmp_path / "in.csv"), "-o", str(tmp_path / "out.txt")]
    )
    assert code == 1 and "Cannot tell the output format" in output


def test_bad_json_inputs(small_model: Path, tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text('{"dataframe_records": [')
    (tmp_path / "broken.jsonl").write_text('{"a": 1, "b": 2}\n{"a": \n')
    with pytest.raises(BatchPredictError, match="not valid JSON"):
        predict_batch(str(small_model), tmp_path / "broken.json", tmp_path / "o.csv")
    with pytest.raises(BatchPredictError, match="line 2: not valid JSON"):
        predict_batch(str(small_model), tmp_path / "broken.jsonl", tmp_path / "o.csv")
    with pytest.raises(Exception, match="exactly one of the keys"):
        parse_json_document({"rows": []})
    assert _leftovers(tmp_path) == [] and not (tmp_path / "o.csv").exists()


def test_dataframe_output_keeps_the_model_columns(tmp_path: Path) -> None:
    import jupyter_mltrack.pyfunc as pyfunc

    class TwoColumns(pyfunc.PythonModel):
        def predict(self, context, model_input):
            return pd.DataFrame({"low": model_input["x"] - 1, "high": model_input["x"] + 1})

    pyfunc.save_model(str(tmp_path / "m"), python_model=TwoColumns())
    pd.DataFrame({"x": [1.0, 2.0, 3.0]}).to_csv(tmp_path / "in.csv", index=False)
    predict_batch(str(tmp_path / "m"), tmp_path / "in.csv", tmp_path / "out.json", chunk_size=2)
    assert json.loads((tmp_path / "out.json").read_text()) == [
        {"low": 0.0, "high": 2.0},
        {"low": 1.0, "high": 3.0},
        {"low": 2.0, "high": 4.0},
    ]
    assert os.path.exists(tmp_path / "out.json")
