import { ServerConnection } from '@jupyterlab/services';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import {
  ApiError,
  ArtifactFile,
  MLTrackAPI,
  Poller,
  Run,
  RunPager,
  findModelFolders,
  queryString,
  runSignature,
  sameRuns
} from '../src/api';

interface Sent {
  url: URL;
  method: string;
  body: unknown;
  headers: Headers;
}

/** An API whose fetch answers from `reply` and records what was sent. */
function fakeApi(reply: (sent: Sent) => Response | Promise<Response>): { api: MLTrackAPI; sent: Sent[] } {
  const sent: Sent[] = [];
  const fetch = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const request = new Request(input, init);
    const text = await request.text();
    // ServerConnection appends a cache-busting `&<timestamp>` to GETs: not part of the contract
    const url = new URL(request.url.replace(/[?&]\d{10,}$/, ''));
    const s = { url, method: request.method, body: text ? JSON.parse(text) : undefined, headers: request.headers };
    sent.push(s);
    return reply(s);
  };
  const settings = ServerConnection.makeSettings({
    baseUrl: 'http://127.0.0.1:8888/lab-base/',
    wsUrl: 'ws://127.0.0.1:8888/lab-base/',
    token: 'secret',
    appendToken: false,
    fetch: fetch as typeof globalThis.fetch
  });
  return { api: new MLTrackAPI(settings), sent };
}

const json = (body: unknown, status = 200): Response =>
  new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });

export function makeRun(id: string, extra: Partial<Run['info']> = {}, metrics: [string, number][] = []): Run {
  return {
    info: {
      run_id: id,
      run_name: 'run-' + id,
      experiment_id: '1',
      status: 'FINISHED',
      start_time: 1000,
      end_time: 2000,
      artifact_uri: 'file:///x',
      lifecycle_stage: 'active',
      ...extra
    },
    data: { params: [], metrics: metrics.map(([key, value]) => ({ key, value, step: 0, timestamp: 0 })), tags: [] }
  };
}

