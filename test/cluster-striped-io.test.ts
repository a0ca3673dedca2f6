/**
 * MGS + MDS + 3 OSS as separate processes on loopback: a file striped over the
 * three OSTs holds exactly what was written, each object holds exactly the
 * bytes the striping math assigns to it, and everything survives kill -9 and
 * restart of every server.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TestCluster } from './helpers/cluster.js';
import { pseudoRandomBuffer, mibPerSec } from './helpers/data.js';
import { fileOffset } from '../src/common/layout.js';
import type { StriaClient, OpenFile } from '../src/client/client.js';

const MiB = 1024 * 1024;
const SIZE = 64 * MiB;
const CHUNK = 8 * MiB;
const data = pseudoRandomBuffer(SIZE, 0x5727a);
const root = { uid: 0, gid: 0 };

let cluster: TestCluster;
let client: StriaClient;
let file: OpenFile;

before(async () => {
  cluster = await TestCluster.start({ osts: 3 });
  client = await cluster.mount();
});

after(async () => {
  await client?.unmount();
  await cluster?.stop();
});

async function readAll(c: StriaClient, f: OpenFile): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (let off = 0; off < SIZE; off += CHUNK) parts.push(await c.read(f, off, CHUNK));
  return Buffer.concat(parts);
}

test('64 MiB written to a 3-stripe 1 MiB-stripe file reads back equal', async () => {
  const dir = await client.mkdir(client.root, 'striped', { mode: 0o755, cred: root });
  file = await client.create(dir.fid, 'f64', { mode: 0o644, cred: root, layout: { stripeCount: 3, stripeSize: MiB } });
  const layout = file.inode.layout!;
  assert.equal(layout.stripeCount, 3);
  assert.equal(layout.stripeSize, MiB);
  assert.deepEqual(new Set(layout.objects.map((o) => o.ostIdx)), new Set([0, 1, 2]), 'one object on each OST');

  let t0 = performance.now();
  for (let off = 0; off < SIZE; off += CHUNK) await client.write(file, off, data.subarray(off, off + CHUNK));
  await client.fsync(file);
  const writeMs = performance.now() - t0;

  const attr = await client.getattr(file.fid);
  assert.equal(attr.size, SIZE, 'size derived from the objects');

  t0 = performance.now();
  const back = await readAll(client, file);
  const readMs = performance.now() - t0;
  assert.equal(back.length, SIZE);
  assert.ok(back.equals(data), 'read data equals written data');
  console.log(`# striped 64 MiB (3 x 1 MiB stripes, loopback): write ${mibPerSec(SIZE, writeMs)} MiB/s, read ${mibPerSec(SIZE, readMs)} MiB/s`);
});

test('each OST object holds exactly the bytes the striping math assigns to it', async () => {
  const layout = file.inode.layout!;
  const n = layout.objects.length;
  for (let i = 0; i < n; i++) {
    const o = layout.objects[i]!;
    const path = join(cluster.ostDir(o.ostIdx), 'O', '0', `d${o.oid % 32}`, String(o.oid));
    const onDisk = await readFile(path);
    const expectedLen = Math.floor(SIZE / (layout.stripeSize * n)) * layout.stripeSize + (i < (SIZE / layout.stripeSize) % n ? layout.stripeSize : 0);
    assert.equal(onDisk.length, expectedLen, `object ${i} size`);
    for (let objOff = 0; objOff < onDisk.length; objOff += layout.stripeSize) {
      const x = fileOffset(objOff, i, layout.stripeSize, n);
      const want = data.subarray(x, x + layout.stripeSize);
      assert.ok(onDisk.subarray(objOff, objOff + layout.stripeSize).equals(want), `object ${i} at ${objOff} holds file bytes from ${x}`);
    }
  }
});

test('after kill -9 and restart of every server the same client and a new one read equal data', async () => {
  for (const name of cluster.roles.keys()) await cluster.kill9(name);
  await cluster.startRole('mgs');
  for (let i = 0; i < cluster.ostCount; i++) await cluster.startRole(`oss${i}`);
  await cluster.startRole('mds');
  await cluster.waitOstsReady();

  const again = await readAll(client, file);
  assert.ok(again.equals(data), 'the mounted client reconnected and reads the same bytes');

  const fresh = await cluster.mount();
  try {
    const dir = await fresh.lookup(fresh.root, 'striped');
    const attr = await fresh.lookup(dir.fid, 'f64');
    assert.equal(attr.size, SIZE);
    const f = await fresh.open(attr.fid);
    assert.ok((await readAll(fresh, f)).equals(data), 'a new client reads the same bytes');
    await fresh.close(f);
  } finally {
    await fresh.unmount();
  }
});

test('with checksums on, a striped write and read round trip', async () => {
  const ck = await cluster.mount({ checksums: true });
  try {
    const f = await ck.create(ck.root, 'ck', { mode: 0o644, cred: root, layout: { stripeCount: -1, stripeSize: 256 * 1024 } });
    const d = pseudoRandomBuffer(3 * MiB + 12345, 99);
    await ck.write(f, 777, d);
    const r = await ck.read(f, 777, d.length);
    assert.ok(r.equals(d));
    const head = await ck.read(f, 0, 777);
    assert.ok(head.equals(Buffer.alloc(777)), 'the hole before the first byte reads as zeros');
    await ck.close(f);
  } finally {
    await ck.unmount();
  }
});
