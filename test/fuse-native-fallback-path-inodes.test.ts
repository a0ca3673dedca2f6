/**
 * Path -> node id translation for the fuse-native fallback: names are cached
 * only as long as the filesystem allows, invalidated by the namespace changes
 * that make them wrong, and every lookup the filesystem counted is forgotten
 * exactly once nothing holds the node any more.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FUSE_ROOT_ID, type RequestCtx } from '../src/fuse/lowlevel.js';
import { PathInodes, splitParent, splitPath } from '../src/fuse/path-inodes.js';
import { FallbackMemFs, type MemFsOptions } from './helpers/fallback-memfs.js';

const ctx: RequestCtx = { uid: 0, gid: 0, pid: 0, umask: 0, interrupted: false };

async function tree(opts: MemFsOptions = {}): Promise<{ fs: FallbackMemFs; clock: { t: number }; table: PathInodes }> {
  const fs = new FallbackMemFs(opts);
  const a = await fs.mkdir(ctx, FUSE_ROOT_ID, 'a', 0o755);
  const b = await fs.mkdir(ctx, a.ino, 'b', 0o755);
  const f = await fs.create(ctx, b.ino, 'f', 0o644, 0);
  await fs.release(ctx, f.ino, f.fh, 0);
  // the setup's own lookups are not the table's business
  for (const e of [a, b, f]) fs.forget(e.ino, 1);
  const clock = { t: 1_000_000 };
  return { fs, clock, table: new PathInodes(fs, { now: () => clock.t, maxEntries: 100 }) };
}

async function resolveOnce(table: PathInodes, path: string): Promise<bigint> {
  const s = table.scope();
  try {
    return (await table.resolve(ctx, path, s)).ino;
  } finally {
    s.end();
  }
}

describe('fuse-native fallback: path -> node id translation', () => {
  it('splits paths', () => {
    assert.deepEqual(splitPath('/'), []);
    assert.deepEqual(splitPath('/a/b'), ['a', 'b']);
    assert.deepEqual(splitParent('/a/b/c'), { dir: '/a/b', name: 'c' });
    assert.deepEqual(splitParent('/c'), { dir: '/', name: 'c' });
    assert.throws(() => splitParent('/'), { code: 'EINVAL' });
  });

  it('walks components from the root and fails with ENOENT on a missing one', async () => {
    const { fs, table } = await tree();
    assert.equal(await resolveOnce(table, '/'), FUSE_ROOT_ID);
    assert.equal(await resolveOnce(table, '/a/b/f'), fs.nodeAt('/a/b/f')!.ino);
    await assert.rejects(resolveOnce(table, '/a/nope/f'), { code: 'ENOENT' });
  });

  it('with entryTimeout 0, looks up every time and forgets each node when the request ends', async () => {
    const { fs, table } = await tree({ entryTimeout: 0 });
    const s = table.scope();
    await table.resolve(ctx, '/a/b/f', s);
    assert.equal(fs.outstandingLookups(), 3, 'the walk holds its nodes while the request runs');
    s.end();
    assert.equal(fs.outstandingLookups(), 0);
    await resolveOnce(table, '/a/b/f');
    assert.equal(fs.count('lookup'), 6);
    assert.deepEqual(table.stats(), { names: 0, nodes: 0, attrs: 0 });
    assert.deepEqual(fs.forgetErrors, []);
  });

  it('with an entryTimeout, serves names from the cache until they expire', async () => {
    const { fs, table, clock } = await tree({ entryTimeout: 10, attrTimeout: 5 });
    await resolveOnce(table, '/a/b/f');
    assert.equal(fs.count('lookup'), 3);
    const s = table.scope();
    const r = await table.resolve(ctx, '/a/b/f', s);
    s.end();
    assert.equal(fs.count('lookup'), 3, 'no lookup for cached names');
    assert.equal(r.attr?.ino, r.ino, 'cached attributes come along');
    clock.t += 6_000;
    const s2 = table.scope();
    assert.equal((await table.resolve(ctx, '/a/b/f', s2)).attr, undefined, 'attributes expired before the name');
    s2.end();
    clock.t += 5_000;
    await resolveOnce(table, '/a/b/f');
    assert.equal(fs.count('lookup'), 6, 'expired names are looked up again');
    assert.equal(fs.outstandingLookups(), 6, 'the cache keeps what it was given');
    table.forgetAll();
    assert.equal(fs.outstandingLookups(), 0);
    assert.deepEqual(fs.forgetErrors, []);
  });

  it('invalidating a path drops it and everything below it, and forgets the nodes', async () => {
    const { fs, table } = await tree({ entryTimeout: 60 });
    await resolveOnce(table, '/a/b/f');
    assert.equal(table.stats().names, 3);
    table.invalidatePath('/a/b');
    assert.equal(table.stats().names, 1);
    assert.equal(fs.nodeAt('/a/b')!.nlookup, 0);
    assert.equal(fs.nodeAt('/a/b/f')!.nlookup, 0);
    assert.equal(fs.nodeAt('/a')!.nlookup, 1);
    assert.equal(table.cachedIno('/a/b/f'), undefined);
    assert.equal(table.cachedIno('/a'), fs.nodeAt('/a')!.ino);
  });

  it('a rename seen through the filesystem is picked up once the stale name is invalidated', async () => {
    const { fs, table } = await tree({ entryTimeout: 60 });
    const a = fs.nodeAt('/a')!.ino;
    await resolveOnce(table, '/a/b/f');
    await fs.rename(ctx, a, 'b', FUSE_ROOT_ID, 'moved', 0);
    assert.equal(await resolveOnce(table, '/a/b/f'), fs.nodeAt('/moved/f')!.ino, 'the cache answers until told');
    table.invalidatePath('/a/b');
    await assert.rejects(resolveOnce(table, '/a/b/f'), { code: 'ENOENT' });
    assert.equal(await resolveOnce(table, '/moved/f'), fs.nodeAt('/moved/f')!.ino);
  });

  it('invalidateEntry finds the name by its parent node id', async () => {
    const { fs, table } = await tree({ entryTimeout: 60 });
    await resolveOnce(table, '/a/b/f');
    table.invalidateEntry(fs.nodeAt('/a')!.ino, 'b');
    assert.equal(table.cachedIno('/a/b'), undefined);
    assert.equal(table.cachedIno('/a/b/f'), undefined);
    table.invalidateEntry(FUSE_ROOT_ID, 'a');
    assert.equal(table.stats().names, 0);
    assert.equal(fs.outstandingLookups(), 0);
  });

  it('a name that now means another node drops what was cached below it', async () => {
    const { fs, table, clock } = await tree({ entryTimeout: 10 });
    await resolveOnce(table, '/a/b/f');
    const oldB = fs.nodeAt('/a/b')!;
    const a = fs.nodeAt('/a')!.ino;
    await fs.rename(ctx, a, 'b', FUSE_ROOT_ID, 'old-b', 0);
    const nb = await fs.mkdir(ctx, a, 'b', 0o755);
    fs.forget(nb.ino, 1);
    clock.t += 11_000;
    await assert.rejects(resolveOnce(table, '/a/b/f'), { code: 'ENOENT' });
    assert.equal(table.cachedIno('/a/b/f'), undefined);
    assert.equal(oldB.nlookup, 0, 'the old node was forgotten');
  });

  it('a held node (an open handle) is forgotten only when released', async () => {
    const { fs, table } = await tree({ entryTimeout: 0 });
    const ino = await resolveOnce(table, '/a/b/f');
    assert.equal(fs.outstandingLookups(), 0);
    const s = table.scope();
    await table.resolve(ctx, '/a/b/f', s);
    table.hold(ino);
    s.end();
    assert.equal(fs.nodeAt('/a/b/f')!.nlookup, 1);
    table.release(ino);
    assert.equal(fs.nodeAt('/a/b/f')!.nlookup, 0);
    assert.deepEqual(fs.forgetErrors, []);
  });

  it('keeps at most maxEntries names, forgetting the least recently used', async () => {
    const fs = new FallbackMemFs({ entryTimeout: 60 });
    for (let i = 0; i < 10; i++) {
      const e = await fs.mkdir(ctx, FUSE_ROOT_ID, `d${i}`, 0o755);
      fs.forget(e.ino, 1);
    }
    const table = new PathInodes(fs, { maxEntries: 4 });
    for (let i = 0; i < 10; i++) await resolveOnce(table, `/d${i}`);
    assert.equal(table.stats().names, 4);
    assert.equal(fs.outstandingLookups(), 4);
    assert.equal(table.cachedIno('/d9'), fs.nodeAt('/d9')!.ino);
    assert.equal(table.cachedIno('/d0'), undefined);
  });

  it('sweep drops expired names and forgets their nodes', async () => {
    const { fs, table, clock } = await tree({ entryTimeout: 1 });
    await resolveOnce(table, '/a/b/f');
    assert.equal(fs.outstandingLookups(), 3);
    clock.t += 2_000;
    table.sweep();
    assert.equal(table.stats().names, 0);
    assert.equal(fs.outstandingLookups(), 0);
  });
});
