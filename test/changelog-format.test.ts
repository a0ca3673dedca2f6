/** `lfs changelog` lines, exactly as Lustre's lfs prints them (lustre manual, "Changelogs"). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatChangelogRecord } from '../src/cli/lfs-changelog.js';
import { CL, CLF_UNLINK_LAST, hsmRecordFlags, CLF_HSM_EVENT } from '../src/mds/changelog-types.js';
import type { ChangelogRecord } from '../src/mds/changelog-types.js';

const at = (iso: string, nsec: number) => ({ sec: Date.parse(iso) / 1000, nsec });
const fid = (seq: number, oid: number) => ({ seq, oid, ver: 0 });

test('namespace records as in the manual', () => {
  const creat: ChangelogRecord = {
    index: 2, type: CL.CREAT, time: at('2018-01-09T15:15:36Z', 687592024), flags: 0, tfid: fid(0x200000402, 2),
    jobid: 'cp.500', uid: 500, gid: 500, nid: '10.128.11.159@tcp', pfid: fid(0x200000402, 1), name: 'chloe.jpg',
  };
  assert.equal(
    formatChangelogRecord(creat),
    '2 01CREAT 15:15:36.687592024 2018.01.09 0x0 t=[0x200000402:0x2:0x0] j=cp.500 ef=0xf u=500:500 nid=10.128.11.159@tcp p=[0x200000402:0x1:0x0] chloe.jpg',
  );
  const rmdir: ChangelogRecord = {
    index: 4, type: CL.RMDIR, time: at('2018-01-09T15:15:46Z', 468790091), flags: CLF_UNLINK_LAST, tfid: fid(0x200000402, 1),
    uid: 500, gid: 500, nid: '10.128.11.159@tcp', pfid: fid(0x200000007, 1), name: 'pics',
  };
  assert.equal(
    formatChangelogRecord(rmdir),
    '4 07RMDIR 15:15:46.468790091 2018.01.09 0x1 t=[0x200000402:0x1:0x0] ef=0xf u=500:500 nid=10.128.11.159@tcp p=[0x200000007:0x1:0x0] pics',
  );
});

test('renames show the source; HSM records pad the type name; no nid prints as Lustre does', () => {
  const renme: ChangelogRecord = {
    index: 9, type: CL.RENME, time: at('2024-02-29T00:00:05Z', 5), tfid: fid(0, 0), uid: 0, gid: 0, nid: '127.0.0.1@tcp',
    pfid: fid(0x200000007, 1), name: 'new', sfid: fid(0x200000400, 3), spfid: fid(0x200000400, 1), sname: 'old',
  };
  assert.equal(
    formatChangelogRecord(renme),
    '9 08RENME 00:00:05.000000005 2024.02.29 0x0 t=[0x0:0x0:0x0] ef=0xf u=0:0 nid=127.0.0.1@tcp p=[0x200000007:0x1:0x0] new s=[0x200000400:0x3:0x0] sp=[0x200000400:0x1:0x0] old',
  );
  const hsm: ChangelogRecord = {
    index: 12, type: CL.HSM, time: at('2025-12-31T23:59:59Z', 999999999), tfid: fid(0x200000400, 7), flags: hsmRecordFlags(CLF_HSM_EVENT.RELEASE, 0, false),
  };
  assert.equal(formatChangelogRecord(hsm), '12 16HSM   23:59:59.999999999 2025.12.31 0x180 t=[0x200000400:0x7:0x0] ef=0xf u=0:0 nid=0@<0:0>');
});