describe('MLTrackAPI requests', () => {
  it('builds the runs query under <base_url>/mltrack/api and sends the token', async () => {
    const { api, sent } = fakeApi(() => json({ runs: [makeRun('a')], next_page_token: 'tok2' }));
    const page = await api.runs({
      experimentIds: ['1', '2'],
      filter: "  metrics.acc > 0.9 and params.lr = '0.1' ",
      orderBy: ['metrics.`val loss` DESC', 'attributes.start_time ASC'],
      maxResults: 50,
      pageToken: 'tok1'
    });
    expect(page.runs.map(r => r.info.run_id)).toEqual(['a']);
    expect(page.next_page_token).toBe('tok2');
    const { url, method, headers } = sent[0];
    expect(method).toBe('GET');
    expect(url.pathname).toBe('/lab-base/mltrack/api/runs');
    expect(url.searchParams.get('experiment_ids')).toBe('1,2');
    expect(url.searchParams.get('filter')).toBe("metrics.acc > 0.9 and params.lr = '0.1'");
    expect(url.searchParams.getAll('order_by')).toEqual(['metrics.`val loss` DESC', 'attributes.start_time ASC']);
    expect(url.searchParams.get('max_results')).toBe('50');
    expect(url.searchParams.get('page_token')).toBe('tok1');
    expect(headers.get('Authorization')).toBe('token secret');
  });

  it('leaves out empty query parts and turns an empty token into null', async () => {
    const { api, sent } = fakeApi(() => json({ runs: [], next_page_token: '' }));
    const page = await api.runs({ experimentIds: ['3'], filter: '   ', pageToken: null });
    expect([...sent[0].url.searchParams.keys()]).toEqual(['experiment_ids']);
    expect(page.next_page_token).toBeNull();
  });

  it('encodes model names, versions and aliases as path segments', async () => {
    const { api, sent } = fakeApi(() => json({ model_version: { version: '3' }, validation: null }));
    await api.promote('Churn model/v2', '3', { stage: 'Production', archive_existing_versions: true, expected_stage: 'None' });
    expect(sent[0].url.pathname).toBe('/lab-base/mltrack/api/registered-models/Churn%20model%2Fv2/versions/3/promote');
    expect(sent[0].method).toBe('POST');
    expect(sent[0].headers.get('Content-Type')).toBe('application/json');
    expect(sent[0].body).toEqual({ gate: null, stage: 'Production', archive_existing_versions: true, expected_stage: 'None' });
  });

  it('sends the stage, alias and rollback bodies of the contract', async () => {
    const { api, sent } = fakeApi(() => json({}));
    await api.setStage('m', '2', 'Staging', false, 'None');
    await api.setAlias('m', 'champion', '2', '1');
    await api.deleteAlias('m', 'champion', '2');
    await api.rollback('m', { stage: 'Production' }, 'bad metrics');
    await api.rollbackCandidate('m', 'Production');
    expect(sent.map(s => `${s.method} ${s.url.pathname.replace('/lab-base/mltrack/api/', '')}${s.url.search}`)).toEqual([
      'POST registered-models/m/versions/2/stage',
      'POST registered-models/m/aliases/champion',
      'DELETE registered-models/m/aliases/champion',
      'POST registered-models/m/rollback',
      'GET registered-models/m/rollback-candidate?stage=Production'
    ]);
    expect(sent[0].body).toEqual({ stage: 'Staging', archive_existing_versions: false, expected_stage: 'None' });
    expect(sent[1].body).toEqual({ version: '2', expected_version: '1' });
    expect(sent[2].body).toEqual({ expected_version: '2' });
    expect(sent[3].body).toEqual({ stage: 'Production', comment: 'bad metrics' });
  });

  it('asks for metric series and artifacts', async () => {
    const { api, sent } = fakeApi(s =>
      s.url.pathname.endsWith('/artifact')
        ? new Response(new Uint8Array([137, 80]), { headers: { 'Content-Type': 'image/png' } })
        : json({ key: 'loss', x: [0, 1], values: [1, 0.5], downsampled: false, series: { a: { x: [0], values: [1], downsampled: true } }, files: [] })
    );
    const series = await api.metric('a', 'val/loss', 200);
    expect(series.values).toEqual([1, 0.5]);
    expect(sent[0].url.pathname).toBe('/lab-base/mltrack/api/runs/a/metrics/val%2Floss');
    expect(sent[0].url.search).toBe('?max_points=200&x_axis=step');
    const many = await api.metricOfRuns(['a', 'b'], 'loss');
    expect(many.a.downsampled).toBe(true);
    expect(sent[1].url.search).toBe('?run_ids=a%2Cb&key=loss&max_points=500');
    await api.artifacts('a', 'plots');
    expect(sent[2].url.pathname + sent[2].url.search).toBe('/lab-base/mltrack/api/runs/a/artifacts?path=plots');
    const file = await api.artifact('a', 'plots/roc.png');
    expect(file.contentType).toBe('image/png');
    expect(file.blob.size).toBe(2);
  });

  it('sends the current notebook so the server resolves its store', async () => {
    const { api, sent } = fakeApi(() => json({ experiments: [], run: makeRun('r1'), cell_source: null, metric_keys: [] }));
    api.notebook = 'work/a b.ipynb';
    await api.experiments();
    await api.run('r1');
    expect(sent[0].url.searchParams.get('notebook')).toBe('work/a b.ipynb');
    expect(sent[1].url.search).toBe('?notebook=work%2Fa%20b.ipynb');
  });
});

describe('ApiError', () => {
  it('carries the status, error_code and message of an error answer', async () => {
    const { api } = fakeApi(() => json({ error_code: 'INVALID_PARAMETER_VALUE', message: "Bad filter: unexpected 'foo'" }, 400));
    const err = await api.runs({ experimentIds: ['1'], filter: 'foo' }).catch(e => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err.status).toBe(400);
    expect(err.errorCode).toBe('INVALID_PARAMETER_VALUE');
    expect(err.message).toBe("Bad filter: unexpected 'foo'");
    expect(err.isBadRequest).toBe(true);
    expect(err.isConflict).toBe(false);
  });

  it('marks a 409 as a conflict', async () => {
    const { api } = fakeApi(() => json({ error_code: 'RESOURCE_CONFLICT', message: 'v2 is in Staging now, not None.' }, 409));
    const err: ApiError = await api.promote('m', '2', { stage: 'Production', expected_stage: 'None' }).catch(e => e);
    expect(err.isConflict).toBe(true);
    expect(err.message).toContain('Staging');
  });

  it('makes an error of a non-JSON answer and of an unreachable server', async () => {
    const { api } = fakeApi(() => new Response('<html>Bad gateway</html>', { status: 502, statusText: 'Bad Gateway' }));
    const err: ApiError = await api.experiments().catch(e => e);
    expect([err.status, err.errorCode, err.message]).toEqual([502, 'HTTP_502', '502 Bad Gateway']);
    const down = fakeApi(() => {
      throw new TypeError('fetch failed');
    });
    const net: ApiError = await down.api.experiments().catch(e => e);
    expect(net.status).toBe(0);
    expect(net.errorCode).toBe('NETWORK_ERROR');
    expect(net.message).toContain('fetch failed');
  });

  it('refuses a success answer that is not JSON', async () => {
    const { api } = fakeApi(() => new Response('not json', { status: 200 }));
    const err: ApiError = await api.experiments().catch(e => e);
    expect(err.errorCode).toBe('BAD_RESPONSE');
  });
});

