/**
 * A filesystem has a name and a UUID: the MGS records the UUID when the first target
 * registers, every target keeps it, and a target formatted for another filesystem of the
 * same name is refused at registration with a clear message (its server exits).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TestCluster, freePort } from './helpers/cluster.js';

const clusters: TestCluster[] = [];
after(async () => {
  for (const c of clusters) await c.stop();
});

async function ostMarker(c: TestCluster, index: number): Promise<{ fsUuid?: string }> {
  return JSON.parse(await readFile(join(c.ostDir(index), 'stria-target.json'), 'utf8')) as { fsUuid?: string };
}

test('targets learn the filesystem UUID; an OST of another filesystem with the same name is refused', async () => {
  const a = await TestCluster.start({ osts: 1 });
  clusters.push(a);
  const b = await TestCluster.start({ osts: 1 });
  clusters.push(b);
  const ua = (await ostMarker(a, 0)).fsUuid;
  const ub = (await ostMarker(b, 0)).fsUuid;
  assert.ok(ua && ub, 'each OST recorded its filesystem UUID');
  assert.notEqual(ua, ub, 'two filesystems named testfs have different UUIDs');

  // B's OST, moved to A's MGS (same fsname, same index, same target name): refused.
  await b.kill9('oss0');
  const port = await freePort();
  a.roles.set('intruder', {
    name: 'intruder',
    args: ['oss', '--fsname', a.fsname, '--mgs', `127.0.0.1:${a.ports.mgs}@tcp`, '--ost', `0:${b.ostDir(0)}`, '--listen', `127.0.0.1:${port}@tcp`],
    ready: (l) => l.msg === 'OST started',
    output: [],
  });
  await assert.rejects(a.startRole('intruder'), (e: Error) => {
    assert.match(e.message, /exited \(code [1-9]/);
    assert.match(e.message, /formatted for another filesystem named testfs/);
    return true;
  });

  // The rightful OST restarts and is still accepted.
  await a.kill9('oss0');
  await a.startRole('oss0');
  const c = await a.mount();
  try {
    assert.equal((await c.statfs()).blocks > 0, true);
  } finally {
    await c.unmount();
  }
});
