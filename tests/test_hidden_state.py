"""Hidden-state detection: the analysis on its own, then %%track in real kernels."""

from __future__ import annotations

import json
import os
import queue
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

import jupyter_mltrack as mlflow
from jupyter_mltrack.notebook import hidden_state as hs
from jupyter_mltrack.notebook.summary import RunSummary


# -- what a cell binds and reads ----------------------------------------------------------------
def test_bound_names():
    names = hs.cell_names(
        "import numpy as np, os.path\n"
        "from sklearn.linear_model import LinearRegression as LR\n"
        "a = b = 1\n"
        "c, (d, *e) = 1, (2, 3)\n"
        "f: int = 2\n"
        "g += 1\n"
        "for i, j in []: pass\n"
        "with open('x') as fh: pass\n"
        "def fn(arg): local = arg\n"
        "class K: attr = 1\n"
        "if (w := 3): pass\n"
        "[q for q in range(3)]\n"
        "obj.attr = 1\n"
        "seq[0] = 1\n"
        "gone = 1\n"
        "del gone\n"
    )
    assert names.bound == {
        "np", "os", "LR", "a", "b", "c", "d", "e", "f", "g", "i", "j", "fh", "fn", "K", "w",
    }  # fmt: skip
    assert names.deleted == {"gone"}
    assert names.imports == {"numpy", "os", "sklearn"}
    assert not names.star
    assert hs.cell_names("from pylab import *").star


def test_read_names_are_the_free_names():
    names = hs.cell_names(
        "y = x * 2\n"  # x: free
        "z = y + 1\n"  # y: bound earlier in the cell
        "total += step\n"  # total and step: read before bound
        "n = len(items)\n"  # len: a builtin is a read too (judged only if a cell bound it)
        "def f(a):\n    return a + scale + later\n"  # scale free; later is bound below
        "later = 1\n"
        "lam = lambda v: v * factor\n"
        "sq = [k * weight for k in ks]\n"
        "for row in rows:\n    acc = row\n"
        "try:\n    pass\nexcept ValueError as err:\n    print(err)\n"
    )
    assert names.reads == {
        "x", "total", "step", "len", "items", "scale", "factor", "weight", "ks", "rows",
        "ValueError", "print",
    }  # fmt: skip


def test_split_cell_magic():
    assert hs.split_cell_magic("%%track name --tag a=b\nx = 1") == ("track", "x = 1")
    assert hs.split_cell_magic("x = 1") == (None, "x = 1")


# -- the judgement, on a hand-made log ----------------------------------------------------------
class _Shell:
    user_ns: dict = {}

    def transform_cell(self, raw: str) -> str:
        return raw


def _notebook(tmp_path: Path, cells: list[tuple[str, str]]) -> hs.SavedNotebook:
    path = tmp_path / f"nb-{time.perf_counter_ns()}.ipynb"
    nb = new_notebook(cells=[new_code_cell(src, id=cid) for cid, src in cells])
    nbformat.write(nb, path)
    notebook = hs.read_notebook(str(path))
    assert notebook is not None
    return notebook


def test_notebook_rule_each_reason(tmp_path):
    log = hs.ExecutionLog(_Shell())
    log.record("a = 1", "top", 1, {"a"})
    log.record("later = 1", "bottom", 2, {"later"})
    log.record("old = 1\nkeep = 1", "edited", 3, {"old", "keep"})
    log.record("keep = 1", "edited", 4, {"keep"})  # re-run without `old`: old is from before
    log.record("gone = 1", "deleted", 5, {"gone"})
    log.deleted_ids.add("deleted")
    log.record("typed = 1", None, 6, {"typed"})  # no cell id, a source in no cell
    log.record("mine = 1", "here", 7, {"mine"})  # an earlier run of the tracked cell
    log.record("%%track\ny = 1", None, 8, {"y"}, backfilled=True)
    notebook = _notebook(
        tmp_path,
        [
            ("top", "a = 1"),
            ("edited", "keep = 1"),
            ("here", "%%track\nmine = mine + a + later + old + keep + gone + typed"),
            ("bottom", "later = 1"),
        ],
    )
    log.record("fresh = 1", "new", 9, {"fresh"})  # ran after the save, not in the file
    reads = {"a", "later", "old", "keep", "gone", "typed", "mine", "fresh", "len"}
    verdict = hs.judge(log, reads, "here", hs.source_hash("x"), notebook)
    assert verdict.basis == "notebook" and not verdict.reproducible
    assert dict(verdict.short()) == {
        "later": hs.LATER,
        "old": hs.EDITED,
        "gone": hs.DELETED,
        "typed": hs.INTERACTIVE,
        "mine": hs.SELF,
        "fresh": hs.UNSAVED,
    }
    tags = verdict.tags(8000)
    assert tags[hs.REPRODUCIBLE_TAG] == "false"
    assert "later: bound by a later cell (id bottom, [2])" in tags[hs.REASONS_TAG]
    assert "typed: bound by code outside the notebook ([6])" in tags[hs.REASONS_TAG]
    assert len(verdict.tags(40)[hs.REASONS_TAG]) == 40  # kept under the tag length limit


