/** A killed client leaves no dead mount behind, and remounting on the same mountpoint just works. */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { TestCluster } from './helpers/cluster.js';
import { TestMount, sh } from './helpers/mount.js';

let cluster: TestCluster;
let m: TestMount;

before(async () => {
  cluster = await TestCluster.start({ osts: 2 });
  m = await TestMount.start(cluster);
});

after(async () => {
  await m?.stop();
  await cluster?.stop();
});

test('kill -9 of the client, then remount: data intact', async () => {
  // fsynced: a client killed with -9 loses what its write-back cache held, never what was synced
  assert.equal((await sh(`echo survives > ${m.path("f")} && sync ${m.path("f")}`)).code, 0);
  await m.kill9();
  const check = await sh(`stat ${m.mountpoint}`);
  assert.ok(check.code === 0 || /Transport endpoint is not connected/.test(check.stderr), check.stderr);
  await m.mount();
  assert.equal((await sh(`cat ${m.path('f')}`)).stdout, 'survives\n');
});

test('stria umount ends the mount process cleanly', async () => {
  await m.unmount();
  assert.ok(m.proc!.exitCode === 0, `exit code ${m.proc!.exitCode}`);
  const mounts = await sh('cat /proc/mounts');
  assert.ok(!mounts.stdout.includes(m.mountpoint), 'no mount left behind');
  await m.mount();
  assert.equal((await sh(`cat ${m.path('f')}`)).stdout, 'survives\n');
});

test('SIGTERM to the mount process unmounts cleanly', async () => {
  const p = m.proc!;
  const exited = new Promise<number | null>((r) => p.once('exit', (code) => r(code)));
  p.kill('SIGTERM');
  assert.equal(await exited, 0, 'clean exit');
  const mounts = await sh('cat /proc/mounts');
  assert.ok(!mounts.stdout.includes(m.mountpoint), 'no mount left behind');
  await m.mount();
  assert.equal((await sh(`cat ${m.path('f')}`)).stdout, 'survives\n');
});
