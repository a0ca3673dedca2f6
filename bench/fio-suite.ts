/**
 * The fio benchmark suite: the same workloads against a Stria mount (a real
 * `stria mount` of a 3-OST TestCluster), a local-disk directory and any other
 * directories given with --vs, in one run, so the figures compare as ratios.
 *
 *   node dist/bench/fio-suite.js [--quick] [--vs DIR[:label]]... [--json FILE]
 *
 * Must run as root (cold runs drop the kernel caches). Progress goes to
 * stderr; the table and, as the last line, the JSON document go to stdout.
 * Exits 1 when any workload failed, in particular the crc32c integrity check.
 */
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { cpus, release, tmpdir, loadavg } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { TestCluster } from '../test/helpers/cluster.js';
import { TestMount } from '../test/helpers/mount.js';
import { clearStriaLocks, dropKernelCaches } from './suite/caches.js';
import { FioError, fioVersion, runFio, type FioFigures } from './suite/fio.js';
import { metadataLoop, smallFilesCreate, smallFilesRead, type RateFigures } from './suite/files.js';
import { Results, type TargetInfo, type Unit } from './suite/report.js';

interface Options {
  quick: boolean;
  vs: Array<{ dir: string; label: string }>;
  json?: string;
}

function usage(msg: string): never {
  process.stderr.write(`fio-suite: ${msg}\nusage: node dist/bench/fio-suite.js [--quick] [--vs DIR[:label]]... [--json FILE]\n`);
  process.exit(2);
}

function parseArgs(argv: string[]): Options {
  const o: Options = { quick: false, vs: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--quick') o.quick = true;
    else if (a === '--vs') {
      const v = argv[++i] ?? usage('--vs needs DIR[:label]');
      const colon = v.lastIndexOf(':');
      const dir = resolve(colon > 0 ? v.slice(0, colon) : v);
      o.vs.push({ dir, label: colon > 0 ? v.slice(colon + 1) : basename(dir) });
    } else if (a === '--json') o.json = argv[++i] ?? usage('--json needs FILE');
    else usage(`unknown argument ${a}`);
  }
  return o;
}

const opts = parseArgs(process.argv.slice(2));
const MiB = 'M';
const sizes = opts.quick
  ? { seqMiB: 128, parMiB: 32, randMiB: 64, runtime: 5, verifyMiB: 32, smallFiles: 500, mdFiles: 1000 }
  : { seqMiB: 1024, parMiB: 256, randMiB: 256, runtime: 20, verifyMiB: 256, smallFiles: 5000, mdFiles: 10000 };
const SMALL_DIRS = 50;
const SMALL_SIZE = 64 * 1024;
const SMALL_WORKERS = 4;

/** One place the workloads run: a work directory and how to make it cold. */
interface Target extends TargetInfo {
  dropCaches(): Promise<void>;
}

function log(msg: string): void {
  const t = ((performance.now() - t0) / 1000).toFixed(0).padStart(4);
  process.stderr.write(`[fio-suite ${t}s] ${msg}\n`);
}

const t0 = performance.now();
const startedUtc = new Date().toISOString();
let failed = false;
const cleanups: Array<() => Promise<void>> = [];
let cleaning: Promise<void> | undefined;

/** Runs every registered cleanup once, newest first, whatever fails. */
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const c of cleanups.reverse()) await c().catch((e: unknown) => log(`cleanup: ${String(e)}`));
  })();
  return cleaning;
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    log(`${sig}: cleaning up`);
    void cleanup().finally(() => process.exit(130));
  });
}

function fioCell(f: FioFigures, unit: 'MiB/s' | 'IOPS', extra: Record<string, unknown> = {}) {
  return { value: unit === 'MiB/s' ? f.MiB_s : f.iops, details: { ...f, ...extra } };
}

