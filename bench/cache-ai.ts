/**
 * The AI-training read pattern against the client cache (issue 5's figure): 5,000 files
 * of 64 KiB in 50 directories, read three times through a Stria mount with a local disk
 * cache: cold (empty caches), memory-warm (again, same mount), disk-warm (after the
 * client restarted, kernel caches dropped). The same set on the local disk, cold and
 * warm, in the same run. Must run as root (it drops the kernel's caches).
 *
 *   node dist/bench/cache-ai.js [--files N] [--json FILE]
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { TestCluster, STRIA_BIN } from '../test/helpers/cluster.js';
import { TestMount } from '../test/helpers/mount.js';
import { dropKernelCaches } from '../src/bench/caches.js';
import { smallFilesCreate, smallFilesRead, type RateFigures } from '../src/bench/files.js';
import type { CacheStatsSnapshot } from '../src/client/cache/types.js';

const run = promisify(execFile);
const args = process.argv.slice(2);
const files = Number(args[args.indexOf('--files') + 1] ?? 0) || 5000;
const jsonOut = args.includes('--json') ? args[args.indexOf('--json') + 1] : undefined;
const DIRS = 50;
const SIZE = 64 * 1024;
const WORKERS = 4;

async function stats(runDir: string, mnt: string): Promise<CacheStatsSnapshot> {
  const r = await run(process.execPath, [STRIA_BIN, 'stats', '--json', mnt], { env: { ...process.env, STRIA_RUN_DIR: runDir } });
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as CacheStatsSnapshot;
}

interface Row {
  pass: string;
  stria: RateFigures;
  local?: RateFigures;
  ossReadMiB: number;
  memHitMiB: number;
  diskHitMiB: number;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('cache-ai needs root (it drops the kernel caches)');
  const cacheDir = await mkdtemp(join(tmpdir(), 'stria-bench-cache-'));
  const localDir = await mkdtemp(join(tmpdir(), 'stria-bench-local-'));
  const cluster = await TestCluster.start({ osts: 3 });
  const mount = await TestMount.start(cluster, 'allow_other,default_permissions', ['--cache-dir', cacheDir, '--cache-size', '2048']);
  const rows: Row[] = [];
  try {
    const striaSet = { root: mount.path('ai'), count: files, dirs: DIRS, size: SIZE };
    const localSet = { root: join(localDir, 'ai'), count: files, dirs: DIRS, size: SIZE };
    process.stderr.write(`creating ${files} files of 64 KiB in ${DIRS} directories on both...\n`);
    const created = await smallFilesCreate(striaSet, WORKERS);
    await smallFilesCreate(localSet, WORKERS);
    process.stderr.write(`stria create: ${created.per_s} files/s\n`);

    const measure = async (pass: string, local: boolean): Promise<void> => {
      const s0 = await stats(cluster.runDir, mount.mountpoint);
      const stria = await smallFilesRead(striaSet, WORKERS);
      const s1 = await stats(cluster.runDir, mount.mountpoint);
      let loc: RateFigures | undefined;
      if (local) loc = await smallFilesRead(localSet, WORKERS);
      const mib = (n: number) => Math.round((n / 1048576) * 10) / 10;
      rows.push({
        pass,
        stria,
        local: loc,
        ossReadMiB: mib(s1.oss.readBytes - s0.oss.readBytes),
        memHitMiB: mib(s1.memory.hitBytes - s0.memory.hitBytes),
        diskHitMiB: mib(s1.ssd.hitBytes - s0.ssd.hitBytes),
      });
      process.stderr.write(`${pass}: stria ${stria.per_s} files/s${loc ? `, local ${loc.per_s} files/s` : ''}\n`);
    };

    // cold: a fresh client with an empty disk cache, nothing in the kernel's caches
    await mount.unmount();
    await rm(cacheDir, { recursive: true, force: true });
    await dropKernelCaches(localDir);
    await mount.mount();
    await dropKernelCaches(localDir);
    await measure('cold', true);
    await measure('memory-warm', true);
    // disk-warm: the client restarts (memory and kernel caches gone), the disk cache stays
    await mount.unmount();
    await dropKernelCaches(localDir);
    await mount.mount();
    await measure('disk-warm', false);
  } finally {
    await mount.stop();
    await cluster.stop();
    await rm(cacheDir, { recursive: true, force: true });
    await rm(localDir, { recursive: true, force: true });
  }
  const lines = [
    `| pass | Stria files/s | local files/s | Stria / local | OSS read MiB | memory hit MiB | disk hit MiB |`,
    `|---|---|---|---|---|---|---|`,
    ...rows.map((r) => `| ${r.pass} | ${r.stria.per_s} | ${r.local?.per_s ?? ''} | ${r.local ? (r.stria.per_s / r.local.per_s).toFixed(2) : ''} | ${r.ossReadMiB} | ${r.memHitMiB} | ${r.diskHitMiB} |`),
    `(local cold is the reference for the disk-warm pass: ${(rows[2]!.stria.per_s / rows[0]!.local!.per_s).toFixed(2)})`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  const doc = JSON.stringify({ files, size: SIZE, dirs: DIRS, workers: WORKERS, rows });
  process.stdout.write(`${doc}\n`);
  if (jsonOut) await writeFile(jsonOut, `${doc}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`cache-ai: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
