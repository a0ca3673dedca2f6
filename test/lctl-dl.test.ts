/**
 * lctl dl lists the devices of every Stria process on the node (daemons and
 * client mounts) as one numbered list in Lustre's format; -t adds the NIDs of
 * client devices; lctl dl FSNAME still lists the targets the MGS knows.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { formatNid } from '../src/lnet/nid.js';
import { TestCluster } from './helpers/cluster.js';
import { lctl } from './helpers/lctl.js';
import type { StriaClient } from '../src/client/client.js';
import { startClientControl, type ClientControl } from '../src/ctl/client-params.js';
import { LliteStats } from '../src/ctl/llite-stats.js';

let cluster: TestCluster;
let client: StriaClient;
let control: ClientControl;

before(async () => {
  cluster = await TestCluster.start({ osts: 2 });
  client = await cluster.mount();
  control = await startClientControl(client, new LliteStats(), { runDir: cluster.runDir });
  await client.statfs(); // connects every OSC
});

after(async () => {
  await control?.close();
  await client?.unmount();
  await cluster?.stop();
});

test('lctl dl numbers the devices of all local processes: MGS, MDS, OSSes, then clients', async () => {
  const fs = cluster.fsname;
  const inst = control.instance;
  const uuid = client.mdc.imp.clientUuid;
  const r = await lctl(cluster.runDir, 'dl');
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  const rows = lines.map((l) => {
    const m = /^([ \d]{3}) (UP|ST) (\S+) (\S+) (\S+) (\d+)$/.exec(l);
    assert.ok(m, `'${l}' is a device line`);
    return { idx: Number(m[1]), type: m[3]!, name: m[4]!, uuid: m[5]!, ref: Number(m[6]) };
  });
  assert.deepEqual(rows.map((d) => d.idx), rows.map((_, i) => i), 'numbered 0..n-1');
  const mgs = `MGC${formatNid(cluster.mgsNid)}`;
  assert.deepEqual(
    rows.map((d) => `${d.type} ${d.name}`),
    [
      'mgs MGS',
      `mgc ${mgs}`,
      `mdt ${fs}-MDT0000`,
      `lod ${fs}-MDT0000-mdtlov`,
      `osp ${fs}-OST0000-osc-MDT0000`,
      `osp ${fs}-OST0001-osc-MDT0000`,
      // the two OSS processes list in pid order
      ...rows.filter((d) => d.type === 'obdfilter').map((d) => `obdfilter ${d.name}`),
      `lov ${fs}-clilov-${inst}`,
      `mdc ${fs}-MDT0000-mdc-${inst}`,
      `osc ${fs}-OST0000-osc-${inst}`,
      `osc ${fs}-OST0001-osc-${inst}`,
    ],
  );
  assert.deepEqual(rows.filter((d) => d.type === 'obdfilter').map((d) => d.name).sort(), [`${fs}-OST0000`, `${fs}-OST0001`]);
  for (const d of rows.filter((x) => x.type === 'obdfilter')) {
    assert.equal(d.uuid, `${d.name}_UUID`);
    assert.equal(d.ref, 2, 'the MDS and the client are connected to each OST');
  }
  for (const d of rows.filter((x) => ['lov', 'mdc', 'osc'].includes(x.type))) assert.equal(d.uuid, uuid, 'client devices carry the mount uuid');
  assert.match(lines[0]!, /^  0 UP mgs MGS MGS \d+$/);
});

test('lctl dl -t adds the connected NID to client-side devices', async () => {
  const r = await lctl(cluster.runDir, 'dl', '-t');
  assert.equal(r.code, 0, r.stderr);
  const oscs = r.stdout.split('\n').filter((l) => / osc /.test(l));
  assert.equal(oscs.length, 2);
  for (const [i, l] of oscs.entries()) assert.ok(l.endsWith(` 127.0.0.1:${cluster.ports.oss[i]}@tcp`), l);
  const mdc = r.stdout.split('\n').find((l) => / mdc /.test(l))!;
  assert.ok(mdc.endsWith(` 127.0.0.1:${cluster.ports.mds}@tcp`), mdc);
  assert.match(r.stdout, /^ +\d+ UP obdfilter \S+ \S+ \d+$/m, 'server targets have no connection column');
});

test('lctl dl FSNAME still lists the targets registered on the MGS', async () => {
  const r = await lctl(cluster.runDir, '--mgs', formatNid(cluster.mgsNid), 'dl', cluster.fsname);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  assert.equal(lines.length, 3);
  assert.match(lines[0]!, new RegExp(`^  0 UP mdt ${cluster.fsname}-MDT0000 \\S+ 127\\.0\\.0\\.1:${cluster.ports.mds}@tcp$`));
  assert.match(lines[1]!, new RegExp(`^  1 UP obdfilter ${cluster.fsname}-OST0000 \\S+ 127\\.0\\.0\\.1:${cluster.ports.oss[0]}@tcp$`));
});
