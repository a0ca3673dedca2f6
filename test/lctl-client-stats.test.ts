/**
 * After I/O through a mounted client, lctl get_param shows the right counts and
 * bytes: per OSC (client side), per OST (obdfilter, server side) and per mount
 * (llite, fed like the FUSE adapter feeds it); writing a stats file clears it.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestCluster } from './helpers/cluster.js';
import { counter, lctl, parseParams } from './helpers/lctl.js';
import type { StriaClient } from '../src/client/client.js';
import { startClientControl, type ClientControl } from '../src/ctl/client-params.js';
import { LliteStats } from '../src/ctl/llite-stats.js';
import { ostName } from '../src/common/targets.js';

const KiB = 1024;
const root = { uid: 0, gid: 0 };
let cluster: TestCluster;
let client: StriaClient;
let control: ClientControl;
const llite = new LliteStats();

before(async () => {
  cluster = await TestCluster.start({ osts: 2 });
  client = await cluster.mount();
  control = await startClientControl(client, llite, { runDir: cluster.runDir });
});

after(async () => {
  await control?.close();
  await client?.unmount();
  await cluster?.stop();
});

test('osc, obdfilter and llite stats count the RPCs and bytes of the I/O done', async () => {
  const fs = cluster.fsname;
  const inst = control.instance;
  await llite.time('mkdir', () => client.mkdir(client.root, 'd', { mode: 0o755, cred: root }));
  const f = await llite.time('create', () => client.create(client.root, 'striped', { mode: 0o644, cred: root, layout: { stripeCount: 2, stripeSize: 64 * KiB } }));
  const data = Buffer.alloc(300 * KiB, 7);
  const t0 = process.hrtime.bigint();
  await client.write(f, 0, data);
  // out of the write-back cache, so the OSTs count it
  await client.fsync(f);
  llite.io('write', data.length, Number((process.hrtime.bigint() - t0) / 1000n));
  const back = await client.read(f, 0, data.length);
  llite.io('read', back.length, 1);
  await client.close(f);
  assert.ok(back.equals(data));

  // stripes of 64 KiB alternate: object 0 gets 64+64+44 KiB, object 1 gets 64+64 KiB,
  // each written (and read) as one object-contiguous RPC
  const layout = f.inode.layout!;
  assert.equal(layout.objects.length, 2);
  const perOst = new Map<number, number>([
    [layout.objects[0]!.ostIdx, 172 * KiB],
    [layout.objects[1]!.ostIdx, 128 * KiB],
  ]);

  const r = await lctl(cluster.runDir, 'get_param', 'osc.*.stats', 'obdfilter.*.stats', 'llite.*.stats');
  assert.equal(r.code, 0, r.stderr);
  const p = parseParams(r.stdout);
  for (const [idx, bytes] of perOst) {
    const osc = p.get(`osc.${ostName(fs, idx)}-osc-${inst}.stats`);
    assert.ok(osc, `osc stats of OST ${idx} in:\n${r.stdout}`);
    assert.match(osc, /^snapshot_time +\d+\.\d{9} secs\.nsecs\nstart_time +\d+\.\d{9} secs\.nsecs\nelapsed_time +\d+\.\d{9} secs\.nsecs\n/);
    assert.deepEqual(counter(osc, 'write_bytes'), { samples: 1, unit: 'bytes', min: bytes, max: bytes, sum: bytes });
    assert.deepEqual(counter(osc, 'read_bytes'), { samples: 1, unit: 'bytes', min: bytes, max: bytes, sum: bytes });
    assert.equal(counter(osc, 'ost_write')?.samples, 1);
    assert.equal(counter(osc, 'ost_write')?.unit, 'usec');
    assert.equal(counter(osc, 'ost_read')?.samples, 1);
    assert.ok((counter(osc, 'req_waittime')?.samples ?? 0) >= 2);

    const ofd = p.get(`obdfilter.${ostName(fs, idx)}.stats`);
    assert.ok(ofd, `obdfilter stats of OST ${idx}`);
    assert.deepEqual(counter(ofd, 'write_bytes'), { samples: 1, unit: 'bytes', min: bytes, max: bytes, sum: bytes });
    assert.deepEqual(counter(ofd, 'read_bytes'), { samples: 1, unit: 'bytes', min: bytes, max: bytes, sum: bytes });
    assert.equal(counter(ofd, 'write')?.unit, 'usecs');
  }

  const ll = p.get(`llite.${fs}-${inst}.stats`);
  assert.ok(ll, 'llite stats');
  assert.deepEqual(counter(ll, 'write_bytes'), { samples: 1, unit: 'bytes', min: 300 * KiB, max: 300 * KiB, sum: 300 * KiB });
  assert.equal(counter(ll, 'read_bytes')?.sum, 300 * KiB);
  assert.equal(counter(ll, 'write')?.samples, 1);
  assert.equal(counter(ll, 'mkdir')?.samples, 1);
  assert.equal(counter(ll, 'create')?.samples, 1);
  assert.equal(counter(ll, 'unlink'), undefined, 'operations never done are not printed');

  // the import shows the traffic too
  const imp = await lctl(cluster.runDir, 'get_param', '-n', `osc.${ostName(fs, layout.objects[0]!.ostIdx)}-osc-${inst}.import`);
  assert.match(imp.stdout, /^import:\n    name: \S+-osc-\S+\n    target: \S+-OST\d{4}_UUID\n    state: FULL\n    connection:\n/);
  assert.match(imp.stdout, /\n    write_data_averages:\n       bytes_per_rpc: 176128\n       usec_per_rpc: \d+\n/);

  // any write to a stats file clears it
  const c = await lctl(cluster.runDir, 'set_param', 'osc.*.stats=clear', 'llite.*.stats=0');
  assert.equal(c.code, 0, c.stderr);
  const after = parseParams((await lctl(cluster.runDir, 'get_param', 'osc.*.stats', 'llite.*.stats')).stdout);
  for (const [name, v] of after) assert.equal(v.split('\n').filter(Boolean).length, 3, `${name} has only its header after clearing:\n${v}`);
});
