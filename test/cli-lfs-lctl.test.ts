/** lfs and lctl against a live cluster: pools steer allocation, layouts print as Lustre prints them. */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { TestCluster, STRIA_BIN } from './helpers/cluster.js';
import { formatNid } from '../src/lnet/nid.js';

const run = promisify(execFile);
const bin = (tool: string) => join(STRIA_BIN, '..', `${tool}.js`);
let cluster: TestCluster;
let spec: string;
let mgs: string;

async function tool(name: 'lfs' | 'lctl', ...args: string[]): Promise<string> {
  const extra = name === 'lctl' ? ['--mgs', mgs] : [];
  const r = await run(process.execPath, [bin(name), ...extra, ...args], { timeout: 30_000 });
  return r.stdout;
}

async function toolFails(name: 'lfs' | 'lctl', ...args: string[]): Promise<string> {
  const extra = name === 'lctl' ? ['--mgs', mgs] : [];
  try {
    await run(process.execPath, [bin(name), ...extra, ...args], { timeout: 30_000 });
  } catch (e) {
    const x = e as { code: number; stderr: string };
    assert.notEqual(x.code, 0);
    return x.stderr;
  }
  throw new Error(`${name} ${args.join(' ')} should have failed`);
}

before(async () => {
  cluster = await TestCluster.start({ osts: 3 });
  mgs = formatNid(cluster.mgsNid);
  spec = `${mgs}:/${cluster.fsname}`;
});

after(async () => {
  await cluster?.stop();
});

test('lctl pools steer object allocation; lfs getstripe shows where objects went', async () => {
  assert.equal(await tool('lctl', 'pool_new', `${cluster.fsname}.flash`), `Pool ${cluster.fsname}.flash created\n`);
  await tool('lctl', 'pool_add', `${cluster.fsname}.flash`, 'OST[1-2]');
  assert.equal(await tool('lctl', 'pool_list', `${cluster.fsname}.flash`), `Pool: ${cluster.fsname}.flash\n${cluster.fsname}-OST0001_UUID\n${cluster.fsname}-OST0002_UUID\n`);
  assert.equal(await tool('lctl', 'pool_list', cluster.fsname), `Pools from ${cluster.fsname}:\n${cluster.fsname}.flash\n`);
  assert.match(await toolFails('lctl', 'pool_add', `${cluster.fsname}.flash`, 'OST0009'), /not registered/);

  // The MDS learns about the pool from the MGS within its poll interval.
  let out = '';
  let made = '';
  for (let i = 0; i < 50; i++) {
    try {
      await tool('lfs', 'setstripe', '-c', '-1', '-p', 'flash', `${spec}/pooled${i}`);
      made = `pooled${i}`;
      out = await tool('lfs', 'getstripe', `${spec}/${made}`);
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  assert.match(out, /^\/pooled\d+\nlmm_stripe_count:  2\nlmm_stripe_size:   4194304\nlmm_pattern:       raid0\nlmm_layout_gen:    0\nlmm_stripe_offset: [12]\nlmm_pool:          flash\n\tobdidx\t\t objid\t\t objid\t\t group\n/);
  const osts = [...out.matchAll(/^\t\s+(\d+)\t/gm)].map((m) => Number(m[1])).sort();
  assert.deepEqual(osts, [1, 2], 'objects only on the pool members');

  assert.match(await toolFails('lfs', 'setstripe', '-S', '1000', `${spec}/bad`), /multiple of 64 KiB/);
  assert.match(await toolFails('lfs', 'setstripe', '-c', '2', `${spec}/${made}`), /existing file/);
});

test('lfs setstripe on a directory sets its default, shown by getstripe', async () => {
  const d = await cluster.mount();
  try {
    await d.mkdir(d.root, 'dd', { mode: 0o755, cred: { uid: 0, gid: 0 } });
  } finally {
    await d.unmount();
  }
  await tool('lfs', 'setstripe', '-c', '3', '-S', '1M', `${spec}/dd`);
  // -d sets getstripe's depth to 0, and Lustre prints no path at depth 0 (lov_dump_user_lmm_header)
  assert.equal(await tool('lfs', 'getstripe', '-d', `${spec}/dd`), 'stripe_count:  3 stripe_size:   1048576 pattern:       raid0 stripe_offset: -1\n\n');
  await tool('lfs', 'setstripe', `${spec}/dd/f`);
  assert.match(await tool('lfs', 'getstripe', `${spec}/dd/f`), /lmm_stripe_count:  3\nlmm_stripe_size:   1048576/);
});

test('lfs df lists every target and a summary; lfs check servers pings them', async () => {
  const df = await tool('lfs', 'df', spec);
  const lines = df.trim().split('\n');
  assert.match(lines[0]!, /^UUID\s+1K-blocks\s+Used\s+Available Use% Mounted on$/);
  assert.match(df, new RegExp(`${cluster.fsname}-MDT0000_UUID\\s+\\d+\\s+\\d+\\s+\\d+\\s+\\d+% .*\\[MDT:0\\]`));
  for (let i = 0; i < 3; i++) assert.match(df, new RegExp(`${cluster.fsname}-OST000${i}_UUID\\s+\\d+\\s+\\d+\\s+\\d+\\s+\\d+% .*\\[OST:${i}\\]`));
  const sum = lines[lines.length - 1]!.split(/\s+/);
  assert.equal(sum[0], 'filesystem_summary:');
  const ostTotals = lines.filter((l) => /OST000\d_UUID/.test(l)).map((l) => Number(l.split(/\s+/)[1]));
  assert.equal(Number(sum[1]), ostTotals.reduce((a, b) => a + b, 0), 'summary space is the sum of the OSTs');

  const check = await tool('lfs', 'check', 'servers', spec);
  assert.equal(check.split('\n').filter((l) => l.endsWith(' active.')).length, 5, check);
});
