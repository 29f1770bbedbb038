import { describe, expect, it } from 'vitest';

import type { DatasetInput, ModelVersion, Run } from '../src/api';
import {
  cellText,
  columnsFor,
  formatAge,
  formatBytes,
  formatDuration,
  formatNumber,
  inputRows,
  isSystemTag,
  metricKeys,
  nextSort,
  orderByOf,
  paramDiff,
  quoteKey,
  registrationChanges,
  schemaColumns,
  sourceText,
  stageChanges,
  aliasChanges,
  withTrackMagic
} from '../src/format';

function run(id: string, params: Record<string, string> = {}, metrics: Record<string, number> = {}): Run {
  return {
    info: { run_id: id, run_name: id === 'noname' ? '' : `run-${id}`, experiment_id: '1', status: 'FINISHED', start_time: 0, end_time: 1, artifact_uri: '', lifecycle_stage: 'active' },
    data: {
      params: Object.entries(params).map(([key, value]) => ({ key, value })),
      metrics: Object.entries(metrics).map(([key, value]) => ({ key, value, step: 3, timestamp: 0 })),
      tags: []
    }
  };
}

function version(v: string, stage: string, aliases: string[] = []): ModelVersion {
  return { name: 'm', version: v, current_stage: stage, run_id: 'r' + v, source: '', description: null, aliases, tags: [], creation_timestamp: 0 };
}

describe('formatting', () => {
  it('formats numbers for a cell', () => {
    expect(formatNumber(0.912345)).toBe('0.9123');
    expect(formatNumber(42)).toBe('42');
    expect(formatNumber(1234.5678)).toBe('1235');
    expect(formatNumber(0.00001234)).toBe('1.234e-5');
    expect(formatNumber(12345678.9)).toBe('1.235e+7');
    expect(formatNumber(0)).toBe('0');
    expect(formatNumber(null)).toBe('—');
    expect(formatNumber(NaN)).toBe('—');
    expect(formatNumber(-Infinity)).toBe('-∞');
  });

  it('formats durations, ages and sizes', () => {
    expect(formatDuration(1000, 1850)).toBe('850 ms');
    expect(formatDuration(0, 5000)).toBe('—'); // not started
    expect(formatDuration(1000, null)).toBe('—'); // still running
    expect(formatDuration(1000, 13_300)).toBe('12.3 s');
    expect(formatDuration(1000, 1000 + 245_000)).toBe('4 min 05 s');
    expect(formatDuration(1000, 1000 + 7_380_000)).toBe('2 h 03 min');
    const now = 1_700_000_000_000;
    expect(formatAge(now - 5_000, now)).toBe('5 s ago');
    expect(formatAge(now - 180_000, now)).toBe('3 min ago');
    expect(formatAge(now - 2 * 3600_000, now)).toBe('2 h ago');
    expect(formatAge(now - 4 * 86400_000, now)).toBe('4 d ago');
    expect(formatAge(now - 90 * 86400_000, now)).toMatch(/^\d{4}-\d\d-\d\d$/);
    expect(formatAge(null, now)).toBe('—');
    expect(formatBytes(999)).toBe('999 B');
    expect(formatBytes(1234)).toBe('1.2 kB');
    expect(formatBytes(45_600_000)).toBe('46 MB');
  });

  it('tells system tags apart', () => {
    expect(isSystemTag('mlflow.runName')).toBe(true);
    expect(isSystemTag('mltrack.cell')).toBe(true);
    expect(isSystemTag('team')).toBe(false);
  });
});

describe('runs table columns and sorting', () => {
  const runs = [run('a', { lr: '0.1', depth: '3' }, { acc: 0.9, loss: 0.2 }), run('b', { lr: '0.2' }, { acc: 0.8, f1: 0.5 }), run('noname')];

  it('shows the attributes then the most common metrics and params', () => {
    const columns = columnsFor(runs, 2, 1);
    expect(columns.map(c => `${c.kind}:${c.key}`)).toEqual([
      'attribute:run_name',
      'attribute:status',
      'attribute:start_time',
      'metric:acc',
      'metric:f1',
      'param:lr'
    ]);
    expect(cellText(runs[0], columns[3])).toBe('0.9');
    expect(cellText(runs[2], columns[3])).toBe('');
    expect(cellText(runs[1], columns[5])).toBe('0.2');
    expect(cellText(runs[2], columns[0])).toBe('noname'.slice(0, 8));
  });

  it('makes order_by items, quoting keys the grammar needs quoted', () => {
    expect(quoteKey('acc')).toBe('acc');
    expect(quoteKey('val.acc_1')).toBe('val.acc_1');
    expect(quoteKey('val loss')).toBe('`val loss`');
    expect(quoteKey('a`b')).toBe('`a``b`');
    expect(orderByOf(null)).toEqual([]);
    expect(orderByOf({ column: { kind: 'metric', key: 'val loss', label: '' }, descending: true })).toEqual(['metrics.`val loss` DESC']);
    expect(orderByOf({ column: { kind: 'param', key: 'lr', label: '' }, descending: false })).toEqual(['params.lr ASC']);
    expect(orderByOf({ column: { kind: 'attribute', key: 'start_time', label: '' }, descending: true })).toEqual(['attributes.start_time DESC']);
  });

  it('sorts a new column descending (names ascending), then toggles', () => {
    const acc = { kind: 'metric' as const, key: 'acc', label: 'acc' };
    const name = { kind: 'attribute' as const, key: 'run_name', label: 'Run' };
    const first = nextSort(null, acc);
    expect(first.descending).toBe(true);
    expect(nextSort(first, acc).descending).toBe(false);
    expect(nextSort(first, name).descending).toBe(false);
  });
});

