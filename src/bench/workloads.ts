/**
 * The suite's workloads, run one target at a time in a work directory of that target:
 * sequential and random I/O through fio, an fio crc32c integrity check, small files
 * (the AI-training pattern) and metadata loops. Each step records one row of Results; a
 * failed step records its error and fails the run, and the suite goes on.
 */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { metadataLoop, smallFilesCreate, smallFilesRead, type RateFigures } from './files.js';
import { FioError, runFio, type FioFigures } from './fio.js';
import type { Progress } from './progress.js';
import type { Results, TargetInfo, Unit } from './report.js';

export const GROUPS = ['seq', 'rand', 'integrity', 'small', 'md'] as const;
export type Group = (typeof GROUPS)[number];

export interface Sizes {
  seqMiB: number;
  parMiB: number;
  randMiB: number;
  runtime: number;
  verifyMiB: number;
  smallFiles: number;
  mdFiles: number;
}

export function sizesFor(quick: boolean): Sizes {
  return quick
    ? { seqMiB: 128, parMiB: 32, randMiB: 64, runtime: 5, verifyMiB: 32, smallFiles: 500, mdFiles: 1000 }
    : { seqMiB: 1024, parMiB: 256, randMiB: 256, runtime: 20, verifyMiB: 256, smallFiles: 5000, mdFiles: 10000 };
}

const SMALL_DIRS = 50;
const SMALL_SIZE = 64 * 1024;
const SMALL_WORKERS = 4;
const MD_CONFIGS = [
  [1, 1],
  [1, 4],
  [100, 1],
  [100, 4],
] as const;

/** Progress steps per group (a metadata configuration is one step of three rows). */
const STEPS: Record<Group, number> = { seq: 6, rand: 5, integrity: 1, small: 3, md: MD_CONFIGS.length };

export function stepCount(groups: readonly Group[]): number {
  return groups.reduce((n, g) => n + STEPS[g], 0);
}

/** One place the workloads run: a work directory and how to make it cold. */
export interface Target extends TargetInfo {
  /** drops what this target caches; returns how (recorded with the cold figures) */
  dropCaches(): Promise<string>;
}

/** Thrown at the next step once the run was interrupted (SIGINT, SIGTERM). */
export class BenchInterrupted extends Error {
  constructor() {
    super('interrupted');
  }
}

export interface RunContext {
  /** true once the run is being stopped: no further step starts */
  interrupted(): boolean;
  sizes: Sizes;
  groups: readonly Group[];
  results: Results;
  progress: Progress;
}

function fioCell(f: FioFigures, unit: 'MiB/s' | 'IOPS', extra: Record<string, unknown> = {}) {
  return { value: unit === 'MiB/s' ? f.MiB_s : f.iops, details: { ...f, ...extra } };
}

