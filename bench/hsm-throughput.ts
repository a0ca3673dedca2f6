/**
 * npm run bench:hsm: HSM archive and restore throughput against a local S3 server (s3rver),
 * for one large striped file and for many small files, side by side with the same bytes
 * sent straight to the same S3 server with the AWS SDK (the ceiling a copytool can reach
 * here). A `stria copytool` process does the copying, as in production.
 *
 *   STRIA_BENCH_HSM_MB      size of the large file in MiB (default 256)
 *   STRIA_BENCH_HSM_FILES   number of small files (default 1000)
 *   STRIA_BENCH_HSM_KB      size of each small file in KiB (default 64)
 *   STRIA_BENCH_HSM_WORKERS copytool workers, and parallel uploads of the baseline (default 4)
 *   STRIA_BENCH_HSM_MAX_REQUESTS  the coordinator's mdt.*.hsm.max_requests (default 3, Lustre's)
 *
 * Prints a table and one JSON line.
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { S3Client, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { TestCluster, STRIA_BIN } from '../test/helpers/cluster.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { startS3Server, type TestS3Server } from '../test/helpers/s3-server.js';
import { lctl } from '../test/helpers/lctl.js';
import type { StriaClient } from '../src/client/client.js';
import type { Fid } from '../src/common/fid.js';
import { HS } from '../src/hsm/flags.js';

const LARGE_MB = Number(process.env.STRIA_BENCH_HSM_MB ?? 256);
const SMALL_FILES = Number(process.env.STRIA_BENCH_HSM_FILES ?? 1000);
const SMALL_KB = Number(process.env.STRIA_BENCH_HSM_KB ?? 64);
const WORKERS = Number(process.env.STRIA_BENCH_HSM_WORKERS ?? 4);
const MAX_REQUESTS = Number(process.env.STRIA_BENCH_HSM_MAX_REQUESTS ?? 3);
const PART = 8 << 20;
const CHUNK = 4 << 20;
const WAIT_LIMIT_MS = 30 * 60_000;
const root = { uid: 0, gid: 0 };

interface Row {
  what: string;
  bytes: number;
  files: number;
  striaSec: number;
  s3Sec: number;
}

function s3Client(s3: TestS3Server): S3Client {
  return new S3Client({
    endpoint: s3.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: s3.credentials,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return (performance.now() - t) / 1000;
}

async function inParallel<T>(items: T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

/** Waits until every file has `want` among its HSM flags and, for restores, is no longer released. */
async function waitFlags(c: StriaClient, fids: Fid[], done: (flags: number) => boolean): Promise<void> {
  let pending = [...fids];
  const deadline = Date.now() + WAIT_LIMIT_MS;
  let pause = 20;
  while (pending.length > 0) {
    if (Date.now() > deadline) throw new Error(`${pending.length} files still not done after ${WAIT_LIMIT_MS / 1000} s`);
    const states = await Promise.all(pending.map((f) => c.hsm.state(f)));
    pending = pending.filter((_, i) => !done(states[i]!.flags));
    if (pending.length === 0) break;
    await new Promise((r) => setTimeout(r, pause));
    pause = Math.min(pause * 2, 250);
  }
}

async function writeFile(c: StriaClient, dir: Fid, name: string, data: Buffer, stripeCount: number): Promise<Fid> {
  const f = await c.create(dir, name, { mode: 0o644, cred: root, layout: { stripeCount } });
  for (let off = 0; off < data.length; off += CHUNK) await c.write(f, off, data.subarray(off, Math.min(off + CHUNK, data.length)));
  await c.fsync(f);
  await c.close(f);
  return f.fid;
}

async function release(c: StriaClient, fid: Fid): Promise<void> {
  const a = await c.getattr(fid);
  const dataVersion = await c.dataVersion(fid);
  await c.hsm.release({ fid, dataVersion, size: a.size, atime: a.atime, mtime: a.mtime, ctime: a.ctime }, root);
}

async function request(c: StriaClient, action: 'archive' | 'restore', fids: Fid[]): Promise<void> {
  for (let i = 0; i < fids.length; i += 1000) await c.hsm.request({ action, archiveId: 1, fids: fids.slice(i, i + 1000) }, root);
}

const archived = (f: number) => (f & (HS.EXISTS | HS.ARCHIVED)) === (HS.EXISTS | HS.ARCHIVED) && (f & HS.DIRTY) === 0;
const restored = (f: number) => (f & HS.RELEASED) === 0;

