/** lfs hsm_*: what hsm_action prints, and how the hsm commands read their command lines. */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatHsmAction, parseHsmFlags, parseHsmRequest } from '../src/cli/lfs-hsm.js';
import { UsageError } from '../src/cli/lfs-getopt.js';
import { runLfs } from '../src/cli/lfs.js';
import { LfsSession } from '../src/cli/lfs-session.js';
import { HS } from '../src/hsm/flags.js';

let base: string;
let mountinfo: string;

before(() => {
  base = realpathSync(mkdtempSync(join(tmpdir(), 'lfs-hsm-fmt-')));
  mountinfo = join(base, 'mountinfo');
  writeFileSync(mountinfo, '27 1 8:1 / / rw - ext4 /dev/sda1 rw\n');
  writeFileSync(join(base, 'plain'), 'not on stria');
});

after(() => {
  if (base) rmSync(base, { recursive: true, force: true });
});

async function lfs(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const session = new LfsSession({ mountinfo });
  try {
    const code = await runLfs(args, { stdout: (s) => (out += s), stderr: (s) => (err += s), session });
    return { code, out, err };
  } finally {
    await session.close();
  }
}

test('hsm_action: NOOP alone, bytes moved while an archive or restore runs, the extent otherwise', () => {
  assert.equal(formatHsmAction({ action: 'NOOP', bytesMoved: 0, extent: { offset: 0, length: 0 } }), 'NOOP');
  assert.equal(
    formatHsmAction({ action: 'ARCHIVE', status: 'STARTED', phase: 'RUNNING', bytesMoved: 1048576, extent: { offset: 0, length: Number.MAX_SAFE_INTEGER } }),
    'ARCHIVE RUNNING (1048576 bytes moved)',
  );
  assert.equal(
    formatHsmAction({ action: 'RESTORE', status: 'WAITING', phase: 'WAITING', bytesMoved: 0, extent: { offset: 0, length: Number.MAX_SAFE_INTEGER } }),
    'RESTORE WAITING (from 0 to EOF)',
  );
  assert.equal(formatHsmAction({ action: 'RESTORE', status: 'WAITING', bytesMoved: 0, extent: { offset: 0, length: -1 } }), 'RESTORE WAITING (from 0 to EOF)', 'the phase follows the status when absent');
  assert.equal(formatHsmAction({ action: 'ARCHIVE', status: 'STARTED', bytesMoved: 4096, extent: { offset: 0, length: -1 } }), 'ARCHIVE RUNNING (4096 bytes moved)');
  assert.equal(formatHsmAction({ action: 'REMOVE', status: 'STARTED', phase: 'RUNNING', bytesMoved: 0, extent: { offset: 4096, length: 8192 } }), 'REMOVE RUNNING (from 4096 to 12288)');
  assert.equal(formatHsmAction({ action: 'ARCHIVE', status: 'SUCCEED', phase: 'DONE', bytesMoved: 10, extent: { offset: 0, length: 10 } }), 'ARCHIVE DONE (from 0 to 10)');
});

test('hsm_set / hsm_clear: each flag option names its bit; --archive-id must be a number', () => {
  const p = parseHsmFlags(['--norelease', '--noarchive', '--dirty', '--exists', '--archived', '--lost', '--archive-id', '3', 'f', 'g']);
  assert.equal(p.mask, HS.NORELEASE | HS.NOARCHIVE | HS.DIRTY | HS.EXISTS | HS.ARCHIVED | HS.LOST);
  assert.equal(p.archiveId, 3);
  assert.deepEqual(p.files, ['f', 'g']);
  assert.equal(parseHsmFlags(['-rad', 'f']).mask, HS.NORELEASE | HS.NOARCHIVE | HS.DIRTY, 'short options group as in lfs');
  assert.equal(parseHsmFlags(['-A', '-e', '-l', 'f']).mask, HS.ARCHIVED | HS.EXISTS | HS.LOST);
  assert.throws(() => parseHsmFlags(['f']), UsageError, 'no flag: usage');
  assert.throws(() => parseHsmFlags(['--dirty']), UsageError, 'no file: usage');
  assert.throws(() => parseHsmFlags(['--archive-id', 'x', '--dirty', 'f']), /invalid archive_id: 'x'/);
  assert.equal(parseHsmFlags(['--help']).help, true);
});

