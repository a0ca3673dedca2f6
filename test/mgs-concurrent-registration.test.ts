/**
 * Targets started together register at the same moment: every registration succeeds and
 * the MGS's saved configuration holds all of them (overlapping saves once shared a temp
 * file, and all but one registration failed with ENOENT on rename).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startMgs } from '../src/mgs/mgs.js';
import { MgsClient } from '../src/mgs/mgc.js';
import { RpcClient } from '../src/ptlrpc/client.js';
import { parseNid, formatNid } from '../src/lnet/nid.js';
import { silentLogger } from '../src/common/log.js';

test('20 targets registering at once are all recorded', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'stria-mgs-'));
  const log = silentLogger();
  const mgs = await startMgs({ dir, listen: parseNid('127.0.0.1:0@tcp') }, log);
  const clients: RpcClient[] = [];
  try {
    const regs = Array.from({ length: 20 }, async (_, i) => {
      const rpc = new RpcClient({ uuid: `reg-${i}` }, log);
      clients.push(rpc);
      const mgc = new MgsClient(rpc, [mgs.nid]);
      await mgc.connect();
      return mgc.register('testfs', 'ost', i, `testfs-OST${i.toString(16).padStart(4, '0')}_UUID`, [formatNid(parseNid(`127.0.0.1:${2000 + i}@tcp`))]);
    });
    const results = await Promise.allSettled(regs);
    assert.deepEqual(results.filter((r) => r.status === 'rejected'), [], 'no registration failed');
    const saved = JSON.parse(await readFile(join(dir, 'mgs-config.json'), 'utf8')) as { filesystems: Record<string, { osts: unknown[]; uuid?: string }> };
    assert.equal(saved.filesystems.testfs!.osts.length, 20);
    assert.ok(saved.filesystems.testfs!.uuid, 'the filesystem got its UUID');
    assert.deepEqual((await readdir(dir)).filter((n) => n.endsWith('.tmp')), [], 'no temp file left behind');
  } finally {
    for (const c of clients) await c.close();
    await mgs.close();
    await rm(dir, { recursive: true, force: true });
  }
});