function rateCell(r: RateFigures, extra: Record<string, unknown> = {}) {
  return { value: r.per_s, details: { ...r, ...extra } };
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) usage('must run as root (cold runs write /proc/sys/vm/drop_caches)');
  for (const v of opts.vs) {
    const s = await stat(v.dir).catch(() => undefined);
    if (!s?.isDirectory()) usage(`--vs ${v.dir}: not a directory`);
  }
  const labels = ['stria', 'local', ...opts.vs.map((v) => v.label)];
  if (new Set(labels).size !== labels.length) usage('target labels must be unique (give --vs DIR:label)');
  const version = await fioVersion();
  if (!version.startsWith('fio')) usage('fio is not installed');

  log(`mode=${opts.quick ? 'quick' : 'full'}; starting a 3-OST cluster and a mount`);
  const cluster = await TestCluster.start({ osts: 3 });
  cleanups.push(() => cluster.stop());
  const mount = await TestMount.start(cluster);
  cleanups.push(() => mount.stop());

  const striaDir = mount.path(`.fio-suite.${process.pid}`);
  await mkdir(striaDir);
  const localDir = await mkdtemp(join(tmpdir(), 'stria-fio-suite-local-'));
  cleanups.push(() => rm(localDir, { recursive: true, force: true }));

  const targets: Target[] = [
    {
      label: 'stria',
      kind: 'stria',
      dir: striaDir,
      dropCaches: async () => {
        // Unused locks go first: cancelling them drops the mount's cached pages and
        // attributes, then the kernel drops the rest (the OSTs' backing files included).
        await clearStriaLocks(cluster.runDir);
        await dropKernelCaches();
      },
    },
    { label: 'local', kind: 'baseline', dir: localDir, dropCaches: dropKernelCaches },
  ];
  for (const v of opts.vs) {
    const dir = join(v.dir, `.fio-suite.${v.label}.${process.pid}`);
    await mkdir(dir);
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    targets.push({ label: v.label, kind: 'baseline', dir, dropCaches: dropKernelCaches });
  }

  const results = new Results(targets.map(({ label, kind, dir }) => ({ label, kind, dir })));
  for (const target of targets) {
    log(`target ${target.label}: ${target.dir}`);
    await runWorkloads(target, results);
  }

  const meta = {
    bench: 'fio-suite',
    mode: opts.quick ? 'quick' : 'full',
    started_utc: startedUtc,
    duration_s: Math.round((performance.now() - t0) / 1000),
    machine: { kernel: release(), cpus: cpus().length, node: process.version, fio: version, loadavg_end: loadavg().map((x) => x.toFixed(2)).join(' ') },
    sizes,
    ok: !failed,
  };
  const doc = results.toJSON(meta);
  const line = JSON.stringify(doc);
  if (opts.json) await writeFile(opts.json, `${JSON.stringify(doc, null, 1)}\n`);
  process.stdout.write(`fio-suite (${meta.mode}), ratios are ${results.stria.label} / baseline, higher is better for Stria\n`);
  process.stdout.write(`${results.table()}\n`);
  process.stdout.write(`${line}\n`);
}

