/**
 * Pure helpers of the views: formatting, columns and sort order of the runs table, the diff
 * of params between runs, a run's dataset inputs in words, the summary of what a registry
 * action changes. No DOM here.
 */
import type { KeyValue, Metric, ModelVersion, Run } from './api';

// -- values ----------------------------------------------------------------------------------

/** A metric value short enough for a table cell: 4 significant digits, no trailing zeros. */
export function formatNumber(value: number | null | undefined): string {
  if (value === null || value === undefined || Number.isNaN(value)) {
    return '—';
  }
  if (!Number.isFinite(value)) {
    return value > 0 ? '∞' : '-∞';
  }
  if (Number.isInteger(value) && Math.abs(value) < 1e9) {
    return String(value);
  }
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 1e-3 || abs >= 1e6)) {
    return value.toExponential(3).replace(/\.?0+e/, 'e');
  }
  return String(Number(value.toPrecision(4)));
}

function pad(n: number): string {
  return n < 10 ? '0' + n : String(n);
}

/** `2024-05-01 13:45:10` in local time; '—' for no time. */
export function formatTime(ms: number | null | undefined): string {
  if (!ms) {
    return '—';
  }
  const d = new Date(ms);
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
  );
}

/** `5 s ago`, `3 min ago`, `2 h ago`, `4 d ago`, then the date. */
export function formatAge(ms: number | null | undefined, now: number = Date.now()): string {
  if (!ms) {
    return '—';
  }
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) {
    return `${s} s ago`;
  }
  if (s < 3600) {
    return `${Math.floor(s / 60)} min ago`;
  }
  if (s < 86400) {
    return `${Math.floor(s / 3600)} h ago`;
  }
  if (s < 30 * 86400) {
    return `${Math.floor(s / 86400)} d ago`;
  }
  return formatTime(ms).slice(0, 10);
}

/** `850 ms`, `12.3 s`, `4 min 05 s`, `2 h 03 min`; '—' when not started or not ended. */
export function formatDuration(start: number | null | undefined, end: number | null | undefined): string {
  if (!start || !end || end < start) {
    return '—';
  }
  const ms = end - start;
  if (ms < 1000) {
    return `${ms} ms`;
  }
  const s = ms / 1000;
  if (s < 60) {
    return `${s.toFixed(1)} s`;
  }
  const m = Math.floor(s / 60);
  if (m < 60) {
    return `${m} min ${pad(Math.floor(s % 60))} s`;
  }
  return `${Math.floor(m / 60)} h ${pad(m % 60)} min`;
}

