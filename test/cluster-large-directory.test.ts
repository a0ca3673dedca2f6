/** A 100,000-entry directory lists every name exactly once, in pages, over the wire. */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { TestCluster } from './helpers/cluster.js';
import type { StriaClient } from '../src/client/client.js';

const ENTRIES = 100_000;
const PARALLEL = 64;
let cluster: TestCluster;
let c: StriaClient;

before(async () => {
  cluster = await TestCluster.start({ osts: 1 });
  c = await cluster.mount();
});

after(async () => {
  await c?.unmount();
  await cluster?.stop();
});

test(`${ENTRIES} entries list exactly once with readdir cookies`, { timeout: 600_000 }, async () => {
  const dir = await c.mkdir(c.root, 'big', { mode: 0o755, cred: { uid: 0, gid: 0 } });
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: PARALLEL }, async () => {
      while (next < ENTRIES) {
        const i = next++;
        await c.mknod(dir.fid, `entry-${i}`, { type: 'fifo', mode: 0o644, cred: { uid: 0, gid: 0 } });
      }
    }),
  );
  const createMs = performance.now() - t0;
  console.log(`# ${ENTRIES} creates: ${Math.round(ENTRIES / (createMs / 1000))} creates/s (${PARALLEL} in flight)`);

  for (const pageSize of [1000, 4096]) {
    const seen = new Map<string, number>();
    const t1 = performance.now();
    for await (const e of c.listDir(dir.fid, pageSize)) seen.set(e.name, (seen.get(e.name) ?? 0) + 1);
    const listMs = performance.now() - t1;
    console.log(`# readdir ${ENTRIES} entries in pages of ${pageSize}: ${Math.round(ENTRIES / (listMs / 1000))} entries/s`);
    assert.equal(seen.size, ENTRIES, `page size ${pageSize}: every name listed`);
    for (let i = 0; i < ENTRIES; i++) assert.equal(seen.get(`entry-${i}`), 1, `entry-${i} listed exactly once`);
  }
});
