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
  for (let i = 0; i < n; i++) await client.close(await client.create(dir.fid, `f${i}`, { mode: 0o644, cred: root }));
  // Each lookup caches a PR lock on the file: every unlink below must revoke one.
  for (let i = 0; i < n; i++) assert.ok((await client.lookup(dir.fid, `f${i}`)).covered);
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
