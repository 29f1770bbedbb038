"""Execute notebooks headlessly with the project's kernel.

    python scripts/run_notebook.py notebooks/quickstart.ipynb            # the README's main job
    python scripts/run_notebook.py --refresh notebooks/*.ipynb           # rewrite stored outputs

The main job leaves its runs in the embedded store (``mltrack/`` at the repository root) and
prints how to look at them. ``--refresh`` runs against a throwaway store and saves the outputs
into the notebooks, which nbval then compares in CI.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def execute(path: Path, env_store: str | None) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    if env_store:
        os.environ["MLTRACK_TRACKING_URI"] = env_store
    # no widget state in the saved notebooks: the panels' state is large and changes every run
    nb.metadata.pop("widgets", None)
    client = NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        store_widget_state=False,
    )
    client.execute()
    return nb


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--refresh", action="store_true", help="save outputs into the notebooks")
    args = parser.parse_args()
    for path in args.notebooks:
        if args.refresh:
            with tempfile.TemporaryDirectory() as store:
                nb = execute(path, store)
            nbformat.write(nb, path)
            print(f"refreshed {path}")
            continue
        execute(path, None)
        import jupyter_mltrack as mlflow

        os.chdir(path.parent)
        store = mlflow.get_tracking_uri()
        runs = mlflow.search_runs(search_all_experiments=True)
        print(f"Executed {path}: {len(runs)} run(s) are in the embedded store {store}")
        print("Look at them:")
        print("  .venv/bin/mltrack runs list                       # in the terminal")
        print(f"  .venv/bin/jupyter lab {path}    # the MLTrack sidebar, or %mltrack runs in a cell")
    return 0


if __name__ == "__main__":
    sys.exit(main())
