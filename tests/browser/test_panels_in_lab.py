"""The panels in a real JupyterLab page: the documentation notebooks run in the browser, and
the lab extension's run detail on a run with dataset inputs.

The notebook tests open a notebook from ``notebooks/`` (copied without outputs into the lab's
folder), run it with Run → Run All Cells, check what the panels render and what clicking them
does to the store. Each test screenshots its panels to ``test-output/screenshots/``.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from playwright.sync_api import Locator, Page, expect

from jupyter_mltrack import MlflowClient, data
from jupyter_mltrack.entities import DatasetInput, InputTag

if TYPE_CHECKING:
    from conftest import Lab

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
SLOW = 90_000  # ms: kernel start, scikit-learn imports and training on a busy 2-core CI machine
ACTION = 30_000  # ms: a click on a panel, through the kernel and back


def open_and_run(page: Page, lab: Lab, notebook: str) -> None:
    """Open ``notebook`` once its kernel is ready, then Run All Cells."""
    workspace = re.sub(r"\W", "-", notebook)
    page.goto(lab.notebook_url(lab.add_notebook(NOTEBOOKS / notebook), workspace))
    expect(page.locator(".jp-NotebookPanel")).to_be_visible(timeout=SLOW)
    expect(page.locator(".lm-TabBar-tab.jp-mod-current", has_text=notebook)).to_be_visible()
    page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current").click()  # more room
    # the status bar, not the toolbar's execution indicator: that one says idle before the
    # kernel has started, and Run All then opens a "select kernel" dialog
    idle = page.locator(".jp-StatusBar-Widget", has_text=re.compile(r"\(ipykernel\) \| Idle"))
    expect(idle).to_be_visible(timeout=SLOW)
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    first_prompt = page.locator(".jp-CodeCell .jp-InputPrompt").first
    expect(first_prompt).to_have_text(re.compile(r"\[(\*|\d+)\]"), timeout=SLOW)


def panel_of_cell(page: Page, code: str) -> Locator:
    """The (outermost) panel displayed by the code cell whose source contains ``code``."""
    cell = page.locator(".jp-CodeCell").filter(has_text=code)
    return cell.locator(".jp-OutputArea-output .mltrack-panel").first


def button(scope: Locator, label: str) -> Locator:
    """An ipywidgets button by its description (matched on the text, without the icon)."""
    return scope.locator("button", has_text=re.compile(rf"^\s*{re.escape(label)}\s*$"))


def grid_rows(grid: Locator) -> Locator:
    return grid.locator("tr.mltrack-grid-row")


def expect_images_loaded(images: Locator, count: int) -> None:
    """At least ``count`` of ``images`` are visible and decoded: plots, not empty <img>s."""
    expect(images.nth(count - 1)).to_be_visible(timeout=SLOW)
    decoded = "imgs => imgs.filter(i => i.complete && i.naturalWidth > 10 && i.offsetWidth > 10)"
    deadline = time.monotonic() + SLOW / 1000
    while images.evaluate_all(f"{decoded}.length") < count:
        assert time.monotonic() < deadline, f"fewer than {count} plots rendered"
        time.sleep(0.1)


def expect_no_error(panel: Locator) -> None:
    for box in panel.locator(".mltrack-error").all():
        expect(box).to_be_hidden()


def shoot(lab: Lab, panel: Locator, name: str) -> None:
    panel.scroll_into_view_if_needed()
    panel.page.mouse.move(0, 0)  # no hover highlight in the picture
    panel.screenshot(path=lab.screenshots / f"{name}.png", animations="disabled")


def test_runs_table_and_comparison(page: Page, lab: Lab) -> None:
    open_and_run(page, lab, "compare.ipynb")

    table = panel_of_cell(page, "RunsTable(experiment_names")
    rows = grid_rows(table)
    expect(rows).to_have_count(3, timeout=SLOW)
    for name in ("sgd-slow", "sgd-fast", "sgd-regularized"):
        expect(rows.filter(has_text=name)).to_have_count(1)
    expect(rows.first.locator("input.mltrack-grid-select")).to_be_visible()
    for key in ("params.alpha", "params.eta0", "metrics.accuracy"):
        expect(table.locator(f"th[data-key='{key}']")).to_be_visible()
    for label in ("Compare selected", "Show", "Register model…", "Recall cell", "Refresh"):
        expect(button(table, label)).to_be_visible()
    expect_no_error(table)
    shoot(lab, table, "runs_table")

    comparison = panel_of_cell(page, "RunComparison(last_three)")
    expect(comparison).to_be_visible(timeout=SLOW)
    tabs = comparison.locator(".lm-TabBar-tab")
    expect(tabs).to_have_text(
        ["Params & metrics", "Curves", "Scatter", "Parallel", "Figures", "Cell diff"]
    )
    shown = comparison.locator(".widget-tab-contents > :not(.lm-mod-hidden)")
    # first tab: the params and metrics grids, the differing values and the best ones marked
    expect(grid_rows(shown).first).to_be_visible(timeout=SLOW)
    expect(shown.locator("td.mltrack-differs").first).to_be_visible()
    expect(shown.locator("td.mltrack-best").first).to_be_visible()
    shoot(lab, comparison, "comparison_params")
    # the plots are PNGs drawn in the kernel, one tab each; Figures has each run's figure
    for title in ("Scatter", "Parallel", "Curves"):
        tabs.filter(has_text=title).click()
        expect_images_loaded(shown.locator("img"), 1)
    shoot(lab, comparison, "comparison")
    tabs.filter(has_text="Cell diff").click()
    expect(shown).to_contain_text("eta0", timeout=ACTION)
    tabs.filter(has_text="Figures").click()
    expect_images_loaded(shown.locator("img.mltrack-figure"), 3)
    shoot(lab, comparison, "comparison_figures")
    expect_no_error(comparison)
    # each run's figure sits in the run's column, under its name
    figures = shown.locator(".widget-gridbox")
    for i in range(3):
        name = figures.locator(":scope > .widget-html").nth(i)
        figure = figures.locator("img.mltrack-figure").nth(i)
        offset = figure.bounding_box()["x"] - name.bounding_box()["x"]
        assert abs(offset) < 2, f"figure {i} is {offset:.0f} px off its run's column"


def test_registry_panel_promotes_through_the_gate(page: Page, lab: Lab) -> None:
    open_and_run(page, lab, "registry.ipynb")

    panel = panel_of_cell(page, 'RegistryPanel("ChurnPredictor"')
    versions = panel.locator(".mltrack-grid-root", has=page.locator("th[data-key='stage']"))
    expect(grid_rows(versions)).to_have_count(3, timeout=SLOW)
    stage = {v: versions.locator(f"tr[data-id='{v}'] td:nth-child(3)") for v in ("1", "2", "3")}
    expect(stage["1"]).to_have_text("Production")
    expect(stage["3"]).to_have_text("None")
    expect_no_error(panel)

    client = MlflowClient(str(lab.store))

    def stages() -> dict[int, str]:
        found = client.search_model_versions("name = 'ChurnPredictor'")
        return {int(mv.version): mv.current_stage for mv in found}

    assert stages() == {1: "Production", 2: "Archived", 3: "None"}
    promote = button(panel, "Promote to Production")
    confirm = panel.locator(".mltrack-confirm")

    def promote_to_production(version: str) -> None:
        versions.locator(f"tr[data-id='{version}'] input.mltrack-grid-select").click()
        expect(versions.locator(f"tr.selected[data-id='{version}']")).to_be_visible()
        promote.click()
        expect(confirm).to_be_visible(timeout=ACTION)
        expect(confirm).to_contain_text(f"Promote ChurnPredictor v{version} to Production")
        button(confirm, "Confirm").click()
        expect(confirm).to_be_hidden(timeout=ACTION)

    # the constant baseline fails the notebook's f1 gate: refused, and the store is unchanged
    promote_to_production("2")
    expect(panel.locator(".mltrack-refused")).to_be_visible(timeout=ACTION)
    assert stages() == {1: "Production", 2: "Archived", 3: "None"}

    # the retrained forest passes: Production, and the old Production version archived
    promote_to_production("3")
    promoted = panel.locator(".mltrack-promoted")
    expect(promoted).to_contain_text("v3 is now in Production", timeout=ACTION)
    expect(stage["3"]).to_have_text("Production", timeout=ACTION)
    expect(stage["1"]).to_have_text("Archived")
    assert stages() == {1: "Archived", 2: "Archived", 3: "Production"}
    trail = client.get_audit_trail("ChurnPredictor")
    assert (trail[-1].action, trail[-1].version, trail[-1].to_value) == ("promote", 3, "Production")
    expect_no_error(panel)
    shoot(lab, panel, "registry")


def test_run_detail_panel_lists_dataset_inputs(page: Page, lab: Lab) -> None:
    client = MlflowClient(str(lab.store))
    experiment = client.create_experiment("panels-inputs")
    plain = client.create_run(experiment, run_name="no-inputs").info.run_id
    rid = client.create_run(experiment, run_name="with-input").info.run_id
    frame = pd.DataFrame({"x": [0.5, 1.5, 2.5], "label": [0, 1, 0]})
    entity = data.from_pandas(frame, name="tiny-train")._to_mlflow_entity()
    client.log_inputs(rid, [DatasetInput(entity, [InputTag("mlflow.data.context", "training")])])
    for run_id in (plain, rid):
        client.set_terminated(run_id)
    client.flush()

    # the MLTrack sidebar (no notebook, no kernel): the experiment, then each run's detail
    page.goto(f"{lab.url}/lab/workspaces/panels-inputs?reset&token={lab.token}")
    tab = page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id='mltrack-sidebar']")
    expect(tab).to_be_visible(timeout=SLOW)
    tab.click()
    sidebar = page.locator("#mltrack-sidebar")
    sidebar.locator(f".mltrack-experiment[data-id='{experiment}']").click()

    def open_run(name: str, run_id: str) -> Locator:
        run_row = sidebar.locator("tr.mltrack-run-row", has_text=name)
        run_row.locator(".mltrack-run-name a").click(timeout=ACTION)
        return page.locator(f"#mltrack-run-{run_id} .mltrack-inputs")

    inputs = open_run("no-inputs", plain)
    expect(inputs.locator("h3")).to_have_text("Inputs (0)", timeout=ACTION)
    expect(inputs.locator(".mltrack-empty")).to_have_text("No dataset inputs.")

    inputs = open_run("with-input", rid)
    expect(inputs.locator("h3")).to_have_text("Inputs (1)", timeout=ACTION)
    row = inputs.locator("tbody tr")
    expect(row).to_have_count(1)
    expect(row.locator(".mltrack-input-name")).to_have_text("tiny-train")
    expect(row.locator(".mltrack-input-context")).to_have_text("training")
    digest = row.locator(".mltrack-input-digest")
    expect(digest).to_have_text(entity.digest[:8])
    expect(digest).to_have_attribute("title", entity.digest)
    size = row.locator(".mltrack-input-size summary")
    expect(size).to_have_text("3 rows \u00d7 2 columns")  # a multiplication sign
    size.click()  # the schema's columns open under it
    expect(row.locator(".mltrack-input-columns li")).to_have_text(["x: double", "label: long"])
    shoot(lab, inputs, "run_detail_inputs")
