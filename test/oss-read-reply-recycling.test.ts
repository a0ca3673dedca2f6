/**
 * OST read replies come from the RPC server's bulk pool and go back to it once sent: many
 * concurrent reads of distinct data, large and small, over a real connection all return the
 * right bytes (a buffer reused before its reply left would show up as wrong data), and the
 * pool really is reused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../src/common/log.js';
import { Opc } from '../src/ptlrpc/opcodes.js';
import { RpcClient } from '../src/ptlrpc/client.js';
import { RpcServer } from '../src/ptlrpc/server.js';
import { ObjectStore } from '../src/oss/objstore.js';
import { createOstTarget } from '../src/oss/ost-target.js';
import { OstClient } from '../src/client/osc.js';

const MiB = 1024 * 1024;
const OBJECT_MiB = 32;

/** Byte at object offset `off`: differs between every 1 MiB and every 4 KiB block. */
function expected(off: number, len: number): Buffer {
  const b = Buffer.allocUnsafe(len);
  for (let i = 0; i < len; i++) {
    const p = off + i;
    b[i] = (Math.floor(p / MiB) * 31 + Math.floor(p / 4096) * 7 + p) & 0xff;
  }
  return b;
}

test('concurrent reads of distinct data return the right bytes while reply buffers are recycled', { timeout: 120_000 }, async () => {
  const log = silentLogger();
  const dir = await mkdtemp(join(tmpdir(), 'stria-recycle-'));
  const store = await ObjectStore.open(dir, { fsname: 'recycle', index: 0 });
  const server = new RpcServer({ nid: { addr: '127.0.0.1', port: 0, net: 'tcp' } }, log);
  server.addTarget(createOstTarget(store, log, { ldlmTimeoutMs: 20_000, evict: () => undefined, replyBulks: server.replyBulks }));
  await server.listen();
  const rpc = new RpcClient({ uuid: 'recycle-client' }, log);
  try {
    const imp = rpc.import({
      nids: [{ addr: '127.0.0.1', port: server.port, net: 'tcp' }],
      target: store.name,
      connectOpc: Opc.OST_CONNECT,
      connectData: { fsname: 'recycle' },
      credits: 16,
    });
    await imp.connect();
    const { seq, first: oid } = await store.precreate(0, 1);
    for (const checksums of [false, true]) {
      const osc = new OstClient(0, imp, { maxRpcBytes: 4 * MiB, checksums });
      if (!checksums) for (let m = 0; m < OBJECT_MiB; m++) await osc.write(seq, oid, m * MiB, [expected(m * MiB, MiB)]);
      for (let round = 0; round < 3; round++) {
        const reads: Array<Promise<void>> = [];
        for (let i = 0; i < 48; i++) {
          const small = i % 3 === 0;
          const len = small ? 4096 : MiB - (i % 5) * 4096;
          const off = small ? ((i * 7919 + round * 13) % (OBJECT_MiB * 256)) * 4096 : ((i * 5 + round) % OBJECT_MiB) * MiB;
          reads.push(
            (async () => {
              const parts: Buffer[] = [];
              const got = await osc.read(seq, oid, off, len, (_at, data) => parts.push(Buffer.from(data)));
              assert.equal(got, len);
              assert.ok(Buffer.concat(parts).equals(expected(off, len)), `read of ${len} at ${off} (round ${round}, checksums ${checksums})`);
            })(),
          );
        }
        await Promise.all(reads);
      }
    }
    // a read running past the end is short, and its pooled buffer is not lost
    const osc = new OstClient(0, imp, { maxRpcBytes: 4 * MiB, checksums: false });
    const tail: Buffer[] = [];
    assert.equal(await osc.read(seq, oid, OBJECT_MiB * MiB - 1000, MiB, (_at, data) => tail.push(Buffer.from(data))), 1000);
    assert.ok(Buffer.concat(tail).equals(expected(OBJECT_MiB * MiB - 1000, 1000)));
    const s = server.replyBulks.stats;
    assert.ok(s.reused > 0, `reply buffers were reused (${JSON.stringify(s)})`);
    assert.equal(s.given, s.taken, 'every pooled reply buffer came back');
  } finally {
    await rpc.close();
    await server.close();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
});