test('hsm requests: --archive only for archive and remove, --mntpath takes FIDs, --filelist alone is enough', () => {
  const a = parseHsmRequest('archive', ['--archive', '2', '--data', 'tag=x', 'f1', 'f2']);
  assert.deepEqual(a, { help: false, archiveId: 2, data: 'tag=x', items: ['f1', 'f2'] });
  assert.equal(parseHsmRequest('remove', ['-a', '5', 'f']).archiveId, 5);
  assert.throws(() => parseHsmRequest('restore', ['--archive', '1', 'f']), /-a is supported only when archiving or removing/);
  assert.throws(() => parseHsmRequest('archive', ['--archive', 'one', 'f']), /invalid archive number 'one'/);
  const r = parseHsmRequest('remove', ['--mntpath', '/mnt/fs', '--archive', '1', '[0x200000400:0x1:0x0]']);
  assert.equal(r.mntpath, '/mnt/fs');
  assert.deepEqual(r.items, ['[0x200000400:0x1:0x0]']);
  assert.equal(parseHsmRequest('archive', ['--filelist', '/tmp/list']).filelist, '/tmp/list');
  assert.throws(() => parseHsmRequest('archive', []), UsageError);
  assert.throws(() => parseHsmRequest('cancel', ['--bogus', 'f']), /unrecognized option '--bogus'/);
});

test('command lines lfs cannot use show the usage and exit 4', async () => {
  const none = await lfs('hsm_archive');
  assert.equal(none.code, 4);
  assert.equal(none.err, 'usage: hsm_archive [--filelist FILELIST] [--data DATA] [--archive NUM] <file|MGSNID:/FSNAME/PATH> ...\n');
  const noflag = await lfs('hsm_set', 'f');
  assert.equal(noflag.code, 4);
  assert.match(noflag.err, /^usage: hsm_set \[--norelease\]/);
  const restoreArchive = await lfs('hsm_restore', '--archive', '1', 'f');
  assert.equal(restoreArchive.code, 4);
  assert.equal(restoreArchive.err, 'lfs: error: -a is supported only when archiving or removing\nusage: hsm_restore [--filelist FILELIST] [--data DATA] <file|MGSNID:/FSNAME/PATH> ...\n');
  const state = await lfs('hsm_state');
  assert.equal(state.code, 4);
  const help = await lfs('hsm_release', '--help');
  assert.equal(help.code, 0);
  assert.match(help.out, /^usage: hsm_release /);
  assert.match((await lfs('help')).out, /hsm_archive, hsm_cancel, hsm_clear, hsm_release, hsm_remove, hsm_restore, hsm_set, hsm_state/);
});

test('files that cannot be looked up: Lustre\'s line, the errno as exit status, nothing sent', async () => {
  const missing = join(base, 'missing');
  const st = await lfs('hsm_state', missing);
  assert.equal(st.code, 2);
  assert.equal(st.err, `lfs hsm_state: can't get hsm state for ${missing}: No such file or directory\n`);
  const ar = await lfs('hsm_archive', missing);
  assert.equal(ar.code, 2);
  assert.equal(ar.err, `lfs hsm_archive: Cannot stat ${missing}: No such file or directory\n`);
  const notStria = await lfs('hsm_release', join(base, 'plain'));
  assert.equal(notStria.code, 22);
  assert.equal(notStria.err, `lfs hsm_release: Cannot read FID of ${join(base, 'plain')}: Invalid argument\n`);
  const act = await lfs('hsm_action', join(base, 'plain'));
  assert.equal(act.code, 22);
  assert.equal(act.err, `lfs hsm_action: can't get hsm action for ${join(base, 'plain')}: Invalid argument\n`);
  const list = await lfs('hsm_archive', '--filelist', join(base, 'nolist'));
  assert.equal(list.code, 2);
  assert.equal(list.err, `lfs hsm_archive: Cannot read the file list ${join(base, 'nolist')}: No such file or directory\n`);
  const badFid = await lfs('hsm_remove', '--mntpath', 'x@tcp:/fs', 'nofid');
  assert.equal(badFid.code, 22);
});
