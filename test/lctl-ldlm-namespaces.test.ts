/**
 * ldlm.namespaces.* through lctl: a client's cached locks are counted, re-reading a file
 * it already read costs no lock RPC (the stats prove it), lru_size=clear gives every
 * unused lock back to the servers, and lru_max_age takes Lustre's duration forms.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestCluster } from './helpers/cluster.js';
import { lctl } from './helpers/lctl.js';
import type { StriaClient } from '../src/client/client.js';
import { startClientControl, type ClientControl } from '../src/ctl/client-params.js';
import { LliteStats } from '../src/ctl/llite-stats.js';

const root = { uid: 0, gid: 0 };
let cluster: TestCluster;
let client: StriaClient;
let control: ClientControl;

before(async () => {
  cluster = await TestCluster.start({ osts: 2 });
  client = await cluster.mount();
  control = await startClientControl(client, new LliteStats(), { runDir: cluster.runDir });
});

after(async () => {
  await control?.close();
  await client?.unmount();
  await cluster?.stop();
});

async function get(pattern: string): Promise<number[]> {
  const r = await lctl(cluster.runDir, 'get_param', '-n', pattern);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim().split('\n').filter((l) => l !== '').map(Number);
}

async function enqueues(): Promise<number> {
  const r = await lctl(cluster.runDir, 'get_param', '-n', 'ldlm.namespaces.*-osc-*.stats', 'ldlm.namespaces.*-mdc-*.stats');
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.split('\n').filter((l) => l.startsWith('enqueues ')).reduce((sum, l) => sum + Number(l.split(/\s+/)[1]), 0);
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

test('re-reading a cached file costs no lock RPC; lock_count shows the cached locks', async () => {
  const f = await client.create(client.root, 'cached', { mode: 0o644, cred: root, layout: { stripeCount: 2, stripeSize: 65536 } });
  const data = Buffer.alloc(256 * 1024, 9);
  await client.write(f, 0, data);
  assert.ok((await client.read(f, 0, data.length)).equals(data));
  await client.getattr(f.fid);
  const before = await enqueues();
  for (let i = 0; i < 5; i++) {
    assert.ok((await client.read(f, 0, data.length)).equals(data));
    await client.getattr(f.fid);
  }
  assert.equal(await enqueues(), before, 'five re-reads and stats of a cached file sent no LDLM_ENQUEUE');
  await client.close(f);
  assert.ok(sum(await get('ldlm.namespaces.*-osc-*.lock_count')) >= 2, 'a lock per object is cached on the client');
  assert.ok(sum(await get('ldlm.namespaces.filter-*.lock_count')) >= 2, 'and granted on the OSTs');
});

test('lru_size=clear gives every unused lock back; lru_size and lru_max_age are settable', async () => {
  const set = await lctl(cluster.runDir, 'set_param', 'ldlm.namespaces.*.lru_size=clear');
  assert.equal(set.code, 0, set.stderr);
  let serverLocks = -1;
  for (let i = 0; i < 200; i++) {
    serverLocks = sum(await get('ldlm.namespaces.filter-*.lock_count'));
    if (serverLocks === 0) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(serverLocks, 0, 'the OSTs hold no lock of this client any more');
  assert.equal(sum(await get('ldlm.namespaces.*-osc-*.lock_count')), 0);

  assert.equal((await lctl(cluster.runDir, 'set_param', 'ldlm.namespaces.*-osc-*.lru_size=50')).code, 0);
  assert.deepEqual(await get('ldlm.namespaces.*-osc-*.lru_size'), [50, 50]);
  assert.equal((await lctl(cluster.runDir, 'set_param', 'ldlm.namespaces.*.lru_max_age=300s')).code, 0);
  assert.ok((await get('ldlm.namespaces.*.lru_max_age')).every((v) => v === 300_000));
  const bad = await lctl(cluster.runDir, 'set_param', 'ldlm.namespaces.*.lru_max_age=soon');
  assert.notEqual(bad.code, 0, 'a duration that is not one is refused');
  assert.match(bad.stderr, /lru_max_age/);
});
