"""``when_imported``: autolog hooks into a framework when the user imports it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from jupyter_mltrack.autolog.import_hooks import cancel, pending, when_imported


@pytest.fixture
def fake_library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    name = f"mltrack_fake_lib_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text("VALUE = 41\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)
    cancel(name)


def test_the_callback_runs_after_the_import_and_only_once(fake_library: str) -> None:
    seen: list[int] = []
    when_imported(fake_library, lambda module: seen.append(module.VALUE))
    assert seen == [] and pending(fake_library)
    module = __import__(fake_library)
    assert seen == [41] and not pending(fake_library)
    assert module.__loader__.__class__.__name__ == "SourceFileLoader"  # the real loader is back
    sys.modules.pop(fake_library)
    __import__(fake_library)
    assert seen == [41]


def test_an_imported_module_gets_the_callback_at_once(fake_library: str) -> None:
    __import__(fake_library)
    seen: list[int] = []
    when_imported(fake_library, lambda module: seen.append(module.VALUE + 1))
    assert seen == [42] and not pending(fake_library)


def test_a_failing_callback_warns_and_the_import_still_works(fake_library: str) -> None:
    def broken(module: object) -> None:
        raise RuntimeError("patching failed")

    when_imported(fake_library, broken)
    with pytest.warns(UserWarning, match="could not hook into .*RuntimeError: patching failed"):
        module = __import__(fake_library)
    assert module.VALUE == 41


def test_cancel_forgets_the_callback(fake_library: str) -> None:
    seen: list[int] = []
    when_imported(fake_library, seen.append)
    cancel(fake_library, seen.append)
    assert not pending(fake_library)
    __import__(fake_library)
    assert seen == []
