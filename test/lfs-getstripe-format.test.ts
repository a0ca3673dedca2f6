/**
 * lfs getstripe prints layouts byte for byte as Lustre's liblustreapi does
 * (lov_dump_user_lmm_header/_v1v3), compared with Lustre-format fixtures in
 * test/fixtures/getstripe-*.txt (reference §2.6).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { V, V_DEFAULT, dirLovView, fileLovView, formatDf, formatLov } from '../src/cli/lfs-format.js';
import type { Raid0Layout } from '../src/common/layout.js';

const fixtures = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'test', 'fixtures');
const fixture = (name: string) => readFileSync(join(fixtures, name), 'utf8');

const fid = { seq: 0x200000400, oid: 1, ver: 0 };
// two IDIF objects, as MDT0 allocates them: OST1 then OST0, object 3 on each
const twoStripes: Raid0Layout = {
  pattern: 'raid0', stripeSize: 4194304, stripeCount: 2, stripeOffset: -1, layoutGen: 0,
  objects: [{ ostIdx: 1, seq: 0x100010000, oid: 3 }, { ostIdx: 0, seq: 0x100000000, oid: 3 }],
};
const fsDefault = { stripeCount: 1, stripeSize: 4194304 };

test('a plain file, default options (the reference example)', () => {
  assert.equal(formatLov(fileLovView(fid, twoStripes), '/mnt/lustre/f1', V_DEFAULT, { depth: 1 }), fixture('getstripe-plain.txt'));
});

test('-v adds lmm_magic, lmm_seq, lmm_object_id and lmm_fid', () => {
  assert.equal(formatLov(fileLovView(fid, twoStripes), '/mnt/lustre/f1', V_DEFAULT | V.DETAIL, { depth: 1 }), fixture('getstripe-verbose.txt'));
});

test('-y prints YAML: no path, objects as l_ost_idx/l_fid, no blank line', () => {
  assert.equal(formatLov(fileLovView(fid, twoStripes), '/mnt/lustre/f1', V_DEFAULT, { depth: 1, yaml: true }), fixture('getstripe-yaml.txt'));
});

test('a pool adds lmm_pool; objects of a normal sequence print their group in hex', () => {
  const layout: Raid0Layout = {
    pattern: 'raid0', stripeSize: 1048576, stripeCount: 1, stripeOffset: 3, layoutGen: 2, pool: 'flash',
    objects: [{ ostIdx: 3, seq: 0x280000400, oid: 1234 }],
  };
  assert.equal(formatLov(fileLovView({ seq: 0x200000400, oid: 2, ver: 0 }, layout), '/mnt/lustre/f2', V_DEFAULT, { depth: 1 }), fixture('getstripe-pool.txt'));
  assert.match(formatLov(fileLovView(fid, layout), 'f', V_DEFAULT | V.DETAIL, { depth: 1 }), /^lmm_magic:         0x0BD30BD0$/m, 'a pool makes it a v3 layout');
});

test('-q prints the path and the objects only', () => {
  assert.equal(formatLov(fileLovView(fid, twoStripes), '/mnt/lustre/f1', V.OBJID, { depth: 1 }), fixture('getstripe-quiet.txt'));
});

test('single fields print the bare value; several print their labels', () => {
  const view = fileLovView(fid, twoStripes);
  const at0 = (v: number) => formatLov(view, '/mnt/lustre/f1', v, { depth: 0 });
  assert.equal(at0(V.COUNT), '2\n\n');
  assert.equal(at0(V.SIZE), '4194304\n\n');
  assert.equal(at0(V.OFFSET), '1\n\n');
  assert.equal(at0(V.GENERATION), '0\n\n');
  assert.equal(at0(V.PATTERN), 'raid0\n\n');
  assert.equal(at0(V.DFID), '[0x200000400:0x1:0x0]\n\n');
  assert.equal(at0(V.POOL), '\n', 'no pool: nothing but the closing newline');
  assert.equal(at0(V.COUNT | V.SIZE), 'lmm_stripe_count:  2\nlmm_stripe_size:   4194304\n\n');
});

test('directory defaults print on one line, without the path at depth 0', () => {
  assert.equal(formatLov(dirLovView(fid, {}, fsDefault, { inherited: true }), '/mnt/lustre/d', V_DEFAULT, { depth: 0 }), fixture('getstripe-dir-default.txt'));
  const own = dirLovView(fid, { stripeCount: 4, stripeSize: 1048576, stripeOffset: 2, pool: 'flash' }, fsDefault);
  assert.equal(formatLov(own, '/mnt/lustre/d', V_DEFAULT, { depth: 1 }), fixture('getstripe-dir-pool.txt'));
  const dirFid = { seq: 0x200000400, oid: 2, ver: 0 };
  assert.equal(formatLov(dirLovView(dirFid, {}, fsDefault, { inherited: true }), '/mnt/lustre/d', V_DEFAULT | V.DETAIL, { depth: 1 }), fixture('getstripe-dir-verbose.txt'));
  assert.equal(formatLov(dirLovView(fid, {}, fsDefault, { raw: true }), 'd', V_DEFAULT, { depth: 0 }), 'stripe_count:  0 stripe_size:   0 pattern:       raid0 stripe_offset: -1\n\n', '-R: what is stored');
  assert.equal(formatLov(own, 'd', V.COUNT, { depth: 0 }), '4\n\n');
  assert.equal(formatLov(own, 'd', V_DEFAULT, { depth: 0, yaml: true }), 'stripe_count:  4\nstripe_size:   1048576\npattern:       raid0\nstripe_offset: 2\npool:          flash\n');
});

test('df: columns, a blank line before and after filesystem_summary', () => {
  const rows = [
    { uuid: 'testfs-MDT0000_UUID', total: 1279104, used: 5312, avail: 1154688, mount: '/mnt/testfs[MDT:0]' },
    { uuid: 'testfs-OST0000_UUID', total: 41256144, used: 1068976, avail: 38059808, mount: '/mnt/testfs[OST:0]' },
    { uuid: 'testfs-OST0001_UUID', total: 0, used: 0, avail: 0, mount: '', inactive: true },
  ];
  assert.equal(
    formatDf(rows, { uuid: '', total: 41256144, used: 1068976, avail: 38059808, mount: '/mnt/testfs' }, {}),
    'UUID                   1K-blocks        Used   Available Use% Mounted on\n' +
      'testfs-MDT0000_UUID      1279104        5312     1154688   1% /mnt/testfs[MDT:0]\n' +
      'testfs-OST0000_UUID     41256144     1068976    38059808   3% /mnt/testfs[OST:0]\n' +
      'testfs-OST0001      : inactive device\n' +
      '\n' +
      'filesystem_summary:     41256144     1068976    38059808   3% /mnt/testfs\n' +
      '\n',
  );
});
