/**
 * Selected runs side by side: one chart per metric with a curve per run, the latest values,
 * and the params with the differing ones marked (or only those).
 */
import { Widget } from '@lumino/widgets';

import { MLTrackAPI, Run, toApiError } from './api';
import { lineChart, seriesColor } from './charts';
import { errorBox, h, setChildren } from './dom';
import { formatNumber, metricKeys, paramDiff, runLabel } from './format';

export class ComparisonPanel extends Widget {
  runs: Run[] = [];
  private _onlyDiff = h('input', { type: 'checkbox', class: 'mltrack-only-diff', checked: true });
  private _params = h('div', { class: 'mltrack-param-diff' });

  constructor(
    readonly api: MLTrackAPI,
    readonly runIds: string[]
  ) {
    super();
    this.addClass('mltrack-comparison');
    this.addClass('mltrack-panel');
    this.id = `mltrack-compare-${runIds.map(id => id.slice(0, 6)).join('-')}`;
    this.title.label = `Compare ${runIds.length} runs`;
    this.title.closable = true;
    this._onlyDiff.addEventListener('change', () => this._renderParams());
    void this.refresh();
  }

  async refresh(): Promise<void> {
    try {
      this.runs = (await Promise.all(this.runIds.map(id => this.api.run(id)))).map(d => d.run);
    } catch (err) {
      setChildren(this.node, errorBox(toApiError(err).message));
      return;
    }
    const legend = h(
      'ul',
      { class: 'mltrack-legend' },
      this.runs.map((run, i) =>
        h('li', { 'data-run-id': run.info.run_id }, h('span', { class: 'mltrack-swatch', style: `background:${seriesColor(i)}` }), runLabel(run))
      )
    );
    const keys = metricKeys(this.runs);
    const charts = h('div', { class: 'mltrack-curves' });
    const latest = h(
      'table',
      { class: 'mltrack-table mltrack-latest' },
      h('thead', {}, h('tr', {}, h('th', {}, 'metric'), this.runs.map(r => h('th', {}, runLabel(r))))),
      h(
        'tbody',
        {},
        keys.map(key =>
          h('tr', { 'data-key': key }, h('th', {}, key), this.runs.map(r => h('td', { class: 'mltrack-num' }, formatNumber(r.data.metrics.find(m => m.key === key)?.value))))
        )
      )
    );
    setChildren(
      this.node,
      h('h2', {}, `Comparing ${this.runs.length} runs`),
      legend,
      h('section', {}, h('h3', {}, 'Metric curves'), charts),
      h('section', {}, h('h3', {}, 'Latest values'), latest),
      h('section', {}, h('h3', {}, 'Params ', h('label', { class: 'mltrack-inline' }, this._onlyDiff, ' only the differing ones')), this._params)
    );
    this._renderParams();
    await Promise.all(keys.map(key => this._curve(key, charts)));
  }

  private async _curve(key: string, into: HTMLElement): Promise<void> {
    const figure = h('figure', { class: 'mltrack-curve', 'data-key': key }, h('figcaption', {}, key));
    into.appendChild(figure);
    try {
      const series = await this.api.metricOfRuns(this.runIds, key, 500);
      const lines = this.runs.map((run, i) => {
        const s = series[run.info.run_id];
        return { x: s?.x ?? [], y: s?.values ?? [], label: runLabel(run), color: seriesColor(i) };
      });
      figure.appendChild(lineChart(lines, 320, 160, true));
    } catch (err) {
      figure.appendChild(errorBox(toApiError(err).message));
    }
  }

  private _renderParams(): void {
    const rows = paramDiff(this.runs, this._onlyDiff.checked);
    setChildren(
      this._params,
      rows.length
        ? h(
            'table',
            { class: 'mltrack-table' },
            h('thead', {}, h('tr', {}, h('th', {}, 'param'), this.runs.map(r => h('th', {}, runLabel(r))))),
            h(
              'tbody',
              {},
              rows.map(row =>
                h(
                  'tr',
                  { 'data-key': row.key, class: row.differs ? 'mltrack-differs' : undefined },
                  h('th', {}, row.key),
                  row.values.map(v => h('td', { class: v === null ? 'mltrack-missing' : undefined }, v ?? '—'))
                )
              )
            )
          )
        : h('p', { class: 'mltrack-empty' }, this._onlyDiff.checked ? 'The runs have the same params.' : 'No params.')
    );
  }
}