def test_notebook_rule_saved_after_an_edit_and_clean_cases(tmp_path):
    log = hs.ExecutionLog(_Shell())
    log.record("x = 5", "def", 1, {"x"})
    log.record("import numpy as np", None, 2, {"np"}, backfilled=True)  # before %load_ext
    time.sleep(0.01)
    notebook = _notebook(
        tmp_path, [("imp", "import numpy as np"), ("def", "x = 6"), ("use", "%%track\nx")]
    )
    verdict = hs.judge(log, {"x", "np"}, "use", "h", notebook)
    assert verdict.short() == [("x", hs.EDITED)]  # saved with x = 6 after x = 5 ran
    log.record("x = 6", "def", 3, {"x"})
    assert hs.judge(log, {"x", "np"}, "use", "h", notebook).reproducible


def test_execution_order_rule():
    """No cell ids: cells are sources, ordered by their first execution."""
    log = hs.ExecutionLog(_Shell())
    track = "%%track\ny = x * 2"
    log.record("x = 1", None, 1, {"x"})
    log.record(track, None, 2, {"y"})
    assert hs.judge(log, {"x"}, None, hs.source_hash(track), None).reproducible
    log.record("x = 2", None, 3, {"x"})  # first run after the tracked cell's first run
    verdict = hs.judge(log, {"x"}, None, hs.source_hash(track), None)
    assert verdict.basis == "execution order" and verdict.short() == [("x", hs.LATER)]
    log.record("x = 1", None, 4, {"x"})  # re-running the cell above fixes it
    assert hs.judge(log, {"x"}, None, hs.source_hash(track), None).reproducible
    bump = "%%track\nx = x + 1"
    log.record(bump, None, 5, {"x"})
    assert hs.judge(log, {"x"}, None, hs.source_hash(bump), None).short() == [("x", hs.SELF)]


def test_summary_shows_the_names(tmp_path):
    summary = RunSummary("r1", "run", "Default", "FINISHED", 0, 0, 0, 0.1)
    assert "hidden state" not in repr(summary) and "hidden" not in summary._repr_html_()
    summary.hidden_state = [("x", hs.LATER), ("df", hs.DELETED)]
    assert "⚠ hidden state: x (later cell), df (deleted cell)" in repr(summary)
    assert "⚠ hidden state: x (later cell), df (deleted cell)" in summary._repr_html_()


def test_analysis_cost_is_small():
    source = "\n".join(f"v{i} = f(v{i - 1}, data[{i}])" for i in range(1, 200))
    hs.cell_names(source)
    log = hs.ExecutionLog(_Shell())
    for i in range(200):
        log.record(f"v{i} = {i}", f"c{i}", i, {f"v{i}"})
    reads = hs.cell_names(source).reads
    started = time.perf_counter()
    for _ in range(100):
        hs.cell_names(source)  # cached per source
        hs.judge(log, reads, "c5", "h", None)
    per_cell = (time.perf_counter() - started) / 100
    assert per_cell < 0.001, f"{per_cell * 1e3:.2f} ms per tracked cell"