/** `1.2 kB`, `3.4 MB`. */
export function formatBytes(n: number | null | undefined): string {
  if (n === null || n === undefined) {
    return '';
  }
  if (n < 1000) {
    return `${n} B`;
  }
  const units = ['kB', 'MB', 'GB', 'TB'];
  let value = n;
  let unit = -1;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

/** A run's name, or the start of its id. */
export function runLabel(run: Run): string {
  return run.info.run_name || run.info.run_id.slice(0, 8);
}

export function toMap(items: KeyValue[] | Metric[]): Map<string, string | number | null> {
  const map = new Map<string, string | number | null>();
  for (const item of items) {
    map.set(item.key, item.value);
  }
  return map;
}

/** User tags only: MLflow's and ours (`mlflow.*`, `mltrack.*`) are shown apart. */
export function isSystemTag(key: string): boolean {
  return key.startsWith('mlflow.') || key.startsWith('mltrack.');
}

// -- the runs table --------------------------------------------------------------------------

export type ColumnKind = 'attribute' | 'metric' | 'param';

export interface Column {
  kind: ColumnKind;
  key: string;
  label: string;
}

export const ATTRIBUTE_COLUMNS: Column[] = [
  { kind: 'attribute', key: 'run_name', label: 'Run' },
  { kind: 'attribute', key: 'status', label: 'Status' },
  { kind: 'attribute', key: 'start_time', label: 'Started' }
];

/**
 * The table's columns for `runs`: the attributes, then up to `maxMetrics` metric keys and
 * `maxParams` param keys, the most common first (ties by name).
 */
export function columnsFor(runs: Run[], maxMetrics = 3, maxParams = 2): Column[] {
  const count = (pick: (run: Run) => { key: string }[]): string[] => {
    const seen = new Map<string, number>();
    for (const run of runs) {
      for (const { key } of pick(run)) {
        seen.set(key, (seen.get(key) ?? 0) + 1);
      }
    }
    return [...seen.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).map(e => e[0]);
  };
  const metrics = count(r => r.data.metrics).slice(0, maxMetrics);
  const params = count(r => r.data.params).slice(0, maxParams);
  return [
    ...ATTRIBUTE_COLUMNS,
    ...metrics.map(key => ({ kind: 'metric' as const, key, label: key })),
    ...params.map(key => ({ kind: 'param' as const, key, label: key }))
  ];
}

/** The text of one cell of the runs table. */
export function cellText(run: Run, column: Column, now?: number): string {
  if (column.kind === 'metric') {
    const metric = run.data.metrics.find(m => m.key === column.key);
    return metric ? formatNumber(metric.value) : '';
  }
  if (column.kind === 'param') {
    return run.data.params.find(p => p.key === column.key)?.value ?? '';
  }
  switch (column.key) {
    case 'run_name':
      return runLabel(run);
    case 'status':
      return run.info.status;
    case 'start_time':
      return formatAge(run.info.start_time, now);
    default:
      return String((run.info as unknown as Record<string, unknown>)[column.key] ?? '');
  }
}

export interface Sort {
  column: Column;
  descending: boolean;
}

/** A key for the search grammar: backticked when it is not a plain identifier. */
export function quoteKey(key: string): string {
  return /^[A-Za-z_][\w.]*$/.test(key) ? key : '`' + key.replace(/`/g, '``') + '`';
}

/** The `order_by` item of a sort, e.g. ``metrics.`val loss` DESC``. */
export function orderByOf(sort: Sort | null): string[] {
  if (!sort) {
    return [];
  }
  const prefix = sort.column.kind === 'attribute' ? 'attributes' : sort.column.kind + 's';
  return [`${prefix}.${quoteKey(sort.column.key)} ${sort.descending ? 'DESC' : 'ASC'}`];
}

/** Clicking a header: a new column sorts descending first (newest, highest), then toggles. */
export function nextSort(current: Sort | null, column: Column): Sort {
  const same = current && current.column.kind === column.kind && current.column.key === column.key;
  if (same) {
    return { column, descending: !current.descending };
  }
  return { column, descending: column.key !== 'run_name' };
}

// -- comparison ------------------------------------------------------------------------------

export interface DiffRow {
  key: string;
  values: (string | null)[];
  differs: boolean;
}

/**
 * One row per param key of any run (sorted), with each run's value (null when it lacks the
 * key) and whether they differ; `onlyDifferent` drops the rows where all runs agree.
 */
export function paramDiff(runs: Run[], onlyDifferent = false): DiffRow[] {
  const maps = runs.map(r => toMap(r.data.params));
  const keys = [...new Set(runs.flatMap(r => r.data.params.map(p => p.key)))].sort();
  const rows = keys.map(key => {
    const values = maps.map(m => (m.has(key) ? String(m.get(key)) : null));
    return { key, values, differs: new Set(values).size > 1 };
  });
  return onlyDifferent ? rows.filter(r => r.differs) : rows;
}

/** Metric keys of any of `runs`, sorted. */
export function metricKeys(runs: Run[]): string[] {
  return [...new Set(runs.flatMap(r => r.data.metrics.map(m => m.key)))].sort();
}

// -- dataset inputs --------------------------------------------------------------------------

/** The input tag holding what a run used a dataset for (`training`, `eval`). */
export const CONTEXT_TAG = 'mlflow.data.context';
const SHORT_DIGEST = 8;
const SOURCE_LIMIT = 200;

/** One dataset input of a run, ready to show. Fields that do not parse are left empty. */
export interface InputRow {
  name: string;
  digest: string;
  /** The digest's first characters, as a table cell shows it. */
  shortDigest: string;
  context: string;
  /** `local: data/train.csv`, `code: train.ipynb`, or the source type alone. */
  source: string;
  rows: number | null;
  /** `x: double`, … from the schema (MLflow's column or tensor spec); empty without one. */
  columns: string[];
  /** `150 rows × 5 columns`, `150 rows`, `2 tensors`, or '' when neither is known. */
  size: string;
  /** The input's other tags. */
  tags: KeyValue[];
}

/** `text` parsed as JSON; undefined for no text or text that is not JSON. */
function parseJson(text: unknown): unknown {
  if (typeof text !== 'string' || !text) {
    return undefined;
  }
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function str(value: unknown): string {
  return typeof value === 'string' ? value : value === null || value === undefined ? '' : String(value);
}

/** `1234567` → `1,234,567` (the same in every locale). */
function withCommas(n: number): string {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

function plural(n: number, word: string): string {
  return `${withCommas(n)} ${word}${n === 1 ? '' : 's'}`;
}

/**
 * The columns of a dataset's schema: `["x: double", …]` from MLflow's column spec,
 * `["features: float64 [-1, 4]"]` from a tensor spec (numpy datasets); `kind` tells which.
 * Empty for no schema or one that does not parse.
 */
export function schemaColumns(schema: unknown): { kind: 'columns' | 'tensors'; names: string[] } {
  const found = parseJson(schema);
  if (!isObject(found)) {
    return { kind: 'columns', names: [] };
  }
  const colspec = found['mlflow_colspec'];
  if (Array.isArray(colspec)) {
    const names = colspec.filter(isObject).map(c => `${str(c.name) || '?'}: ${str(c.type) || '?'}`);
    return { kind: 'columns', names };
  }
  const tensors = found['mlflow_tensorspec'];
  const names: string[] = [];
  if (isObject(tensors)) {
    for (const part of ['features', 'targets']) {
      const specs = typeof tensors[part] === 'string' ? parseJson(tensors[part]) : tensors[part];
      for (const spec of Array.isArray(specs) ? specs.filter(isObject) : []) {
        const tensor = isObject(spec['tensor-spec']) ? spec['tensor-spec'] : {};
        const label = spec.name ? `${part}.${str(spec.name)}` : part;
        const shape = Array.isArray(tensor.shape) ? `[${tensor.shape.join(', ')}]` : str(tensor.shape);
        names.push(`${label}: ${str(tensor.dtype) || '?'} ${shape}`.trim());
      }
    }
  }
  return { kind: 'tensors', names };
}

/**
 * Where a dataset came from, from its source JSON: a `uri`, `url`, `path` or table, a code
 * source's notebook or script, else the JSON itself (cut short); text that is not JSON as it is.
 */
export function sourceText(source: unknown): string {
  const found = parseJson(source);
  if (!isObject(found)) {
    return typeof source === 'string' ? source.slice(0, SOURCE_LIMIT) : '';
  }
  for (const key of ['uri', 'url', 'path', 'table_name']) {
    if (typeof found[key] === 'string') {
      return found[key] as string;
    }
  }
  const tags = found['tags'];
  if (isObject(tags) && tags['mlflow.source.name']) {
    return str(tags['mlflow.source.name']);
  }
  const text = JSON.stringify(found);
  return text === '{}' || text === '{"tags":{}}' ? '' : text.slice(0, SOURCE_LIMIT);
}

/**
 * One row per dataset input of `run` (`run.inputs.dataset_inputs`), in the logged order:
 * the name, context, digest, source and size. A schema or profile that is missing or not
 * JSON shows nothing; an item without a dataset is skipped. Empty when the run has no inputs.
 */
export function inputRows(run: Pick<Run, 'inputs'>): InputRow[] {
  const items: unknown = run.inputs?.dataset_inputs;
  if (!Array.isArray(items)) {
    return [];
  }
  const rows: InputRow[] = [];
  for (const item of items) {
    if (!isObject(item) || !isObject(item.dataset)) {
      continue;
    }
    const dataset = item.dataset;
    const tags = (Array.isArray(item.tags) ? item.tags : [])
      .filter(isObject)
      .map(t => ({ key: str(t.key), value: str(t.value) }));
    const context = tags.find(t => t.key === CONTEXT_TAG)?.value ?? '';
    const profile = parseJson(dataset.profile);
    const numRows = isObject(profile) ? profile['num_rows'] : undefined;
    const rowCount = typeof numRows === 'number' && Number.isFinite(numRows) ? Math.trunc(numRows) : null;
    const schema = schemaColumns(dataset.schema);
    const sourceType = str(dataset.source_type);
    const where = sourceText(dataset.source);
    const size = [
      rowCount === null ? '' : plural(rowCount, 'row'),
      schema.names.length ? plural(schema.names.length, schema.kind === 'columns' ? 'column' : 'tensor') : ''
    ];
    const digest = str(dataset.digest);
    rows.push({
      name: str(dataset.name),
      digest,
      shortDigest: digest.slice(0, SHORT_DIGEST),
      context,
      source: where ? (sourceType ? `${sourceType}: ${where}` : where) : sourceType,
      rows: rowCount,
      columns: schema.names,
      size: size.filter(Boolean).join(' × '),
      tags: tags.filter(t => t.key !== CONTEXT_TAG)
    });
  }
  return rows;
}

// -- the registry ----------------------------------------------------------------------------

export const STAGES = ['None', 'Staging', 'Production', 'Archived'];

/**
 * What moving `version` to `stage` changes, one line each, as the confirmation shows it:
 * the version itself and, with `archiveExisting`, the versions now in that stage.
 */
export function stageChanges(
  versions: ModelVersion[],
  version: string,
  stage: string,
  archiveExisting: boolean
): string[] {
  const target = versions.find(v => v.version === version);
  if (!target) {
    return [];
  }
  const lines: string[] = [];
  if (target.current_stage !== stage) {
    lines.push(`v${version}: ${target.current_stage} → ${stage}`);
  }
  if (archiveExisting && (stage === 'Staging' || stage === 'Production')) {
    for (const v of versions) {
      if (v.version !== version && v.current_stage === stage) {
        lines.push(`v${v.version}: ${stage} → Archived`);
      }
    }
  }
  return lines;
}

/**
 * What registering the model at `artifactPath` of run `runId` as `name` changes; the version
 * number is the server's to pick. Empty while the name is blank.
 */
export function registrationChanges(name: string, runId: string, artifactPath: string, existing: string[]): string[] {
  const model = name.trim();
  if (!model) {
    return [];
  }
  const lines: string[] = [];
  if (!existing.includes(model)) {
    lines.push(`new registered model ${model}`);
  }
  lines.push(`a new version of ${model} from run ${runId}/${artifactPath.replace(/^\/+|\/+$/g, '')}`);
  return lines;
}

/** What pointing `alias` at `version` changes (moving it off the version that holds it). */
export function aliasChanges(versions: ModelVersion[], alias: string, version: string): string[] {
  const holder = versions.find(v => v.aliases.includes(alias));
  if (holder?.version === version) {
    return [];
  }
  return holder
    ? [`@${alias}: v${holder.version} → v${version}`]
    : [`@${alias}: (unset) → v${version}`];
}

// -- cells ----------------------------------------------------------------------------------

/** `source` with `%%track` as its first line (unchanged when it is already tracked). */
export function withTrackMagic(source: string): string {
  const first = source.split('\n', 1)[0].trim();
  if (first === '%%track' || first.startsWith('%%track ')) {
    return source;
  }
  return '%%track\n' + source;
}
