"""``%mltrack`` subcommands: parsing (argparse) and small actions over the fluent API/Client."""

from __future__ import annotations

import argparse
import re
from typing import Any

from IPython.core.error import UsageError
from IPython.utils.process import arg_split

from jupyter_mltrack.entities import ViewType
from jupyter_mltrack.exceptions import MlflowException
from jupyter_mltrack.notebook import capture
from jupyter_mltrack.notebook.config import MLTrack
from jupyter_mltrack.notebook.summary import Table
from jupyter_mltrack.timefmt import format_time

_RUN_ID = re.compile(r"^[0-9a-f]{32}$")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message}\n{self.format_usage()}")


def _parser() -> _Parser:
    parser = _Parser(prog="%mltrack", add_help=False)
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    exp = sub.add_parser("experiment", add_help=False)
    exp.add_argument("name", nargs="?")
    store = sub.add_parser("store", add_help=False)
    store.add_argument("uri", nargs="?")
    runs = sub.add_parser("runs", add_help=False)
    runs.add_argument("filter", nargs="*")
    show = sub.add_parser("show", add_help=False)
    show.add_argument("run")
    compare = sub.add_parser("compare", add_help=False)
    compare.add_argument("runs", nargs="*")
    compare.add_argument("--last", type=int, metavar="N")
    registry = sub.add_parser("registry", add_help=False)
    registry.add_argument("name", nargs="?")
    for panel_command in (runs, show, compare, registry):
        view = panel_command.add_mutually_exclusive_group()
        view.add_argument("--text", dest="view", action="store_const", const="text")
        view.add_argument("--panel", dest="view", action="store_const", const="panel")
    recall = sub.add_parser("recall", add_help=False)
    recall.add_argument("run")
    recall.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", dest="assignments"
    )
    reproduce = sub.add_parser("reproduce", add_help=False)
    reproduce.add_argument("run")
    reproduce.add_argument("--tolerance", type=float, default=1e-6)
    reproduce.add_argument("--env-manager", choices=("local", "virtualenv"), default="local")
    reproduce.add_argument("--run-name")
    serve = sub.add_parser("serve", add_help=False)
    serve.add_argument("uri", nargs="?")
    serve.add_argument("--port", type=int)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--watch", action="store_true")
    serve.add_argument("--stop", action="store_true")
    return parser


def run_command(shell: Any, options: MLTrack, line: str) -> Any:
    """Parse and run one ``%mltrack`` line; user errors become UsageError."""
    args = _parser().parse_args(arg_split(line))
    if args.command is None:
        raise UsageError(
            "Use %mltrack experiment|store|runs|show|compare|registry|recall|serve|reproduce ... (see %mltrack?)"
        )
    handler = _HANDLERS[args.command]
    try:
        return handler(shell, options, args)
    except MlflowException as err:
        raise UsageError(err.message) from None


def _fluent() -> Any:
    from jupyter_mltrack.tracking import fluent

    return fluent


def _experiment(shell: Any, options: MLTrack, args: Any) -> Any:
    fluent = _fluent()
    if args.name:
        experiment = fluent.set_experiment(args.name)
        print(f"Active experiment: {experiment.name} (id {experiment.experiment_id})")
        return None
    experiment = fluent.get_experiment(fluent._experiment_id())
    print(f"Active experiment: {experiment.name} (id {experiment.experiment_id})")
    return None


def _store(shell: Any, options: MLTrack, args: Any) -> Any:
    fluent = _fluent()
    if args.uri:
        from jupyter_mltrack.tracking.client import Client

        Client(args.uri)  # open it now so a bad URI fails here, not in the next cell
        fluent.set_tracking_uri(args.uri)
    print(f"Store: {fluent.get_tracking_uri()}")
    return None


def resolve_run(client: Any, text: str) -> Any:
    """A run by id, by name (most recent) or by unique id prefix."""
    if _RUN_ID.match(text):
        return client.get_run(text)
    ids = [
        e.experiment_id
        for e in client.search_experiments(view_type=ViewType.ALL, max_results=50_000)
    ]
    quoted = text.replace("'", "\\'")
    by_name = client.search_runs(ids, f"attributes.run_name = '{quoted}'", max_results=1)
    if by_name:
        return by_name[0]
    if re.fullmatch(r"[0-9a-f]{4,31}", text):
        by_prefix = client.search_runs(ids, f"attributes.run_id LIKE '{text}%'", max_results=2)
        if len(by_prefix) == 1:
            return by_prefix[0]
        if len(by_prefix) > 1:
            raise UsageError(f"Run id prefix {text!r} is ambiguous; give more characters.")
    raise UsageError(f"No run {text!r}: give a run id, a unique id prefix or a run name.")