describe('queryString', () => {
  it('encodes and skips empty values', () => {
    expect(queryString({ a: 'x y', b: '', c: null, d: undefined, e: 0, f: false })).toBe('?a=x%20y&e=0&f=false');
    expect(queryString({ o: ['x DESC', '', 'y'], p: [] })).toBe('?o=x%20DESC&o=y');
    expect(queryString({})).toBe('');
  });
});

/** A fake `runs` endpoint over `all` (paged by index tokens), recording each query. */
function fakeRuns(all: Run[]) {
  const calls: { pageToken?: string | null; maxResults?: number; filter?: string }[] = [];
  return {
    calls,
    all,
    runs: vi.fn(async (q: { pageToken?: string | null; maxResults?: number; filter?: string }) => {
      calls.push(q);
      if (q.filter === 'bad') {
        throw new ApiError(400, 'INVALID_PARAMETER_VALUE', 'bad filter');
      }
      const start = q.pageToken ? Number(q.pageToken) : 0;
      const end = start + (q.maxResults ?? 50);
      return { runs: all.slice(start, end), next_page_token: end < all.length ? String(end) : null };
    })
  };
}

describe('RunPager', () => {
  const many = Array.from({ length: 120 }, (_, i) => makeRun('r' + i));

  it('loads pages and knows when there are more', async () => {
    const api = fakeRuns(many);
    const pager = new RunPager(api, 50);
    await pager.reset({ experimentIds: ['1'] });
    expect(pager.runs).toHaveLength(50);
    expect(pager.hasMore).toBe(true);
    await pager.more();
    await pager.more();
    expect(pager.runs).toHaveLength(120);
    expect(pager.hasMore).toBe(false);
    await pager.more(); // nothing left: no request
    expect(api.calls).toHaveLength(3);
    expect(api.calls[1].pageToken).toBe('50');
  });

  it('keeps the rows of the last good query when a filter is refused', async () => {
    const pager = new RunPager(fakeRuns(many), 50);
    await pager.reset({ experimentIds: ['1'], filter: '' });
    await expect(pager.reset({ filter: 'bad' })).rejects.toThrow('bad filter');
    expect(pager.error?.isBadRequest).toBe(true);
    expect(pager.runs).toHaveLength(50);
    expect(pager.query.filter).toBe('');
    await pager.reset({ filter: 'metrics.a > 0' });
    expect(pager.error).toBeNull();
    expect(pager.query.filter).toBe('metrics.a > 0');
  });

  it('drops the answer to a query that a newer one replaced', async () => {
    let release: () => void = () => undefined;
    const slow = new Promise<void>(resolve => (release = resolve));
    const api = {
      runs: async (q: { filter?: string }) => {
        if (q.filter === 'old') {
          await slow;
          return { runs: [makeRun('old')], next_page_token: null };
        }
        return { runs: [makeRun('new')], next_page_token: null };
      }
    };
    const pager = new RunPager(api, 50);
    const first = pager.reset({ experimentIds: ['1'], filter: 'old' });
    await pager.reset({ filter: 'new' });
    release();
    await first;
    expect(pager.runs.map(r => r.info.run_id)).toEqual(['new']);
    expect(pager.query.filter).toBe('new');
    expect(pager.loading).toBe(false);
  });

  it('refresh reports a new run or a changed one, and re-reads as many rows as shown', async () => {
    const api = fakeRuns(many.slice(0, 60));
    const pager = new RunPager(api, 50);
    await pager.reset({ experimentIds: ['1'] });
    await pager.more();
    expect(await pager.refresh()).toBe(false);
    expect(api.calls.at(-1)?.maxResults).toBe(60);
    api.all.unshift(makeRun('fresh', { status: 'RUNNING', end_time: null }));
    expect(await pager.refresh()).toBe(true);
    expect(pager.runs[0].info.run_id).toBe('fresh');
    api.all[0] = makeRun('fresh', { status: 'RUNNING', end_time: null }, [['loss', 0.5]]);
    expect(await pager.refresh()).toBe(true);
    api.all[0] = makeRun('fresh', { status: 'FINISHED', end_time: 5000 }, [['loss', 0.5]]);
    expect(await pager.refresh()).toBe(true);
    expect(await pager.refresh()).toBe(false);
  });
});

