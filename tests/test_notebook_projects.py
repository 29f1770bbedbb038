"""Notebooks as projects: a parameterized notebook executed headlessly (a real kernel) as one run."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

import jupyter_mltrack as mlflow
from jupyter_mltrack.exceptions import InvalidParameterValue
from jupyter_mltrack.projects.notebook import (
    NotebookRunError,
    inject_parameters,
    run_notebook,
    typed_value,
)

pytestmark = pytest.mark.timeout(300)


def write_notebook(path: Path, sources: list[str], parameters_cell: int | None = 1) -> Path:
    cells = [new_markdown_cell("# Training")]
    for index, source in enumerate(sources, start=1):
        tags = ["parameters"] if index == parameters_cell else []
        cells.append(new_code_cell(source, metadata={"tags": tags}))
    nbformat.write(new_notebook(cells=cells), path)
    return path


TRAIN = [
    "lr = 0.5\nepochs = 2\nlabel = 'base'",
    "import jupyter_mltrack as mlflow\n%load_ext jupyter_mltrack",
    "loss = 1.0 / (lr * epochs)\nmlflow.log_metric('loss', loss)\nprint(f'{label}: loss={loss}')",
    "%%track scaled\nfactor = 3\nscaled = loss * factor",
]


@pytest.fixture
def store(tmp_path: Path) -> str:
    uri = str(tmp_path / "store")
    mlflow.set_tracking_uri(uri)
    return uri


def test_typed_parameters_are_injected_after_the_parameters_cell() -> None:
    assert typed_value("0.1") == 0.1 and typed_value("3") == 3 and typed_value("1e-3") == 0.001
    assert typed_value("adam") == "adam" and typed_value(True) is True
    nb = new_notebook(
        cells=[
            new_code_cell("import os"),
            new_code_cell("lr = 1", metadata={"tags": ["parameters"]}),
        ]
    )
    inject_parameters(nb, {"lr": 0.1, "opt": "adam"})
    assert nb.cells[2].source.splitlines()[1:] == ["lr = 0.1", "opt = 'adam'"]
    assert nb.cells[2].metadata.tags == ["injected-parameters"]
    inject_parameters(nb, {"lr": 0.2})  # a re-run replaces the earlier injected cell
    assert len(nb.cells) == 3 and nb.cells[2].source.endswith("lr = 0.2")
    with pytest.raises(InvalidParameterValue, match="not a Python variable name"):
        inject_parameters(nb, {"bad-name": 1})


def test_parameterized_notebook_is_one_run_with_a_child_per_tracked_cell(
    tmp_path: Path, store: str
) -> None:
    path = write_notebook(tmp_path / "train.ipynb", TRAIN)
    run = run_notebook(path, {"lr": "0.25", "label": "tuned"}, experiment_name="nb", run_name="r1")

    assert run.info.status == "FINISHED" and run.info.run_name == "r1"
    # effective params: the parameters cell's defaults, overridden by the injected ones
    assert run.data.params == {"lr": "0.25", "epochs": "2", "label": "tuned"}
    assert run.data.metrics == {"loss": 2.0}  # 1 / (0.25 * 2): the number was injected as a number
    tags = run.data.tags
    assert tags["mlflow.source.type"] == "NOTEBOOK"
    assert tags["mltrack.project.notebook"] == str(path)
    assert json.loads(tags["mltrack.project.params"]) == {"lr": 0.25, "label": "tuned"}
    assert mlflow.get_experiment(run.info.experiment_id).name == "nb"

    [child] = mlflow.search_runs(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{run.info.run_id}'",
        output_format="list",
    )
    assert child.info.run_name == "scaled" and child.info.status == "FINISHED"
    assert child.data.metrics["scaled"] == 6.0 and child.data.params["factor"] == "3"

    client = mlflow.MlflowClient()
    executed = nbformat.reads(
        client.read_artifact(run.info.run_id, "notebook/train.ipynb").decode(), as_version=4
    )
    injected = executed.cells[2]
    assert injected.metadata.tags == ["injected-parameters"]
    assert "lr = 0.25" in injected.source and "label = 'tuned'" in injected.source
    printed = "".join(o.get("text", "") for o in executed.cells[4].outputs)
    assert printed == "tuned: loss=2.0\n"
    # the file itself is left as it was
    assert len(nbformat.read(path, as_version=4).cells) == len(TRAIN) + 1


def test_failing_cell_fails_the_run_and_keeps_the_executed_notebook(
    tmp_path: Path, store: str
) -> None:
    path = write_notebook(
        tmp_path / "broken.ipynb",
        [
            "rows = 0",
            "import jupyter_mltrack as mlflow\nmlflow.log_metric('seen', 1)\nprint('before')",
            "raise ValueError(f'no data: {rows} rows')",
            "after = 1",
        ],
    )
    with pytest.raises(
        NotebookRunError, match=r"cell 5 \(.raise ValueError.*\): ValueError: no data: 0 rows"
    ) as err:
        run_notebook(path, {"rows": 0})
    run = mlflow.get_run(err.value.run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["mltrack.error.type"] == "ValueError"
    assert run.data.metrics == {"seen": 1.0}
    executed = nbformat.reads(
        mlflow.MlflowClient().read_artifact(run.info.run_id, "notebook/broken.ipynb").decode(),
        as_version=4,
    )
    assert executed.cells[3].outputs[0]["text"] == "before\n"
    assert executed.cells[4].outputs[0]["ename"] == "ValueError"
    assert executed.cells[5].get("outputs") == []  # not run after the failure


def test_start_run_inside_the_notebook_logs_into_the_notebook_run(
    tmp_path: Path, store: str
) -> None:
    path = write_notebook(
        tmp_path / "fluent.ipynb",
        [
            "alpha = 1",
            "import jupyter_mltrack as mlflow\n"
            "with mlflow.start_run() as run:\n"
            "    mlflow.log_param('alpha', alpha)\n"
            "    mlflow.log_metric('score', alpha * 10)\n"
            "    with mlflow.start_run(nested=True):\n"
            "        mlflow.log_metric('inner', 1)",
        ],
    )
    run = run_notebook(path, {"alpha": 2})
    assert run.data.metrics == {"score": 20.0} and run.data.params == {"alpha": "2"}
    assert run.info.status == "FINISHED"
    children = mlflow.search_runs(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{run.info.run_id}'",
        output_format="list",
    )
    assert [c.data.metrics for c in children] == [{"inner": 1.0}]


def test_cli_runs_a_notebook(tmp_path: Path, store: str) -> None:
    from click.testing import CliRunner

    from jupyter_mltrack.cli import main

    path = write_notebook(tmp_path / "train.ipynb", TRAIN)
    result = CliRunner().invoke(
        main, ["--tracking-uri", store, "run", str(path), "-P", "lr=0.1", "-P", "epochs=5"]
    )
    assert result.exit_code == 0, result.output
    [run] = mlflow.search_runs(
        search_all_experiments=True,
        filter_string="tags.mlflow.parentRunId IS NULL",
        output_format="list",
    )
    assert run.data.metrics == {"loss": 2.0} and run.data.params["epochs"] == "5"


def test_mlproject_entry_point_whose_command_is_a_notebook(tmp_path: Path, store: str) -> None:
    from jupyter_mltrack import projects

    project = tmp_path / "nbproject"
    project.mkdir()
    write_notebook(project / "train.ipynb", TRAIN)
    (project / "MLproject").write_text(
        "name: nbproject\n"
        "entry_points:\n"
        "  main:\n"
        "    parameters:\n"
        "      lr: {type: float, default: 0.25}\n"
        "      epochs: {type: int, default: 2}\n"
        "    command: train.ipynb\n"
    )
    run = projects.run(str(project), parameters={"epochs": 4}, env_manager="local", quiet=True)
    assert run.data.params["lr"] == "0.25" and run.data.params["epochs"] == "4"
    assert run.data.metrics == {"loss": 1.0}
    assert run.data.tags["mlflow.project.entryPoint"] == "main"
    names = [a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "notebook")]
    assert names == ["notebook/train.ipynb"]
    (project / "MLproject").write_text(
        "name: nbproject\nentry_points:\n  main:\n    command: missing.ipynb\n"
    )
    with pytest.raises(projects.ProjectSpecError, match=r"missing\.ipynb"):
        projects.run(str(project), env_manager="local", quiet=True)
