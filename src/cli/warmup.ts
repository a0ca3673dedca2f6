/**
 * `stria warmup [-p N] [--check | --evict] [--json] PATH...`: loads the regular files under
 * each PATH into the client cache of the mount holding it (memory and the --cache-dir SSD
 * cache), or reports how much of them is cached (--check), or drops them (--evict).
 * Directories are walked through the mount; the files go to the mount process one at a
 * time per worker, N workers at once, over its control socket (cache.* commands).
 */
import { opendir, lstat, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { Command, Option } from 'commander';
import cliProgress from 'cli-progress';
import { StriaError, toStriaError } from '../common/errno.js';
import { call } from '../ctl/control-client.js';
import { validated } from './args.js';
import { fileError, MountEndpoints, realPathArg, type MountClient } from './mount-endpoint.js';

export type WarmupMode = 'warmup' | 'check' | 'evict';

export const DEFAULT_PARALLEL = 4;
export const MAX_PARALLEL = 1024;
/** One file may be large and the OSTs slow: a generous bound on one file's command. */
const FILE_TIMEOUT_MS = 3_600_000;

export interface WarmupTotals {
  mode: WarmupMode;
  /** files done without error */
  files: number;
  failed: number;
  /** the sizes of the files done */
  sizeBytes: number;
  /** warmup: loaded from the OSTs; check: held by the cache; evict: dropped */
  bytes: number;
  seconds: number;
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'] as const;

/** The binary unit `n` bytes are best shown in. */
export function unitFor(n: number): { name: string; scale: number } {
  let i = 0;
  while (i < UNITS.length - 1 && Math.abs(n) >= 1024 ** (i + 1)) i++;
  return { name: UNITS[i]!, scale: 1024 ** i };
}

/** 312.5 MiB, 64.0 KiB, 17 B */
export function formatBytes(n: number): string {
  const u = unitFor(n);
  return u.scale === 1 ? `${Math.round(n)} B` : `${(n / u.scale).toFixed(1)} ${u.name}`;
}

function failedSuffix(t: WarmupTotals): string {
  return t.failed > 0 ? `, ${t.failed} failed` : '';
}

/**
 * The closing line:
 *   warmup: 5000 files, 312.5 MiB loaded into the cache in 12.3 s (25.4 MiB/s)
 *   cached: 5000 files, 312.5/312.5 MiB (100.0%)
 *   evict: 5000 files, 312.5 MiB dropped from the cache
 */
export function formatSummary(t: WarmupTotals): string {
  const files = `${t.files} file${t.files === 1 ? '' : 's'}`;
  switch (t.mode) {
    case 'warmup': {
      const rate = t.seconds > 0 ? ` (${formatBytes(t.bytes / t.seconds)}/s)` : '';
      const already = t.sizeBytes > t.bytes ? `; ${formatBytes(t.sizeBytes - t.bytes)} was already cached` : '';
      return `warmup: ${files}, ${formatBytes(t.bytes)} loaded into the cache in ${t.seconds.toFixed(1)} s${rate}${already}${failedSuffix(t)}`;
    }
    case 'check': {
      const u = unitFor(t.sizeBytes);
      const num = (n: number) => (u.scale === 1 ? String(n) : (n / u.scale).toFixed(1));
      return `cached: ${files}, ${num(t.bytes)}/${num(t.sizeBytes)} ${u.name} (${cachedPercent(t).toFixed(1)}%)${failedSuffix(t)}`;
    }
    case 'evict':
      return `evict: ${files}, ${formatBytes(t.bytes)} dropped from the cache${failedSuffix(t)}`;
  }
}

/** Of nothing, all is cached. */
export function cachedPercent(t: WarmupTotals): number {
  return t.sizeBytes > 0 ? (100 * t.bytes) / t.sizeBytes : 100;
}

const BYTES_KEY: Record<WarmupMode, string> = { warmup: 'loadedBytes', check: 'cachedBytes', evict: 'droppedBytes' };

/** The totals as one JSON object (`--json`). */
export function totalsJson(t: WarmupTotals): Record<string, unknown> {
  return {
    mode: t.mode,
    files: t.files,
    failed: t.failed,
    sizeBytes: t.sizeBytes,
    [BYTES_KEY[t.mode]]: t.bytes,
    ...(t.mode === 'check' ? { cachedPercent: Math.round(cachedPercent(t) * 10) / 10 } : {}),
    seconds: Math.round(t.seconds * 1000) / 1000,
  };
}

export interface FileJob {
  /** the file as shown to the user (the argument, then the names below it) */
  display: string;
  /** absolute and free of symbolic links */
  abs: string;
  /** as stat saw it while walking */
  size: number;
}

/**
 * The regular files under the arguments: an argument naming a file is that file (through
 * symbolic links), one naming a directory is walked depth first without following the
 * symbolic links inside. Errors are reported and the walk goes on.
 */
export async function* walkFiles(
  args: string[],
  onError: (e: Error) => void,
  /** rejects an argument before it is walked (not on a Stria mount...) */
  checkArg: (abs: string) => Promise<unknown> = async () => undefined,
): AsyncGenerator<FileJob> {
  for (const arg of args) {
    let abs: string;
    let st: Awaited<ReturnType<typeof stat>>;
    try {
      abs = await realPathArg(arg);
      st = await stat(abs);
      await checkArg(abs);
    } catch (e) {
      onError(e instanceof StriaError && e.message.startsWith(`${arg}: `) ? e : fileError(arg, e));
      continue;
    }
    if (st.isFile()) yield { display: arg, abs, size: st.size };
    else if (st.isDirectory()) yield* walkDir(arg, abs, onError);
  }
}

async function* walkDir(display: string, abs: string, onError: (e: Error) => void): AsyncGenerator<FileJob> {
  let dir;
  try {
    dir = await opendir(abs);
  } catch (e) {
    onError(fileError(display, e));
    return;
  }
  const subdirs: string[] = [];
  try {
    for await (const d of dir) {
      const childAbs = join(abs, d.name);
      const childDisplay = join(display, d.name);
      if (d.isDirectory()) subdirs.push(d.name);
      else if (d.isFile()) {
        try {
          const st = await lstat(childAbs);
          if (st.isFile()) yield { display: childDisplay, abs: childAbs, size: st.size };
        } catch (e) {
          onError(fileError(childDisplay, e));
        }
      }
    }
  } catch (e) {
    onError(fileError(display, e));
  }
  // the directory handle is closed (the for-await ended) before going down
  for (const name of subdirs) yield* walkDir(join(display, name), join(abs, name), onError);
}

interface FileResult {
  size: number;
  bytes: number;
}

/** Runs the mode's command for one file on the mount process serving it. */
async function runOne(mode: WarmupMode, client: MountClient, path: string[]): Promise<FileResult> {
  const r = (await call(client.endpoint, `cache.${mode}`, { path }, FILE_TIMEOUT_MS)) as Record<string, number>;
  const bytes = mode === 'warmup' ? r.loadedBytes : mode === 'check' ? r.cachedBytes : r.droppedBytes;
  if (typeof r.size !== 'number' || typeof bytes !== 'number') throw new Error(`cache.${mode}: unexpected answer ${JSON.stringify(r)}`);
  return { size: r.size, bytes };
}

export interface WarmupIo {
  /** where errors go (one line each) */
  err: Writable & { isTTY?: boolean };
  /** draw a progress bar on `err` */
  progress: boolean;
  endpoints?: MountEndpoints;
}

const MODE_LABEL: Record<WarmupMode, string> = { warmup: 'warmup', check: 'check', evict: 'evict' };

/** Does the work for every file under `args` with `parallel` workers; errors are reported on io.err and counted. */
export async function runWarmup(args: string[], mode: WarmupMode, parallel: number, io: WarmupIo): Promise<WarmupTotals> {
  const endpoints = io.endpoints ?? new MountEndpoints();
  const t0 = process.hrtime.bigint();
  const totals: WarmupTotals = { mode, files: 0, failed: 0, sizeBytes: 0, bytes: 0, seconds: 0 };
  let found = 0;
  let foundBytes = 0;

  const multi = io.progress
    ? new cliProgress.MultiBar(
        {
          stream: io.err,
          format: `${MODE_LABEL[mode]} |{bar}| {value}/{total} files | {done} of {size}`,
          hideCursor: true,
          clearOnComplete: false,
          fps: 5,
        },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  const bar = multi?.create(0, 0, { done: formatBytes(0), size: formatBytes(0) });
  const report = (e: Error) => {
    totals.failed++;
    const line = `stria warmup: ${e.message}\n`;
    if (multi) multi.log(line);
    else io.err.write(line);
  };
  const update = () => bar?.update(totals.files + totals.failed, { done: formatBytes(totals.sizeBytes), size: formatBytes(foundBytes) });

  const files = walkFiles(args, report, (abs) => endpoints.forPath(abs));
  const worker = async () => {
    for (;;) {
      const next = await files.next();
      if (next.done) return;
      const job = next.value;
      found++;
      foundBytes += job.size;
      bar?.setTotal(found);
      try {
        const { client, path } = await endpoints.forPath(job.abs);
        const r = await runOne(mode, client, path);
        totals.files++;
        totals.sizeBytes += r.size;
        totals.bytes += r.bytes;
      } catch (e) {
        report(fileError(job.display, toStriaError(e)));
      }
      update();
    }
  };
  try {
    await Promise.all(Array.from({ length: parallel }, worker));
  } finally {
    update();
    // stop() drops the lines log() has not drawn yet: draw them first
    multi?.update();
    multi?.stop();
  }
  totals.seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return totals;
}

export const parallelArg = validated((v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > MAX_PARALLEL) throw new Error(`-p must be an integer 1..${MAX_PARALLEL}`);
  return n;
});

export function addWarmupCommand(program: Command): void {
  program
    .command('warmup')
    .description('load files into the client cache of their mount (memory and --cache-dir), or check or drop them')
    .argument('<path...>', 'files and directories (walked recursively) on Stria mounts')
    .option('-p, --parallel <n>', `files in flight at once (1..${MAX_PARALLEL})`, parallelArg, DEFAULT_PARALLEL)
    .addOption(new Option('--check', 'report how much of the files the cache holds instead').conflicts('evict'))
    .addOption(new Option('--evict', 'drop the files from the cache instead').conflicts('check'))
    .option('--json', 'print the result as one JSON line')
    .action(async (paths: string[], o: { parallel: number; check?: boolean; evict?: boolean; json?: boolean }) => {
      const mode: WarmupMode = o.check ? 'check' : o.evict ? 'evict' : 'warmup';
      try {
        const t = await runWarmup(paths, mode, o.parallel, { err: process.stderr, progress: process.stderr.isTTY === true });
        process.stdout.write(`${o.json ? JSON.stringify(totalsJson(t)) : formatSummary(t)}\n`);
        if (t.failed > 0) process.exitCode = 1;
      } catch (e) {
        process.stderr.write(`stria warmup: ${toStriaError(e).message}\n`);
        process.exitCode = 1;
      }
    });
}