describe('runSignature / sameRuns', () => {
  it('changes with status, end time, metrics, params and tags', () => {
    const a = makeRun('a');
    expect(runSignature(a)).toBe(runSignature(makeRun('a')));
    expect(runSignature(a)).not.toBe(runSignature(makeRun('a', { status: 'FAILED' })));
    const b = makeRun('a');
    b.data.tags.push({ key: 'note', value: 'x' });
    expect(sameRuns([a], [b])).toBe(false);
    expect(sameRuns([a], [a, a])).toBe(false);
  });
});

describe('Poller', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('ticks every interval while started, and not after stop', async () => {
    const tick = vi.fn(async () => undefined);
    const poller = new Poller(tick, 1000);
    poller.start();
    await vi.advanceTimersByTimeAsync(3500);
    expect(tick).toHaveBeenCalledTimes(3);
    poller.stop();
    await vi.advanceTimersByTimeAsync(5000);
    expect(tick).toHaveBeenCalledTimes(3);
    expect(poller.isRunning).toBe(false);
  });

  it('backs off after failures (up to the maximum) and reports them', async () => {
    const errors: unknown[] = [];
    const tick = vi.fn(async () => {
      throw new Error('down');
    });
    const poller = new Poller(tick, 1000, 4000, e => errors.push(e));
    poller.start();
    await vi.advanceTimersByTimeAsync(1000); // 1st
    await vi.advanceTimersByTimeAsync(2000); // 2nd after 2 s
    await vi.advanceTimersByTimeAsync(4000); // 3rd after 4 s
    await vi.advanceTimersByTimeAsync(4000); // 4th: capped at 4 s
    expect(tick).toHaveBeenCalledTimes(4);
    expect(errors).toHaveLength(4);
    poller.stop();
  });

  it('now() ticks at once and never runs two ticks together', async () => {
    let running = 0;
    let overlap = false;
    const tick = vi.fn(async () => {
      running++;
      overlap ||= running > 1;
      await new Promise(r => setTimeout(r, 500));
      running--;
    });
    const poller = new Poller(tick, 1000);
    poller.start();
    const a = poller.now();
    const b = poller.now();
    await vi.advanceTimersByTimeAsync(600);
    await Promise.all([a, b]);
    expect(tick).toHaveBeenCalledTimes(1);
    expect(overlap).toBe(false);
    poller.stop();
  });
});

describe('normalizeRun', () => {
  it('fills the lists MLflow JSON leaves out and reads NaN sent as a string', async () => {
    const { api } = fakeApi(() =>
      json({
        runs: [{ info: makeRun('a').info, data: { metrics: [{ key: 'loss', value: 'NaN' }, { key: 'acc', value: 0.5 }, { key: 'big', value: 'Infinity' }] } }],
        next_page_token: null
      })
    );
    const [run] = (await api.runs({ experimentIds: ['1'] })).runs;
    expect(run.data.params).toEqual([]);
    expect(run.data.tags).toEqual([]);
    expect(run.data.metrics.map(m => m.value)).toEqual([NaN, 0.5, Infinity]);
    expect(run.data.metrics[0].step).toBeUndefined();
  });
});

