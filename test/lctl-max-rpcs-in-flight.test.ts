/**
 * set_param osc.*.max_rpcs_in_flight changes how many RPCs a client keeps in
 * flight to an OST (seen in rpc_stats and req_active), and refuses 0, 9999 and
 * "abc" without changing anything; max_pages_per_rpc changes the RPC size.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestCluster } from './helpers/cluster.js';
import { counter, lctl, parseParams } from './helpers/lctl.js';
import type { OpenFile, StriaClient } from '../src/client/client.js';
import { startClientControl, type ClientControl } from '../src/ctl/client-params.js';
import { LliteStats } from '../src/ctl/llite-stats.js';

const KiB = 1024;
let cluster: TestCluster;
let client: StriaClient;
let control: ClientControl;
let file: OpenFile;

before(async () => {
  cluster = await TestCluster.start({ osts: 1 });
  client = await cluster.mount();
  control = await startClientControl(client, new LliteStats(), { runDir: cluster.runDir });
  file = await client.create(client.root, 'f', { mode: 0o644, cred: { uid: 0, gid: 0 }, layout: { stripeCount: 1 } });
});

after(async () => {
  await control?.close();
  await client?.unmount();
  await cluster?.stop();
});

/** The "rpcs in flight" write column of rpc_stats: bucket -> rpcs */
function writesInFlight(rpcStats: string): Map<number, number> {
  const table = rpcStats.split('rpcs in flight        rpcs')[1]!.split('\n\n')[0]!;
  const out = new Map<number, number>();
  for (const m of table.matchAll(/^(\d+):\t\t +\d+ +\d+ +\d+   \| +(\d+) +\d+ +\d+$/gm)) if (Number(m[2]) > 0) out.set(Number(m[1]), Number(m[2]));
  return out;
}

async function writeAndMeasure(): Promise<{ inFlight: Map<number, number>; active: ReturnType<typeof counter>; pagesPerRpc: string }> {
  const clear = await lctl(cluster.runDir, 'set_param', '-n', 'osc.*.rpc_stats=0', 'osc.*.stats=0');
  assert.equal(clear.code, 0, clear.stderr);
  await client.write(file, 0, Buffer.alloc(64 * KiB, 1));
  // the write-back cache holds the data until a flush: fsync sends it, in RPCs of max_pages_per_rpc
  await client.fsync(file);
  const r = await lctl(cluster.runDir, 'get_param', 'osc.*.rpc_stats', 'osc.*.stats');
  assert.equal(r.code, 0, r.stderr);
  const p = parseParams(r.stdout);
  const rpcStats = [...p].find(([k]) => k.endsWith('.rpc_stats'))![1];
  const stats = [...p].find(([k]) => k.endsWith('.stats') && !k.endsWith('rpc_stats'))![1];
  return { inFlight: writesInFlight(rpcStats), active: counter(stats, 'req_active'), pagesPerRpc: rpcStats.split('pages per rpc')[1]!.split('\n\n')[0]! };
}

test('RPCs in flight follow max_rpcs_in_flight; bad values are refused and change nothing', async () => {
  let r = await lctl(cluster.runDir, 'get_param', '-n', 'osc.*.max_rpcs_in_flight', 'osc.*.max_pages_per_rpc');
  assert.equal(r.stdout, '8\n1024\n', 'defaults: 8 RPCs of 4 MiB');

  // 4 KiB RPCs: a 64 KiB write is 16 RPCs, all issued at once
  r = await lctl(cluster.runDir, 'set_param', 'osc.*.max_pages_per_rpc=1', 'osc.*.max_rpcs_in_flight=2');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^osc\.\S+-osc-ffff[0-9a-f]{12}\.max_pages_per_rpc=1\nosc\.\S+\.max_rpcs_in_flight=2\n$/);
  let m = await writeAndMeasure();
  assert.match(m.pagesPerRpc, /\n1:\t\t +0 +0 +0   \| +16 100 100$/m, 'sixteen one-page RPCs');
  assert.deepEqual([...m.inFlight.keys()].sort((a, b) => a - b), [1, 2], 'never more than 2 in flight');
  assert.equal([...m.inFlight.values()].reduce((a, b) => a + b, 0), 16);
  assert.equal(m.active?.max, 2, 'req_active peaks at 2');

  r = await lctl(cluster.runDir, 'set_param', 'osc.*.max_rpcs_in_flight=8');
  assert.equal(r.code, 0, r.stderr);
  m = await writeAndMeasure();
  assert.equal(Math.max(...m.inFlight.keys()), 8, 'now 8 in flight at once');
  assert.equal(m.active?.max, 8);

  for (const [value, code] of [['0', 34], ['9999', 34], ['abc', 22]] as const) {
    r = await lctl(cluster.runDir, 'set_param', `osc.*.max_rpcs_in_flight=${value}`);
    assert.equal(r.code, code, `${value}: ${r.stderr}`);
    assert.match(r.stderr, code === 34 ? /Numerical result out of range/ : /Invalid argument/);
  }
  r = await lctl(cluster.runDir, 'get_param', '-n', 'osc.*.max_rpcs_in_flight');
  assert.equal(r.stdout, '8\n', 'refused values left 8');

  // a larger RPC size takes effect at once: the same write is now one RPC
  r = await lctl(cluster.runDir, 'set_param', 'osc.*.max_pages_per_rpc=4M');
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await lctl(cluster.runDir, 'get_param', '-n', 'osc.*.max_pages_per_rpc')).stdout, '1024\n');
  m = await writeAndMeasure();
  assert.match(m.pagesPerRpc, /\n16:\t\t +0 +0 +0   \| +1 100 100$/m, 'one sixteen-page RPC');
  r = await lctl(cluster.runDir, 'set_param', 'osc.*.max_pages_per_rpc=0');
  assert.equal(r.code, 34);
  r = await lctl(cluster.runDir, 'set_param', 'osc.*.max_pages_per_rpc=128M');
  assert.equal(r.code, 34, 'beyond the 64 MiB protocol maximum');
});

test('mdc.*.max_rpcs_in_flight is the MDC import\'s credits', async () => {
  const r = await lctl(cluster.runDir, 'set_param', 'mdc.*.max_rpcs_in_flight=3');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(client.mdc.imp.credits, 3);
  assert.equal((await lctl(cluster.runDir, 'get_param', '-n', 'mdc.*.max_rpcs_in_flight')).stdout, '3\n');
});
