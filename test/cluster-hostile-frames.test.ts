/**
 * Every server treats every frame as hostile: after 10,000+ random, truncated
 * and mutated frames against the live MGS, MDS and OSS processes, they still
 * answer, and the namespace and file data are exactly as before.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { TestCluster } from './helpers/cluster.js';
import { fuzzServer } from './helpers/frame-fuzzer.js';
import { pseudoRandomBuffer } from './helpers/data.js';
import { ROOT_FID, fidToString } from '../src/common/fid.js';
import { Opc } from '../src/ptlrpc/opcodes.js';
import type { MsgHeader } from '../src/ptlrpc/types.js';
import type { StriaClient } from '../src/client/client.js';

const root = { uid: 0, gid: 0 };
let cluster: TestCluster;
let c: StriaClient;

before(async () => {
  cluster = await TestCluster.start({ osts: 2 });
  c = await cluster.mount();
});

after(async () => {
  await c?.unmount();
  await cluster?.stop();
});

async function snapshot(client: StriaClient): Promise<string> {
  const lines: string[] = [];
  const walk = async (fid: typeof ROOT_FID, path: string): Promise<void> => {
    const entries = [];
    for await (const e of client.listDir(fid)) entries.push(e);
    entries.sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const e of entries) {
      const a = await client.getattr(e.fid);
      let digest = '';
      if (a.type === 'reg') {
        const f = await client.open(a.fid);
        digest = (await client.read(f, 0, a.size)).toString('base64').slice(0, 64) + `:${a.size}`;
        await client.close(f);
      }
      lines.push(`${path}/${e.name} ${fidToString(a.fid)} ${a.type} ${a.mode.toString(8)} ${a.nlink} ${a.uid}:${a.gid} ${digest}`);
      if (a.type === 'dir') await walk(a.fid, `${path}/${e.name}`);
    }
  };
  await walk(client.root, '');
  return lines.join('\n');
}

const req = (opc: number, b: unknown, xid = 1): MsgHeader => ({ v: 1, t: 4711, opc, xid, b });

test('10,000+ hostile frames leave every server answering and the namespace intact', { timeout: 600_000 }, async () => {
  const d = await c.mkdir(c.root, 'keep', { mode: 0o755, cred: root });
  for (let i = 0; i < 5; i++) {
    const f = await c.create(d.fid, `file${i}`, { mode: 0o644, cred: root, layout: { stripeCount: 2, stripeSize: 65536 } });
    await c.write(f, 0, pseudoRandomBuffer(200_000 + i, i + 1));
    await c.close(f);
  }
  await c.symlink(d.fid, 'link', 'file0', root);
  const before = await snapshot(c);
  const file0 = await c.lookup(d.fid, 'file0');
  const obj = file0.layout!.objects[0]!;

  const fs = cluster.fsname;
  const targets: Array<{ name: string; port: number; valid: MsgHeader[] }> = [
    {
      name: 'mgs',
      port: cluster.ports.mgs,
      valid: [req(Opc.MGS_CONNECT, { target: 'MGS', uuid: 'fuzz-mgs' }), req(Opc.MGS_CONFIG_READ, { fsname: fs }, 2), req(Opc.OBD_PING, {}, 3)],
    },
    {
      name: 'mds',
      port: cluster.ports.mds,
      valid: [
        req(Opc.MDS_CONNECT, { target: `${fs}-MDT0000`, uuid: 'fuzz-mds', data: { fsname: fs } }),
        req(Opc.MDS_GETATTR, { fid: d.fid }, 2),
        req(Opc.MDS_GETATTR_NAME, { parent: d.fid, name: 'file1' }, 3),
        req(Opc.MDS_READPAGE, { fid: d.fid, cookie: 0, limit: 10 }, 4),
        req(Opc.MDS_GETXATTR, { fid: file0.fid, name: 'lustre.lov' }, 5),
      ],
    },
    ...cluster.ports.oss.map((port, i) => ({
      name: `oss${i}`,
      port,
      valid: [
        req(Opc.OST_CONNECT, { target: `${fs}-OST000${i}`, uuid: `fuzz-oss${i}`, data: { fsname: fs } }),
        req(Opc.OST_GETATTR, { seq: obj.seq, oid: obj.oid }, 2),
        req(Opc.OST_READ, { seq: obj.seq, oid: obj.oid, offset: 0, length: 4096 }, 3),
        req(Opc.OST_STATFS, {}, 4),
      ],
    })),
  ];

  let total = 0;
  for (const [i, t] of targets.entries()) {
    const r = await fuzzServer('127.0.0.1', t.port, { frames: 2600, seed: 1000 + i, validHeaders: t.valid });
    total += r.sent;
  }
  console.log(`# sent ${total} hostile frames to ${targets.length} servers`);
  assert.ok(total >= 10_000, `at least 10,000 frames sent (${total})`);

  for (const name of cluster.roles.keys()) {
    const proc = cluster.roles.get(name)!.proc!;
    assert.equal(proc.exitCode, null, `${name} is still running`);
  }
  const fresh = await cluster.mount();
  try {
    assert.equal(await snapshot(fresh), before, 'namespace and data unchanged, seen by a new client');
  } finally {
    await fresh.unmount();
  }
  assert.equal(await snapshot(c), before, 'the existing client still works too');
});
