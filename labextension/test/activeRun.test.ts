import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

import { ACTIVE_RUN_EXPRESSION, parseActiveRun } from '../src/activeRun';

const hex = (s: string): string => Buffer.from(s, 'utf8').toString('hex');
const PYTHON = resolve(__dirname, '../../.venv/bin/python');

describe('parseActiveRun', () => {
  it('reads the three answers of the expression', () => {
    expect(parseActiveRun('None')).toBeUndefined();
    expect(parseActiveRun(undefined)).toBeUndefined();
    expect(parseActiveRun("''")).toBeNull();
    const run = { run_id: 'abc', run_name: "l'été \"2\"", experiment_id: '1' };
    expect(parseActiveRun(`'${hex(JSON.stringify(run))}'`)).toEqual(run);
  });

  it('ignores anything else', () => {
    expect(parseActiveRun("'zz'")).toBeUndefined();
    expect(parseActiveRun(`'${hex('not json')}'`)).toBeUndefined();
  });
});

// the expression itself, in the project's Python: what a kernel would evaluate
describe.skipIf(!existsSync(PYTHON))('ACTIVE_RUN_EXPRESSION in Python', () => {
  const evaluate = (setup: string): string =>
    execFileSync(PYTHON, ['-c', `${setup}\nimport sys\nprint(repr(eval(${JSON.stringify(ACTIVE_RUN_EXPRESSION)})))\nprint('jupyter_mltrack' in sys.modules)`], {
      encoding: 'utf8',
      env: { ...process.env, MLTRACK_TRACKING_URI: mkdtempSync(resolve(tmpdir(), 'mltrack-probe-')) }
    });

  it('answers None without importing jupyter_mltrack', () => {
    expect(evaluate('').trim().split('\n')).toEqual(['None', 'False']);
  });

  it('answers the active run once the fluent API is in use', () => {
    const out = evaluate("import jupyter_mltrack as m\nm.set_experiment('probe')\nr = m.start_run(run_name=\"l'été\")");
    const [answer, imported] = out.trim().split('\n');
    expect(imported).toBe('True');
    const run = parseActiveRun(answer);
    expect(run?.run_name).toBe("l'été");
    expect(run?.run_id).toMatch(/^[0-9a-f]{32}$/);
  });

  it("answers '' when no run is active", () => {
    const out = evaluate('import jupyter_mltrack as m\nm.active_run()');
    expect(parseActiveRun(out.trim().split('\n')[0])).toBeNull();
  });
});
