"""Hidden state: does a tracked cell read values a top-to-bottom run would not give it?

The kernel only sees executions, so the extension keeps an execution log (``ExecutionLog``,
one per shell, fed by the ``pre_run_cell`` / ``post_run_cell`` events): for every executed
cell its cell id (when the frontend sends one), the hash of its source, its execution count,
and the module-level names it bound; and, for every name, the execution that bound it last.

When a ``%%track`` cell starts, each name it reads (its free names, see ``cell_names``) whose
last binding is in the log is judged, and a ``HiddenState`` is recorded on the run as
``mltrack.reproducible`` (``true``/``false``) with ``mltrack.reproducible.reasons``.

Two rules, the ``basis`` of the finding:

``notebook`` -- the frontend sends cell ids and the saved notebook (its path as recorded in
    ``mlflow.source.name``) is readable and contains the tracked cell. The order of cells is
    the saved file's. A name is flagged when its last binding came from

    * ``later cell``: a cell placed after the tracked cell;
    * ``earlier run of this cell``: the tracked cell itself (it reads what it bound before);
    * ``edited cell``: a cell whose source has changed since it ran (a later execution of the
      same cell id had another source, or the notebook was saved after it ran with another
      source in that cell);
    * ``deleted cell``: a cell the frontend reported deleted (JupyterLab sends
      ``deletedCells`` with execute requests) or that an earlier read of the file contained;
    * ``unsaved cell``: a cell id absent from the file that ran after the file was last saved
      (a new cell: the saved notebook cannot reproduce the run yet -- save and re-run);
    * ``interactive``: an execution without a cell id whose source is in no cell of the
      notebook (a console, ``%run`` from elsewhere...), or a cell id that ran before the last
      save and never was in the notebook (another notebook's or a console's cell).

    The file is what was last saved: cells moved, edited or added without saving are judged
    on the saved order (JupyterLab autosaves every 2 minutes).

``execution order`` -- no cell ids (nbclient, plain IPython), an unreadable notebook, or a
    tracked cell not yet saved. A cell is its id when it has one, otherwise its exact source;
    cells are ordered by their first execution, which is the notebook order of a
    top-to-bottom run. A name is flagged when its last binding came from an earlier run of
    the tracked cell itself, or from a cell first executed after the tracked cell was first
    executed: the tracked cell is being re-executed and reads a value bound after its
    previous run by code that came after it. Cells with ids are also flagged ``edited`` and
    ``deleted`` as above (from the log and the frontend's reports). A clean top-to-bottom run
    executes every cell once, in order, and is never flagged; without cell ids an edited
    cell looks like a new one, so edits are only seen when a cell is re-executed.

Only names whose binding the log saw are judged: builtins, IPython's own names and values
bound outside cells (``exec``, ``global`` in a function, ``%store -r``) are not. Executions
from before ``%load_ext`` are read back from IPython's input history (without cell ids).
A cell that fails binds only the names whose object changed; ``from m import *`` and
``%run`` bind the names they add to the namespace.

Cost: sources are analysed once per hash (``cell_names`` is cached); the notebook file is
parsed once per save (cached on its mtime and size).
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

REPRODUCIBLE_TAG = "mltrack.reproducible"
REASONS_TAG = "mltrack.reproducible.reasons"
BASIS_TAG = "mltrack.reproducible.basis"

LATER = "later cell"
SELF = "earlier run of this cell"
EDITED = "edited cell"
DELETED = "deleted cell"
UNSAVED = "unsaved cell"
INTERACTIVE = "interactive"

# Cell magics whose body runs in the user's namespace (their bindings count).
_BODY_MAGICS = frozenset({"track", "time", "capture"})


# -- what a source binds and reads --------------------------------------------------------------
@dataclass(frozen=True)
class CellNames:
    """Module-level names a cell binds, the free names it reads, the modules it imports."""

    bound: frozenset[str]
    reads: frozenset[str]
    imports: frozenset[str]  # top-level module names (``import a.b`` -> ``a``)
    deleted: frozenset[str] = frozenset()
    star: bool = False  # ``from m import *`` or ``%run``: binds names we cannot see


def source_hash(source: str) -> str:
    """The identity of a cell's text (trailing whitespace ignored: frontends differ on it)."""
    return hashlib.sha1(source.rstrip().encode("utf-8", "surrogatepass")).hexdigest()[:16]


