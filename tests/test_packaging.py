"""The wheel ships what a plain ``pip install`` needs: the prebuilt JupyterLab extension, the
server extension's auto-enable file and the grid widget's front end (no Node.js for users)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_ships_the_prebuilt_extensions(tmp_path: Path) -> None:
    # the labextension is built by scripts/venv.sh before the suite runs; the build hook finds
    # it and skips npm, as it does for users building from an sdist
    assert (ROOT / "jupyter_mltrack" / "labextension" / "package.json").is_file()
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    [wheel] = tmp_path.glob("jupyter_mltrack-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    data = "jupyter_mltrack-0.1.0.data/data/"
    lab = f"{data}share/jupyter/labextensions/jupyter-mltrack/"
    assert f"{lab}package.json" in names
    assert f"{lab}install.json" in names
    assert any(n.startswith(f"{lab}static/") and n.endswith(".js") for n in names)
    assert f"{data}etc/jupyter/jupyter_server_config.d/jupyter_mltrack.json" in names
    assert "jupyter_mltrack/widgets/static/grid.js" in names
    assert "jupyter_mltrack/store/migrations/versions/0004_dataset_inputs.py" in names
    # never node_modules or the TypeScript sources
    assert not [n for n in names if "node_modules" in n or n.endswith(".ts")]
