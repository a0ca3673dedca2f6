/**
 * Read-only PCC (reference §6) on a real FUSE mount, with a second client on the cluster:
 * - `lctl pcc add` a backend, `lfs pcc attach -r` copies the file into it (V1 layout path);
 * - `lfs pcc state` says readonly and names the copy;
 * - reads on this mount come from the copy: its OST read byte counters stay flat, and bytes
 *   changed in the copy behind the mount's back are what the mount reads;
 * - a write from the other client drops the copy (state none, file gone) and this mount
 *   then reads the new data from the OSTs;
 * - locks lost to the LRU only make the copy stale: the next read keeps it when the data
 *   version did not move, and drops it when it did;
 * - a read-only rule attaches on O_RDONLY open; `lfs pcc detach -k` keeps the copy.
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

const MIB = 1 << 20;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('read-only PCC', { skip: mountSkip }, () => {
  const bed = pccTestbed('stria-pcc-ro-');
  let cluster: TestCluster;
  let a: PccMount;
  let b: TestMount;
  let work: string;
  let pccdir: string;
  before(() => {
    ({ cluster, a, b, work, pccdir } = bed);
  });
  const { ok, fileSha } = bed;

  test('lctl pcc add / list', async () => {
    await ok(`${LCTL} pcc add ${a.mountpoint} ${pccdir} "fname={*.ro} roid=5"`);
    const list = await ok(`${LCTL} pcc list ${a.mountpoint}`);
    assert.match(list, new RegExp(`${pccdir}:\\n  rwid: 0\\n  roid: 5\\n`));
    assert.match(list, /autocache: fname=\{\*\.ro\}/);
    assert.match(await ok(`${LCTL} get_param -n llite.*.pcc`), new RegExp(`${pccdir}:\\n  rwid: 0\\n  roid: 5\\n`), 'llite.*.pcc lists it too');
    const dup = await tool(cluster, `${LCTL} pcc add ${a.mountpoint} ${pccdir} "roid=6"`);
    assert.notEqual(dup.code, 0, 'the same directory twice');
  });

  test('attach -r: reads come from the copy; a write elsewhere drops it', async () => {
    const data = pseudoRandomBuffer(3 * MIB + 123, 11);
    const src = join(work, 'data1');
    await writeFile(src, data);
    await ok(`cp ${src} ${b.path('f1')}`);

    await ok(`${LFS} pcc attach -r -i 5 ${a.path('f1')}`);
    const state = (await ok(`${LFS} pcc state ${a.path('f1')}`)).trim();
    const m = /^file: (.*), type: readonly, PCC_file: (\/[0-9a-f]{4}(?:\/[0-9a-f]{4}){5}\/0x[0-9a-f]+:0x[0-9a-f]+:0x0), open_count: 0, flags: 0$/.exec(state);
    assert.ok(m, state);
    assert.equal(m[1], a.path('f1'));
    const copy = join(pccdir, m[2]!);
    assert.equal(sha(await readFile(copy)), sha(data), 'the copy holds the file data');

    const before = a.ostBytes();
    assert.equal(await fileSha(a.path('f1')), sha(data));
    assert.equal(await fileSha(a.path('f1')), sha(data));
    assert.equal(a.ostBytes().read, before.read, 'no byte read from the OSTs while the copy serves');

    // B overwrites the first MiB (PW on an object: revokes A's PR, which drops the copy)
    const patch = pseudoRandomBuffer(MIB, 12);
    const patchFile = join(work, 'patch1');
    await writeFile(patchFile, patch);
    await ok(`dd if=${patchFile} of=${b.path('f1')} bs=1M count=1 conv=notrunc,fsync status=none`);
    assert.match(await ok(`${LFS} pcc state ${a.path('f1')}`), /^file: .*, type: none\n$/);
    await assert.rejects(stat(copy), /ENOENT/, 'the dropped copy is deleted');

    const expected = Buffer.concat([patch, data.subarray(MIB)]);
    assert.equal(await fileSha(a.path('f1')), sha(expected), 'A reads the new data');
    assert.ok(a.ostBytes().read > before.read, 'now from the OSTs');
  });

  test('the mount reads what the copy holds (the copy is the source, not a cache in front of the OSTs)', async () => {
    await ok(`head -c 50000 /dev/urandom > ${join(work, 'd0')} && cp ${join(work, 'd0')} ${b.path('f0')}`);
    await ok(`${LFS} pcc attach -r ${a.path('f0')}`);
    const rel = /PCC_file: (\S+),/.exec(await ok(`${LFS} pcc state ${a.path('f0')}`))![1]!;
    // marked behind the mount's back: nothing but the copy can answer with these bytes
    await ok(`printf 'PCC!' | dd of=${join(pccdir, rel)} bs=4 conv=notrunc status=none`);
    assert.equal(await ok(`head -c 4 ${a.path('f0')}`), 'PCC!');
    assert.notEqual(await ok(`head -c 4 ${b.path('f0')}`), 'PCC!', 'the file itself is unchanged');
    await ok(`${LFS} pcc detach ${a.path('f0')}`);
  });

  /** This mount's unused locks go as the LRU lets them go: no conflict, nobody asked. */
  async function lruDropAll(): Promise<void> {
    for (const ns of a.client.dlm.namespaces()) await ns.cancelUnused(() => true, 'lru');
  }

  test('locks lost to the LRU: the copy stays while the data version holds, and goes when it does not', async () => {
    await ok(`head -c 70000 /dev/urandom > ${join(work, 'd5')} && cp ${join(work, 'd5')} ${b.path('f5')} && cp ${join(work, 'd5')} ${b.path('f6')}`);
    await ok(`${LFS} pcc attach -r ${a.path('f5')} ${a.path('f6')}`);

    // f5: nothing changed; the next read takes the locks again and keeps the copy
    await lruDropAll();
    const rel = /PCC_file: (\S+),/.exec(await ok(`${LFS} pcc state ${a.path('f5')}`))![1]!;
    await ok(`printf 'LRU!' | dd of=${join(pccdir, rel)} bs=4 conv=notrunc status=none`);
    assert.equal(await ok(`head -c 4 ${a.path('f5')}`), 'LRU!', 'revalidated and still served from the copy');
    assert.match(await ok(`${LFS} pcc state ${a.path('f5')}`), /type: readonly/);

    // f6: written elsewhere while this mount held no lock: no callback came, the data version tells
    await lruDropAll();
    await ok(`printf 'new!' | dd of=${b.path('f6')} bs=4 conv=notrunc,fsync status=none`);
    assert.equal(await ok(`head -c 4 ${a.path('f6')}`), 'new!');
    assert.match(await ok(`${LFS} pcc state ${a.path('f6')}`), /type: none/);
    await ok(`${LFS} pcc detach ${a.path('f5')}`);
  });

  test('a local write detaches first and goes to the OSTs', async () => {
    await ok(`head -c 100000 /dev/urandom > ${join(work, 'd2')} && cp ${join(work, 'd2')} ${b.path('f2')}`);
    await ok(`${LFS} pcc attach -r ${a.path('f2')}`);
    assert.match(await ok(`${LFS} pcc state ${a.path('f2')}`), /type: readonly/);
    await ok(`printf hello | dd of=${a.path('f2')} bs=5 conv=notrunc,fsync status=none`);
    assert.match(await ok(`${LFS} pcc state ${a.path('f2')}`), /type: none/);
    assert.equal((await ok(`head -c 5 ${b.path('f2')}`)), 'hello', 'the other client sees the write');
  });

  test('a read-only rule attaches at O_RDONLY open; detach -k keeps the copy', async () => {
    await ok(`head -c 200000 /dev/urandom > ${join(work, 'd3')} && cp ${join(work, 'd3')} ${b.path('g.ro')}`);
    await ok(`cat ${a.path('g.ro')} > /dev/null`);
    let state = '';
    for (let i = 0; i < 200 && !/type: readonly/.test(state); i++) {
      state = await ok(`${LFS} pcc state ${a.path('g.ro')}`);
      if (!/type: readonly/.test(state)) await new Promise((r) => setTimeout(r, 50));
    }
    assert.match(state, /type: readonly/, 'attached by the rule (in the background)');
    const rel = /PCC_file: (\S+),/.exec(state)![1]!;
    await ok(`${LFS} pcc detach -k ${a.path('g.ro')}`);
    assert.match(await ok(`${LFS} pcc state ${a.path('g.ro')}`), /type: none/);
    assert.equal(sha(await readFile(join(pccdir, rel))), await fileSha(b.path('g.ro')), '-k kept the copy');
    // a file the rule does not match stays uncached
    await ok(`cp ${join(work, 'd3')} ${b.path('g.txt')} && cat ${a.path('g.txt')} > /dev/null`);
    assert.match(await ok(`${LFS} pcc state ${a.path('g.txt')}`), /type: none/);
  });

  test('errors as lfs prints them', async () => {
    const r = await tool(cluster, `${LFS} pcc attach -r -i 99 ${a.path('f1')}`);
    assert.equal(r.code, 2, 'ENOENT: no backend with that id');
    assert.equal(r.stderr.trim(), `lfs pcc attach: cannot attach '${a.path('f1')}' to PCC with archive ID '99': No such file or directory`);
    const none = await tool(cluster, `${LFS} pcc state ${a.path('nonexistent')}`);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /^lfs pcc state: cannot get PCC state of '.*nonexistent': No such file or directory$/m);
    const usage = await tool(cluster, `${LFS} pcc attach`);
    assert.equal(usage.code, 4);
  });

  test('lctl pcc del removes the backend', async () => {
    await ok(`${LCTL} pcc del ${a.mountpoint} ${pccdir}`);
    assert.doesNotMatch(await ok(`${LCTL} pcc list ${a.mountpoint}`), /roid/);
  });
});