function rateCell(r: RateFigures, extra: Record<string, unknown> = {}) {
  return { value: r.per_s, details: { ...r, ...extra } };
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Runs every selected workload on one target; returns false when any of them failed. */
export async function runWorkloads(t: Target, ctx: RunContext): Promise<boolean> {
  const { sizes, results, progress } = ctx;
  const L = t.label;
  let ok = true;
  const show = (workload: string) => `${L}: ${workload}`;

  /** One measured step: its figure goes in the results, or its error (which fails the run). */
  async function step(workload: string, unit: Unit, fn: () => Promise<{ value: number; details?: Record<string, unknown> }>): Promise<boolean> {
    if (ctx.interrupted()) throw new BenchInterrupted();
    progress.begin(show(workload));
    const s = performance.now();
    try {
      const cell = await fn();
      results.set(workload, unit, L, cell);
      const shown = unit === 'pass' ? (cell.value === 1 ? 'pass' : 'FAIL') : `${cell.value} ${unit}`;
      progress.end(show(workload), `${shown} (${((performance.now() - s) / 1000).toFixed(1)} s)`);
      if (unit === 'pass' && cell.value !== 1) ok = false;
      return true;
    } catch (e) {
      ok = false;
      results.set(workload, unit, L, { error: message(e) });
      progress.end(show(workload), `FAILED: ${message(e)}`);
      return false;
    }
  }
  const skip = (workload: string) => progress.end(show(workload), 'skipped (the step it needs failed)');
  const cold = async () => ({ cold: await t.dropCaches() });
  const sub = async (name: string) => {
    const d = join(t.dir, name);
    await mkdir(d);
    return d;
  };

  if (ctx.groups.includes('seq')) {
    // 1 job on one file, then 4 jobs with a file each
    for (const [tag, jobs, mib] of [['', 1, sizes.seqMiB], ['-4j', 4, sizes.parMiB]] as const) {
      const dir = await sub(`seq${tag}`);
      const env = { SIZE: `${mib}M`, JOBS: String(jobs) };
      const extra = { jobs, size_MiB_each: mib };
      const wrote = await step(`seq-write-1M${tag}`, 'MiB/s', async () => fioCell(await runFio('seq-write.fio', dir, 'write', env), 'MiB/s', extra));
      if (wrote) {
        await step(`seq-read-1M${tag}-cold`, 'MiB/s', async () => {
          const how = await cold();
          return fioCell(await runFio('seq-read.fio', dir, 'read', env), 'MiB/s', { ...extra, ...how });
        });
        await step(`seq-read-1M${tag}-hot`, 'MiB/s', async () => fioCell(await runFio('seq-read.fio', dir, 'read', env), 'MiB/s', extra));
      } else {
        skip(`seq-read-1M${tag}-cold`);
        skip(`seq-read-1M${tag}-hot`);
      }
      await rm(dir, { recursive: true, force: true });
    }
  }

  if (ctx.groups.includes('rand')) {
    // 4 KiB on one file: cold reads, then buffered overwrites (fsync at the end)
    const dir = await sub('rand');
    const prepared = await step('rand-prepare', 'MiB/s', async () => fioCell(await runFio('rand-prep.fio', dir, 'write', { SIZE: `${sizes.randMiB}M` }), 'MiB/s'));
    for (const [rw, job] of [['read', 'rand-read.fio'], ['write', 'rand-write.fio']] as const) {
      for (const jobs of [1, 4]) {
        const workload = `rand-${rw}-4k-j${jobs}`;
        if (!prepared) {
          skip(workload);
          continue;
        }
        const env = { PART: `${sizes.randMiB / jobs}M`, JOBS: String(jobs), RUNTIME: String(sizes.runtime) };
        await step(workload, 'IOPS', async () => {
          const how = await cold();
          return fioCell(await runFio(job, dir, rw, env), 'IOPS', { jobs, file_MiB: sizes.randMiB, runtime_limit_s: sizes.runtime, ...how });
        });
      }
    }
    await rm(dir, { recursive: true, force: true });
  }

  if (ctx.groups.includes('integrity')) {
    // every block written with its crc32c, caches dropped, every block verified
    const dir = await sub('integrity');
    await step('integrity-crc32c', 'pass', async () => {
      const env = { SIZE: `${sizes.verifyMiB}M` };
      await runFio('integrity.fio', dir, 'write', { ...env, VERIFY_ONLY: '0', DO_VERIFY: '0' });
      const how = await cold();
      try {
        const v = await runFio('integrity.fio', dir, 'read', { ...env, VERIFY_ONLY: '1', DO_VERIFY: '1' });
        return { value: 1, details: { size_MiB: sizes.verifyMiB, verify: 'crc32c', verified_MiB: v.io_MiB, ...how } };
      } catch (e) {
        if (!(e instanceof FioError)) throw e;
        return { value: 0, details: { size_MiB: sizes.verifyMiB, verify: 'crc32c', error: e.message, ...how } };
      }
    });
    await rm(dir, { recursive: true, force: true });
  }

  if (ctx.groups.includes('small')) {
    // N x 64 KiB in 50 directories: create, then read back cold and warm
    const set = { root: join(t.dir, 'small'), count: sizes.smallFiles, dirs: SMALL_DIRS, size: SMALL_SIZE };
    const extra = { files: set.count, dirs: set.dirs, size: set.size, workers: SMALL_WORKERS };
    const created = await step('small-files-create', 'files/s', async () => {
      await cold();
      const r = await smallFilesCreate(set, SMALL_WORKERS);
      const s = performance.now();
      await cold(); // sync (timed apart) and a cold start for the read
      return rateCell(r, { ...extra, sync_and_drop_s: Math.round(performance.now() - s) / 1000 });
    });
    if (created) {
      await step('small-files-read-cold', 'files/s', async () => {
        const how = await cold();
        return rateCell(await smallFilesRead(set, SMALL_WORKERS), { ...extra, ...how });
      });
      await step('small-files-read-warm', 'files/s', async () => rateCell(await smallFilesRead(set, SMALL_WORKERS), extra));
    } else {
      skip('small-files-read-cold');
      skip('small-files-read-warm');
    }
    await rm(set.root, { recursive: true, force: true });
  }

  if (ctx.groups.includes('md')) {
    // create / stat (cold) / unlink of empty files, in one directory and in 100
    for (const [dirs, workers] of MD_CONFIGS) {
      const name = `md-${dirs}dir-${workers}w`;
      if (ctx.interrupted()) throw new BenchInterrupted();
      progress.begin(show(`${name} (${sizes.mdFiles} files)`));
      try {
        await cold();
        let how: Record<string, unknown> = {};
        const r = await metadataLoop(join(t.dir, name), sizes.mdFiles, dirs, workers, async () => {
          how = await cold();
        });
        const extra = { files: sizes.mdFiles, dirs, workers };
        for (const op of ['create', 'stat', 'unlink'] as const) results.set(`${name}-${op}`, 'ops/s', L, rateCell(r[op], op === 'stat' ? { ...extra, ...how } : extra));
        progress.end(show(name), `create ${r.create.per_s}, stat ${r.stat.per_s}, unlink ${r.unlink.per_s} ops/s`);
      } catch (e) {
        ok = false;
        for (const op of ['create', 'stat', 'unlink']) results.set(`${name}-${op}`, 'ops/s', L, { error: message(e) });
        progress.end(show(name), `FAILED: ${message(e)}`);
        await rm(join(t.dir, name), { recursive: true, force: true });
      }
    }
  }
  return ok;
}
