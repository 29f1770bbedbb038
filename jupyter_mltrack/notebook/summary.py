"""Small displayable results: the line under a tracked cell, and plain tables."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

_STATUS_MARK = {"FINISHED": "✓", "FAILED": "✗", "KILLED": "■"}


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


@dataclass
class RunSummary:
    """One line: run, experiment, what was captured, how long, how to open it."""

    run_id: str
    run_name: str
    experiment: str
    status: str
    n_params: int
    n_metrics: int
    n_figures: int
    duration: float
    notes: list[str] = field(default_factory=list)
    hidden_state: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)
    n_inputs: int = 0  # dataset inputs the cell read (shown when there are some)

    def _warning(self) -> str:
        """``⚠ hidden state: x (later cell), df (deleted cell)``, or empty."""
        if not self.hidden_state:
            return ""
        names = ", ".join(f"{name} ({reason})" for name, reason in self.hidden_state)
        return f"⚠ hidden state: {names}"

    def _parts(self) -> tuple[str, str, str]:
        mark = _STATUS_MARK.get(self.status, "•")
        what = ", ".join(
            [
                _plural(self.n_params, "param"),
                _plural(self.n_metrics, "metric"),
                _plural(self.n_figures, "figure"),
            ]
            + ([_plural(self.n_inputs, "input")] if self.n_inputs else [])
        )
        return mark, what, f"{self.duration:.2f} s"

    def __repr__(self) -> str:
        mark, what, took = self._parts()
        text = (
            f"{mark} mltrack run '{self.run_name}' ({self.status.lower()}) in experiment "
            f"'{self.experiment}': {what}, {took} · open it: %mltrack show {self.run_id}"
        )
        if self.hidden_state:
            text += "\n  " + self._warning()
        if self.notes:
            text += "\n  notes: " + "; ".join(self.notes)
        return text

    def _repr_html_(self) -> str:
        mark, what, took = self._parts()
        esc = html.escape
        notes = (
            f"<div style='opacity:.7'>notes: {esc('; '.join(self.notes))}</div>"
            if self.notes
            else ""
        )
        warning = (
            "<div class='mltrack-hidden-state' style='color:var(--jp-warn-color0,#b35900)' "
            "title='Names read that a top-to-bottom run would not give this cell'>"
            f"{esc(self._warning())}</div>"
            if self.hidden_state
            else ""
        )
        return (
            "<div class='mltrack-summary' style='font-family:var(--jp-code-font-family,monospace);"
            "font-size:12px'>"
            f"{mark} mltrack run <b>{esc(self.run_name)}</b> ({esc(self.status.lower())}) in "
            f"experiment <b>{esc(self.experiment)}</b>: {esc(what)}, {took} · open it: "
            f"<code>%mltrack show {esc(self.run_id)}</code>{warning}{notes}</div>"
        )


@dataclass
class Table:
    """A titled table shown as HTML in notebooks and as aligned text elsewhere."""

    title: str
    columns: list[str]
    rows: list[list[Any]]

    def __repr__(self) -> str:
        cells = [[str(c) for c in self.columns]] + [[_text(v) for v in row] for row in self.rows]
        widths = [max(len(r[i]) for r in cells) for i in range(len(self.columns))]
        lines = [self.title] if self.title else []
        for n, row in enumerate(cells):
            lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
            if n == 0:
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        esc = html.escape
        head = "".join(f"<th>{esc(str(c))}</th>" for c in self.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{esc(_text(v))}</td>" for v in row) + "</tr>"
            for row in self.rows
        )
        title = (
            f"<caption style='text-align:left'>{esc(self.title)}</caption>" if self.title else ""
        )
        return f"<table class='mltrack-table'>{title}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