async function main(): Promise<void> {
  const s3 = await startS3Server('stria-bench');
  const cluster = await TestCluster.start({ osts: 2 });
  const copytool = spawn(process.execPath, [STRIA_BIN, 'copytool', '--archive', '1', '--s3', s3.url, '--workers', String(WORKERS), cluster.spec()], {
    env: { ...process.env, ...s3.env, STRIA_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const sdk = s3Client(s3);
  const rows: Row[] = [];
  let c: StriaClient | undefined;
  try {
    await started(copytool, 'copytool started', 30_000);
    const set = await lctl(cluster.runDir, 'set_param', `mdt.*.hsm.max_requests=${MAX_REQUESTS}`);
    if (set.code !== 0) throw new Error(`lctl set_param max_requests: ${set.stderr}`);
    c = await cluster.mount();
    const dir = await c.mkdir(c.root, 'hsm-bench', { mode: 0o755, cred: root });

    // One large file, striped over both OSTs.
    const large = randomBytes(LARGE_MB << 20);
    const fid = await writeFile(c, dir.fid, 'large', large, 2);
    const s3Put = await timed(() => new Upload({ client: sdk, params: { Bucket: s3.bucket, Key: 'baseline/large', Body: Readable.from(chunks(large)) }, partSize: PART, queueSize: 4 }).done());
    const archiveSec = await timed(async () => {
      await request(c!, 'archive', [fid]);
      await waitFlags(c!, [fid], archived);
    });
    rows.push({ what: `archive 1 file of ${LARGE_MB} MiB`, bytes: large.length, files: 1, striaSec: archiveSec, s3Sec: s3Put });
    await release(c, fid);
    const s3Get = await timed(async () => {
      const r = await sdk.send(new GetObjectCommand({ Bucket: s3.bucket, Key: 'baseline/large' }));
      for await (const _ of r.Body as Readable) void _;
    });
    const restoreSec = await timed(async () => {
      await request(c!, 'restore', [fid]);
      await waitFlags(c!, [fid], restored);
    });
    rows.push({ what: `restore 1 file of ${LARGE_MB} MiB`, bytes: large.length, files: 1, striaSec: restoreSec, s3Sec: s3Get });
    const back = await c.open(fid, 0);
    const check = await c.read(back, 0, Math.min(large.length, 1 << 20));
    await c.close(back);
    if (!check.equals(large.subarray(0, check.length))) throw new Error('restored data differs from what was written');

    // Many small files, the AI-training pattern.
    const small = Array.from({ length: SMALL_FILES }, () => randomBytes(SMALL_KB << 10));
    const smallDir = await c.mkdir(dir.fid, 'small', { mode: 0o755, cred: root });
    const fids: Fid[] = [];
    for (let i = 0; i < small.length; i++) fids.push(await writeFile(c, smallDir.fid, `f${i}`, small[i]!, 1));
    const idx = small.map((_, i) => i);
    const s3PutSmall = await timed(() => inParallel(idx, WORKERS, async (i) => void (await sdk.send(new PutObjectCommand({ Bucket: s3.bucket, Key: `baseline/small/${i}`, Body: small[i] })))));
    const archiveSmall = await timed(async () => {
      await request(c!, 'archive', fids);
      await waitFlags(c!, fids, archived);
    });
    const smallBytes = small.length * (SMALL_KB << 10);
    rows.push({ what: `archive ${SMALL_FILES} files of ${SMALL_KB} KiB`, bytes: smallBytes, files: SMALL_FILES, striaSec: archiveSmall, s3Sec: s3PutSmall });
    await inParallel(fids, 8, (f) => release(c!, f));
    const s3GetSmall = await timed(() => inParallel(idx, WORKERS, async (i) => {
      const r = await sdk.send(new GetObjectCommand({ Bucket: s3.bucket, Key: `baseline/small/${i}` }));
      await r.Body!.transformToByteArray();
    }));
    const restoreSmall = await timed(async () => {
      await request(c!, 'restore', fids);
      await waitFlags(c!, fids, restored);
    });
    rows.push({ what: `restore ${SMALL_FILES} files of ${SMALL_KB} KiB`, bytes: smallBytes, files: SMALL_FILES, striaSec: restoreSmall, s3Sec: s3GetSmall });
  } finally {
    await c?.unmount().catch(() => undefined);
    await stopChild(copytool);
    sdk.destroy();
    await cluster.stop();
    await s3.stop();
  }
  print(rows);
}

function started(child: ChildProcess, text: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`no '${text}' from the copytool within ${timeoutMs} ms: ${out}`)), timeoutMs);
    child.stdout!.on('data', (d: Buffer) => {
      out = (out + d.toString()).slice(-8192);
      if (out.includes(text)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the copytool exited (${code}): ${out}`));
    });
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await gone;
  clearTimeout(timer);
}

function* chunks(b: Buffer): Generator<Buffer> {
  for (let off = 0; off < b.length; off += CHUNK) yield b.subarray(off, Math.min(off + CHUNK, b.length));
}

function print(rows: Row[]): void {
  const mib = (r: Row, sec: number) => r.bytes / (1 << 20) / sec;
  console.log(`HSM throughput against s3rver on loopback; copytool workers ${WORKERS}, hsm.max_requests ${MAX_REQUESTS}; baseline: the same bytes straight through the AWS SDK (${WORKERS} in parallel)`);
  console.log(`${'operation'.padEnd(34)}${'Stria MiB/s'.padStart(13)}${'files/s'.padStart(10)}${'S3 direct MiB/s'.padStart(17)}${'ratio'.padStart(8)}`);
  for (const r of rows) {
    const s = mib(r, r.striaSec);
    const b = mib(r, r.s3Sec);
    console.log(`${r.what.padEnd(34)}${s.toFixed(1).padStart(13)}${(r.files / r.striaSec).toFixed(0).padStart(10)}${b.toFixed(1).padStart(17)}${(s / b).toFixed(2).padStart(8)}`);
  }
  console.log(JSON.stringify({ bench: 'hsm', workers: WORKERS, maxRequests: MAX_REQUESTS, rows: rows.map((r) => ({ ...r, striaMiBs: mib(r, r.striaSec), s3MiBs: mib(r, r.s3Sec) })) }));
}

await main();
