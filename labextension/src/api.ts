/**
 * The data layer: typed requests to the server extension's JSON API under
 * `<base_url>/mltrack/api/`, its error objects, run paging and polling for live refresh.
 *
 * Every request goes through `ServerConnection.makeRequest`, so the lab's token and XSRF
 * cookie are sent; unit tests pass settings whose `fetch` is a fake.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

// -- entities (MLflow's JSON shapes) ---------------------------------------------------------

export interface KeyValue {
  key: string;
  value: string;
}

/** A run's latest value of a metric (the server may leave out its step and timestamp). */
export interface Metric {
  key: string;
  value: number | null;
  timestamp?: number;
  step?: number;
}

export interface Experiment {
  experiment_id: string;
  name: string;
  lifecycle_stage: string;
  tags: KeyValue[];
  creation_time: number | null;
  last_update_time: number | null;
}

export interface RunInfo {
  run_id: string;
  run_name: string;
  experiment_id: string;
  status: string;
  start_time: number | null;
  end_time: number | null;
  artifact_uri: string;
  lifecycle_stage: string;
}

/**
 * A logged dataset as MLflow's JSON has it. `schema`, `profile` and `source` are JSON texts
 * (`{"mlflow_colspec": [...]}`, `{"num_rows": 150}`, `{"uri": ...}`) that may be left out,
 * empty, or not JSON at all when another client logged them.
 */
export interface Dataset {
  name: string;
  digest: string;
  source_type?: string;
  source?: string;
  schema?: string;
  profile?: string;
}

/** One dataset input of a run; its context is the input tag `mlflow.data.context`. */
export interface DatasetInput {
  dataset: Dataset;
  tags?: KeyValue[];
}

/** A run's inputs: `{}` when it has none (MLflow's JSON leaves out empty lists). */
export interface RunInputs {
  dataset_inputs?: DatasetInput[];
}

export interface Run {
  info: RunInfo;
  data: { params: KeyValue[]; metrics: Metric[]; tags: KeyValue[] };
  inputs?: RunInputs;
}

export interface StoreInfo {
  tracking_uri: string;
  ok: boolean;
  error: string | null;
  hint: string | null;
  /** Where the URI comes from: `sidebar` (switched here), an env var name, or `default`. */
  source?: string;
}

export interface RunsPage {
  runs: Run[];
  next_page_token: string | null;
}

export interface RunDetail {
  run: Run;
  cell_source: string | null;
  metric_keys: string[];
}

export interface Series {
  x: number[];
  values: (number | null)[];
  downsampled: boolean;
}

export interface MetricSeries extends Series {
  key: string;
}

export interface ArtifactFile {
  path: string;
  is_dir: boolean;
  file_size: number | null;
}

export interface Alias {
  alias: string;
  version: string;
}

export interface RegisteredModel {
  name: string;
  description: string | null;
  latest_versions: ModelVersion[];
  aliases: Alias[];
  tags: KeyValue[];
}

export interface ModelVersion {
  name: string;
  version: string;
  current_stage: string;
  run_id: string | null;
  source: string;
  description: string | null;
  aliases: string[];
  tags: KeyValue[];
  creation_timestamp: number | null;
}

export interface AuditEntry {
  timestamp: number;
  action: string;
  version: string | null;
  target: string | null;
  from_value: string | null;
  to_value: string | null;
  user: string | null;
  comment: string | null;
  details: Record<string, unknown> | null;
}

export interface ModelDetail {
  registered_model: RegisteredModel;
  versions: ModelVersion[];
  audit: AuditEntry[];
}

export interface Gate {
  metric: string;
  threshold: number;
  greater_is_better: boolean;
}

/** What a promotion moves: to a stage (archiving the others or not) or to an alias. */
export interface PromoteRequest {
  stage?: string;
  alias?: string;
  archive_existing_versions?: boolean;
  gate?: Gate | null;
  comment?: string;
  expected_stage?: string;
}

export interface PromoteResult {
  model_version: ModelVersion;
  validation: Record<string, unknown> | null;
}

export interface RunsQuery {
  experimentIds: string[];
  filter?: string;
  orderBy?: string[];
  maxResults?: number;
  pageToken?: string | null;
}

/**
 * A run as the views expect it: MLflow's JSON leaves out empty lists (`data: {}`) and sends
 * NaN and infinities as strings.
 */
