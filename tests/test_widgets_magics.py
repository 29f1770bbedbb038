"""``%mltrack runs|show|compare|registry`` open the widget panels (plain tables on --text)."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError

from jupyter_mltrack.notebook.summary import Table


@pytest.fixture
def tracked(ip):
    for lr in (0.1, 0.2, 0.3):
        ip.run_cell(f"%%track lr{lr}\nlr = {lr}\nacc = 1 - lr\n")
    return ip


def test_runs_opens_the_runs_table_with_the_filter(tracked) -> None:
    from jupyter_mltrack.widgets import RunsTable

    panel = tracked.run_line_magic("mltrack", "runs --panel params.lr > 0.15")
    assert isinstance(panel, RunsTable)
    panel.wait()
    assert len(panel.grid.rows) == 2
    assert panel.filter_box.value == "params.lr > 0.15"
    assert isinstance(tracked.run_line_magic("mltrack", "runs --text"), Table)


def test_show_and_compare_open_their_panels(tracked) -> None:
    from jupyter_mltrack.widgets import RunComparison, RunDetail

    detail = tracked.run_line_magic("mltrack", "show lr0.2 --panel")
    assert isinstance(detail, RunDetail)
    comparison = tracked.run_line_magic("mltrack", "compare --last 3 --panel")
    assert isinstance(comparison, RunComparison)
    with pytest.raises(UsageError, match="No run"):
        tracked.run_line_magic("mltrack", "show nosuchrun --panel")


def test_registry_opens_the_panel_and_refuses_unknown_models(tracked) -> None:
    from jupyter_mltrack.widgets import RegistryPanel

    assert isinstance(tracked.run_line_magic("mltrack", "registry --panel"), RegistryPanel)
    with pytest.raises(UsageError, match="Ghost"):
        tracked.run_line_magic("mltrack", "registry Ghost --panel")


def test_plain_shell_gets_tables_and_flags_exclude_each_other(tracked) -> None:
    # the test shell has no kernel, like a terminal: tables unless --panel
    assert isinstance(tracked.run_line_magic("mltrack", "runs"), Table)
    with pytest.raises(UsageError, match="not allowed with"):
        tracked.run_line_magic("mltrack", "runs --text --panel")
