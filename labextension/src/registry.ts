/**
 * The model registry in the main area: the registered models, one model's versions (stage,
 * aliases, run), its audit trail, and the actions — promote (with an optional metric gate),
 * set a stage, move or remove an alias, roll back — each behind a dialog that lists what
 * changes. A 409 (the data changed under the user) refreshes the view and shows the message.
 */
import { Dialog, Notification, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { ApiError, MLTrackAPI, ModelDetail, ModelVersion, RegisteredModel, toApiError } from './api';
import { errorBox, h, setChildren } from './dom';
import { STAGES, aliasChanges, formatTime, stageChanges } from './format';

export interface RegistryActions {
  openRun(runId: string): void;
}

/** A dialog body: a form and the list of what confirming it changes. */
class ChangeForm<T> extends Widget implements Dialog.IBodyWidget<T> {
  readonly changes = h('ul', { class: 'mltrack-changes' });

  constructor(
    fields: HTMLElement[],
    private readonly _value: () => T,
    private readonly _describe: () => string[]
  ) {
    super();
    this.addClass('mltrack-change-form');
    setChildren(this.node, fields, h('div', { class: 'mltrack-changes-title' }, 'What changes:'), this.changes);
    this.node.addEventListener('input', () => this.update());
    this.node.addEventListener('change', () => this.update());
    this.update();
  }

  getValue(): T {
    return this._value();
  }

  protected onUpdateRequest(): void {
    const lines = this._describe();
    setChildren(
      this.changes,
      lines.length ? lines.map(line => h('li', {}, line)) : h('li', { class: 'mltrack-empty' }, 'Nothing: it is already so.')
    );
  }
}

function field(label: string, input: HTMLElement, block = false): HTMLElement {
  return h('label', { class: 'mltrack-field' + (block ? ' mltrack-field-block' : '') }, h('span', {}, label), input);
}

function select(options: string[], value: string): HTMLSelectElement {
  const el = h('select', { class: 'jp-mod-styled' }, options.map(o => h('option', { value: o }, o)));
  el.value = value;
  return el;
}

export class RegistryPanel extends Widget {
  models: RegisteredModel[] = [];
  detail: ModelDetail | null = null;
  private _current: string | null = null;
  private _list = h('ul', { class: 'mltrack-models' });
  private _main = h('div', { class: 'mltrack-model-detail' });
  private _message = h('div', { class: 'mltrack-message', role: 'status', hidden: true });

  constructor(
    readonly api: MLTrackAPI,
    private readonly _actions: RegistryActions
  ) {
    super();
    this.id = 'mltrack-registry';
    this.addClass('mltrack-registry');
    this.addClass('mltrack-panel');
    this.title.label = 'Model registry';
    this.title.closable = true;
    const refresh = h('button', { class: 'jp-mod-styled mltrack-refresh', title: 'Refresh' }, '⟳');
    refresh.addEventListener('click', () => void this.refresh());
    setChildren(
      this.node,
      h('aside', { class: 'mltrack-model-list' }, h('h3', {}, 'Models ', refresh), this._list),
      h('div', { class: 'mltrack-model-main' }, this._message, this._main)
    );
    void this.refresh();
  }

  /** Re-read the models and the open one. */
  async refresh(): Promise<void> {
    try {
      this.models = await this.api.registeredModels();
    } catch (err) {
      setChildren(this._list, h('li', {}, errorBox(toApiError(err).message)));
      return;
    }
    if (!this._current || !this.models.some(m => m.name === this._current)) {
      this._current = this.models[0]?.name ?? null;
    }
    this._renderList();
    await this.openModel(this._current);
  }

  /** Re-read the models (one may be new) and open `name`. */
  async showModel(name: string): Promise<void> {
    this._current = name;
    await this.refresh();
  }

  async openModel(name: string | null): Promise<void> {
    this._current = name;
    this._renderList();
    if (!name) {
      setChildren(this._main, h('p', { class: 'mltrack-empty' }, 'No registered models in this store yet.'));
      return;
    }
    try {
      this.detail = await this.api.registeredModel(name);
    } catch (err) {
      setChildren(this._main, errorBox(toApiError(err).message));
      return;
    }
    this._renderModel(this.detail);
  }

  /** Show a message above the model (an outcome, or why an action failed). */
  showMessage(text: string | null, kind: 'info' | 'error' = 'info'): void {
    this._message.textContent = text ?? '';
    this._message.hidden = !text;
    this._message.className = `mltrack-message mltrack-message-${kind}`;
  }

  private _renderList(): void {
    setChildren(
      this._list,
      this.models.map(m =>
        h(
          'li',
          {
            class: 'mltrack-model' + (m.name === this._current ? ' mltrack-chosen' : ''),
            'data-name': m.name,
            tabindex: 0,
            onclick: () => void this.openModel(m.name)
          },
          m.name
        )
      )
    );
  }

  private _renderModel(detail: ModelDetail): void {
    const model = detail.registered_model;
    const versions = [...detail.versions].sort((a, b) => Number(b.version) - Number(a.version));
    const rows = versions.map(v =>
      h(
        'tr',
        { class: 'mltrack-version-row', 'data-version': v.version },
        h('td', {}, `v${v.version}`),
        h('td', { class: 'mltrack-stage' }, h('span', { class: `mltrack-stage-badge mltrack-stage-${v.current_stage.toLowerCase()}` }, v.current_stage)),
        h('td', { class: 'mltrack-aliases' }, v.aliases.map(alias =>
          h('span', { class: 'mltrack-alias', 'data-alias': alias }, '@' + alias,
            h('button', { class: 'mltrack-alias-remove', title: `Remove @${alias}`, onclick: () => void this._removeAlias(v, alias) }, '×')))),
        h('td', {}, v.run_id ? h('a', { href: '#', onclick: (e: Event) => (e.preventDefault(), this._actions.openRun(v.run_id!)) }, v.run_id.slice(0, 8)) : '—'),
        h('td', {}, formatTime(v.creation_timestamp)),
        h('td', { class: 'mltrack-description' }, v.description ?? ''),
        h(
          'td',
          { class: 'mltrack-actions' },
          h('button', { class: 'jp-mod-styled jp-mod-accept mltrack-promote', onclick: () => void this._promote(v) }, 'Promote…'),
          h('button', { class: 'jp-mod-styled mltrack-set-stage', onclick: () => void this._setStage(v) }, 'Stage…'),
          h('button', { class: 'jp-mod-styled mltrack-set-alias', onclick: () => void this._setAlias(v) }, 'Alias…')
        )
      )
    );
    const held = STAGES.filter(s => s !== 'None' && s !== 'Archived' && versions.some(v => v.current_stage === s));
    const audit = [...detail.audit].reverse().map(a =>
      h(
        'tr',
        {},
        h('td', {}, formatTime(a.timestamp)),
        h('td', {}, a.action),
        h('td', {}, a.version ? `v${a.version}` : ''),
        h('td', {}, a.target ?? ''),
        h('td', {}, a.from_value || a.to_value ? `${a.from_value ?? '—'} → ${a.to_value ?? '—'}` : ''),
        h('td', {}, a.user ?? ''),
        h('td', {}, a.comment ?? '')
      )
    );
    setChildren(
      this._main,
      h('h2', {}, model.name),
      model.description ? h('p', { class: 'mltrack-model-description' }, model.description) : null,
      h(
        'div',
        { class: 'mltrack-toolbar' },
        held.map(stage => h('button', { class: 'jp-mod-styled mltrack-rollback', 'data-stage': stage, onclick: () => void this._rollback(stage) }, `Roll back ${stage}…`))
      ),
      h(
        'table',
        { class: 'mltrack-table mltrack-versions' },
        h('thead', {}, h('tr', {}, ['Version', 'Stage', 'Aliases', 'Run', 'Created', 'Description', ''].map(t => h('th', {}, t)))),
        h('tbody', {}, rows)
      ),
      h('h3', {}, 'Audit trail'),
      audit.length
        ? h(
            'table',
            { class: 'mltrack-table mltrack-audit' },
            h('thead', {}, h('tr', {}, ['When', 'Action', 'Version', 'Target', 'Change', 'User', 'Comment'].map(t => h('th', {}, t)))),
            h('tbody', {}, audit)
          )
        : h('p', { class: 'mltrack-empty' }, 'No changes recorded yet.')
    );
  }

  private get _versions(): ModelVersion[] {
    return this.detail?.versions ?? [];
  }

  /** Run `action`; afterwards (success or not) re-read the model. A 409 says why. */
  private async _apply(action: () => Promise<string>): Promise<void> {
    try {
      const outcome = await action();
      this.showMessage(outcome, 'info');
    } catch (err) {
      const error: ApiError = toApiError(err);
      const text = error.isConflict ? `${error.message} The view was refreshed: check and try again.` : error.message;
      this.showMessage(text, 'error');
      Notification.error(text, { autoClose: 8000 });
    }
    await this.refresh();
  }

  private async _promote(v: ModelVersion): Promise<void> {
    const name = v.name;
    const target = select(['Production', 'Staging', 'alias…'], 'Production');
    const alias = h('input', { class: 'jp-mod-styled mltrack-alias-input', placeholder: 'champion', hidden: true });
    const archive = h('input', { type: 'checkbox', class: 'mltrack-archive', checked: true });
    const gateOn = h('input', { type: 'checkbox', class: 'mltrack-gate-on' });
    const metric = h('input', { class: 'jp-mod-styled mltrack-gate-metric', placeholder: 'metric key, e.g. f1' });
    const threshold = h('input', { class: 'jp-mod-styled mltrack-gate-threshold', type: 'number', step: 'any', placeholder: '0.8' });
    const greater = select(['higher is better', 'lower is better'], 'higher is better');
    const comment = h('input', { class: 'jp-mod-styled mltrack-comment', placeholder: 'why (kept in the audit trail)' });
    const toAlias = (): boolean => target.value === 'alias…';
    target.addEventListener('change', () => (alias.hidden = !toAlias()));
    const body = new ChangeForm(
      [
        field('To', h('span', {}, target, alias)),
        field('Archive the versions now in that stage', archive),
        field('Only if the run’s metric passes a threshold', h('span', { class: 'mltrack-gate' }, gateOn, metric, greater, threshold), true),
        field('Comment', comment)
      ],
      () => ({
        stage: toAlias() ? undefined : target.value,
        alias: toAlias() ? alias.value.trim() : undefined,
        archive_existing_versions: archive.checked,
        gate: gateOn.checked
          ? { metric: metric.value.trim(), threshold: Number(threshold.value), greater_is_better: greater.value === 'higher is better' }
          : null,
        comment: comment.value.trim() || undefined,
        expected_stage: v.current_stage
      }),
      () => {
        const lines = toAlias()
          ? alias.value.trim() ? aliasChanges(this._versions, alias.value.trim(), v.version) : []
          : stageChanges(this._versions, v.version, target.value, archive.checked);
        if (gateOn.checked && lines.length) {
          const op = greater.value === 'higher is better' ? '≥' : '≤';
          lines.push(`only if ${metric.value || '(metric)'} ${op} ${threshold.value || '(threshold)'}; else nothing changes`);
        }
        return lines;
      }
    );
    const result = await showDialog({
      title: `Promote ${name} v${v.version}`,
      body,
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Promote' })]
    });
    if (!result.button.accept || !result.value) {
      return;
    }
    const request = result.value;
    const to = request.alias ? '@' + request.alias : request.stage;
    await this._apply(async () => {
      const answer = await this.api.promote(name, v.version, request);
      const validation = answer.validation ? ' (the gate passed)' : '';
      return `${name} v${v.version} is now in ${to}${validation}.`;
    });
  }

  private async _setStage(v: ModelVersion): Promise<void> {
    const stage = select(STAGES, v.current_stage === 'Production' ? 'Archived' : 'Staging');
    const archive = h('input', { type: 'checkbox', class: 'mltrack-archive' });
    const body = new ChangeForm(
      [field('Stage', stage), field('Archive the versions now in that stage', archive)],
      () => ({ stage: stage.value, archive: archive.checked }),
      () => stageChanges(this._versions, v.version, stage.value, archive.checked)
    );
    const result = await showDialog({
      title: `Stage of ${v.name} v${v.version}`,
      body,
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Set stage' })]
    });
    if (!result.button.accept || !result.value) {
      return;
    }
    const { stage: to, archive: archiveExisting } = result.value;
    await this._apply(async () => {
      await this.api.setStage(v.name, v.version, to, archiveExisting, v.current_stage);
      return `${v.name} v${v.version} is now in ${to}.`;
    });
  }

  private async _setAlias(v: ModelVersion): Promise<void> {
    const alias = h('input', { class: 'jp-mod-styled mltrack-alias-input', placeholder: 'champion' });
    const body = new ChangeForm(
      [field('Alias', alias)],
      () => alias.value.trim(),
      () => (alias.value.trim() ? aliasChanges(this._versions, alias.value.trim(), v.version) : [])
    );
    const result = await showDialog({
      title: `Alias for ${v.name} v${v.version}`,
      body,
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Set alias' })]
    });
    const name = result.value;
    if (!result.button.accept || !name) {
      return;
    }
    const holder = this._versions.find(x => x.aliases.includes(name));
    await this._apply(async () => {
      await this.api.setAlias(v.name, name, v.version, holder?.version ?? null);
      return `@${name} now points at ${v.name} v${v.version}.`;
    });
  }

  private async _removeAlias(v: ModelVersion, alias: string): Promise<void> {
    const result = await showDialog({
      title: `Remove @${alias}`,
      body: new ChangeForm([], () => null, () => [`@${alias}: v${v.version} → (unset)`]),
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Remove' })]
    });
    if (!result.button.accept) {
      return;
    }
    await this._apply(async () => {
      await this.api.deleteAlias(v.name, alias, v.version);
      return `@${alias} removed from ${v.name}.`;
    });
  }

  private async _rollback(stage: string): Promise<void> {
    const name = this._current;
    if (!name) {
      return;
    }
    const holder = this._versions.find(v => v.current_stage === stage);
    let candidate: ModelVersion | null = null;
    try {
      candidate = await this.api.rollbackCandidate(name, stage);
    } catch (err) {
      this.showMessage(toApiError(err).message, 'error');
      return;
    }
    if (!candidate) {
      this.showMessage(`No earlier version of ${name} held ${stage}: nothing to roll back to.`, 'error');
      return;
    }
    const comment = h('input', { class: 'jp-mod-styled mltrack-comment', placeholder: 'why (kept in the audit trail)' });
    const body = new ChangeForm(
      [field('Comment', comment)],
      () => comment.value.trim(),
      () => [
        `${stage}: ${holder ? 'v' + holder.version : '(none)'} → v${candidate!.version}`,
        ...(holder ? [`v${holder.version}: ${stage} → Archived`] : [])
      ]
    );
    const result = await showDialog({
      title: `Roll back ${name} ${stage}`,
      body,
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Roll back' })]
    });
    if (!result.button.accept) {
      return;
    }
    await this._apply(async () => {
      await this.api.rollback(name, { stage }, result.value || undefined);
      return `${name} ${stage} is back on v${candidate!.version}.`;
    });
  }
}