def wants_panel(shell: Any, args: Any) -> bool:
    """A widget panel in a kernel with ipywidgets; a plain table in a terminal or on --text."""
    if args.view is not None:
        return args.view == "panel"
    if getattr(shell, "kernel", None) is None:
        return False
    try:
        import anywidget  # noqa: F401
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def _time(ms: int | None) -> str:
    return format_time(ms)


def _duration(run: Any) -> str:
    if not run.info.end_time or not run.info.start_time:
        return ""
    return f"{(run.info.end_time - run.info.start_time) / 1000:.2f} s"


def _runs(shell: Any, options: MLTrack, args: Any) -> Any:
    fluent = _fluent()
    client = fluent._client()
    experiment_id = fluent._experiment_id()
    if wants_panel(shell, args):
        from jupyter_mltrack.widgets.runs_table import RunsTable

        return RunsTable(
            experiment_ids=[experiment_id], filter_string=" ".join(args.filter), client=client
        )
    found = client.search_runs([experiment_id], " ".join(args.filter), max_results=100)
    params = sorted({k for r in found for k in r.data.params})[:6]
    metrics = sorted({k for r in found for k in r.data.metrics})[:6]
    rows = [
        [r.info.run_name, r.info.status, _time(r.info.start_time), _duration(r)]
        + [r.data.params.get(p) for p in params]
        + [r.data.metrics.get(m) for m in metrics]
        for r in found
    ]
    name = client.get_experiment(experiment_id).name
    return Table(
        f"{len(found)} run(s) in {name}",
        ["run", "status", "started", "duration", *params, *metrics],
        rows,
    )


def _show(shell: Any, options: MLTrack, args: Any) -> Any:
    client = _fluent()._client()
    run = resolve_run(client, args.run)
    if wants_panel(shell, args):
        from jupyter_mltrack.widgets.run_detail import RunDetail

        return RunDetail(run.info.run_id, client=client)
    rows: list[list[Any]] = [
        ["run id", run.info.run_id],
        ["status", run.info.status],
        ["experiment", client.get_experiment(run.info.experiment_id).name],
        ["started", _time(run.info.start_time)],
        ["duration", _duration(run)],
    ]
    rows += [[f"param {k}", v] for k, v in sorted(run.data.params.items())]
    rows += [[f"metric {k}", v] for k, v in sorted(run.data.metrics.items())]
    rows += [[f"input {d.name}", d.one_line()] for d in _inputs(run)]
    rows += [[f"tag {k}", v] for k, v in sorted(run.data.tags.items()) if not k.endswith(".source")]
    rows += [
        [f"artifact {a.path}", "" if a.is_dir else f"{a.file_size} bytes"]
        for a in client.list_artifacts(run.info.run_id)
    ]
    return Table(f"Run {run.info.run_name}", ["", ""], rows)


def _inputs(run: Any) -> list[Any]:
    from jupyter_mltrack.data.describe import describe_input

    return [describe_input(item) for item in run.inputs.dataset_inputs]


def _compare(shell: Any, options: MLTrack, args: Any) -> Any:
    fluent = _fluent()
    client = fluent._client()
    if args.last:
        found = list(client.search_runs([fluent._experiment_id()], max_results=args.last))
    else:
        found = [resolve_run(client, r) for r in args.runs]
    if len(found) < 2:
        raise UsageError(
            "compare needs at least two runs: %mltrack compare RUN RUN ... or --last N"
        )
    if wants_panel(shell, args):
        from jupyter_mltrack.widgets.comparison import RunComparison

        return RunComparison([r.info.run_id for r in found], client=client)
    names = [r.info.run_name for r in found]
    rows: list[list[Any]] = []
    for kind in ("params", "metrics"):
        keys = sorted({k for r in found for k in getattr(r.data, kind)})
        for key in keys:
            values = [getattr(r.data, kind).get(key) for r in found]
            differs = "*" if len({str(v) for v in values}) > 1 else ""
            rows.append([f"{kind[:-1]} {key}{differs}", *values])
    return Table("Comparison (* = differs)", ["", *names], rows)


