/**
 * npm run bench: striped sequential write/read through the client core over
 * loopback (MGS + MDS + 3 OSS processes), side by side with the local disk
 * the OSTs live on, measured in the same run. Prints a table and a JSON line.
 */
import { open, rm, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestCluster } from '../test/helpers/cluster.js';
import { pseudoRandomBuffer } from '../test/helpers/data.js';

const MiB = 1024 * 1024;
const SIZE = Number(process.env.STRIA_BENCH_MIB ?? 256) * MiB;
const CHUNK = 8 * MiB;
const data = pseudoRandomBuffer(SIZE, 1);

async function localDisk(dir: string): Promise<{ write: number; read: number }> {
  const path = join(dir, 'local.bin');
  const fh = await open(path, 'w');
  let t = performance.now();
  for (let off = 0; off < SIZE; off += CHUNK) await fh.write(data, off, CHUNK, off);
  await fh.sync();
  const w = performance.now() - t;
  await fh.close();
  const rh = await open(path, 'r');
  const buf = Buffer.allocUnsafe(CHUNK);
  t = performance.now();
  for (let off = 0; off < SIZE; off += CHUNK) await rh.read(buf, 0, CHUNK, off);
  const r = performance.now() - t;
  await rh.close();
  await rm(path);
  return { write: SIZE / MiB / (w / 1000), read: SIZE / MiB / (r / 1000) };
}

async function stria(cluster: TestCluster, stripeCount: number, checksums: boolean): Promise<{ write: number; read: number }> {
  const c = await cluster.mount({ checksums });
  try {
    const f = await c.create(c.root, `bench-${stripeCount}-${checksums}`, { mode: 0o644, cred: { uid: 0, gid: 0 }, layout: { stripeCount, stripeSize: MiB } });
    let t = performance.now();
    for (let off = 0; off < SIZE; off += CHUNK) await c.write(f, off, data.subarray(off, off + CHUNK));
    await c.fsync(f);
    const w = performance.now() - t;
    t = performance.now();
    for (let off = 0; off < SIZE; off += CHUNK) await c.read(f, off, CHUNK);
    const r = performance.now() - t;
    await c.close(f);
    await c.unlink(c.root, `bench-${stripeCount}-${checksums}`);
    return { write: SIZE / MiB / (w / 1000), read: SIZE / MiB / (r / 1000) };
  } finally {
    await c.unmount();
  }
}

const cluster = await TestCluster.start({ osts: 3 });
const scratch = await mkdtemp(join(tmpdir(), 'stria-bench-'));
try {
  const rows: Array<[string, { write: number; read: number }]> = [];
  rows.push(['local disk (baseline)', await localDisk(scratch)]);
  rows.push(['stria 1 stripe', await stria(cluster, 1, false)]);
  rows.push(['stria 3 stripes', await stria(cluster, 3, false)]);
  rows.push(['stria 3 stripes + crc32c', await stria(cluster, 3, true)]);
  const base = rows[0]![1];
  console.log(`sequential ${SIZE / MiB} MiB, ${CHUNK / MiB} MiB calls, client core over loopback (no FUSE)`);
  console.log(`${'target'.padEnd(28)} ${'write MiB/s'.padStart(12)} ${'ratio'.padStart(6)} ${'read MiB/s'.padStart(12)} ${'ratio'.padStart(6)}`);
  for (const [name, r] of rows) {
    console.log(`${name.padEnd(28)} ${r.write.toFixed(1).padStart(12)} ${(r.write / base.write).toFixed(2).padStart(6)} ${r.read.toFixed(1).padStart(12)} ${(r.read / base.read).toFixed(2).padStart(6)}`);
  }
  console.log(JSON.stringify({ bench: 'striped-io', sizeMiB: SIZE / MiB, results: Object.fromEntries(rows) }));
} finally {
  await cluster.stop();
  await rm(scratch, { recursive: true, force: true });
}
