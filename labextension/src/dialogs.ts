/**
 * A dialog whose accepting buttons run a request before it closes: when the request fails, the
 * dialog stays open with the server's message (and hint) inline, so the user can fix the input.
 */
import { Dialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { ApiError, toApiError } from './api';
import { h, setChildren } from './dom';

export interface ActionDialogOptions<T, R> {
  title: string;
  body: Widget & Dialog.IBodyWidget<T>;
  buttons: Dialog.IButton[];
  /** Where the error goes (inside `body`). */
  errorNode: HTMLElement;
  /** The request an accepting `button` makes with the body's value. */
  act(button: Dialog.IButton, value: T): Promise<R>;
  focusNodeSelector?: string;
}

/** The error box's content: the message, then the hint on its own line. */
export function showError(node: HTMLElement, error: ApiError | null): void {
  if (!error) {
    setChildren(node);
    node.hidden = true;
    return;
  }
  setChildren(
    node,
    h('div', { class: 'mltrack-error-message' }, error.message),
    error.hint ? h('div', { class: 'mltrack-error-hint' }, error.hint) : null
  );
  node.hidden = false;
}

class ActionDialog<T, R> extends Dialog<T> {
  result: R | null = null;
  private _busy = false;

  constructor(private readonly _options: ActionDialogOptions<T, R>) {
    super({
      title: _options.title,
      body: _options.body,
      buttons: _options.buttons,
      focusNodeSelector: _options.focusNodeSelector
    });
  }

  resolve(index?: number): void {
    const buttons = this._options.buttons;
    const button = buttons[index ?? buttons.length - 1];
    if (!button?.accept) {
      super.resolve(index);
      return;
    }
    if (this._busy) {
      return;
    }
    this._busy = true;
    this.addClass('mltrack-busy');
    let value: T;
    try {
      value = this._options.body.getValue?.() as T;
    } catch (err) {
      this._failed(err);
      return;
    }
    this._options.act(button, value).then(
      result => {
        this.result = result;
        this._busy = false;
        super.resolve(index);
      },
      err => this._failed(err)
    );
  }

  private _failed(err: unknown): void {
    this._busy = false;
    this.removeClass('mltrack-busy');
    showError(this._options.errorNode, toApiError(err));
  }
}

/**
 * Show the dialog; resolves with the accepting button pressed and what its request answered,
 * or null when the dialog was cancelled.
 */
export async function showActionDialog<T, R>(
  options: ActionDialogOptions<T, R>
): Promise<{ button: Dialog.IButton; result: R } | null> {
  showError(options.errorNode, null);
  const dialog = new ActionDialog<T, R>(options);
  const answer = await dialog.launch();
  if (!answer.button.accept) {
    return null;
  }
  return { button: answer.button, result: dialog.result as R };
}

/** A dialog body: form fields, optionally the list of what confirming changes, and an error box. */
export class FormBody<T> extends Widget implements Dialog.IBodyWidget<T> {
  readonly errorNode = h('div', { class: 'mltrack-error mltrack-dialog-error', role: 'alert', hidden: true });
  readonly changes = h('ul', { class: 'mltrack-changes' });

  constructor(
    fields: (HTMLElement | null)[],
    private readonly _value: () => T,
    private readonly _describe: (() => string[]) | null = null
  ) {
    super();
    this.addClass('mltrack-change-form');
    setChildren(
      this.node,
      fields,
      _describe ? [h('div', { class: 'mltrack-changes-title' }, 'What changes:'), this.changes] : null,
      this.errorNode
    );
    // an edit answers the last error: it goes until the next attempt
    this.node.addEventListener('input', () => (showError(this.errorNode, null), this.update()));
    this.node.addEventListener('change', () => this.update());
    this.update();
  }

  getValue(): T {
    return this._value();
  }

  protected onUpdateRequest(): void {
    if (!this._describe) {
      return;
    }
    const lines = this._describe();
    setChildren(
      this.changes,
      lines.length ? lines.map(line => h('li', {}, line)) : h('li', { class: 'mltrack-empty' }, 'Nothing yet: fill in the form.')
    );
  }
}
