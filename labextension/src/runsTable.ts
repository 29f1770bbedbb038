/**
 * The runs table of the sidebar: sortable headers, a checkbox per row for comparison, a
 * double-click (or Enter) opens the run. It renders what a `RunPager` holds.
 */
import type { Run } from './api';
import { Column, Sort, cellText, columnsFor } from './format';
import { h, setChildren } from './dom';

export interface RunsTableCallbacks {
  /** A header was clicked. */
  sort(column: Column): void;
  /** A row was opened (double-click, Enter or its name's link). */
  open(run: Run): void;
  /** The checked rows changed. */
  selectionChanged(runIds: string[]): void;
}

export class RunsTable {
  readonly node: HTMLTableElement;
  private _columns: Column[] = [];
  private _selected = new Set<string>();
  private _runs: Run[] = [];

  constructor(private readonly _cb: RunsTableCallbacks) {
    this.node = h('table', { class: 'mltrack-runs-table' });
  }

  get selected(): string[] {
    // in the table's order, so a comparison lists runs as the user sees them
    const order = this._runs.map(r => r.info.run_id).filter(id => this._selected.has(id));
    const gone = [...this._selected].filter(id => !order.includes(id));
    return [...order, ...gone];
  }

  clearSelection(): void {
    this._selected.clear();
    this._cb.selectionChanged([]);
  }

  render(runs: Run[], sort: Sort | null): void {
    this._runs = runs;
    this._columns = columnsFor(runs);
    const now = Date.now();
    const head = h(
      'tr',
      {},
      h('th', { class: 'mltrack-select-col' }),
      this._columns.map(column => {
        const active = sort && sort.column.kind === column.kind && sort.column.key === column.key;
        const arrow = active ? (sort.descending ? ' ▾' : ' ▴') : '';
        return h(
          'th',
          {
            class: 'mltrack-sortable' + (active ? ' mltrack-sorted' : ''),
            'data-kind': column.kind,
            'data-key': column.key,
            title: `Sort by ${column.kind} ${column.key}`,
            onclick: () => this._cb.sort(column)
          },
          column.label + arrow
        );
      })
    );
    const rows = runs.map(run => {
      const id = run.info.run_id;
      const checkbox = h('input', {
        type: 'checkbox',
        class: 'mltrack-run-select',
        title: 'Select for comparison',
        checked: this._selected.has(id)
      });
      checkbox.addEventListener('change', () => {
        if (checkbox.checked) {
          this._selected.add(id);
        } else {
          this._selected.delete(id);
        }
        row.classList.toggle('mltrack-selected', checkbox.checked);
        this._cb.selectionChanged(this.selected);
      });
      const cells = this._columns.map(column => {
        const text = cellText(run, column, now);
        if (column.key === 'run_name' && column.kind === 'attribute') {
          return h(
            'td',
            { class: 'mltrack-run-name', title: `${text} (${id})` },
            h('a', { href: '#', onclick: (e: Event) => (e.preventDefault(), this._cb.open(run)) }, text)
          );
        }
        if (column.key === 'status' && column.kind === 'attribute') {
          return h('td', {}, h('span', { class: `mltrack-status mltrack-status-${text.toLowerCase()}` }, text));
        }
        return h('td', { class: column.kind === 'metric' ? 'mltrack-num' : undefined, title: text }, text);
      });
      const row = h(
        'tr',
        {
          class: 'mltrack-run-row' + (this._selected.has(id) ? ' mltrack-selected' : ''),
          'data-run-id': id,
          tabindex: 0,
          ondblclick: () => this._cb.open(run),
          onkeydown: (e: Event) => {
            if ((e as KeyboardEvent).key === 'Enter') {
              this._cb.open(run);
            }
          }
        },
        h('td', { class: 'mltrack-select-col' }, checkbox),
        cells
      );
      return row;
    });
    setChildren(this.node, h('thead', {}, head), h('tbody', {}, rows));
  }
}