@lru_cache(maxsize=2048)
def cell_names(source: str) -> CellNames:
    """Names bound and read by ``source`` (Python, after IPython's transforms). Cached."""
    scan = _Scan()
    scan.visit(ast.parse(source))
    module_bound = scan.stored | scan.bound
    reads = scan.reads | (scan.deferred - module_bound)
    return CellNames(
        bound=frozenset(scan.stored - scan.deleted),
        reads=frozenset(reads),
        imports=frozenset(scan.imports),
        deleted=frozenset(scan.deleted),
        star=scan.star,
    )


class _Scan(ast.NodeVisitor):
    """Walks module-level code in evaluation order; function and class bodies are deferred.

    ``bound`` is what is bound so far (a load of a name not in it is a free read);
    ``stored`` the names the cell leaves bound; ``deferred`` the free names of nested scopes
    (read when the function runs, so a name bound anywhere in the cell does not count).
    """

    def __init__(self) -> None:
        self.bound: set[str] = set()
        self.stored: set[str] = set()
        self.deleted: set[str] = set()
        self.reads: set[str] = set()
        self.deferred: set[str] = set()
        self.imports: set[str] = set()
        self.star = False

    def _bind(self, name: str) -> None:
        self.bound.add(name)
        self.stored.add(name)
        self.deleted.discard(name)

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            if node.id not in self.bound:
                self.reads.add(node.id)
        elif isinstance(node.ctx, ast.Store):
            self._bind(node.id)
        else:  # del x
            self.bound.discard(node.id)
            self.stored.discard(node.id)
            self.deleted.add(node.id)

    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        for target in node.targets:
            self.visit(target)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)
        self.visit(node.annotation)
        if node.value is not None or not isinstance(node.target, ast.Name):
            self.visit(node.target)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.visit(node.value)
        if isinstance(node.target, ast.Name):
            if node.target.id not in self.bound:
                self.reads.add(node.target.id)
            self._bind(node.target.id)
        else:
            self.visit(node.target)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        self._bind(node.target.id)

    def _visit_loop(self, node: ast.For | ast.AsyncFor) -> None:
        self.visit(node.iter)
        self.visit(node.target)
        for stmt in (*node.body, *node.orelse):
            self.visit(stmt)

    visit_For = visit_AsyncFor = _visit_loop

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            top = alias.name.split(".")[0]
            self.imports.add(top)
            self._bind(alias.asname or top)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level == 0 and node.module:
            self.imports.add(node.module.split(".")[0])
        for alias in node.names:
            if alias.name == "*":
                self.star = True
            else:
                self._bind(alias.asname or alias.name)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.type is not None:
            self.visit(node.type)
        if node.name:
            self.bound.add(node.name)  # unbound again when the handler ends: not stored
        for stmt in node.body:
            self.visit(stmt)

    def _visit_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        args = node.args
        for default in (*args.defaults, *(d for d in args.kw_defaults if d is not None)):
            self.visit(default)
        if not isinstance(node, ast.Lambda):
            for decorator in node.decorator_list:
                self.visit(decorator)
            for arg in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg):
                if arg is not None and arg.annotation is not None:
                    self.visit(arg.annotation)
            if node.returns is not None:
                self.visit(node.returns)
            self._bind(node.name)
        self.deferred |= _free_in_scope(node)

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _visit_function

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for expr in (*node.decorator_list, *node.bases, *(k.value for k in node.keywords)):
            self.visit(expr)
        self.deferred |= _free_in_scope(node)
        self._bind(node.name)

    def _visit_comprehension(self, node: ast.AST) -> None:
        generators = node.generators  # type: ignore[attr-defined]
        self.visit(generators[0].iter)  # evaluated in the enclosing scope
        for walrus in (n for n in ast.walk(node) if isinstance(n, ast.NamedExpr)):
            self._bind(walrus.target.id)  # := in a comprehension binds in the module
        self.reads |= _free_in_scope(node) - self.bound

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _visit_comprehension

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        if node.pattern is not None:
            self.visit(node.pattern)
        if node.name:
            self._bind(node.name)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        if node.name:
            self._bind(node.name)

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        self.generic_visit(node)
        if node.rest:
            self._bind(node.rest)

    def visit_Call(self, node: ast.Call) -> None:
        # get_ipython().run_line_magic('run', ...) binds whatever the script defines
        func = node.func
        if (
            isinstance(func, ast.Attribute)
            and func.attr == "run_line_magic"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and node.args[0].value == "run"
        ):
            self.star = True
        self.generic_visit(node)