def _registry(shell: Any, options: MLTrack, args: Any) -> Any:
    client = _fluent()._client()
    if wants_panel(shell, args):
        from jupyter_mltrack.widgets.registry_panel import RegistryPanel

        if args.name:
            client.get_registered_model(args.name)  # an unknown name fails here, as a UsageError
        return RegistryPanel(args.name, client=client)
    if not args.name:
        models = client.search_registered_models(max_results=1000)
        rows = [
            [
                m.name,
                ", ".join(f"v{v.version} {v.current_stage}" for v in m.latest_versions),
                ", ".join(f"{a}=v{v}" for a, v in sorted(m.aliases.items())),
                m.description or "",
            ]
            for m in models
        ]
        return Table(
            f"{len(rows)} registered model(s)",
            ["model", "latest versions", "aliases", "description"],
            rows,
        )
    model = client.get_registered_model(args.name)
    versions = client.search_model_versions(f"name = '{args.name}'")
    rows = [
        [
            f"v{v.version}",
            v.current_stage,
            ", ".join(v.aliases),
            v.run_id or "",
            _time(v.creation_timestamp),
            v.description or "",
        ]
        for v in versions
    ]
    trail = client.get_audit_trail(args.name)[-5:]
    title = f"{model.name}: {len(rows)} version(s)"
    if trail:
        title += " · recent: " + "; ".join(
            f"{e.action} v{e.version} {e.from_value or '-'}→{e.to_value or '-'}" for e in trail
        )
    return Table(title, ["version", "stage", "aliases", "run", "registered", "description"], rows)


def _recall(shell: Any, options: MLTrack, args: Any) -> Any:
    client = _fluent()._client()
    run = resolve_run(client, args.run)
    source = _cell_source(client, run)
    if source is None:
        raise UsageError(
            f"Run {run.info.run_name!r} was not recorded by %%track with its source; nothing to recall."
        )
    new_values = {}
    for pair in args.assignments:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--set expects NAME=VALUE, got {pair!r}.")
        new_values[name.strip()] = value
    if new_values:
        try:
            source = capture.rewrite_params(source, new_values)
        except KeyError as err:
            assignable = ", ".join(capture.analyze(source).params) or "none"
            raise UsageError(
                f"recall --set: the cell does not assign {err.args[0]} from a literal "
                f"(params it assigns: {assignable})."
            ) from None
        except ValueError as err:
            raise UsageError(str(err)) from None
    magic = run.data.tags.get("mltrack.cell.magic", "%%track")
    shell.set_next_input(f"{magic}\n{source.rstrip()}", replace=False)
    print(f"Recalled run {run.info.run_name!r} into the next cell.")
    return None


def _cell_source(client: Any, run: Any) -> str | None:
    from jupyter_mltrack.exceptions import ResourceDoesNotExist

    try:  # local stores read the file in place; S3 or a server's proxy fetch it
        return client.read_artifact(run.info.run_id, "cell/source.py").decode("utf-8")
    except ResourceDoesNotExist:
        return run.data.tags.get("mltrack.cell.source")


def _serve(shell: Any, options: MLTrack, args: Any) -> Any:
    from jupyter_mltrack import serving

    if args.stop:
        running = [h for h in serving.running_servers() if args.port is None or h.port == args.port]
        for handle in running:
            handle.stop()
            print(f"Stopped {handle.model} at {handle.url}")
        if not running:
            print(
                "No model server of this kernel is running"
                + (f" on port {args.port}." if args.port else ".")
            )
        return None
    if not args.uri:
        raise UsageError(
            "Use %mltrack serve URI [--port P] [--host H] [--watch], or %mltrack serve --stop"
        )
    return serving.serve(args.uri, port=args.port, host=args.host, watch=args.watch)


def _reproduce(shell: Any, options: MLTrack, args: Any) -> Any:
    """``%mltrack reproduce RUN``: the run re-executed in a fresh kernel, compared side by side."""
    from jupyter_mltrack.projects.reproduce import reproduce

    run = resolve_run(_fluent()._client(), args.run)
    return reproduce(run.info.run_id, args.tolerance, args.env_manager, args.run_name)


_HANDLERS = {
    "experiment": _experiment,
    "store": _store,
    "runs": _runs,
    "show": _show,
    "compare": _compare,
    "registry": _registry,
    "recall": _recall,
    "serve": _serve,
    "reproduce": _reproduce,
}
