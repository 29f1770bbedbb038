/**
 * Asking a kernel quietly for its active run: a silent execute request (no history, no
 * output) whose only content is a user expression. The expression reads `sys.modules` and
 * never imports anything into the user's kernel: no answer unless the user's code already
 * loaded jupyter_mltrack's fluent API.
 */
import type { Kernel } from '@jupyterlab/services';

export interface ActiveRun {
  run_id: string;
  run_name: string;
  experiment_id: string;
}

/**
 * A Python expression: None when the fluent API is not loaded, '' when no run is active, else
 * the run as JSON in hex (its repr then has no quotes or escapes to undo).
 */
export const ACTIVE_RUN_EXPRESSION =
  "(lambda f: (lambda r: __import__('json').dumps({'run_id': r.info.run_id, 'run_name': r.info.run_name, " +
  "'experiment_id': r.info.experiment_id}).encode().hex() if r else '')(f.active_run()) if f else None)" +
  "(__import__('sys').modules.get('jupyter_mltrack.tracking.fluent'))";

/** What the kernel answered: undefined = jupyter_mltrack not in use, null = no active run. */
export function parseActiveRun(textPlain: string | undefined): ActiveRun | null | undefined {
  if (!textPlain || textPlain === 'None') {
    return undefined;
  }
  const hex = textPlain.replace(/^['"]|['"]$/g, '');
  if (!hex) {
    return null;
  }
  if (!/^([0-9a-f]{2})+$/.test(hex)) {
    return undefined;
  }
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) {
    bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  }
  try {
    return JSON.parse(new TextDecoder().decode(bytes)) as ActiveRun;
  } catch {
    return undefined;
  }
}

/** Ask `kernel` for its active run (see `parseActiveRun` for the answer). */
export async function askActiveRun(kernel: Kernel.IKernelConnection): Promise<ActiveRun | null | undefined> {
  const future = kernel.requestExecute(
    {
      code: '',
      silent: true,
      store_history: false,
      allow_stdin: false,
      stop_on_error: false,
      user_expressions: { mltrack: ACTIVE_RUN_EXPRESSION }
    },
    true
  );
  const reply = await future.done;
  const content = reply.content as { status: string; user_expressions?: Record<string, { status: string; data?: Record<string, string> }> };
  const answer = content.user_expressions?.mltrack;
  if (content.status !== 'ok' || !answer || answer.status !== 'ok') {
    return undefined;
  }
  return parseActiveRun(answer.data?.['text/plain']);
}
