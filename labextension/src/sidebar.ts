/**
 * The "MLTrack" left sidebar: the store, its experiments, then the runs of the chosen ones
 * (filter box with the search grammar, sortable columns, paging, live refresh, selection).
 */
import { Dialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';
import { Message } from '@lumino/messaging';
import { ISignal, Signal } from '@lumino/signaling';

import { ApiError, Experiment, MLTrackAPI, Poller, Run, RunPager, StoreInfo, toApiError } from './api';
import { FormBody, showActionDialog } from './dialogs';
import { Column, Sort, nextSort, orderByOf } from './format';
import { RunsTable } from './runsTable';
import { errorBox, h, setChildren } from './dom';

export interface SidebarActions {
  openRun(runId: string): void;
  compare(runIds: string[]): void;
  openRegistry(): void;
}

export class MLTrackSidebar extends Widget {
  readonly pager: RunPager;
  private _experiments: Experiment[] = [];
  private _chosen: string[] = [];
  private _sort: Sort | null = null;
  private _table: RunsTable;
  private _poller: Poller;
  private _selectionChanged = new Signal<this, string[]>(this);

  private _storeLine = h('div', { class: 'mltrack-store' });
  private _store: StoreInfo | null = null;
  private _storeError = errorBox(null);
  private _experimentList = h('ul', { class: 'mltrack-experiments', role: 'listbox' });
  private _filter = h('input', {
    class: 'mltrack-filter jp-mod-styled',
    type: 'search',
    placeholder: "Filter: metrics.acc > 0.9 and params.lr = '0.1'",
    spellcheck: 'false',
    title: 'The search grammar of MLflow: clauses joined by AND on metrics., params., tags., attributes.'
  });
  private _filterError = h('div', { class: 'mltrack-error mltrack-filter-error', role: 'alert', hidden: true });
  private _count = h('span', { class: 'mltrack-count' });
  private _compare = h('button', { class: 'jp-mod-styled jp-mod-accept mltrack-compare', disabled: true }, 'Compare');
  private _more = h('button', { class: 'jp-mod-styled mltrack-more', hidden: true }, 'Load more');
  private _runsError = errorBox(null);
  private _scroller: HTMLElement;

  constructor(
    readonly api: MLTrackAPI,
    private readonly _actions: SidebarActions,
    pollInterval = 3000
  ) {
    super();
    this.id = 'mltrack-sidebar';
    this.addClass('mltrack-sidebar');
    this.title.caption = 'MLTrack: experiments, runs and models';
    this.pager = new RunPager(api);
    this._table = new RunsTable({
      sort: column => this._sortBy(column),
      open: run => this._actions.openRun(run.info.run_id),
      selectionChanged: ids => {
        this._compare.disabled = ids.length < 2;
        this._compare.textContent = ids.length ? `Compare (${ids.length})` : 'Compare';
        this._selectionChanged.emit(ids);
      }
    });
    this._poller = new Poller(() => this._liveRefresh(), pollInterval);

    this._filter.addEventListener('keydown', e => {
      if (e.key === 'Enter') {
        void this.applyFilter();
      }
    });
    // clearing the box (its × button) shows every run again
    this._filter.addEventListener('search', () => {
      if (!this._filter.value) {
        void this.applyFilter();
      }
    });
    this._compare.addEventListener('click', () => this._actions.compare(this.selectedRuns));
    this._more.addEventListener('click', () => void this._loadMore());
    this._scroller = h('div', { class: 'mltrack-runs-scroll' }, this._table.node, this._more);
    this._scroller.addEventListener('scroll', () => {
      const el = this._scroller;
      if (el.scrollTop + el.clientHeight > el.scrollHeight - 40) {
        void this._loadMore();
      }
    });

    const refresh = h('button', { class: 'jp-mod-styled mltrack-refresh', title: 'Refresh' }, '⟳');
    refresh.addEventListener('click', () => void this.refresh());
    const registry = h('button', { class: 'jp-mod-styled mltrack-open-registry', title: 'Model registry' }, 'Models');
    registry.addEventListener('click', () => this._actions.openRegistry());
    const switchStore = h(
      'button',
      { class: 'jp-mod-styled mltrack-switch-store', title: 'Show another store: a tracking URI or a folder' },
      'Switch store…'
    );
    switchStore.addEventListener('click', () => void this.switchStore());
    setChildren(
      this.node,
      h('header', { class: 'mltrack-sidebar-header' }, h('h2', {}, 'MLTrack'), registry, refresh),
      h('div', { class: 'mltrack-store-row' }, this._storeLine, switchStore),
      this._storeError,
      h('h3', {}, 'Experiments'),
      this._experimentList,
      h('h3', {}, 'Runs ', this._count),
      h('div', { class: 'mltrack-filter-row' }, this._filter),
      this._filterError,
      this._runsError,
      this._scroller,
      h('footer', { class: 'mltrack-sidebar-footer' }, this._compare)
    );
  }

  /** The checked runs, in the table's order. */
  get selectedRuns(): string[] {
    return this._table.selected;
  }

  get selectionChanged(): ISignal<this, string[]> {
    return this._selectionChanged;
  }

  get experimentIds(): string[] {
    return this._chosen;
  }

  /** Re-read the store, the experiments and the runs shown. */
  async refresh(): Promise<void> {
    try {
      const store = await this.api.getStore();
      this._showStore(store);
      const message = store.ok ? null : [store.error, store.hint].filter(Boolean).join(' — ');
      this._storeError.textContent = message ?? '';
      this._storeError.hidden = !message;
      if (!store.ok) {
        return;
      }
      await this._loadExperiments();
      await this._reload();
    } catch (err) {
      this._showRunsError(toApiError(err));
    }
  }

  /**
   * Ask for another store (a URI or a folder) and switch the server to it; "Use default" goes
   * back to the notebook's own store. A store that cannot be opened is refused in the dialog,
   * and the one shown stays.
   */
  async switchStore(): Promise<void> {
    const input = h('input', {
      class: 'jp-mod-styled mltrack-store-input',
      type: 'text',
      spellcheck: 'false',
      placeholder: 'sqlite:///path/mlflow.db, postgresql://…, or a folder',
      value: this._store?.source === 'sidebar' ? this._store.tracking_uri : ''
    });
    const body = new FormBody<string>(
      [
        h('div', { class: 'mltrack-store-current' }, 'Now: ', h('code', {}, this._store?.tracking_uri ?? '?')),
        h('label', { class: 'mltrack-field mltrack-field-block' }, h('span', {}, 'Tracking URI or folder path'), input),
        h(
          'div',
          { class: 'mltrack-help' },
          '"Use default" shows the store the notebook in focus uses (MLTRACK_TRACKING_URI, else the mltrack/ folder of its project).'
        )
      ],
      () => input.value
    );
    const useDefault = Dialog.createButton({ label: 'Use default', accept: true, className: 'mltrack-use-default' });
    const answer = await showActionDialog({
      title: 'Switch the MLTrack store',
      body,
      errorNode: body.errorNode,
      buttons: [Dialog.cancelButton(), useDefault, Dialog.okButton({ label: 'Switch' })],
      focusNodeSelector: 'input.mltrack-store-input',
      act: (button, value) => {
        if (button !== useDefault && !value.trim()) {
          return Promise.reject(new ApiError(400, 'INVALID_PARAMETER_VALUE', 'Type a tracking URI or a folder path.'));
        }
        return this.api.setStore(button === useDefault ? null : value);
      }
    });
    if (!answer) {
      return;
    }
    // experiment ids of another store mean other experiments: start from its latest one
    this._chosen = [];
    this._table.clearSelection();
    this._showFilterError(null);
    await this.refresh();
  }

  /** Choose the experiments whose runs are shown. */
  async chooseExperiments(ids: string[]): Promise<void> {
    this._chosen = ids;
    this._renderExperiments();
    this._table.clearSelection();
    await this._reload();
  }

  /** Apply the filter box's text (an error from the server is shown under the box). */
  async applyFilter(): Promise<void> {
    await this._reload();
  }

  /** A cell finished: new runs or metrics may have landed. */
  async refreshNow(): Promise<void> {
    if (this.isVisible) {
      await this._poller.now();
    }
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this._poller.start();
  }

  protected onBeforeHide(msg: Message): void {
    this._poller.stop();
    super.onBeforeHide(msg);
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    if (this.isVisible) {
      this._poller.start();
    }
  }

  protected onBeforeDetach(msg: Message): void {
    this._poller.stop();
    super.onBeforeDetach(msg);
  }

  dispose(): void {
    this._poller.stop();
    super.dispose();
  }

  private async _loadExperiments(): Promise<void> {
    const experiments = (await this.api.experiments()).filter(e => e.lifecycle_stage !== 'deleted');
    this._experiments = experiments;
    const known = new Set(experiments.map(e => e.experiment_id));
    this._chosen = this._chosen.filter(id => known.has(id));
    if (!this._chosen.length && experiments.length) {
      // the most recently active experiment first: where the user just logged
      const latest = [...experiments].sort((a, b) => (b.last_update_time ?? 0) - (a.last_update_time ?? 0))[0];
      this._chosen = [latest.experiment_id];
    }
    this._renderExperiments();
  }

  private _renderExperiments(): void {
    const items = this._experiments.map(exp => {
      const chosen = this._chosen.includes(exp.experiment_id);
      return h(
        'li',
        {
          class: 'mltrack-experiment' + (chosen ? ' mltrack-chosen' : ''),
          'data-id': exp.experiment_id,
          role: 'option',
          'aria-selected': String(chosen),
          tabindex: 0,
          title: `${exp.name} (id ${exp.experiment_id}); Ctrl/⌘-click adds it to the chosen ones`,
          onclick: (e: Event) => {
            const add = (e as MouseEvent).ctrlKey || (e as MouseEvent).metaKey;
            const ids = add
              ? chosen
                ? this._chosen.filter(id => id !== exp.experiment_id)
                : [...this._chosen, exp.experiment_id]
              : [exp.experiment_id];
            void this.chooseExperiments(ids);
          }
        },
        h('span', { class: 'mltrack-experiment-name' }, exp.name),
        h('span', { class: 'mltrack-experiment-id' }, exp.experiment_id)
      );
    });
    setChildren(
      this._experimentList,
      items.length ? items : h('li', { class: 'mltrack-empty' }, 'No experiments in this store yet.')
    );
  }

  private _showStore(store: StoreInfo): void {
    this._store = store;
    this._storeLine.textContent = store.tracking_uri;
    const from = store.source === 'sidebar' ? 'chosen in this sidebar' : store.source === 'default' ? 'default' : store.source;
    this._storeLine.title = from ? `${store.tracking_uri} (${from})` : store.tracking_uri;
  }

  private _sortBy(column: Column): void {
    this._sort = nextSort(this._sort, column);
    void this._reload();
  }

  /** The first page of the current query; a refused filter keeps the rows shown. */
  private async _reload(): Promise<void> {
    if (!this._chosen.length) {
      this.pager.runs = [];
      this._render();
      return;
    }
    try {
      await this.pager.reset({
        experimentIds: this._chosen,
        filter: this._filter.value,
        orderBy: orderByOf(this._sort)
      });
      this._showFilterError(null);
      this._showRunsError(null);
    } catch (err) {
      const error = toApiError(err);
      if (error.isBadRequest) {
        this._showFilterError(error);
      } else {
        this._showRunsError(error);
      }
    }
    this._render();
  }

  private async _loadMore(): Promise<void> {
    if (!this.pager.hasMore || this.pager.loading) {
      return;
    }
    try {
      await this.pager.more();
      this._render();
    } catch (err) {
      this._showRunsError(toApiError(err));
    }
  }

  private async _liveRefresh(): Promise<void> {
    if (!this._chosen.length || this.pager.error) {
      return;
    }
    if (await this.pager.refresh()) {
      this._render();
    }
  }

  private _render(): void {
    const runs: Run[] = this.pager.runs;
    this._table.render(runs, this._sort);
    this._more.hidden = !this.pager.hasMore;
    this._count.textContent = runs.length ? `(${runs.length}${this.pager.hasMore ? '+' : ''})` : '';
    this._scroller.classList.toggle('mltrack-empty-runs', !runs.length);
  }

  private _showFilterError(error: ApiError | null): void {
    this._filterError.textContent = error ? error.message : '';
    this._filterError.hidden = !error;
    this._filter.classList.toggle('mltrack-invalid', !!error);
  }

  private _showRunsError(error: ApiError | null): void {
    this._runsError.textContent = error ? error.message : '';
    this._runsError.hidden = !error;
  }
}