describe('param diff', () => {
  const runs = [run('a', { lr: '0.1', depth: '3', seed: '0' }), run('b', { lr: '0.2', seed: '0' }), run('c', { lr: '0.1', seed: '0' })];

  it('lists every key with each run value and marks the differing ones', () => {
    expect(paramDiff(runs)).toEqual([
      { key: 'depth', values: ['3', null, null], differs: true },
      { key: 'lr', values: ['0.1', '0.2', '0.1'], differs: true },
      { key: 'seed', values: ['0', '0', '0'], differs: false }
    ]);
    expect(paramDiff(runs, true).map(r => r.key)).toEqual(['depth', 'lr']);
    expect(paramDiff([])).toEqual([]);
  });

  it('collects metric keys of all runs', () => {
    expect(metricKeys([run('a', {}, { b: 1, a: 2 }), run('b', {}, { c: 1, a: 1 })])).toEqual(['a', 'b', 'c']);
  });
});

describe('dataset inputs', () => {
  const colspec = JSON.stringify({
    mlflow_colspec: [
      { name: 'x', type: 'double', required: true },
      { name: 'label', type: 'long', required: true }
    ]
  });
  const training: DatasetInput = {
    dataset: {
      name: 'iris-small',
      digest: '0d2ce093daad700c',
      source_type: 'code',
      source: JSON.stringify({ tags: { 'mlflow.source.name': 'train.ipynb', 'mlflow.source.type': 'NOTEBOOK' } }),
      schema: colspec,
      profile: JSON.stringify({ num_rows: 1500, num_elements: 3000 })
    },
    tags: [
      { key: 'mlflow.data.context', value: 'training' },
      { key: 'split', value: 'a' }
    ]
  };
  const withInputs = (...items: unknown[]): Run => ({ ...run('a'), inputs: { dataset_inputs: items as DatasetInput[] } });

  it('turns each input into a row: name, context, short digest, source, size, columns', () => {
    expect(inputRows(withInputs(training))).toEqual([
      {
        name: 'iris-small',
        digest: '0d2ce093daad700c',
        shortDigest: '0d2ce093',
        context: 'training',
        source: 'code: train.ipynb',
        rows: 1500,
        columns: ['x: double', 'label: long'],
        size: '1,500 rows × 2 columns',
        tags: [{ key: 'split', value: 'a' }]
      }
    ]);
  });

  it('has no rows for a run without inputs', () => {
    expect(inputRows(run('a'))).toEqual([]);
    expect(inputRows({ inputs: {} })).toEqual([]);
    expect(inputRows({ inputs: { dataset_inputs: [] } })).toEqual([]);
    expect(inputRows({ inputs: { dataset_inputs: null as unknown as DatasetInput[] } })).toEqual([]);
  });

  it('shows nothing for a schema or profile that is malformed or missing, without throwing', () => {
    const bad = (schema: unknown, profile: unknown) =>
      inputRows(withInputs({ dataset: { name: 'd', digest: 'abc', source_type: 'local', schema, profile } }))[0];
    for (const [schema, profile] of [
      ['{not json', 'num_rows: 3'],
      ['', ''],
      [undefined, undefined],
      [null, null],
      ['[1, 2]', '"text"'],
      ['{"mlflow_colspec": "x"}', '{"num_rows": "many"}'],
      ['{"mlflow_colspec": [1, null, "x"]}', '{"num_rows": true}'],
      ['{"mlflow_tensorspec": {"features": "{broken"}}', '{"num_rows": null}'],
      [42, 42]
    ]) {
      const row = bad(schema, profile);
      expect(row.columns).toEqual([]);
      expect(row.rows).toBeNull();
      expect(row.size).toBe('');
      expect(row.source).toBe('local');
      expect(row.context).toBe('');
    }
    // one part good, the other not
    expect(bad(colspec, '{oops').size).toBe('2 columns');
    expect(bad('{oops', '{"num_rows": 1}').size).toBe('1 row');
  });

  it('skips items without a dataset and tolerates odd tags', () => {
    const rows = inputRows(withInputs(null, 'x', { tags: [] }, { dataset: { name: 'd', digest: 'abc' }, tags: 'nope' }));
    expect(rows.map(r => [r.name, r.context, r.source, r.tags])).toEqual([['d', '', '', []]]);
  });

  it('reads tensor schemas and column entries without a name or type', () => {
    const tensors = JSON.stringify({
      mlflow_tensorspec: {
        features: JSON.stringify([{ type: 'tensor', 'tensor-spec': { dtype: 'float64', shape: [-1, 4] } }]),
        targets: JSON.stringify([{ name: 'y', type: 'tensor', 'tensor-spec': { dtype: 'int64', shape: [-1] } }])
      }
    });
    expect(schemaColumns(tensors)).toEqual({ kind: 'tensors', names: ['features: float64 [-1, 4]', 'targets.y: int64 [-1]'] });
    const row = inputRows(withInputs({ dataset: { name: 'n', digest: 'd', schema: tensors, profile: '{"num_rows": 10}' } }))[0];
    expect(row.size).toBe('10 rows × 2 tensors');
    expect(schemaColumns('{"mlflow_colspec": [{"name": "a"}, {}]}').names).toEqual(['a: ?', '?: ?']);
  });

  it('says where the data came from', () => {
    expect(sourceText('{"uri": "s3://bucket/train.csv"}')).toBe('s3://bucket/train.csv');
    expect(sourceText('{"url": "https://example.org/d.csv"}')).toBe('https://example.org/d.csv');
    expect(sourceText('{"tags": {}}')).toBe('');
    expect(sourceText('{}')).toBe('');
    expect(sourceText('{"other": 1}')).toBe('{"other":1}');
    expect(sourceText('data/train.csv')).toBe('data/train.csv'); // not JSON: as it is
    expect(sourceText(undefined)).toBe('');
    const row = inputRows(withInputs({ dataset: { name: 'n', digest: 'd', source_type: 'local', source: '{"uri": "/tmp/a.csv"}' } }))[0];
    expect(row.source).toBe('local: /tmp/a.csv');
  });
});