async function runWorkloads(t: Target, results: Results): Promise<void> {
  const L = t.label;
  /** Runs one measured step; a failure is recorded in its cell and fails the run, the suite goes on. */
  async function step(workload: string, unit: Unit, fn: () => Promise<{ value: number; details?: Record<string, unknown> }>): Promise<boolean> {
    log(`${L}: ${workload} ...`);
    const s = performance.now();
    try {
      const cell = await fn();
      results.set(workload, unit, L, cell);
      const shown = unit === 'pass' ? (cell.value === 1 ? 'pass' : 'FAIL') : `${cell.value} ${unit}`;
      log(`${L}: ${workload} = ${shown} (${((performance.now() - s) / 1000).toFixed(1)} s)`);
      if (unit === 'pass' && cell.value !== 1) failed = true;
      return true;
    } catch (e) {
      failed = true;
      const msg = e instanceof Error ? e.message : String(e);
      results.set(workload, unit, L, { error: msg });
      log(`${L}: ${workload} FAILED: ${msg}`);
      return false;
    }
  }
  const sub = async (name: string) => {
    const d = join(t.dir, name);
    await mkdir(d);
    return d;
  };

  // ---- sequential, 1 job, then 4 jobs with a file each
  for (const [tag, jobs, mib] of [['', 1, sizes.seqMiB], ['-4j', 4, sizes.parMiB]] as const) {
    const dir = await sub(`seq${tag}`);
    const env = { SIZE: `${mib}${MiB}`, JOBS: String(jobs) };
    const extra = { jobs, size_MiB_each: mib };
    const wrote = await step(`seq-write-1M${tag}`, 'MiB/s', async () => fioCell(await runFio('seq-write.fio', dir, 'write', env), 'MiB/s', extra));
    if (wrote) {
      await step(`seq-read-1M${tag}-cold`, 'MiB/s', async () => {
        await t.dropCaches();
        return fioCell(await runFio('seq-read.fio', dir, 'read', env), 'MiB/s', extra);
      });
      await step(`seq-read-1M${tag}-hot`, 'MiB/s', async () => fioCell(await runFio('seq-read.fio', dir, 'read', env), 'MiB/s', extra));
    }
    await rm(dir, { recursive: true, force: true });
  }

  // ---- random 4 KiB on one file, cold reads, then buffered overwrites (fsync at the end)
  {
    const dir = await sub('rand');
    const prepared = await step('rand-prepare', 'MiB/s', async () => fioCell(await runFio('rand-prep.fio', dir, 'write', { SIZE: `${sizes.randMiB}${MiB}` }), 'MiB/s'));
    if (prepared) {
      for (const [rw, job] of [['read', 'rand-read.fio'], ['write', 'rand-write.fio']] as const) {
        for (const jobs of [1, 4]) {
          const env = { PART: `${sizes.randMiB / jobs}${MiB}`, JOBS: String(jobs), RUNTIME: String(sizes.runtime) };
          await step(`rand-${rw}-4k-j${jobs}`, 'IOPS', async () => {
            await t.dropCaches();
            return fioCell(await runFio(job, dir, rw, env), 'IOPS', { jobs, file_MiB: sizes.randMiB, runtime_limit_s: sizes.runtime });
          });
        }
      }
    }
    await rm(dir, { recursive: true, force: true });
  }

  // ---- integrity: write with crc32c in every block, drop caches, verify every block
  {
    const dir = await sub('integrity');
    await step('integrity-crc32c', 'pass', async () => {
      const env = { SIZE: `${sizes.verifyMiB}${MiB}` };
      await runFio('integrity.fio', dir, 'write', { ...env, VERIFY_ONLY: '0', DO_VERIFY: '0' });
      await t.dropCaches();
      try {
        const v = await runFio('integrity.fio', dir, 'read', { ...env, VERIFY_ONLY: '1', DO_VERIFY: '1' });
        return { value: 1, details: { size_MiB: sizes.verifyMiB, verify: 'crc32c', verified_MiB: v.io_MiB } };
      } catch (e) {
        if (!(e instanceof FioError)) throw e;
        return { value: 0, details: { size_MiB: sizes.verifyMiB, verify: 'crc32c', error: e.message } };
      }
    });
    await rm(dir, { recursive: true, force: true });
  }

  // ---- small files: create N x 64 KiB in 50 directories, read back cold and warm
  {
    const set = { root: join(t.dir, 'small'), count: sizes.smallFiles, dirs: SMALL_DIRS, size: SMALL_SIZE };
    const extra = { files: set.count, dirs: set.dirs, size: set.size, workers: SMALL_WORKERS };
    const created = await step('small-files-create', 'files/s', async () => {
      await t.dropCaches();
      const r = await smallFilesCreate(set, SMALL_WORKERS);
      const s = performance.now();
      await dropKernelCaches(); // sync (timed apart) + a cold start for the read
      return rateCell(r, { ...extra, sync_and_drop_s: Math.round(performance.now() - s) / 1000 });
    });
    if (created) {
      await step('small-files-read-cold', 'files/s', async () => {
        await t.dropCaches();
        return rateCell(await smallFilesRead(set, SMALL_WORKERS), extra);
      });
      await step('small-files-read-warm', 'files/s', async () => rateCell(await smallFilesRead(set, SMALL_WORKERS), extra));
    }
    await rm(set.root, { recursive: true, force: true });
  }

  // ---- metadata: create / stat (cold) / unlink of empty files, one directory and 100
  for (const dirs of [1, 100]) {
    for (const workers of [1, 4]) {
      const name = `md-${dirs}dir-${workers}w`;
      log(`${L}: ${name} (${sizes.mdFiles} files) ...`);
      await t.dropCaches();
      try {
        const r = await metadataLoop(join(t.dir, name), sizes.mdFiles, dirs, workers, () => t.dropCaches());
        const extra = { files: sizes.mdFiles, dirs, workers };
        for (const op of ['create', 'stat', 'unlink'] as const) results.set(`${name}-${op}`, 'ops/s', L, rateCell(r[op], extra));
        log(`${L}: ${name} = create ${r.create.per_s}, stat ${r.stat.per_s}, unlink ${r.unlink.per_s} ops/s`);
      } catch (e) {
        failed = true;
        const msg = e instanceof Error ? e.message : String(e);
        for (const op of ['create', 'stat', 'unlink']) results.set(`${name}-${op}`, 'ops/s', L, { error: msg });
        log(`${L}: ${name} FAILED: ${msg}`);
        await rm(join(t.dir, name), { recursive: true, force: true });
      }
    }
  }
}

try {
  await main();
} catch (e) {
  failed = true;
  log(`fatal: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
} finally {
  await cleanup();
}
process.exit(failed ? 1 : 0);
