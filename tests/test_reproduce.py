"""``mltrack reproduce``: a script project run, a notebook run and a ``%%track`` cell run are
re-executed as new runs and compared; a dependency whose behaviour changed makes it fail."""

from __future__ import annotations

import math
from pathlib import Path

import nbformat
import pytest
from click.testing import CliRunner
from nbformat.v4 import new_code_cell, new_notebook

import jupyter_mltrack as mlflow
from jupyter_mltrack.cli import main
from jupyter_mltrack.projects.reproduce import REPRODUCES_TAG, reproduce, within

pytestmark = pytest.mark.timeout(300)

HELPER = "def score(alpha):\n    return alpha / 3\n"
CHANGED_HELPER = "def score(alpha):\n    return alpha / 3 + 0.01  # behaviour changed on purpose\n"


@pytest.fixture
def store(tmp_path: Path) -> str:
    uri = str(tmp_path / "store")
    mlflow.set_tracking_uri(uri)
    return uri


def cli(store: str, *args: str):
    return CliRunner().invoke(main, ["--tracking-uri", store, "reproduce", *args])


def only_reproduction(original_id: str):
    [run] = mlflow.search_runs(
        search_all_experiments=True,
        filter_string=f"tags.`{REPRODUCES_TAG}` = '{original_id}'",
        output_format="list",
    )
    return run


def test_tolerance_is_relative_for_large_values_and_absolute_near_zero() -> None:
    assert within(1000.0, 1000.0005, 1e-6)  # 5e-4 <= 1e-6 * 1000
    assert not within(1000.0, 1000.01, 1e-6)
    assert within(0.0, 5e-7, 1e-6) and not within(0.0, 5e-6, 1e-6)
    assert within(math.nan, math.nan, 0) and not within(1.0, math.nan, 1)
    assert not within(1.0, None, 1e9)


# -- a script project --------------------------------------------------------------------------
@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "MLproject").write_text(
        "name: tiny\n"
        "entry_points:\n"
        "  main:\n"
        "    parameters:\n"
        "      alpha: {type: float, default: 1.0}\n"
        "    command: python train.py --alpha {alpha}\n"
    )
    (folder / "train.py").write_text(
        "import argparse\n"
        "import jupyter_mltrack as mlflow\n"
        "from helper import score\n"
        "parser = argparse.ArgumentParser()\n"
        "parser.add_argument('--alpha', type=float)\n"
        "args = parser.parse_args()\n"
        "with mlflow.start_run():\n"
        "    mlflow.log_metric('score', score(args.alpha))\n"
        "    mlflow.log_metric('constant', 42.0)\n"
    )
    (folder / "helper.py").write_text(HELPER)
    return folder


def test_script_run_reproduces_then_fails_when_its_dependency_changes(
    project: Path, store: str
) -> None:
    from jupyter_mltrack import projects

    original = projects.run(str(project), parameters={"alpha": 0.6}, tracking_uri=store, quiet=True)
    assert original.data.metrics["score"] == pytest.approx(0.2)

    result = cli(store, original.info.run_id)
    assert result.exit_code == 0, result.output
    assert "REPRODUCED: 2 metric(s) within tolerance 1e-06" in result.output
    new = only_reproduction(original.info.run_id)
    assert new.data.params == original.data.params
    assert new.data.metrics == original.data.metrics

    (project / "helper.py").write_text(CHANGED_HELPER)
    failed = cli(store, original.info.run_id, "--tolerance", "1e-3")
    assert failed.exit_code == 1, failed.output
    lines = failed.output.splitlines()
    [score_line] = [line for line in lines if " score " in line]
    assert "0.2" in score_line and "0.21" in score_line and "DIFFERS (Δ +0.01)" in score_line
    [constant_line] = [line for line in lines if " constant " in line]
    assert "ok" in constant_line
    assert "NOT REPRODUCED: 1 metric(s) outside tolerance 0.001: score." in failed.output
    # a looser tolerance accepts the change
    assert cli(store, original.info.run_id, "--tolerance", "0.1").exit_code == 0


# -- a notebook --------------------------------------------------------------------------------
def write_notebook(folder: Path) -> Path:
    (folder / "helper.py").write_text(HELPER)
    nb = new_notebook(
        cells=[
            new_code_cell("alpha = 1.0", metadata={"tags": ["parameters"]}),
            new_code_cell(
                "import jupyter_mltrack as mlflow\nfrom helper import score\n%load_ext jupyter_mltrack"
            ),
            new_code_cell("mlflow.log_metric('score', score(alpha))"),
            new_code_cell("%%track doubled\ndoubled = score(alpha) * 2"),
        ]
    )
    path = folder / "analysis.ipynb"
    nbformat.write(nb, path)
    return path