def _free_in_scope(scope: ast.AST) -> set[str]:
    """Names loaded anywhere inside a function, class or comprehension that it does not bind.

    An approximation that treats nested scopes as one (what any of them binds is local).
    """
    loads: set[str] = set()
    local: set[str] = set()
    globals_: set[str] = set()
    for node in ast.walk(scope):
        if node is scope and not isinstance(scope, ast.Lambda):
            continue  # a def's or class's own name belongs to the enclosing scope
        if isinstance(node, ast.Name):
            (loads if isinstance(node.ctx, ast.Load) else local).add(node.id)
        elif isinstance(node, ast.arg):
            local.add(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            local.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            local.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            local.add(node.name)
        elif isinstance(node, ast.Global):
            globals_.update(node.names)
    return loads - (local - globals_)


def split_cell_magic(raw: str) -> tuple[str | None, str]:
    """``("track", body)`` for a ``%%track`` cell; ``(None, raw)`` for ordinary code."""
    stripped = raw.lstrip()
    if not stripped.startswith("%%"):
        return None, raw
    first, _, body = stripped.partition("\n")
    name = first[2:].split(None, 1)[0] if first[2:].strip() else ""
    return name, body


def names_of_raw(shell: Any, raw: str) -> CellNames | None:
    """What an executed cell (as typed, magics included) binds and reads; None if unparsable."""
    return _names_of_raw(shell, raw)


_raw_cache: dict[str, CellNames | None] = {}


def _names_of_raw(shell: Any, raw: str) -> CellNames | None:
    key = source_hash(raw) + str(len(raw))
    if key in _raw_cache:
        return _raw_cache[key]
    magic, body = split_cell_magic(raw)
    result: CellNames | None
    if magic is not None and magic not in _BODY_MAGICS:
        result = CellNames(frozenset(), frozenset(), frozenset())  # %%bash, %%html...: no names
    else:
        try:
            result = cell_names(shell.transform_cell(body))
        except (SyntaxError, ValueError, TypeError):
            result = None
    if len(_raw_cache) > 4096:
        _raw_cache.clear()
    _raw_cache[key] = result
    return result


# -- the execution log --------------------------------------------------------------------------
@dataclass(frozen=True)
class Execution:
    """One executed cell, as the kernel saw it."""

    seq: int  # order in this process
    count: int | None  # execution count (In[count]); None for silent executions
    cell_id: str | None
    source_hash: str
    at: float  # time.time() when it ended
    backfilled: bool = False  # read back from history when the extension was loaded

    @property
    def key(self) -> tuple[str, str]:
        """The cell it came from: its id, else its source."""
        return ("id", self.cell_id) if self.cell_id else ("src", self.source_hash)

    def label(self) -> str:
        where = f"[{self.count}]" if self.count is not None else "[silent]"
        return f"id {self.cell_id}, {where}" if self.cell_id else where


@dataclass
class ExecutionLog:
    """Every execution of this kernel, and which one bound each name last."""

    shell: Any
    executions: list[Execution] = field(default_factory=list)
    binder: dict[str, Execution] = field(default_factory=dict)
    first_seq: dict[tuple[str, str], int] = field(default_factory=dict)
    latest_hash: dict[str, str] = field(default_factory=dict)  # cell id -> last source run
    deleted_ids: set[str] = field(default_factory=set)
    seen_ids: dict[str, set[str]] = field(default_factory=dict)  # notebook path -> ids read
    current: Any = None  # the ExecutionInfo of the cell running now
    _before: dict[str, int] = field(default_factory=dict)
    _before_keys: set[str] | None = None

    # IPython event hooks
    def pre_run_cell(self, info: Any) -> None:
        self.current = info
        meta = getattr(info, "cell_meta", None) or {}
        deleted = meta.get("deletedCells") if isinstance(meta, dict) else None
        if isinstance(deleted, list):
            self.deleted_ids.update(str(d) for d in deleted)
        names = _names_of_raw(self.shell, info.raw_cell or "")
        ns = self.shell.user_ns
        self._before = {n: id(ns[n]) for n in names.bound if n in ns} if names else {}
        self._before_keys = set(ns) if names is None or names.star else None

    def post_run_cell(self, result: Any) -> None:
        info = getattr(result, "info", None) or self.current
        if info is None:
            return
        raw = info.raw_cell or ""
        names = _names_of_raw(self.shell, raw)
        ns = self.shell.user_ns
        failed = not getattr(result, "success", True)
        bound: set[str] = set()
        if names is not None:
            bound = set(names.bound)
            if failed:  # only what the cell got to rebind before it stopped
                bound = {n for n in bound if n in ns and id(ns[n]) != self._before.get(n)}
        if self._before_keys is not None:
            bound |= set(ns) - self._before_keys
        self.record(
            raw,
            getattr(info, "cell_id", None),
            getattr(result, "execution_count", None),
            bound,
            set(names.deleted) if names else set(),
        )
        self.current, self._before, self._before_keys = None, {}, None
        if names is not None and names.imports:
            from jupyter_mltrack.tracking.context import note_imports

            note_imports(names.imports)

    def record(
        self,
        raw: str,
        cell_id: str | None,
        count: int | None,
        bound: set[str],
        deleted: set[str] = frozenset(),  # type: ignore[assignment]
        backfilled: bool = False,
    ) -> Execution:
        execution = Execution(
            seq=len(self.executions),
            count=count,
            cell_id=cell_id or None,
            source_hash=source_hash(raw),
            at=time.time(),
            backfilled=backfilled,
        )
        self.executions.append(execution)
        self.first_seq.setdefault(execution.key, execution.seq)
        if execution.cell_id:
            self.latest_hash[execution.cell_id] = execution.source_hash
        for name in bound:
            self.binder[name] = execution
        for name in deleted:
            self.binder.pop(name, None)
        return execution

    def backfill(self) -> None:
        """Executions before ``%load_ext``, from IPython's input history (no cell ids)."""
        history = getattr(getattr(self.shell, "history_manager", None), "input_hist_raw", [])
        count = getattr(self.shell, "execution_count", 0) or 0
        for n, raw in enumerate(history[1:count], start=1):
            names = _names_of_raw(self.shell, raw)
            if names is not None and names.bound:
                self.record(raw, None, n, set(names.bound), set(names.deleted), backfilled=True)


def install(shell: Any) -> ExecutionLog:
    """Start the execution log of ``shell`` (called by ``%load_ext``)."""
    log = getattr(shell, "_mltrack_execution_log", None)
    if log is not None:
        return log
    log = ExecutionLog(shell)
    log.backfill()
    shell.events.register("pre_run_cell", log.pre_run_cell)
    shell.events.register("post_run_cell", log.post_run_cell)
    shell._mltrack_execution_log = log
    return log


def uninstall(shell: Any) -> None:
    log = getattr(shell, "_mltrack_execution_log", None)
    if log is None:
        return
    shell.events.unregister("pre_run_cell", log.pre_run_cell)
    shell.events.unregister("post_run_cell", log.post_run_cell)
    shell._mltrack_execution_log = None


# -- the saved notebook -------------------------------------------------------------------------
@dataclass(frozen=True)
class SavedNotebook:
    """Cell order and sources of the notebook file, as last saved."""

    path: str
    mtime: float
    index: dict[str, int]  # cell id -> position
    hash_by_id: dict[str, str]
    first_index_by_hash: dict[str, int]


_notebooks: dict[str, tuple[tuple[int, int], SavedNotebook | None]] = {}


def read_notebook(path: str | None) -> SavedNotebook | None:
    """The code cells of the ``.ipynb`` at ``path`` (cached until the file changes)."""
    if not path:
        return None
    candidates = [path]
    if not os.path.isabs(path):  # jupyter_server may give a path relative to its root
        candidates.append(os.path.basename(path))
    for candidate in candidates:
        try:
            stat = os.stat(candidate)
        except OSError:
            continue
        stamp = (stat.st_mtime_ns, stat.st_size)
        cached = _notebooks.get(candidate)
        if cached and cached[0] == stamp:
            return cached[1]
        notebook = _parse_notebook(candidate, stat.st_mtime)
        _notebooks[candidate] = (stamp, notebook)
        return notebook
    return None


def _parse_notebook(path: str, mtime: float) -> SavedNotebook | None:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    index: dict[str, int] = {}
    hash_by_id: dict[str, str] = {}
    by_hash: dict[str, int] = {}
    cells = data.get("cells") if isinstance(data, dict) else None
    for position, cell in enumerate(cells if isinstance(cells, list) else []):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        text = "".join(source) if isinstance(source, list) else str(source)
        digest = source_hash(text)
        by_hash.setdefault(digest, position)
        cell_id = cell.get("id")
        if isinstance(cell_id, str) and cell_id:
            index[cell_id] = position
            hash_by_id[cell_id] = digest
    return SavedNotebook(path, mtime, index, hash_by_id, by_hash)


# -- the judgement ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Finding:
    """One name a tracked cell reads that a top-to-bottom run would not give it."""

    name: str
    reason: str  # LATER, SELF, EDITED, DELETED, UNSAVED or INTERACTIVE
    binder: Execution

    def text(self) -> str:
        return f"{self.name}: bound by {_REASON_TEXT[self.reason]} ({self.binder.label()})"


_REASON_TEXT = {
    LATER: "a later cell",
    SELF: "an earlier run of this cell",
    EDITED: "a cell edited since",
    DELETED: "a deleted cell",
    UNSAVED: "a cell not in the saved notebook",
    INTERACTIVE: "code outside the notebook",
}


@dataclass
class HiddenState:
    """The verdict for one tracked cell."""

    findings: list[Finding]
    basis: str  # "notebook" or "execution order"

    @property
    def reproducible(self) -> bool:
        return not self.findings

    def tags(self, limit: int) -> dict[str, str]:
        tags = {REPRODUCIBLE_TAG: "true" if self.reproducible else "false", BASIS_TAG: self.basis}
        if self.findings:
            reasons = "; ".join(f.text() for f in self.findings)
            if len(reasons) > limit:
                reasons = reasons[: limit - 1] + "…"
            tags[REASONS_TAG] = reasons
        return tags

    def short(self) -> list[tuple[str, str]]:
        """``[(name, reason)]`` for the summary line."""
        return [(f.name, f.reason) for f in self.findings]


def judge(
    log: ExecutionLog,
    reads: frozenset[str] | set[str],
    cell_id: str | None,
    raw_hash: str,
    notebook: SavedNotebook | None,
) -> HiddenState:
    """Judge every name the tracked cell reads whose last binding the log saw."""
    use_notebook = bool(cell_id and notebook is not None and cell_id in notebook.index)
    if use_notebook:
        assert notebook is not None and cell_id is not None
        log.seen_ids.setdefault(notebook.path, set()).update(notebook.index)
    findings = []
    for name in sorted(reads):
        binder = log.binder.get(name)
        if binder is None:
            continue
        if use_notebook:
            reason = _by_notebook(log, binder, cell_id, notebook)  # type: ignore[arg-type]
        else:
            reason = _by_execution_order(log, binder, cell_id, raw_hash)
        if reason is not None:
            findings.append(Finding(name, reason, binder))
    return HiddenState(findings, "notebook" if use_notebook else "execution order")


def _by_notebook(
    log: ExecutionLog, binder: Execution, cell_id: str, notebook: SavedNotebook
) -> str | None:
    here = notebook.index[cell_id]
    if binder.cell_id is None:
        position = notebook.first_index_by_hash.get(binder.source_hash)
        if position is None:
            return INTERACTIVE
        return SELF if position == here else LATER if position > here else None
    if binder.cell_id == cell_id:
        return SELF
    if binder.cell_id not in notebook.index:
        if binder.cell_id in log.deleted_ids or binder.cell_id in log.seen_ids.get(
            notebook.path, ()
        ):
            return DELETED
        return UNSAVED if binder.at > notebook.mtime else INTERACTIVE
    if notebook.index[binder.cell_id] > here:
        return LATER
    if log.latest_hash.get(binder.cell_id) != binder.source_hash or (
        notebook.hash_by_id[binder.cell_id] != binder.source_hash and notebook.mtime > binder.at
    ):
        return EDITED
    return None


def _by_execution_order(
    log: ExecutionLog, binder: Execution, cell_id: str | None, raw_hash: str
) -> str | None:
    here = ("id", cell_id) if cell_id else ("src", raw_hash)
    if binder.key == here:
        return SELF
    if binder.cell_id is not None:
        if binder.cell_id in log.deleted_ids:
            return DELETED
        if log.latest_hash.get(binder.cell_id) != binder.source_hash:
            return EDITED
    elif cell_id and not binder.backfilled:
        return INTERACTIVE  # the notebook sends ids: an execution without one is not a cell
    first_here = log.first_seq.get(here)
    if first_here is not None and log.first_seq[binder.key] > first_here:
        return LATER
    return None


def check_cell(
    shell: Any, body: str, cell_id: str | None, notebook_path: str | None
) -> HiddenState | None:
    """The hidden-state verdict for the ``%%track`` cell about to run (``body`` transformed).

    None when the extension's log is not running (the magic used without ``%load_ext``) or
    the body does not parse.
    """
    log: ExecutionLog | None = getattr(shell, "_mltrack_execution_log", None)
    if log is None:
        return None
    try:
        names = cell_names(body)
    except SyntaxError:
        return None
    info = log.current
    raw = getattr(info, "raw_cell", None) or ""
    if not raw:
        raw = "%%track\n" + body
    notebook = read_notebook(notebook_path) if cell_id else None
    return judge(log, names.reads, cell_id, source_hash(raw), notebook)
