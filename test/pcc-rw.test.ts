/**
 * Read-write PCC (reference §6) on a real FUSE mount, with a second client on the cluster:
 * - `lfs pcc attach -w` archives the file into this mount's agent and releases it: state
 *   readwrite, hsm_state released exists archived with archive_id = rwid;
 * - writes on this mount land in the copy (its OST write byte counters stay flat) and
 *   stat shows the copy's size;
 * - a read on the other client restores the data through this mount's agent and gets the
 *   new data; afterwards this mount's state is none and the copy is gone;
 * - `lfs pcc detach` restores too: without -k the copy is deleted, with -k it is kept;
 * - a read-write rule attaches new files at creation; the copy's size reaches the MDT when
 *   this mount closes the file, so other clients' stat shows it before any restore.
 */
import { describe, test, before } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TestCluster } from './helpers/cluster.js';
import type { TestMount } from './helpers/mount.js';
import { mountSkip } from './helpers/two-mounts.js';
import { LCTL, LFS, PccMount, pccTestbed, tool } from './helpers/pcc-mount.js';
import { pseudoRandomBuffer } from './helpers/data.js';
import { Opc } from '../src/ptlrpc/opcodes.js';
import { Errno } from '../src/common/errno.js';

const MIB = 1 << 20;
const RWID = 7;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('read-write PCC', { skip: mountSkip }, () => {
  const bed = pccTestbed('stria-pcc-rw-');
  let cluster: TestCluster;
  let a: PccMount;
  let b: TestMount;
  let work: string;
  let pccdir: string;
  before(() => {
    ({ cluster, a, b, work, pccdir } = bed);
  });
  const { ok, fileSha } = bed;

  async function putFile(name: string, data: Buffer): Promise<void> {
    const src = join(work, `src-${name}`);
    await writeFile(src, data);
    await ok(`cp ${src} ${b.path(name)}`);
  }

  async function pccFileOf(path: string): Promise<string> {
    const state = (await ok(`${LFS} pcc state ${path}`)).trim();
    const m = /^file: .*, type: readwrite, PCC_file: (\/[0-9a-f]{4}(?:\/[0-9a-f]{4}){5}\/0x[0-9a-f]+:0x[0-9a-f]+:0x0), open_count: 0, flags: 1$/.exec(state);
    assert.ok(m, state);
    return join(pccdir, m[1]!);
  }

  test('setup: a read-write backend', async () => {
    await ok(`${LCTL} pcc add ${a.mountpoint} ${pccdir} -p "fname={*.rw} rwid=${RWID}"`);
    assert.match(await ok(`${LCTL} pcc list ${a.mountpoint}`), new RegExp(`rwid: ${RWID}\\n`));
  });

  test('attach -w, local writes, then the other client reads through a restore', async () => {
    const data = pseudoRandomBuffer(2 * MIB + 4321, 21);
    await putFile('f1', data);
    await ok(`${LFS} pcc attach -w -i ${RWID} ${a.path('f1')}`);
    const copy = await pccFileOf(a.path('f1'));
    assert.equal(sha(await readFile(copy)), sha(data), 'the copy holds the data');
    assert.equal((await ok(`${LFS} hsm_state ${a.path('f1')}`)).trim(), `${a.path('f1')}: (0x0000000d) released exists archived, archive_id:${RWID}`);

    const before = a.ostBytes();
    const patch = pseudoRandomBuffer(MIB, 22);
    const tail = pseudoRandomBuffer(5000, 23);
    await writeFile(join(work, 'patch'), patch);
    await writeFile(join(work, 'tail'), tail);
    await ok(`dd if=${join(work, 'patch')} of=${a.path('f1')} bs=1M seek=1 count=1 conv=notrunc,fsync status=none`);
    await ok(`cat ${join(work, 'tail')} >> ${a.path('f1')}`);
    const expected = Buffer.concat([data.subarray(0, MIB), patch, data.subarray(2 * MIB), tail]);
    assert.equal(a.ostBytes().written, before.written, 'no byte written to the OSTs');
    assert.equal(sha(await readFile(copy)), sha(expected), 'the writes are in the copy');
    assert.equal((await ok(`stat -c %s ${a.path('f1')}`)).trim(), String(expected.length), 'stat shows the copy size');
    assert.equal(await fileSha(a.path('f1')), sha(expected), 'this mount reads its writes');
    assert.equal(a.ostBytes().read, before.read, 'from the copy');

    // the other client: a released file, restored by A's agent from the copy
    assert.equal(await fileSha(b.path('f1')), sha(expected), 'the other client reads the new data');
    assert.match(await ok(`${LFS} pcc state ${a.path('f1')}`), /^file: .*, type: none\n$/);
    await assert.rejects(stat(copy), /ENOENT/, 'the restore detached and deleted the copy');
    assert.doesNotMatch(await ok(`${LFS} hsm_state ${a.path('f1')}`), /released|archived/, 'no HSM copy is left to rely on');
    assert.equal((await ok(`stat -c %s ${b.path('f1')}`)).trim(), String(expected.length));
    assert.equal(await fileSha(a.path('f1')), sha(expected), 'and A reads the same through Lustre');

    // what A's kernel cached while the copy served must not outlive the detach
    await ok(`printf 'from B' | dd of=${b.path('f1')} bs=6 conv=notrunc,fsync status=none`);
    assert.equal(await ok(`head -c 6 ${a.path('f1')}`), 'from B');
  });

  test('detach without -k restores and deletes the copy', async () => {
    const data = pseudoRandomBuffer(700_000, 31);
    await putFile('g', data);
    await ok(`${LFS} pcc attach -w ${a.path('g')}`);
    const copy = await pccFileOf(a.path('g'));
    await ok(`printf 'local!' | dd of=${a.path('g')} bs=6 conv=notrunc status=none`);
    const expected = Buffer.concat([Buffer.from('local!'), data.subarray(6)]);
    await ok(`${LFS} pcc detach ${a.path('g')}`);
    assert.match(await ok(`${LFS} pcc state ${a.path('g')}`), /type: none/);
    await assert.rejects(stat(copy), /ENOENT/);
    assert.doesNotMatch(await ok(`${LFS} hsm_state ${a.path('g')}`), /released/);
    assert.equal(await fileSha(b.path('g')), sha(expected));
  });

  test('detach -k restores and keeps the copy', async () => {
    const data = pseudoRandomBuffer(300_000, 41);
    await putFile('h', data);
    await ok(`${LFS} pcc attach -w -i ${RWID} ${a.path('h')}`);
    const copy = await pccFileOf(a.path('h'));
    await ok(`${LFS} pcc detach -k ${a.path('h')}`);
    assert.match(await ok(`${LFS} pcc state ${a.path('h')}`), /type: none/);
    assert.equal(sha(await readFile(copy)), sha(data), '-k kept the copy');
    assert.equal(await fileSha(b.path('h')), sha(data));
  });

  test('a read-write rule attaches new files at creation', async () => {
    const before = a.ostBytes();
    await ok(`printf 'made here' > ${a.path('new.rw')}`);
    const copy = await pccFileOf(a.path('new.rw'));
    assert.equal((await readFile(copy)).toString(), 'made here');
    assert.equal(a.ostBytes().written, before.written, 'the data never went to the OSTs');
    assert.equal((await ok(`stat -c %s ${b.path('new.rw')}`)).trim(), '9', 'the size reached the MDT at close (lazy size)');
    assert.match(await ok(`${LFS} pcc state ${a.path('new.rw')}`), /type: readwrite/, 'a stat does not restore');
    assert.equal((await ok(`cat ${b.path('new.rw')}`)), 'made here', 'the other client gets it by restore');
    assert.match(await ok(`${LFS} pcc state ${a.path('new.rw')}`), /type: none/);
    await ok(`printf x > ${a.path('new.txt')}`);
    assert.match(await ok(`${LFS} pcc state ${a.path('new.txt')}`), /type: none/, 'names the rule does not match are not attached');
  });

  test('attach of an attached file fails with EEXIST', async () => {
    await putFile('k', Buffer.from('k'));
    await ok(`${LFS} pcc attach -w ${a.path('k')}`);
    const r = await tool(cluster, `${LFS} pcc attach -w ${a.path('k')}`);
    assert.equal(r.code, 17, r.stderr);
    assert.match(r.stderr, /cannot attach '.*k' to PCC with archive ID '0': File (already )?exists/);
    // only the agent of the file's archive may tell the MDT its size
    const fid = (await a.client.lookup(a.client.root, 'k')).fid;
    const other = await cluster.mount();
    try {
      await assert.rejects(
        other.mdc.imp.request(Opc.MDS_HSM_REQUEST, { action: 'pcc_size', fid, size: 12345, mtime: { sec: 1, nsec: 0 } }),
        (e: unknown) => (e as { errno?: number }).errno === Errno.EPERM,
      );
    } finally {
      await other.unmount();
    }
    assert.equal((await ok(`stat -c %s ${b.path('k')}`)).trim(), '1');
    await ok(`${LFS} pcc detach ${a.path('k')}`);
  });
});
