/**
 * One run in the main area: its attributes, params, metrics (each with a small chart), dataset
 * inputs, tags, the artifact tree with a preview (image, text, JSON) and the tracked cell's
 * source.
 */
import { Dialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { ArtifactFile, MLTrackAPI, ModelVersion, RunDetail, findModelFolders, toApiError } from './api';
import { FormBody, showActionDialog } from './dialogs';
import { lineChart } from './charts';
import { errorBox, h, kvTable, setChildren } from './dom';
import {
  formatBytes,
  formatDuration,
  formatNumber,
  formatTime,
  InputRow,
  inputRows,
  isSystemTag,
  registrationChanges,
  runLabel
} from './format';

export interface RunDetailActions {
  /** Put `source` into a new notebook cell. */
  insertCell(source: string): void;
  /** Show the registry on the model `name`. */
  openModel(name: string): void;
}

const TEXT_LIMIT = 200_000; // characters of a text artifact previewed
const IMAGE = /\.(png|jpe?g|gif|svg|webp|bmp)$/i;
const TEXTUAL = /\.(txt|log|md|csv|tsv|ya?ml|py|json|html?|xml|ini|cfg|toml|mlmodel|MLmodel)$|(^|\/)MLmodel$/i;

/**
 * The run's dataset inputs, one row each: name, context, short digest (the whole one in its
 * title), source and size; the schema's columns open under the size.
 */
function inputTable(rows: InputRow[]): HTMLTableElement {
  const withTags = rows.some(r => r.tags.length);
  const headers = ['Dataset', 'Context', 'Digest', 'Source', 'Size', ...(withTags ? ['Tags'] : [])];
  return h(
    'table',
    { class: 'mltrack-kv mltrack-input-table' },
    h('thead', {}, h('tr', {}, headers.map(label => h('th', {}, label)))),
    h(
      'tbody',
      {},
      rows.map(r =>
        h(
          'tr',
          { 'data-name': r.name, 'data-digest': r.digest },
          h('th', { class: 'mltrack-input-name', title: r.columns.join('\n') || undefined }, r.name),
          h('td', { class: 'mltrack-input-context' }, r.context || '—'),
          h('td', { class: 'mltrack-input-digest', title: r.digest }, r.shortDigest),
          h('td', { class: 'mltrack-input-source' }, r.source),
          h(
            'td',
            { class: 'mltrack-input-size' },
            r.columns.length
              ? h(
                  'details',
                  {},
                  h('summary', {}, r.size),
                  h('ul', { class: 'mltrack-input-columns' }, r.columns.map(c => h('li', {}, c)))
                )
              : r.size
          ),
          withTags ? h('td', { class: 'mltrack-input-tags' }, r.tags.map(t => `${t.key}=${t.value}`).join(', ')) : null
        )
      )
    )
  );
}

export class RunDetailPanel extends Widget {
  detail: RunDetail | null = null;
  private _urls: string[] = [];
  private _preview = h('div', { class: 'mltrack-preview' });
  /** The artifact folders holding a logged model (an MLmodel file). */
  modelFolders: string[] = [];
  private _register = h('div', { class: 'mltrack-register-row', hidden: true });
  private _registered = h('div', { class: 'mltrack-message mltrack-register-result', role: 'status', hidden: true });

  constructor(
    readonly api: MLTrackAPI,
    readonly runId: string,
    private readonly _actions: RunDetailActions
  ) {
    super();
    this.addClass('mltrack-run-detail');
    this.addClass('mltrack-panel');
    this.id = `mltrack-run-${runId}`;
    this.title.label = `Run ${runId.slice(0, 8)}`;
    this.title.closable = true;
    this.node.tabIndex = 0;
    void this.refresh();
  }

  async refresh(): Promise<void> {
    try {
      this.detail = await this.api.run(this.runId);
    } catch (err) {
      setChildren(this.node, errorBox(toApiError(err).message));
      return;
    }
    this._render(this.detail);
  }

  dispose(): void {
    this._urls.forEach(url => URL.revokeObjectURL(url));
    super.dispose();
  }

  private _render(detail: RunDetail): void {
    const { info, data } = detail.run;
    this.title.label = runLabel(detail.run);
    this.title.caption = `${runLabel(detail.run)} (${info.run_id})`;
    const userTags = data.tags.filter(t => !isSystemTag(t.key));
    const systemTags = data.tags.filter(t => isSystemTag(t.key));
    const inputs = inputRows(detail.run);
    const metrics = h('tbody', {});
    const keys = detail.metric_keys.length ? detail.metric_keys : data.metrics.map(m => m.key);
    for (const key of keys) {
      const latest = data.metrics.find(m => m.key === key);
      const chart = h('td', { class: 'mltrack-spark-cell' });
      metrics.appendChild(
        h(
          'tr',
          { 'data-key': key },
          h('th', {}, key),
          h('td', { class: 'mltrack-num' }, formatNumber(latest?.value)),
          h('td', { class: 'mltrack-step' }, latest?.step !== undefined ? `step ${latest.step}` : ''),
          chart
        )
      );
      void this._sparkline(key, chart, metrics.lastElementChild?.querySelector('.mltrack-step') ?? null);
    }
    const cell = detail.cell_source
      ? h(
          'section',
          { class: 'mltrack-cell' },
          h(
            'h3',
            {},
            'Tracked cell ',
            h(
              'button',
              {
                class: 'jp-mod-styled mltrack-insert-cell',
                onclick: () => this._actions.insertCell(detail.cell_source ?? '')
              },
              'Insert into a new cell'
            )
          ),
          h('pre', { class: 'mltrack-source' }, detail.cell_source)
        )
      : null;
    const tree = h('ul', { class: 'mltrack-artifacts' });
    void this._listArtifacts('', tree);
    void this._findModels();
    setChildren(
      this.node,
      h('h2', {}, runLabel(detail.run), ' ', h('span', { class: `mltrack-status mltrack-status-${info.status.toLowerCase()}` }, info.status)),
      kvTable([
        ['Run id', info.run_id],
        ['Experiment', info.experiment_id],
        ['Started', formatTime(info.start_time)],
        ['Duration', formatDuration(info.start_time, info.end_time)],
        ['Artifacts', info.artifact_uri]
      ]),
      h('section', { class: 'mltrack-params' }, h('h3', {}, `Params (${data.params.length})`),
        kvTable(data.params.map(p => [p.key, p.value] as [string, string]))),
      h('section', { class: 'mltrack-metrics' }, h('h3', {}, `Metrics (${keys.length})`),
        h('table', { class: 'mltrack-kv mltrack-metric-table' }, metrics)),
      h('section', { class: 'mltrack-inputs' }, h('h3', {}, `Inputs (${inputs.length})`),
        inputs.length ? inputTable(inputs) : h('div', { class: 'mltrack-empty' }, 'No dataset inputs.')),
      h('section', { class: 'mltrack-tags' }, h('h3', {}, `Tags (${userTags.length})`),
        kvTable(userTags.map(t => [t.key, t.value] as [string, string])),
        systemTags.length
          ? h('details', {}, h('summary', {}, `System tags (${systemTags.length})`),
              kvTable(systemTags.map(t => [t.key, t.value] as [string, string])))
          : null),
      h('section', { class: 'mltrack-artifact-section' }, h('h3', {}, 'Artifacts'),
        this._register, this._registered,
        h('div', { class: 'mltrack-artifact-split' }, tree, this._preview)),
      cell
    );
  }

  private async _findModels(): Promise<void> {
    this.modelFolders = await findModelFolders(path => this.api.artifacts(this.runId, path));
    if (!this.modelFolders.length) {
      this._register.hidden = true;
      return;
    }
    const button = h(
      'button',
      { class: 'jp-mod-styled jp-mod-accept mltrack-register', onclick: () => void this.registerModel() },
      'Register model…'
    );
    const where = this.modelFolders.map(p => p + '/').join(', ');
    setChildren(this._register, button, h('span', { class: 'mltrack-help' }, `Logged model: ${where}`));
    this._register.hidden = false;
  }

  /** Ask for a model name and register one of the run's logged models as its new version. */
  async registerModel(): Promise<void> {
    let existing: string[] = [];
    try {
      existing = (await this.api.registeredModels()).map(m => m.name);
    } catch {
      // suggestions only: a new name still works
    }
    const listId = `mltrack-model-names-${this.runId}`;
    const name = h('input', {
      class: 'jp-mod-styled mltrack-model-name',
      type: 'text',
      list: listId,
      spellcheck: 'false',
      placeholder: 'A registered model, or a new name'
    });
    const names = h('datalist', { id: listId }, existing.map(n => h('option', { value: n })));
    const path = h(
      'select',
      { class: 'jp-mod-styled mltrack-model-path' },
      this.modelFolders.map(p => h('option', { value: p }, p + '/'))
    );
    const body = new FormBody<{ name: string; path: string }>(
      [
        h('label', { class: 'mltrack-field mltrack-field-block' }, h('span', {}, 'Model name'), name, names),
        h('label', { class: 'mltrack-field' }, h('span', {}, 'Logged model (artifact folder)'), path)
      ],
      () => ({ name: name.value.trim(), path: path.value }),
      () => registrationChanges(name.value, this.runId, path.value, existing)
    );
    const answer = await showActionDialog<{ name: string; path: string }, ModelVersion>({
      title: 'Register the model of this run',
      body,
      errorNode: body.errorNode,
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Register' })],
      focusNodeSelector: 'input.mltrack-model-name',
      act: async (_button, value) => {
        if (!value.name) {
          throw new Error('Give the model a name.');
        }
        return (await this.api.createVersion(value.name, this.runId, value.path)).model_version;
      }
    });
    if (!answer) {
      return;
    }
    const mv = answer.result;
    setChildren(
      this._registered,
      h('span', {}, `Registered version ${mv.version} of ${mv.name}.`),
      h('button', { class: 'jp-mod-styled mltrack-open-model', onclick: () => this._actions.openModel(mv.name) }, 'Open in the registry')
    );
    this._registered.hidden = false;
  }

  private async _sparkline(key: string, cell: HTMLElement, step: Element | null): Promise<void> {
    try {
      const series = await this.api.metric(this.runId, key, 200);
      if (step && !step.textContent && series.x.length) {
        step.textContent = `step ${series.x[series.x.length - 1]}`;
      }
      if (series.x.length > 1) {
        cell.appendChild(lineChart([{ x: series.x, y: series.values, label: key }], 160, 28));
      }
    } catch {
      // a sparkline is decoration: the value is already shown
    }
  }

  private async _listArtifacts(path: string, into: HTMLElement): Promise<void> {
    let files: ArtifactFile[];
    try {
      files = await this.api.artifacts(this.runId, path);
    } catch (err) {
      setChildren(into, h('li', {}, errorBox(toApiError(err).message)));
      return;
    }
    if (!files.length && !path) {
      setChildren(into, h('li', { class: 'mltrack-empty' }, 'No artifacts.'));
      return;
    }
    const items = files.map(file => {
      const name = file.path.split('/').pop() ?? file.path;
      if (file.is_dir) {
        const children = h('ul', {});
        const details = h('details', { class: 'mltrack-artifact-dir' }, h('summary', {}, name + '/'), children);
        let loaded = false;
        details.addEventListener('toggle', () => {
          if (details.open && !loaded) {
            loaded = true;
            void this._listArtifacts(file.path, children);
          }
        });
        return h('li', { 'data-path': file.path }, details);
      }
      return h(
        'li',
        { 'data-path': file.path },
        h('a', { href: '#', class: 'mltrack-artifact-file', onclick: (e: Event) => (e.preventDefault(), void this.preview(file.path)) }, name),
        h('span', { class: 'mltrack-size' }, formatBytes(file.file_size))
      );
    });
    setChildren(into, items);
  }

  /** Show one artifact file: an image, text, or indented JSON. */
  async preview(path: string): Promise<void> {
    setChildren(this._preview, h('div', { class: 'mltrack-preview-path' }, path), 'Loading…');
    try {
      const { blob, contentType } = await this.api.artifact(this.runId, path);
      let body: Node;
      if (contentType.startsWith('image/') || IMAGE.test(path)) {
        const url = URL.createObjectURL(blob);
        this._urls.push(url);
        body = h('img', { src: url, alt: path, class: 'mltrack-preview-image' });
      } else if (contentType.includes('json') || path.endsWith('.json') || contentType.startsWith('text/') || TEXTUAL.test(path)) {
        let text = await blob.text();
        if (contentType.includes('json') || path.endsWith('.json')) {
          try {
            text = JSON.stringify(JSON.parse(text), null, 2);
          } catch {
            // shown as it is
          }
        }
        const cut = text.length > TEXT_LIMIT;
        body = h('pre', { class: 'mltrack-preview-text' }, cut ? text.slice(0, TEXT_LIMIT) + '\n…' : text);
      } else {
        body = h('div', { class: 'mltrack-empty' }, `${contentType || 'binary'} file, ${formatBytes(blob.size)}: no preview.`);
      }
      setChildren(this._preview, h('div', { class: 'mltrack-preview-path' }, path), body);
    } catch (err) {
      setChildren(this._preview, errorBox(toApiError(err).message));
    }
  }
}