# -- a real kernel, a notebook on disk giving the order -----------------------------------------
class Kernel:
    """A real ipykernel; ``run(code, cell_id)`` sends an execute request like JupyterLab does."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        from jupyter_client.manager import start_new_kernel

        self.store = tmp_path / "kstore"
        self.path = tmp_path / "analysis.ipynb"
        monkeypatch.setenv("MLTRACK_TRACKING_URI", str(self.store))
        monkeypatch.setenv("JPY_SESSION_NAME", str(self.path))
        self.km, self.kc = start_new_kernel(kernel_name="python3", cwd=str(tmp_path))

    def save(self, cells: list[tuple[str, str]]) -> None:
        """Save the notebook as the frontend would: cells (id, source) in notebook order."""
        time.sleep(0.01)  # the file's mtime must follow the executions it reflects
        nb = new_notebook(cells=[new_code_cell(src, id=cid) for cid, src in cells])
        nbformat.write(nb, self.path)

    def run(self, code: str, cell_id: str | None = None, deleted: list[str] | None = None) -> str:
        """Execute; return the text of what the cell displayed. Fails on an error."""
        metadata = {}
        if cell_id:
            metadata["cellId"] = cell_id
        if deleted:
            metadata["deletedCells"] = deleted
        content = {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                   "allow_stdin": False, "stop_on_error": True}  # fmt: skip
        msg = self.kc.session.msg("execute_request", content, metadata=metadata)
        self.kc.shell_channel.send(msg)
        shown = []
        while True:
            reply = self.kc.get_iopub_msg(timeout=60)
            if reply["parent_header"].get("msg_id") != msg["header"]["msg_id"]:
                continue
            kind, body = reply["msg_type"], reply["content"]
            if kind in ("display_data", "execute_result"):
                shown.append(body["data"].get("text/plain", ""))
                shown.append(body["data"].get("text/html", ""))
            elif kind == "stream":
                shown.append(body["text"])
            elif kind == "error":
                shown.append(f"{body['ename']}: {body['evalue']}")
            elif kind == "status" and body["execution_state"] == "idle":
                return "\n".join(shown)

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)
        try:
            while True:
                self.kc.get_iopub_msg(timeout=0.01)
        except (queue.Empty, Exception):
            pass

    def runs(self) -> dict:
        mlflow.set_tracking_uri(str(self.store))
        found = mlflow.search_runs(search_all_experiments=True, output_format="list")
        return {run.info.run_name: run for run in found}


@pytest.fixture
def kernel(tmp_path, monkeypatch):
    k = Kernel(tmp_path, monkeypatch)
    try:
        yield k
    finally:
        k.close()


LOAD = "%load_ext jupyter_mltrack"


def test_cell_reading_a_later_cells_variable_is_flagged(kernel):
    uses = "%%track uses-x\ny = x * 2"
    kernel.save([("c0", LOAD), ("c1", uses), ("c2", "x = 5")])
    kernel.run(LOAD, "c0")
    kernel.run("x = 5", "c2")  # run first, but placed after the tracked cell
    shown = kernel.run(uses, "c1")
    assert "⚠ hidden state: x (later cell)" in shown
    tags = kernel.runs()["uses-x"].data.tags
    assert tags["mltrack.reproducible"] == "false"
    assert tags["mltrack.reproducible.basis"] == "notebook"
    assert tags["mltrack.reproducible.reasons"] == "x: bound by a later cell (id c2, [2])"


def test_clean_top_to_bottom_run_is_reproducible(kernel):
    cells = [("c0", LOAD), ("c1", "import json\nx = 5"), ("c2", "%%track clean\ny = x * 2\nz = json.dumps(y)")]  # fmt: skip
    kernel.save(cells)
    shown = "".join(kernel.run(src, cid) for cid, src in cells)
    assert "mltrack run 'clean'" in shown and "hidden state" not in shown
    tags = kernel.runs()["clean"].data.tags
    assert tags["mltrack.reproducible"] == "true"
    assert tags["mltrack.reproducible.basis"] == "notebook"
    assert "mltrack.reproducible.reasons" not in tags


def test_edited_defining_cell(kernel):
    track = "%%track {}\ny = x * 2"
    kernel.run(LOAD, "c0")
    kernel.run("x = 5", "c1")
    kernel.save(
        [("c0", LOAD), ("c1", "x = 6"), ("c2", track.format("stale"))]
    )  # edited, saved, not re-run
    assert "x (edited cell)" in kernel.run(track.format("stale"), "c2")
    kernel.run("x = 6", "c1")
    kernel.save([("c0", LOAD), ("c1", "x = 6"), ("c2", track.format("fresh"))])
    kernel.run(track.format("fresh"), "c2")
    runs = kernel.runs()
    assert runs["stale"].data.tags["mltrack.reproducible.reasons"] == (
        "x: bound by a cell edited since (id c1, [2])"
    )
    assert runs["fresh"].data.tags["mltrack.reproducible"] == "true"


def test_deleted_defining_cell(kernel):
    track = "%%track gone\ny = x * 2"
    kernel.run(LOAD, "c0")
    kernel.run("x = 5", "c1")
    kernel.save([("c0", LOAD), ("c2", track)])
    # JupyterLab reports the cells deleted since the last execution request
    assert "x (deleted cell)" in kernel.run(track, "c2", deleted=["c1"])
    tags = kernel.runs()["gone"].data.tags
    assert tags["mltrack.reproducible"] == "false"
    assert tags["mltrack.reproducible.reasons"] == "x: bound by a deleted cell (id c1, [2])"


def test_interactive_only_binding(kernel):
    track = "%%track typed\ny = x * 2"
    kernel.save([("c0", LOAD), ("c1", track)])
    kernel.run(LOAD, "c0")
    kernel.run("x = 5")  # a console: no cell id, and no cell of the notebook has this source
    assert "x (interactive)" in kernel.run(track, "c1")
    tags = kernel.runs()["typed"].data.tags
    assert tags["mltrack.reproducible.reasons"] == "x: bound by code outside the notebook ([2])"


def test_without_cell_ids_execution_order_rule(kernel):
    """nbclient / plain IPython: no cell ids; a re-run reading what a newer cell bound."""
    kernel.run("import numpy as np")  # before %load_ext: read back from the history
    kernel.run(LOAD)
    kernel.run("x = 1")
    kernel.run("%%track first\ny = np.float64(x) * 2")
    kernel.run("x = 2")  # a cell first run after the tracked one
    shown = kernel.run("%%track first\ny = np.float64(x) * 2")
    assert "x (later cell)" in shown
    kernel.run("%%track bump\nx = x + 1")
    assert "x (earlier run of this cell)" in kernel.run("%%track bump\nx = x + 1")
    mlflow.set_tracking_uri(str(kernel.store))
    first, again = mlflow.search_runs(
        filter_string="attributes.run_name = 'first'",
        order_by=["attributes.start_time ASC"],
        output_format="list",
    )
    assert first.data.tags["mltrack.reproducible"] == "true"
    assert first.data.tags["mltrack.reproducible.basis"] == "execution order"
    assert again.data.tags["mltrack.reproducible"] == "false"


def test_nbclient_top_to_bottom_is_reproducible(tmp_path, monkeypatch):
    from nbclient import NotebookClient

    store = tmp_path / "kstore"
    monkeypatch.setenv("MLTRACK_TRACKING_URI", str(store))
    monkeypatch.setenv("JPY_SESSION_NAME", str(tmp_path / "analysis.ipynb"))
    sources = [
        "import numpy as np",
        LOAD,
        "x = 1\nimport numpy as np",  # the same import again, in another cell
        "%%track clean\ny = np.float64(x) * 2",
        "x = 3",
        "%%track second\nz = x + y",
    ]
    nb = new_notebook(cells=[new_code_cell(s) for s in sources])
    NotebookClient(nb, timeout=120, kernel_name="python3").execute(cwd=str(tmp_path))
    mlflow.set_tracking_uri(str(store))
    runs = {r.info.run_name: r for r in mlflow.search_runs(output_format="list")}
    for run in runs.values():
        assert run.data.tags["mltrack.reproducible"] == "true"
        assert run.data.tags["mltrack.reproducible.basis"] == "execution order"
    packages = json.loads(runs["clean"].data.tags["mltrack.packages"])
    import numpy

    assert packages["numpy"] == numpy.__version__
    assert "pandas" not in packages and "ipykernel" not in packages


def test_packages_the_cell_imported_in_a_kernel(kernel):
    import numpy

    kernel.run(LOAD, "c0")
    kernel.run("%%track none\nvalue = 1", "c1")
    kernel.run("%%track with-numpy\nimport numpy as np\nvalue = float(np.sqrt(4))", "c2")
    runs = kernel.runs()
    before = json.loads(runs["none"].data.tags["mltrack.packages"])
    after = json.loads(runs["with-numpy"].data.tags["mltrack.packages"])
    assert "numpy" not in before and "jupyter-mltrack" in before
    assert after["numpy"] == numpy.__version__  # imported by the tracked cell itself
    assert not {"ipykernel", "tornado", "pyzmq", "traitlets", "SQLAlchemy"} & set(after)
    assert os.path.exists(kernel.store / "mltrack.db")
