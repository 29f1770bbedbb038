/**
 * The status-bar item with the active run of the current notebook's kernel.
 *
 * After cells run (a burst of them asks once), the notebook's kernel is asked quietly for its
 * active run (see `activeRun.ts`); hidden while the kernel does not use jupyter_mltrack.
 */
import { INotebookTracker, NotebookActions, NotebookPanel } from '@jupyterlab/notebook';
import { ISignal, Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { ActiveRun, askActiveRun } from './activeRun';

export class ActiveRunStatus extends Widget {
  run: ActiveRun | null | undefined = undefined;
  private _timer: ReturnType<typeof setTimeout> | null = null;
  private _asked = 0;
  private _stateChanged = new Signal<this, void>(this);

  constructor(
    private readonly _tracker: INotebookTracker,
    private readonly _open: (runId: string) => void
  ) {
    super();
    this.addClass('mltrack-status-item');
    this.node.title = 'The active MLTrack run of this notebook’s kernel';
    this.node.addEventListener('click', () => {
      if (this.run) {
        this._open(this.run.run_id);
      }
    });
    NotebookActions.executed.connect((_, { notebook }) => {
      if (this._tracker.currentWidget?.content === notebook) {
        this.schedule();
      }
    }, this);
    _tracker.currentChanged.connect(() => this.schedule(0), this);
    this._render();
  }

  /** Whether there is anything to show: the kernel uses jupyter_mltrack. */
  get isActive(): boolean {
    return this.run !== undefined;
  }

  /** Emitted when `isActive` may have changed (the status bar then shows or hides the item). */
  get stateChanged(): ISignal<this, void> {
    return this._stateChanged;
  }

  /** Ask again after `delay` ms (a burst of executed cells asks once). */
  schedule(delay = 250): void {
    if (this._timer !== null) {
      clearTimeout(this._timer);
    }
    this._timer = setTimeout(() => {
      this._timer = null;
      void this.update_();
    }, delay);
  }

  async update_(): Promise<void> {
    const panel: NotebookPanel | null = this._tracker.currentWidget;
    const kernel = panel?.sessionContext.session?.kernel;
    const asked = ++this._asked;
    let run: ActiveRun | null | undefined;
    try {
      run = kernel ? await askActiveRun(kernel) : undefined;
    } catch {
      run = undefined; // a dead or restarting kernel: nothing to show
    }
    if (asked === this._asked) {
      this.run = run;
      this._render();
    }
  }

  dispose(): void {
    if (this._timer !== null) {
      clearTimeout(this._timer);
    }
    super.dispose();
  }

  private _render(): void {
    const run = this.run;
    this.node.classList.toggle('mltrack-status-active', !!run);
    this._stateChanged.emit();
    this.node.textContent = run ? `MLTrack: ● ${run.run_name || run.run_id.slice(0, 8)}` : 'MLTrack: no active run';
    if (run) {
      this.node.title = `Active run ${run.run_name} (${run.run_id}), experiment ${run.experiment_id}: click to open`;
    }
  }
}
