/**
 * Grants and object versions on a real cluster (MGS, MDS, OSS as processes): the OSS's
 * `obdfilter.*.tot_granted` counts the grant its clients were given and drops when a
 * client unmounts; an object's version changes with a write and not with a read; after
 * kill -9 and restart of the OSS, the same unchanged object reports a version of another
 * epoch, and the client's grant starts over with the new export's.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestCluster } from './helpers/cluster.js';
import { lctl } from './helpers/lctl.js';
import type { StriaClient } from '../src/client/client.js';

const root = { uid: 0, gid: 0 };
let cluster: TestCluster;
let client: StriaClient;
let other: StriaClient | undefined;

before(async () => {
  cluster = await TestCluster.start({ osts: 1 });
  client = await cluster.mount();
});

after(async () => {
  await other?.unmount().catch(() => undefined);
  await client?.unmount();
  await cluster?.stop();
});

async function totGranted(): Promise<number> {
  const r = await lctl(cluster.runDir, 'get_param', '-n', `obdfilter.${cluster.fsname}-OST0000.tot_granted`);
  assert.equal(r.code, 0, r.stderr);
  return Number(r.stdout.trim());
}

async function until(what: string, cond: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.fail(what);
}

test('tot_granted on the OSS counts the clients\' grants and drops when one unmounts', async () => {
  const osc = client.ostClients()[0]!;
  await osc.statfs(); // connected
  assert.ok(osc.curGrantBytes > 0, 'the client got a grant at connect');
  const withOne = await totGranted();
  assert.ok(withOne >= osc.curGrantBytes, `tot_granted ${withOne} includes the client's ${osc.curGrantBytes}`);

  other = await cluster.mount();
  const osc2 = other.ostClients()[0]!;
  await osc2.statfs();
  const g2 = osc2.curGrantBytes;
  assert.equal(await totGranted(), withOne + g2);
  await other.unmount();
  other = undefined;
  await until('the unmounted client\'s grant is freed', async () => (await totGranted()) === withOne);
});

test('versions change with writes, not reads, and take a new epoch when the OSS restarts', async () => {
  const f = await client.create(client.root, 'versioned', { mode: 0o644, cred: root, layout: { stripeCount: 1 } });
  const obj = f.inode.layout!.objects[0]!;
  const osc = client.ostClients().find((o) => o.index === obj.ostIdx)!;
  const v0 = (await osc.getattr(obj.seq, obj.oid)).ver;
  assert.ok(v0);
  const w = await osc.write(obj.seq, obj.oid, 0, [Buffer.from('some data')], true);
  assert.ok(w.ver && w.ver !== v0, 'a write gives a new version');
  await osc.read(obj.seq, obj.oid, 0, 9, () => undefined);
  assert.equal((await osc.getattr(obj.seq, obj.oid)).ver, w.ver, 'a read does not change it');

  const gen = osc.grantGeneration;
  await cluster.kill9('oss0');
  await cluster.startRole('oss0');
  const v1 = (await osc.getattr(obj.seq, obj.oid)).ver;
  assert.ok(v1);
  assert.notEqual(v1.split('.')[0], w.ver!.split('.')[0], 'another epoch after the restart');
  assert.notEqual(osc.grantGeneration, gen, 'the grant started over with the new export');
  assert.ok(osc.curGrantBytes > 0);
  await client.close(f);
});