export function normalizeRun(run: Run): Run {
  const data = (run.data ?? {}) as Partial<Run['data']>;
  const number = (v: unknown): number | null => {
    if (v === null || v === undefined) {
      return null;
    }
    const n = typeof v === 'number' ? v : Number(v);
    return Number.isNaN(n) && String(v) !== 'NaN' ? null : n;
  };
  return {
    ...run,
    data: {
      params: data.params ?? [],
      tags: data.tags ?? [],
      metrics: (data.metrics ?? []).map(m => ({ ...m, value: number(m.value) }))
    }
  };
}

/** A model version with the lists and fields MLflow's JSON leaves out when empty. */
export function normalizeVersion(v: ModelVersion): ModelVersion {
  return {
    ...v,
    version: String(v.version),
    current_stage: v.current_stage || 'None',
    run_id: v.run_id ?? null,
    source: v.source ?? '',
    description: v.description ?? null,
    aliases: v.aliases ?? [],
    tags: v.tags ?? [],
    creation_timestamp: v.creation_timestamp ?? null
  };
}

export function normalizeModel(m: RegisteredModel): RegisteredModel {
  return {
    ...m,
    description: m.description ?? null,
    latest_versions: (m.latest_versions ?? []).map(normalizeVersion),
    aliases: m.aliases ?? [],
    tags: m.tags ?? []
  };
}

// -- errors ----------------------------------------------------------------------------------

/** A request the server answered with an error (or that never reached it: status 0). */
export class ApiError extends Error {
  readonly status: number;
  readonly errorCode: string;
  /** How to fix it, when the server says (a store that cannot be opened). */
  readonly hint: string | null;

  constructor(status: number, errorCode: string, message: string, hint: string | null = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.errorCode = errorCode;
    this.hint = hint;
  }

  /** The data changed under the user (409): the view should refresh and show the message. */
  get isConflict(): boolean {
    return this.status === 409;
  }

  /** The user's input was refused (400), e.g. a filter string that does not parse. */
  get isBadRequest(): boolean {
    return this.status === 400;
  }

  get isNotFound(): boolean {
    return this.status === 404;
  }
}

async function errorFrom(response: Response): Promise<ApiError> {
  const text = await response.text().catch(() => '');
  try {
    const body = JSON.parse(text);
    if (body && typeof body.message === 'string') {
      const hint = typeof body.hint === 'string' ? body.hint : null;
      return new ApiError(response.status, String(body.error_code ?? 'ERROR'), body.message, hint);
    }
  } catch {
    // not JSON: a proxy's or tornado's HTML page
  }
  const reason = response.statusText || 'request failed';
  return new ApiError(response.status, 'HTTP_' + response.status, `${response.status} ${reason}`);
}

// -- the client ------------------------------------------------------------------------------

export const API_PATH = 'mltrack/api';

/** Encode each segment of a name or path (model names may hold spaces or slashes). */
function seg(value: string): string {
  return encodeURIComponent(value);
}

/** `?a=1&b=2` from the defined, non-empty entries of `params`; a list repeats its key. */
export function queryString(
  params: Record<string, string | number | boolean | string[] | null | undefined>
): string {
  const parts: string[] = [];
  for (const [key, value] of Object.entries(params)) {
    for (const item of Array.isArray(value) ? value : [value]) {
      if (item === undefined || item === null || item === '') {
        continue;
      }
      parts.push(`${encodeURIComponent(key)}=${encodeURIComponent(String(item))}`);
    }
  }
  return parts.length ? '?' + parts.join('&') : '';
}

export class MLTrackAPI {
  readonly settings: ServerConnection.ISettings;
  /**
   * The current notebook's path (relative to the Jupyter root), sent with every request: the
   * server then resolves the default store from that notebook's folder, as its kernel does.
   */
  notebook: string | null = null;

  constructor(settings?: ServerConnection.ISettings) {
    this.settings = settings ?? ServerConnection.makeSettings();
  }

  /** The raw response of `method path` (already checked: an error status throws ApiError). */
  async fetchRaw(path: string, init: RequestInit = {}): Promise<Response> {
    let url = URLExt.join(this.settings.baseUrl, API_PATH, path);
    if (this.notebook) {
      url += (url.includes('?') ? '&' : '?') + 'notebook=' + encodeURIComponent(this.notebook);
    }
    let response: Response;
    try {
      response = await ServerConnection.makeRequest(url, init, this.settings);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      throw new ApiError(0, 'NETWORK_ERROR', `Cannot reach the server: ${message}`);
    }
    if (!response.ok) {
      throw await errorFrom(response);
    }
    return response;
  }

