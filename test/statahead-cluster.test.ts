/**
 * Statahead against a real MDS and OSTs, with two clients: after client `a` looked up
 * three names of a numbered run that `writer` made, the next names are looked up ahead,
 * and `a`'s own lookups of them send no MDS request. What was looked up ahead stays
 * coherent: `writer`'s unlink, rename, chmod and write of such names are seen by `a`'s
 * next lookup at once. Counted by MDS_GETATTR_NAME requests, never timed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Errno, toStriaError } from '../src/common/errno.js';
import { fidKey } from '../src/common/fid.js';
import { Opc } from '../src/ptlrpc/opcodes.js';
import type { StriaClient } from '../src/client/client.js';
import { clientPair } from './helpers/client-pair.js';

const root = { uid: 0, gid: 0 };
const FILES = 40;
const name = (i: number) => `sample_${String(i).padStart(4, '0')}.bin`;

function lookupRequests(c: StriaClient): { count: number } {
  const seen = { count: 0 };
  const imp = c.mdc.imp;
  const real = imp.request.bind(imp);
  imp.request = (opc, body, opts) => {
    if (opc === Opc.MDS_GETATTR_NAME) seen.count++;
    return real(opc, body, opts);
  };
  return seen;
}

async function errnoOf(p: Promise<unknown>): Promise<number | undefined> {
  try {
    await p;
    return undefined;
  } catch (e) {
    return toStriaError(e).errno;
  }
}

/** Until statahead has nothing running (bounded). */
async function quiet(c: StriaClient): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const before = c.statahead.counters.fetched;
    await new Promise((r) => setTimeout(r, 20));
    if (c.statahead.counters.fetched === before && i > 2) return;
  }
}

const pair = clientPair(2, () => undefined);

test('a numbered run is looked up ahead, and what was looked up ahead follows the other client\'s changes', async () => {
  const { a, writer } = pair;
  const dir = await writer.mkdir(writer.root, 'samples', { mode: 0o755, cred: root });
  const fids: string[] = [];
  for (let i = 0; i < FILES; i++) {
    const f = await writer.create(dir.fid, name(i), { mode: 0o644, cred: root });
    fids.push(fidKey(f.fid));
    await writer.close(f);
  }
  const seen = lookupRequests(a);
  a.statahead.max = 16;
  for (let i = 0; i < 3; i++) await a.lookup(dir.fid, name(i));
  await quiet(a);
  assert.equal(seen.count, 3 + 16, 'three lookups of the application, sixteen ahead of it');

  // the next sixteen are answered by the client, with the right files
  for (let i = 3; i < 10; i++) assert.equal(fidKey((await a.lookup(dir.fid, name(i))).fid), fids[i]);
  await quiet(a);
  const afterTen = seen.count;
  assert.equal(afterTen, 3 + 16 + 7, 'each lookup of the application slid the window by one name; none of its own went out');
  assert.equal(a.statahead.counters.hits, 7);

  // the other client changes names a holds from statahead
  await writer.unlink(dir.fid, name(12));
  await writer.rename(dir.fid, name(13), dir.fid, 'renamed');
  const f14 = await writer.open((await writer.lookup(dir.fid, name(14))).fid, 2);
  await writer.write(f14, 0, Buffer.alloc(5000, 7), { sync: true });
  await writer.close(f14);
  await writer.setattr((await writer.lookup(dir.fid, name(15))).fid, { mode: 0o600 }, root);

  assert.equal(fidKey((await a.lookup(dir.fid, name(10))).fid), fids[10]);
  assert.equal(fidKey((await a.lookup(dir.fid, name(11))).fid), fids[11]);
  assert.equal(await errnoOf(a.lookup(dir.fid, name(12))), Errno.ENOENT, 'the unlinked name is gone');
  assert.equal(await errnoOf(a.lookup(dir.fid, name(13))), Errno.ENOENT, 'the renamed-away name is gone');
  assert.equal(fidKey((await a.lookup(dir.fid, 'renamed')).fid), fids[13]);
  assert.equal((await a.lookup(dir.fid, name(14))).size, 5000, 'the write is seen');
  assert.equal((await a.lookup(dir.fid, name(15))).mode & 0o7777, 0o600, 'the chmod is seen');
});

test('statahead_max=0: every lookup of the application asks the MDS itself', async () => {
  const { a, writer } = pair;
  const dir = await writer.mkdir(writer.root, 'off', { mode: 0o755, cred: root });
  for (let i = 0; i < 12; i++) await writer.close(await writer.create(dir.fid, name(i), { mode: 0o644, cred: root }));
  const seen = lookupRequests(a);
  a.statahead.max = 0;
  for (let i = 0; i < 12; i++) await a.lookup(dir.fid, name(i));
  await quiet(a);
  assert.equal(seen.count, 12);
});
