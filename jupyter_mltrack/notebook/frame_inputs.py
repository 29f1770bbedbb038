"""The data a ``%%track`` cell reads, recorded as the run's dataset inputs.

Which objects: the cell's free names (``hidden_state.cell_names(...).reads``: names the cell
loads before binding them itself, including names read inside functions it defines) that hold,
in the user's namespace when the cell starts, a pandas ``DataFrame``, a pandas ``Series``
(recorded as a one-column frame) or a numpy array of at least one dimension. A frame the cell
creates is not an input (it is bound, not read); ``df = df.dropna()`` records the frame the
cell read, not the one it made. Attributes (``data.train``) and items (``frames["x"]``) are
not followed. One object read under two names is recorded once (the first name in
alphabetical order). At most ``MAX_INPUTS`` per cell.

What is recorded: a dataset named after the variable, with the digest, schema and profile of
``jupyter_mltrack.data`` (``from_pandas`` / ``from_numpy``; source: the notebook, or the code
running when the notebook is not known), and the input tags ``mlflow.data.context`` and
``mltrack.data.origin = cell``. The context is ``eval`` when a part of the variable's name
says so (``test``, ``val``, ``valid``, ``validation``, ``eval``, ``holdout``, ``dev``:
``X_test``, ``val_df``, ``dfEval``), else ``training``.

When: references and digests are taken just before the cell runs (so an in-place change made
by the cell is not mistaken for what it read); the inputs are logged after it, in one
``log_inputs`` call, leaving out data the cell logged itself with ``mlflow.log_input`` (same
digest), so a run never holds the same data twice.

Cost: a digest hashes at most ``jupyter_mltrack.data.dataset.SAMPLE_ROWS`` evenly spaced rows
of data over ``FULL_HASH_ROWS`` rows (see that module), so a 10-million-row frame costs about
10 ms; frames up to a million rows are hashed whole (about 35 ms for a million rows of four
columns). Off with ``%%track --no-inputs`` or ``%config MLTrack.capture_inputs = False``.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from jupyter_mltrack.entities import DatasetInput, InputTag

CONTEXT_TAG = "mlflow.data.context"
ORIGIN_TAG = "mltrack.data.origin"
ORIGIN = "cell"
TRAINING, EVAL = "training", "eval"
MAX_INPUTS = 20
_EVAL_WORDS = frozenset({"test", "val", "valid", "validation", "eval", "holdout", "dev"})


@dataclass
class CellInput:
    """One dataset a cell read: the variable and what will be logged for it."""

    variable: str
    dataset_input: DatasetInput

    @property
    def digest(self) -> str:
        return self.dataset_input.dataset.digest


def context_of(name: str) -> str:
    """``eval`` for ``X_test``, ``val_df``, ``dfEval``...; ``training`` otherwise."""
    spaced = re.sub(r"([a-z])([A-Z])", r"\1_\2", name)
    words = {w for w in re.split(r"[^a-zA-Z]+", spaced.lower()) if w}
    return EVAL if words & _EVAL_WORDS else TRAINING


def data_objects(names: Iterable[str], namespace: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """``(name, object)`` for the names holding a DataFrame, Series or ndarray (ndim >= 1),
    sorted by name, each object once."""
    pd, np = sys.modules.get("pandas"), sys.modules.get("numpy")
    if pd is None and np is None:  # neither imported: no such object can exist
        return []
    kinds: tuple[type, ...] = ()
    if pd is not None:
        kinds += (pd.DataFrame, pd.Series)
    if np is not None:
        kinds += (np.ndarray,)
    found, seen = [], set()
    for name in sorted(names):
        value = namespace.get(name)
        if value is None or id(value) in seen or not isinstance(value, kinds):
            continue
        if np is not None and isinstance(value, np.ndarray) and value.ndim == 0:
            continue
        seen.add(id(value))
        found.append((name, value))
    return found[:MAX_INPUTS]


def dataset_input(name: str, value: Any, source: Any = None) -> DatasetInput:
    """The input logged for variable ``name`` holding ``value`` (``source``: a
    ``DatasetSource``; by default the code running, as for ``from_pandas``)."""
    from jupyter_mltrack import data

    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(value, pd.Series):
        value = value.to_frame()
    if pd is not None and isinstance(value, pd.DataFrame):
        dataset = data.from_pandas(value, source=source, name=name)
    else:
        dataset = data.from_numpy(value, source=source, name=name)
    tags = [InputTag(CONTEXT_TAG, context_of(name)), InputTag(ORIGIN_TAG, ORIGIN)]
    return DatasetInput(dataset._to_mlflow_entity(), tags)


def collect(
    source: str,
    namespace: Mapping[str, Any],
    notes: list[str] | None = None,
    notebook: str | None = None,
) -> list[CellInput]:
    """The inputs of the cell ``source`` (transformed by IPython) before it runs; an object
    that cannot be hashed is left out with a note. ``notebook``: the notebook's path, recorded
    as the datasets' code source."""
    from jupyter_mltrack.data import CodeDatasetSource
    from jupyter_mltrack.notebook.hidden_state import cell_names

    origin = None
    if notebook:
        origin = CodeDatasetSource(
            {"mlflow.source.name": notebook, "mlflow.source.type": "NOTEBOOK"}
        )

    try:
        candidates = data_objects(cell_names(source).reads, namespace)
    except Exception:  # a cell that does not parse, an object that fails isinstance: none
        return []
    found = []
    for name, value in candidates:
        try:
            found.append(CellInput(name, dataset_input(name, value, origin)))
        except Exception as err:  # an exotic dtype, a broken __array__...: skip this one
            if notes is not None:
                notes.append(f"input {name} not recorded: {err}")
    return found


def log(client: Any, run_id: str, inputs: list[CellInput]) -> int:
    """Log ``inputs`` to ``run_id`` in one call, except data the run already has as an input;
    returns how many were logged."""
    if not inputs:
        return 0
    logged = {i.dataset.digest for i in client.get_run(run_id).inputs.dataset_inputs}
    todo = []
    for item in inputs:  # equal data under two names (df, df.copy()) is one input too
        if item.digest not in logged:
            logged.add(item.digest)
            todo.append(item.dataset_input)
    if todo:
        client.log_inputs(run_id, todo)
    return len(todo)
