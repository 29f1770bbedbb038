/** The notebook toolbar button "Track this cell": prepends `%%track` to the active code cell. */
import { DocumentRegistry } from '@jupyterlab/docregistry';
import { INotebookModel, NotebookPanel } from '@jupyterlab/notebook';
import { ToolbarButton } from '@jupyterlab/ui-components';
import { DisposableDelegate, IDisposable } from '@lumino/disposable';

import { withTrackMagic } from './format';

/** Make the active code cell of `panel` a tracked cell; false when there is none. */
export function trackActiveCell(panel: NotebookPanel | null | undefined): boolean {
  const cell = panel?.content.activeCell;
  if (!cell || cell.model.type !== 'code') {
    return false;
  }
  const shared = cell.model.sharedModel;
  const source = shared.getSource();
  const tracked = withTrackMagic(source);
  if (tracked !== source) {
    shared.setSource(tracked);
  }
  return true;
}

export class TrackCellButton implements DocumentRegistry.IWidgetExtension<NotebookPanel, INotebookModel> {
  createNew(panel: NotebookPanel): IDisposable {
    const button = new ToolbarButton({
      className: 'mltrack-track-cell',
      label: 'Track this cell',
      tooltip: 'Track this cell: prepend %%track, so running it logs a run',
      onClick: () => void trackActiveCell(panel)
    });
    // the default items come from the settings and may not be there yet: then at the end
    if (!panel.toolbar.insertAfter('cellType', 'mltrack-track-cell', button)) {
      panel.toolbar.addItem('mltrack-track-cell', button);
    }
    return new DisposableDelegate(() => button.dispose());
  }
}
