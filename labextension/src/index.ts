/**
 * The jupyter-mltrack JupyterLab plugin: the MLTrack sidebar, run / comparison / registry
 * panels in the main area, a status-bar item, palette commands and the "Track this cell" button.
 */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, Notification } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookActions, NotebookPanel } from '@jupyterlab/notebook';
import { IStatusBar } from '@jupyterlab/statusbar';
import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { MLTrackAPI } from './api';
import { ComparisonPanel } from './comparison';
import { RegistryPanel } from './registry';
import { RunDetailPanel } from './runDetail';
import { MLTrackSidebar } from './sidebar';
import { ActiveRunStatus } from './statusbar';
import { TrackCellButton, trackActiveCell } from './toolbar';

export const CommandIDs = {
  openSidebar: 'mltrack:open-sidebar',
  refresh: 'mltrack:refresh',
  openRun: 'mltrack:open-run',
  compare: 'mltrack:compare-selected',
  openRegistry: 'mltrack:open-registry',
  trackCell: 'mltrack:track-cell'
};

const ICON_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24">' +
  '<path class="jp-icon3" fill="#616161" d="M3 20h18v2H3zM5 17V9h3v8zm5 0V4h3v13zm5 0v-6h3v6z"/></svg>';

export const mltrackIcon = new LabIcon({ name: 'jupyter-mltrack:icon', svgstr: ICON_SVG });

/** Add `widget` to the main area, or bring it forward when it is already there. */
function showInMain(app: JupyterFrontEnd, widget: Widget): void {
  if (!widget.isAttached) {
    app.shell.add(widget, 'main');
  }
  app.shell.activateById(widget.id);
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-mltrack:plugin',
  description: 'MLTrack: experiments, runs, comparison and the model registry in JupyterLab.',
  autoStart: true,
  optional: [ICommandPalette, INotebookTracker, IStatusBar, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    notebooks: INotebookTracker | null,
    statusBar: IStatusBar | null,
    restorer: ILayoutRestorer | null
  ) => {
    const api = new MLTrackAPI(app.serviceManager.serverSettings);
    const { commands } = app;
    const opened = new Map<string, Widget>();

    const track = <T extends Widget>(key: string, make: () => T): T => {
      const existing = opened.get(key);
      if (existing && !existing.isDisposed) {
        return existing as T;
      }
      const widget = make();
      opened.set(key, widget);
      widget.disposed.connect(() => opened.delete(key));
      return widget;
    };

    const insertCell = async (source: string): Promise<void> => {
      let panel: NotebookPanel | null = notebooks?.currentWidget ?? null;
      if (!panel) {
        panel = (await commands.execute('notebook:create-new')) as NotebookPanel;
        await panel.context.ready;
        panel.content.activeCell?.model.sharedModel.setSource(source);
      } else {
        NotebookActions.insertBelow(panel.content);
        panel.content.activeCell?.model.sharedModel.setSource(source);
      }
      app.shell.activateById(panel.id);
    };

    const openRegistry = (model?: string): void => {
      const widget = track('registry', () => new RegistryPanel(api, { openRun }));
      showInMain(app, widget);
      if (model) {
        void widget.showModel(model);
      }
    };

    const openRun = (runId: string): void => {
      const widget = track(
        'run:' + runId,
        () => new RunDetailPanel(api, runId, { insertCell: s => void insertCell(s), openModel: name => openRegistry(name) })
      );
      showInMain(app, widget);
    };

    const compare = (runIds: string[]): void => {
      if (runIds.length < 2) {
        Notification.info('Check two runs or more in the MLTrack sidebar to compare them.', { autoClose: 4000 });
        return;
      }
      const widget = track('compare:' + runIds.join(','), () => new ComparisonPanel(api, runIds));
      showInMain(app, widget);
    };

    const sidebar = new MLTrackSidebar(api, { openRun, compare, openRegistry: () => openRegistry() });
    sidebar.title.icon = mltrackIcon;
    app.shell.add(sidebar, 'left', { rank: 650 });
    restorer?.add(sidebar, sidebar.id);
    void sidebar.refresh();

    commands.addCommand(CommandIDs.openSidebar, {
      label: 'MLTrack: Show experiments and runs',
      icon: mltrackIcon,
      execute: () => app.shell.activateById(sidebar.id)
    });
    commands.addCommand(CommandIDs.refresh, {
      label: 'MLTrack: Refresh',
      execute: () => sidebar.refresh()
    });
    commands.addCommand(CommandIDs.openRun, {
      label: args => (args.run_id ? `MLTrack: Open run ${args.run_id}` : 'MLTrack: Open run…'),
      execute: args => {
        if (args.run_id) {
          openRun(String(args.run_id));
        }
      },
      isVisible: () => false
    });
    commands.addCommand(CommandIDs.compare, {
      label: 'MLTrack: Compare selected runs',
      isEnabled: () => sidebar.selectedRuns.length >= 2,
      execute: () => compare(sidebar.selectedRuns)
    });
    sidebar.selectionChanged.connect(() => commands.notifyCommandChanged(CommandIDs.compare));
    commands.addCommand(CommandIDs.openRegistry, {
      label: 'MLTrack: Open the model registry',
      execute: () => openRegistry()
    });
    commands.addCommand(CommandIDs.trackCell, {
      label: 'MLTrack: Track this cell (%%track)',
      isEnabled: () => !!notebooks?.currentWidget,
      execute: () => void trackActiveCell(notebooks?.currentWidget)
    });
    if (palette) {
      for (const command of [CommandIDs.openSidebar, CommandIDs.refresh, CommandIDs.compare, CommandIDs.openRegistry, CommandIDs.trackCell]) {
        palette.addItem({ command, category: 'MLTrack' });
      }
    }

    app.docRegistry.addWidgetExtension('Notebook', new TrackCellButton());

    // a cell ran: new runs, metrics or an active run may have appeared
    NotebookActions.executed.connect(() => void sidebar.refreshNow());

    if (notebooks && statusBar) {
      const item = new ActiveRunStatus(notebooks, openRun);
      statusBar.registerStatusItem('jupyter-mltrack:active-run', {
        item,
        align: 'left',
        rank: 5,
        isActive: () => !!notebooks.currentWidget && item.isActive,
        activeStateChanged: item.stateChanged
      });
    }
  }
};

export default plugin;