  /** `method path` with an optional JSON body; the decoded JSON answer. */
  async request<T>(path: string, method = 'GET', body?: unknown): Promise<T> {
    const init: RequestInit = { method };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers = { 'Content-Type': 'application/json' };
    }
    const response = await this.fetchRaw(path, init);
    const text = await response.text();
    if (!text) {
      return {} as T;
    }
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new ApiError(response.status, 'BAD_RESPONSE', 'The server sent something that is not JSON.');
    }
  }

  getStore(): Promise<StoreInfo> {
    return this.request<StoreInfo>('store');
  }

  /** Switch the server's store to `trackingUri` (a URI or folder path); null: back to the default. */
  setStore(trackingUri: string | null): Promise<StoreInfo> {
    const uri = trackingUri?.trim() || null;
    return this.request<StoreInfo>('store', 'POST', { tracking_uri: uri });
  }

  async experiments(): Promise<Experiment[]> {
    const experiments = (await this.request<{ experiments: Experiment[] }>('experiments')).experiments ?? [];
    return experiments.map(e => ({ ...e, tags: e.tags ?? [] }));
  }

  async runs(query: RunsQuery): Promise<RunsPage> {
    const qs = queryString({
      experiment_ids: query.experimentIds.join(','),
      filter: query.filter?.trim(),
      order_by: query.orderBy ?? [], // one order_by argument per item
      max_results: query.maxResults,
      page_token: query.pageToken
    });
    const page = await this.request<RunsPage>('runs' + qs);
    return { runs: (page.runs ?? []).map(normalizeRun), next_page_token: page.next_page_token || null };
  }

  async run(runId: string): Promise<RunDetail> {
    const detail = await this.request<RunDetail>(`runs/${seg(runId)}`);
    return { ...detail, run: normalizeRun(detail.run), metric_keys: detail.metric_keys ?? [] };
  }

  metric(runId: string, key: string, maxPoints = 500, xAxis = 'step'): Promise<MetricSeries> {
    const qs = queryString({ max_points: maxPoints, x_axis: xAxis });
    return this.request<MetricSeries>(`runs/${seg(runId)}/metrics/${seg(key)}${qs}`);
  }

  async metricOfRuns(runIds: string[], key: string, maxPoints = 500): Promise<Record<string, Series>> {
    const qs = queryString({ run_ids: runIds.join(','), key, max_points: maxPoints });
    return (await this.request<{ series: Record<string, Series> }>('metrics' + qs)).series ?? {};
  }

  async artifacts(runId: string, path = ''): Promise<ArtifactFile[]> {
    const qs = queryString({ path });
    return (await this.request<{ files: ArtifactFile[] }>(`runs/${seg(runId)}/artifacts${qs}`)).files ?? [];
  }

  /** One artifact file's bytes and media type. */
  async artifact(runId: string, path: string): Promise<{ blob: Blob; contentType: string }> {
    const response = await this.fetchRaw(`runs/${seg(runId)}/artifact${queryString({ path })}`);
    const blob = await response.blob();
    return { blob, contentType: response.headers.get('Content-Type') ?? blob.type ?? '' };
  }

  async registeredModels(): Promise<RegisteredModel[]> {
    const answer = await this.request<{ registered_models: RegisteredModel[] }>('registered-models');
    return (answer.registered_models ?? []).map(normalizeModel);
  }

  async registeredModel(name: string): Promise<ModelDetail> {
    const detail = await this.request<ModelDetail>(`registered-models/${seg(name)}`);
    return {
      registered_model: normalizeModel(detail.registered_model),
      versions: (detail.versions ?? []).map(normalizeVersion),
      audit: detail.audit ?? []
    };
  }

  async createVersion(name: string, runId: string, artifactPath: string): Promise<{ model_version: ModelVersion }> {
    const answer = await this.request<{ model_version: ModelVersion }>(`registered-models/${seg(name)}/versions`, 'POST', {
      run_id: runId,
      artifact_path: artifactPath
    });
    return { model_version: normalizeVersion(answer.model_version) };
  }

  setStage(
    name: string,
    version: string,
    stage: string,
    archiveExisting: boolean,
    expectedStage?: string
  ): Promise<{ model_version: ModelVersion }> {
    return this.request(`registered-models/${seg(name)}/versions/${seg(version)}/stage`, 'POST', {
      stage,
      archive_existing_versions: archiveExisting,
      expected_stage: expectedStage
    });
  }

  setAlias(name: string, alias: string, version: string, expectedVersion?: string | null): Promise<unknown> {
    return this.request(`registered-models/${seg(name)}/aliases/${seg(alias)}`, 'POST', {
      version,
      expected_version: expectedVersion ?? null
    });
  }

  deleteAlias(name: string, alias: string, expectedVersion?: string | null): Promise<unknown> {
    return this.request(`registered-models/${seg(name)}/aliases/${seg(alias)}`, 'DELETE', {
      expected_version: expectedVersion ?? null
    });
  }

  async promote(name: string, version: string, body: PromoteRequest): Promise<PromoteResult> {
    const answer = await this.request<PromoteResult>(
      `registered-models/${seg(name)}/versions/${seg(version)}/promote`,
      'POST',
      { gate: null, ...body }
    );
    return { model_version: normalizeVersion(answer.model_version), validation: answer.validation ?? null };
  }

  rollback(name: string, target: { stage?: string; alias?: string }, comment?: string): Promise<unknown> {
    return this.request(`registered-models/${seg(name)}/rollback`, 'POST', { ...target, comment });
  }

  async rollbackCandidate(name: string, stage: string): Promise<ModelVersion | null> {
    const answer = await this.request<{ model_version?: ModelVersion | null }>(
      `registered-models/${seg(name)}/rollback-candidate${queryString({ stage })}`
    );
    return answer.model_version ? normalizeVersion(answer.model_version) : null;
  }
}