describe('registry answers', () => {
  it('fill what MLflow JSON leaves out of models and versions', async () => {
    const { api } = fakeApi(s =>
      s.url.pathname.endsWith('/registered-models')
        ? json({ registered_models: [{ name: 'm' }] })
        : json({ registered_model: { name: 'm', aliases: [{ alias: 'champion', version: '1' }] }, versions: [{ name: 'm', version: 1, current_stage: 'Production', source: 's' }] })
    );
    const [model] = await api.registeredModels();
    expect(model).toEqual({ name: 'm', description: null, latest_versions: [], aliases: [], tags: [] });
    const detail = await api.registeredModel('m');
    expect(detail.audit).toEqual([]);
    expect(detail.versions[0]).toMatchObject({ version: '1', aliases: [], tags: [], description: null, run_id: null });
    expect(detail.registered_model.aliases).toEqual([{ alias: 'champion', version: '1' }]);
  });
});

describe('switching the store', () => {
  it('posts the URI, or null for the default', async () => {
    const { api, sent } = fakeApi(() => json({ tracking_uri: '/x', ok: true, error: null, hint: null }));
    await api.setStore('  /data/other  ');
    await api.setStore(null);
    await api.setStore('   ');
    expect(sent.map(s => [s.method, s.url.pathname, s.body])).toEqual([
      ['POST', '/lab-base/mltrack/api/store', { tracking_uri: '/data/other' }],
      ['POST', '/lab-base/mltrack/api/store', { tracking_uri: null }],
      ['POST', '/lab-base/mltrack/api/store', { tracking_uri: null }]
    ]);
  });

  it("keeps the server's message and hint of a refused store", async () => {
    const { api } = fakeApi(() =>
      json({ error_code: 'INVALID_PARAMETER_VALUE', message: 'Unsupported tracking URI', hint: 'Pick another store' }, 400)
    );
    const err = await api.setStore('nosuch://x').catch(e => e);
    expect(err).toBeInstanceOf(ApiError);
    expect([err.isBadRequest, err.message, err.hint]).toEqual([true, 'Unsupported tracking URI', 'Pick another store']);
  });

  it('has no hint when the server gives none', async () => {
    const { api } = fakeApi(() => json({ error_code: 'X', message: 'nope' }, 404));
    expect((await api.experiments().catch(e => e)).hint).toBeNull();
  });
});

describe('findModelFolders', () => {
  const file = (path: string): ArtifactFile => ({ path, is_dir: false, file_size: 1 });
  const dir = (path: string): ArtifactFile => ({ path, is_dir: true, file_size: null });

  function lister(tree: Record<string, ArtifactFile[]>): { list: (p: string) => Promise<ArtifactFile[]>; asked: string[] } {
    const asked: string[] = [];
    const list = async (path: string): Promise<ArtifactFile[]> => {
      asked.push(path);
      if (!(path in tree)) {
        throw new ApiError(404, 'RESOURCE_DOES_NOT_EXIST', path);
      }
      return tree[path];
    };
    return { list, asked };
  }

  it('finds top-level and second-level folders holding an MLmodel file', async () => {
    const { list, asked } = lister({
      '': [file('config.json'), dir('model'), dir('plots'), dir('models')],
      model: [file('model/MLmodel'), file('model/model.pkl'), dir('model/code')],
      plots: [file('plots/curve.png')],
      models: [dir('models/a'), dir('models/b')],
      'models/a': [file('models/a/MLmodel')],
      'models/b': [dir('models/b/deeper')]
    });
    expect(await findModelFolders(list)).toEqual(['model', 'models/a']);
    // a model's own folders and anything below two levels are not listed
    expect(asked).not.toContain('model/code');
    expect(asked).not.toContain('models/b/deeper');
  });

  it('ignores an MLmodel at the root, a folder named MLmodel, and folders that fail', async () => {
    const { list } = lister({
      '': [file('MLmodel'), dir('MLmodel'), dir('broken'), dir('ok')],
      MLmodel: [file('MLmodel/x')],
      ok: [file('ok/MLmodel')]
    });
    expect(await findModelFolders(list)).toEqual(['ok']);
  });

  it('gives nothing when the run has no artifacts or they cannot be listed', async () => {
    expect(await findModelFolders(lister({ '': [] }).list)).toEqual([]);
    expect(await findModelFolders(lister({}).list)).toEqual([]);
  });

  it('stops after maxFolders listings', async () => {
    const tree: Record<string, ArtifactFile[]> = { '': [] };
    for (let i = 0; i < 10; i++) {
      tree[''].push(dir(`d${i}`));
      tree[`d${i}`] = [file(`d${i}/MLmodel`)];
    }
    expect(await findModelFolders(lister(tree).list, 2, 3)).toEqual(['d0', 'd1', 'd2']);
  });
});
