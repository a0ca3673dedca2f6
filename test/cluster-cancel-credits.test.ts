/**
 * Lock cancels must get through when every RPC credit of a client is taken by requests
 * that wait on the server for exactly those cancels: 32 unlinks in flight of files whose
 * locks the same client caches (each unlink revokes one of them) all complete.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestCluster } from './helpers/cluster.js';
import type { StriaClient } from '../src/client/client.js';

const root = { uid: 0, gid: 0 };
let cluster: TestCluster;
let client: StriaClient;

before(async () => {
  cluster = await TestCluster.start({ osts: 1 });
  client = await cluster.mount({ timeoutMs: 60_000 });
});

after(async () => {
  await client?.unmount();
  await cluster?.stop();
});

test('32 parallel unlinks of files whose locks this client caches all complete', async () => {
  const dir = await client.mkdir(client.root, 'd', { mode: 0o755, cred: root });
  const n = 64;
  const fids = [];
  // made by another client: a create tells its client the new name, and it would cancel
  // the lock early in its unlink
  const maker = await cluster.mount();
  try {
    for (let i = 0; i < n; i++) {
      const f = await maker.create(dir.fid, `f${i}`, { mode: 0o644, cred: root });
      await maker.close(f);
      fids.push(f.fid);
    }
  } finally {
    await maker.unmount();
  }
  // Each getattr caches a PR lock on the file (by FID, so the client does not know the
  // file's name and cannot cancel the lock early): every unlink below must call one back.
  for (const fid of fids) assert.ok((await client.getattr(fid)).covered);
  const locksBefore = client.dlm.mdc!.lockCount;
  assert.ok(locksBefore >= n, `the client caches a lock per file (${locksBefore})`);
  let next = 0;
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (next < n) await client.unlink(dir.fid, `f${next++}`);
    }),
  );
  const left: string[] = [];
  for await (const e of client.listDir(dir.fid)) left.push(e.name);
  assert.deepEqual(left, []);
  assert.ok(client.dlm.mdc!.stats.blockingAsts >= n, 'every unlink called back the cached lock');
});

test('unlinking a file this client looked up cancels its lock early: no blocking AST comes back', async () => {
  const dir = await client.mkdir(client.root, 'elc', { mode: 0o755, cred: root });
  await client.close(await client.create(dir.fid, 'victim', { mode: 0o644, cred: root }));
  assert.ok((await client.lookup(dir.fid, 'victim')).covered, 'the lookup cached a lock on the file');
  const before = client.dlm.mdc!.stats.blockingAsts;
  const early = client.dlm.mdc!.stats.earlyCancels;
  await client.unlink(dir.fid, 'victim');
  assert.equal(client.dlm.mdc!.stats.blockingAsts, before, 'the MDT did not have to call the lock back');
  assert.ok(client.dlm.mdc!.stats.earlyCancels > early, 'the lock travelled as an early cancel in the unlink');
  await assert.rejects(client.lookup(dir.fid, 'victim'), (e: Error & { code?: string; errno?: number }) => e.errno === 2);
});