// -- logged models -------------------------------------------------------------------------

/** What model detection needs of the API: one artifact folder's listing. */
export type ListArtifacts = (path: string) => Promise<ArtifactFile[]>;

/**
 * The artifact folders of a run that hold a logged model (an `MLmodel` file), looking at the
 * top-level folders and their subfolders (`depth` levels), in listing order. A folder that
 * cannot be listed is skipped: detection only decides whether to offer registration.
 */
export async function findModelFolders(list: ListArtifacts, depth = 2, maxFolders = 50): Promise<string[]> {
  const found: string[] = [];
  let listed = 0;
  const visit = async (folders: string[], level: number): Promise<void> => {
    for (const folder of folders) {
      if (listed >= maxFolders) {
        return;
      }
      listed++;
      let files: ArtifactFile[];
      try {
        files = await list(folder);
      } catch {
        continue;
      }
      if (files.some(f => !f.is_dir && baseName(f.path) === 'MLmodel')) {
        found.push(folder); // a model's own subfolders are its files, not other models
      } else if (level < depth) {
        await visit(files.filter(f => f.is_dir).map(f => f.path), level + 1);
      }
    }
  };
  let top: ArtifactFile[];
  try {
    top = await list('');
  } catch {
    return [];
  }
  await visit(top.filter(f => f.is_dir).map(f => f.path), 1);
  return found;
}

function baseName(path: string): string {
  return path.replace(/\/+$/, '').split('/').pop() ?? path;
}

// -- paging ----------------------------------------------------------------------------------

/**
 * The runs the sidebar shows: one query (experiments, filter, order) and the pages loaded so
 * far. A new query bumps `generation`, so an answer to an older query is dropped, not shown.
 */
export class RunPager {
  runs: Run[] = [];
  nextToken: string | null = null;
  loading = false;
  error: ApiError | null = null;
  private _query: RunsQuery = { experimentIds: [] };
  private _generation = 0;

  constructor(
    private readonly _api: Pick<MLTrackAPI, 'runs'>,
    readonly pageSize = 50
  ) {}

  get query(): RunsQuery {
    return this._query;
  }

  get hasMore(): boolean {
    return this.nextToken !== null;
  }

