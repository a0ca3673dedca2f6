/**
 * Lookups answered by the client alone: a name found under a LOOKUP lock on the child,
 * whose attributes are cached under an attribute lock, is found again without an MDS
 * request for as long as both locks are held (the kernel forgets its dentries under
 * memory pressure or drop_caches; the client's locks live on). Another client's rename,
 * unlink or chmod calls a lock back first, and the next lookup asks the MDT again.
 * Counted by the MDS_GETATTR_NAME requests the client sends, never timed.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Errno, toStriaError } from '../src/common/errno.js';
import { fidKey } from '../src/common/fid.js';
import { Opc } from '../src/ptlrpc/opcodes.js';
import type { StriaClient } from '../src/client/client.js';
import { clientPair } from './helpers/client-pair.js';

const root = { uid: 0, gid: 0 };

/** MDS_GETATTR_NAME requests `c` sends from now on */
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

describe('lookups under held name and attribute locks', () => {
  const pair = clientPair(1, () => undefined);
  let seen: { count: number };

  /** A file `name` that client a created in a new directory `dir` and looked up. */
  const knownFile = async (dir: string, name: string) => {
    const { a } = pair;
    const d = await a.mkdir(a.root, dir, { mode: 0o755, cred: root });
    const f = await a.create(d.fid, name, { mode: 0o644, cred: root });
    await a.close(f);
    await a.lookup(d.fid, name);
    return { dir: d, f };
  };

  test('a file this client created is looked up again and again without an MDS request', async () => {
    const { a } = pair;
    seen = lookupRequests(a);
    const dir = await a.mkdir(a.root, 'created', { mode: 0o755, cred: root });
    const f = await a.create(dir.fid, 'f', { mode: 0o640, cred: root });
    await a.close(f);
    const before = seen.count;
    for (let i = 0; i < 5; i++) {
      const found = await a.lookup(dir.fid, 'f');
      assert.equal(fidKey(found.fid), fidKey(f.fid));
      assert.equal(found.mode & 0o7777, 0o640);
      assert.equal(found.size, 0);
      assert.equal(found.nameCovered, true, 'the name is still covered by its lock');
    }
    assert.equal(seen.count, before, 'five lookups sent no MDS_GETATTR_NAME');
  });

  test('a name another client made is asked for once, then known', async () => {
    const { a, writer } = pair;
    const dir = await writer.mkdir(writer.root, 'theirs', { mode: 0o755, cred: root });
    const f = await writer.create(dir.fid, 'f', { mode: 0o644, cred: root });
    await writer.close(f);
    const before = seen.count;
    await a.lookup(dir.fid, 'f');
    await a.lookup(dir.fid, 'f');
    await a.lookup(dir.fid, 'f');
    assert.equal(seen.count, before + 1, 'only the first lookup asked the MDT');
  });

  test("another client's rename is seen at once: the old name is gone, the new one leads to the file", async () => {
    const { a, writer } = pair;
    const { dir, f } = await knownFile('renamed', 'x');
    await writer.rename(dir.fid, 'x', dir.fid, 'y');
    assert.equal(await errnoOf(a.lookup(dir.fid, 'x')), Errno.ENOENT, 'the renamed-away name is not answered from the cache');
    assert.equal(fidKey((await a.lookup(dir.fid, 'y')).fid), fidKey(f.fid));
    // 'x' was found under a lock the rename called back; 'y' under a new lock on the same
    // inode. That new lock must not make the old finding true again.
    assert.equal(await errnoOf(a.lookup(dir.fid, 'x')), Errno.ENOENT, 'a later lock on the inode does not revive the old name');
  });

  test("another client's unlink is seen at once", async () => {
    const { a, writer } = pair;
    const { dir } = await knownFile('unlinked', 'f');
    await writer.unlink(dir.fid, 'f');
    assert.equal(await errnoOf(a.lookup(dir.fid, 'f')), Errno.ENOENT);
  });

  test("another client's chmod is seen at once; the name stays known", async () => {
    const { a, writer } = pair;
    const { dir, f } = await knownFile('chmod', 'f');
    await writer.setattr(f.fid, { mode: 0o600 }, root);
    assert.equal((await a.lookup(dir.fid, 'f')).mode & 0o7777, 0o600, 'the chmod called the attribute lock back');
    const before = seen.count;
    assert.equal((await a.lookup(dir.fid, 'f')).mode & 0o7777, 0o600);
    assert.equal(seen.count, before, 'known again under the new attribute lock');
  });
});