describe('what a registry action changes', () => {
  const versions = [version('1', 'Production', ['champion']), version('2', 'Staging'), version('3', 'None', ['challenger'])];

  it('lists the version moved and the ones archived', () => {
    expect(stageChanges(versions, '3', 'Production', true)).toEqual(['v3: None → Production', 'v1: Production → Archived']);
    expect(stageChanges(versions, '3', 'Production', false)).toEqual(['v3: None → Production']);
    expect(stageChanges(versions, '1', 'Production', true)).toEqual([]);
    expect(stageChanges(versions, '2', 'Archived', true)).toEqual(['v2: Staging → Archived']);
    expect(stageChanges(versions, '9', 'Production', true)).toEqual([]);
  });

  it('lists where an alias moves from', () => {
    expect(aliasChanges(versions, 'champion', '3')).toEqual(['@champion: v1 → v3']);
    expect(aliasChanges(versions, 'new', '2')).toEqual(['@new: (unset) → v2']);
    expect(aliasChanges(versions, 'challenger', '3')).toEqual([]);
  });
});

describe('what registering a model changes', () => {
  it('names the model, the run and the folder; a new model too', () => {
    expect(registrationChanges('Iris', 'abc123', 'model', ['Iris', 'Other'])).toEqual([
      'a new version of Iris from run abc123/model'
    ]);
    expect(registrationChanges(' Fresh ', 'abc123', '/models/a/', ['Iris'])).toEqual([
      'new registered model Fresh',
      'a new version of Fresh from run abc123/models/a'
    ]);
    expect(registrationChanges('  ', 'abc123', 'model', [])).toEqual([]);
  });
});

describe('withTrackMagic', () => {
  it('prepends %%track once', () => {
    expect(withTrackMagic('x = 1')).toBe('%%track\nx = 1');
    expect(withTrackMagic('')).toBe('%%track\n');
    expect(withTrackMagic('%%track\nx = 1')).toBe('%%track\nx = 1');
    expect(withTrackMagic('%%track --name a\nx')).toBe('%%track --name a\nx');
    expect(withTrackMagic('%%tracking\nx')).toBe('%%track\n%%tracking\nx');
  });
});