  /** Start over with `query` (changed fields only) and load its first page. */
  async reset(query: Partial<RunsQuery>): Promise<void> {
    const next = { ...this._query, ...query, pageToken: null };
    const generation = ++this._generation;
    this.loading = true;
    try {
      const page = await this._api.runs({ ...next, maxResults: this.pageSize });
      if (generation !== this._generation) {
        return;
      }
      this._query = next;
      this.runs = page.runs;
      this.nextToken = page.next_page_token;
      this.error = null;
    } catch (err) {
      if (generation !== this._generation) {
        return;
      }
      // a refused filter keeps the rows of the last good query on screen
      this.error = toApiError(err);
      throw this.error;
    } finally {
      if (generation === this._generation) {
        this.loading = false;
      }
    }
  }

  /** Append the next page (no-op when there is none or a load is running). */
  async more(): Promise<void> {
    if (!this.nextToken || this.loading) {
      return;
    }
    const generation = this._generation;
    this.loading = true;
    try {
      const page = await this._api.runs({ ...this._query, pageToken: this.nextToken, maxResults: this.pageSize });
      if (generation !== this._generation) {
        return;
      }
      const seen = new Set(this.runs.map(r => r.info.run_id));
      this.runs = this.runs.concat(page.runs.filter(r => !seen.has(r.info.run_id)));
      this.nextToken = page.next_page_token;
    } finally {
      if (generation === this._generation) {
        this.loading = false;
      }
    }
  }

  /**
   * Re-read what is loaded (as many rows as shown, at least a page); true when anything
   * changed: a new run, a finished one, new metric values.
   */
  async refresh(): Promise<boolean> {
    if (this.loading) {
      return false;
    }
    const generation = this._generation;
    const count = Math.max(this.pageSize, Math.min(this.runs.length, 1000));
    const page = await this._api.runs({ ...this._query, pageToken: null, maxResults: count });
    if (generation !== this._generation) {
      return false;
    }
    const changed = !sameRuns(this.runs, page.runs);
    if (changed) {
      this.runs = page.runs;
      this.nextToken = page.next_page_token;
    }
    return changed;
  }
}

export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) {
    return err;
  }
  return new ApiError(0, 'CLIENT_ERROR', err instanceof Error ? err.message : String(err));
}

/** What a row shows of a run, as one string: equal signatures render the same row. */
export function runSignature(run: Run): string {
  const metrics = run.data.metrics.map(m => `${m.key}=${m.value}@${m.step}`).join(',');
  const params = run.data.params.map(p => `${p.key}=${p.value}`).join(',');
  const tags = run.data.tags.map(t => `${t.key}=${t.value}`).join(',');
  const i = run.info;
  return [i.run_id, i.run_name, i.status, i.end_time, metrics, params, tags].join('|');
}

export function sameRuns(a: Run[], b: Run[]): boolean {
  return a.length === b.length && a.every((run, i) => runSignature(run) === runSignature(b[i]));
}

// -- polling ---------------------------------------------------------------------------------

/**
 * Calls `tick` every `interval` ms while started, never two at once; a failing tick is
 * reported to `onError` and the polling goes on (at most `maxInterval` apart, doubling).
 */
export class Poller {
  private _timer: ReturnType<typeof setTimeout> | null = null;
  private _running = false;
  private _delay: number;
  private _stopped = true;

  constructor(
    private readonly _tick: () => Promise<unknown>,
    readonly interval = 3000,
    readonly maxInterval = 30000,
    private readonly _onError: (err: unknown) => void = () => undefined
  ) {
    this._delay = interval;
  }

  get isRunning(): boolean {
    return !this._stopped;
  }

  start(): void {
    if (!this._stopped) {
      return;
    }
    this._stopped = false;
    this._delay = this.interval;
    this._schedule();
  }

  stop(): void {
    this._stopped = true;
    if (this._timer !== null) {
      clearTimeout(this._timer);
      this._timer = null;
    }
  }

  /** Tick now (e.g. a cell finished) and restart the interval from here. */
  async now(): Promise<void> {
    if (this._timer !== null) {
      clearTimeout(this._timer);
      this._timer = null;
    }
    await this._run();
  }

  private _schedule(): void {
    if (this._stopped || this._timer !== null) {
      return;
    }
    this._timer = setTimeout(() => {
      this._timer = null;
      void this._run();
    }, this._delay);
  }

  private async _run(): Promise<void> {
    if (this._running) {
      return;
    }
    this._running = true;
    try {
      await this._tick();
      this._delay = this.interval;
    } catch (err) {
      this._delay = Math.min(this._delay * 2, this.maxInterval);
      this._onError(err);
    } finally {
      this._running = false;
      this._schedule();
    }
  }
}