def test_notebook_run_reproduces_with_its_children_then_fails(tmp_path: Path, store: str) -> None:
    from jupyter_mltrack.projects.notebook import run_notebook

    path = write_notebook(tmp_path)
    original = run_notebook(path, {"alpha": "0.3"}, experiment_name="nb")

    result = reproduce(original.info.run_id, run_name="again")
    assert result.passed and result.exit_code == 0, repr(result)
    assert result.new.info.run_name == "again"
    assert result.new.data.tags[REPRODUCES_TAG] == original.info.run_id
    assert result.new.data.params == {"alpha": "0.3"}  # the recorded parameter, injected again
    keys = [(r.kind, r.key) for r in result.rows]
    assert keys == [("param", "alpha"), ("metric", "doubled/doubled"), ("metric", "score")]

    (tmp_path / "helper.py").write_text(CHANGED_HELPER)
    result = reproduce(original.info.run_id)
    assert result.exit_code == 1
    assert [r.key for r in result.mismatches] == ["doubled/doubled", "score"]
    text = repr(result)
    assert "NOT REPRODUCED: 2 metric(s) outside tolerance 1e-06: doubled/doubled, score." in text
    assert "! metric  score" in text  # differing rows are marked


def test_notebook_that_now_fails_is_a_failed_reproduction(tmp_path: Path, store: str) -> None:
    from jupyter_mltrack.projects.notebook import run_notebook

    path = write_notebook(tmp_path)
    original = run_notebook(path)
    (tmp_path / "helper.py").write_text("def score(alpha):\n    raise ValueError('gone')\n")
    result = cli(store, original.info.run_id)
    assert result.exit_code == 1
    assert "the re-execution failed: Notebook analysis.ipynb failed at cell 3" in result.output
    assert "ValueError: gone" in result.output


# -- a %%track cell ----------------------------------------------------------------------------
def test_tracked_cell_reproduces_in_a_fresh_kernel(ip, tmp_path: Path) -> None:
    ip.run_cell("%mltrack experiment cells")
    ip.run_cell("%%track fit --tag team=a\nalpha = 2\nscore = alpha ** 2 / 3\nlabel = 'x'")
    [original] = mlflow.search_runs(experiment_names=["cells"], output_format="list")
    store = mlflow.get_tracking_uri()

    result = cli(store, original.info.run_id, "--run-name", "fit-again")
    assert result.exit_code == 0, result.output
    new = only_reproduction(original.info.run_id)
    assert new.info.run_name == "fit-again" and new.data.tags["team"] == "a"
    assert new.data.params == {"alpha": "2", "label": "x"}
    assert new.data.metrics == pytest.approx(original.data.metrics)
    assert mlflow.get_experiment(new.info.experiment_id).name == "cells"

    shown = ip.run_line_magic("mltrack", f"reproduce {original.info.run_id}")
    assert shown.passed and "REPRODUCED" in repr(shown) and "<table>" in shown._repr_html_()


def test_cell_that_needs_earlier_cells_cannot_be_reproduced_alone(ip, tmp_path: Path) -> None:
    ip.run_cell("base = 10")
    ip.run_cell("%%track uses_base\nscore = base / 4")
    [original] = mlflow.search_runs(search_all_experiments=True, output_format="list")
    result = cli(mlflow.get_tracking_uri(), original.info.run_id)
    assert result.exit_code == 2
    assert "NameError: name 'base' is not defined" in result.output
    assert "cannot be re-run alone" in result.output


def test_runs_not_made_by_a_launcher_or_a_cell_cannot_be_reproduced(store: str) -> None:
    with mlflow.start_run() as run:
        mlflow.log_metric("x", 1)
    result = cli(store, run.info.run_id)
    assert result.exit_code == 2
    assert "nothing recorded says how to execute it again" in result.output
    assert cli(store, "0" * 32).exit_code == 2


def test_captured_packages_become_pins_for_the_virtualenv() -> None:
    from jupyter_mltrack.projects.pinned import captured_requirements

    old_form = "numpy=1.26.4, sklearn=1.4.2, jupyter_mltrack=0.1.0"
    assert captured_requirements(old_form) == ["numpy==1.26.4", "scikit-learn==1.4.2"]
    new_form = '{"scikit-learn": "1.4.2", "jupyter-mltrack": "0.1.0", "pandas": "2.2.1"}'
    assert captured_requirements(new_form) == ["pandas==2.2.1", "scikit-learn==1.4.2"]
    assert captured_requirements("") == []


def test_tracked_cell_reproduces_in_a_venv_pinned_to_the_captured_packages(ip) -> None:
    """--env-manager virtualenv: a cached venv with the versions the run's code imported
    (here numpy), ipykernel and this package; the cell runs there and matches."""
    import json

    import numpy

    ip.run_cell("%mltrack experiment pinned")
    cell = (
        "%%track pinned\nimport sys\nimport numpy as np\nimport jupyter_mltrack as mlflow\n"
        "mlflow.set_tag('exe', sys.executable)\nscale = 3\nscore = float(np.arange(scale).sum())"
    )
    assert ip.run_cell(cell).success
    [original] = mlflow.search_runs(experiment_names=["pinned"], output_format="list")
    assert json.loads(original.data.tags["mltrack.packages"])["numpy"] == numpy.__version__

    result = cli(mlflow.get_tracking_uri(), original.info.run_id, "--env-manager", "virtualenv")
    assert result.exit_code == 0, result.output
    new = only_reproduction(original.info.run_id)
    assert new.data.metrics["score"] == original.data.metrics["score"] == 3.0
    # the reproduction's kernel ran in the pinned venv, not in this interpreter
    assert new.data.tags["exe"] != original.data.tags["exe"]
    assert "jupyter_mltrack" in new.data.tags["exe"]  # ~/.cache/jupyter_mltrack/envs/...
