/** Native FUSE binding: handler failures become errno replies; only unexpected ones are logged. */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { err } from '../src/common/errno.js';
import type { EntryOut } from '../src/fuse/lowlevel.js';
import { MemFs } from './helpers/memfs.js';
import { cleanupMounts, run, withMount } from './helpers/fuse-mount.js';

after(cleanupMounts);

test('errno rejections keep their errno; anything else is EIO and reported to the logger', { timeout: 60_000 }, () => {
  const fs = new MemFs();
  const lookup = fs.lookup.bind(fs);
  fs.lookup = async (ctx, parent, name): Promise<EntryOut> => {
    switch (name) {
      case 'eacces': throw err('EACCES', 'no');
      case 'plain-object': throw { errno: 39 }; // ENOTEMPTY, from a plain object
      case 'plain-error': throw new Error('boom');
      case 'negative-errno': throw Object.assign(new Error('node style'), { errno: -2 });
      case 'bad-value': return {} as EntryOut; // not encodable
      default: return lookup(ctx, parent, name);
    }
  };
  const readlink = fs.readlink.bind(fs);
  fs.readlink = (ctx, ino) => {
    if (ino === fs.resolve('sync-throw')) throw err('ELOOP', 'thrown synchronously, not rejected');
    return readlink(ctx, ino);
  };
  const warnings: Array<{ obj: Record<string, unknown>; msg: string }> = [];
  const logger = { warn: (obj: object, msg: string) => void warnings.push({ obj: obj as Record<string, unknown>, msg }) };
  return withMount(fs, { logger }, async (m) => {
    const stat = async (name: string) => (await run(['stat', m.path(name)])).stderr;
    assert.match(await stat('eacces'), /Permission denied/);
    assert.match(await stat('plain-object'), /Directory not empty/);
    assert.match(await stat('missing'), /No such file or directory/);
    assert.equal(warnings.length, 0);
    assert.match(await stat('plain-error'), /Input\/output error/);
    assert.match(await stat('negative-errno'), /Input\/output error/);
    assert.match(await stat('bad-value'), /Input\/output error/);
    assert.deepEqual(warnings.map((w) => w.obj.op), ['lookup', 'lookup', 'lookup']);
    assert.equal((warnings[0]!.obj.err as Error).message, 'boom');
    assert.equal((warnings[1]!.obj.err as Error).message, 'node style');
    assert.ok(warnings[2]!.obj.err instanceof TypeError, 'an unencodable answer is reported');
    assert.ok(warnings.every((w) => /EIO/.test(w.msg)));
    // a handler that throws instead of rejecting is answered the same way
    assert.equal((await run(['ln', '-s', 'target', m.path('sync-throw')])).code, 0);
    assert.match((await run(['readlink', '-v', m.path('sync-throw')])).stderr, /Too many levels of symbolic links/);
    // the mount is fine afterwards
    assert.equal((await run(['bash', '-c', `echo ok > ${m.path('f')} && cat ${m.path('f')}`])).stdout, 'ok\n');
  });
});
