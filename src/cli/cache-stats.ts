/**
 * `stria stats MOUNTPOINT [--interval S] [--count N] [--json]`: the client cache's counters
 * of one mount. By default a dstat-like view, one line per interval with the rates of the
 * interval (on a terminal the current line refreshes every second until its interval is
 * over); with --json the full snapshot (CacheStatsSnapshot) as one JSON line.
 */
import type { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import { toStriaError } from '../common/errno.js';
import type { CacheStatsSnapshot } from '../client/cache/types.js';
import { call } from '../ctl/control-client.js';
import { validated } from './args.js';
import { fileError, MountEndpoints, realPathArg, type MountClient } from './mount-endpoint.js';

const MiB = 1 << 20;
/** The header is repeated every this many lines, as dstat does. */
export const HEADER_EVERY = 20;

const W = 7;
const col = (s: string, w = W) => s.padStart(w);
const group = (title: string, width: number) => {
  const pad = width - title.length;
  const left = Math.max(0, Math.floor(pad / 2));
  return `${'-'.repeat(left)}${title}${'-'.repeat(Math.max(0, pad - left))}`;
};

/** The two header lines of the view. */
export function statsHeader(): string {
  const pair = 2 * W + 1;
  const top = [group('mem MiB/s', pair), group('ssd MiB/s', pair), group('oss MiB/s', pair), group('dirty', W), group('grant', W), group('readahead/s', pair)];
  const cols = [col('hit'), col('miss'), col('hit'), col('miss'), col('read'), col('write'), col('MiB'), col('MiB'), col('hits'), col('misses')];
  return `${top.join(' ')}\n${[cols.slice(0, 2).join(' '), cols.slice(2, 4).join(' '), cols.slice(4, 6).join(' '), cols[6], cols[7], cols.slice(8).join(' ')].join(' ')}\n`;
}

/** Bytes per second in MiB with one decimal; a rate too wide for the column loses its decimals. */
function rateMiB(bytes: number, seconds: number): string {
  const v = seconds > 0 ? bytes / MiB / seconds : 0;
  const s = v.toFixed(1);
  return col(s.length <= W ? s : v.toFixed(0));
}

function rate(n: number, seconds: number): string {
  return col(String(Math.round(seconds > 0 ? n / seconds : 0)));
}

/** A counter's growth; a counter that went back (the cache restarted) counts from zero. */
const delta = (cur: number, prev: number) => (cur >= prev ? cur - prev : cur);

/** One line of the view: the rates between two snapshots `seconds` apart, and the current dirty and grant sizes. */
export function statsRow(prev: CacheStatsSnapshot, cur: CacheStatsSnapshot, seconds: number): string {
  const d = (f: (s: CacheStatsSnapshot) => number) => delta(f(cur), f(prev));
  return [
    rateMiB(d((s) => s.memory.hitBytes), seconds),
    rateMiB(d((s) => s.memory.missBytes), seconds),
    rateMiB(d((s) => s.ssd.hitBytes), seconds),
    rateMiB(d((s) => s.ssd.missBytes), seconds),
    rateMiB(d((s) => s.oss.readBytes), seconds),
    rateMiB(d((s) => s.oss.writeBytes), seconds),
    col((cur.dirtyBytes / MiB).toFixed(1)),
    col((cur.grantBytes / MiB).toFixed(1)),
    rate(d((s) => s.readahead.hits), seconds),
    rate(d((s) => s.readahead.misses), seconds),
  ].join(' ');
}

export interface StatsOptions {
  /** seconds between lines */
  interval: number;
  /** lines to print; undefined: until interrupted (the view) or 1 (--json) */
  count?: number;
  json: boolean;
}

export interface StatsIo {
  out: Writable & { isTTY?: boolean };
  /** redraw the current line every second (a terminal) */
  refresh: boolean;
  endpoints?: MountEndpoints;
  /** stops the loop early (tests, signals) */
  signal?: AbortSignal;
}

async function snapshotOf(client: MountClient): Promise<CacheStatsSnapshot> {
  return (await call(client.endpoint, 'cache.stats', undefined, 30_000)) as CacheStatsSnapshot;
}

const seconds = (from: bigint) => Number(process.hrtime.bigint() - from) / 1e9;

/** Finds the mount holding `mountpoint` (any path in the mount will do) and prints its counters. */
export async function runStats(mountpoint: string, o: StatsOptions, io: StatsIo): Promise<void> {
  const abs = await realPathArg(mountpoint);
  const endpoints = io.endpoints ?? new MountEndpoints();
  let client: MountClient;
  try {
    client = (await endpoints.forPath(abs)).client;
  } catch (e) {
    throw fileError(mountpoint, e);
  }
  const wait = (s: number) => sleep(s * 1000, undefined, { signal: io.signal }).then(
    () => true,
    () => false,
  );

  if (o.json) {
    const count = o.count ?? 1;
    for (let i = 0; i < count; i++) {
      if (i > 0 && !(await wait(o.interval))) return;
      io.out.write(`${JSON.stringify(await snapshotOf(client))}\n`);
    }
    return;
  }

  const count = o.count ?? Infinity;
  let prev = await snapshotOf(client);
  let prevAt = process.hrtime.bigint();
  for (let line = 0; line < count; line++) {
    if (line % HEADER_EVERY === 0) io.out.write(statsHeader());
    // on a terminal the line shows the interval so far, once a second
    const step = io.refresh ? Math.min(1, o.interval) : o.interval;
    let cur = prev;
    for (let waited = 0; waited < o.interval - 1e-9; ) {
      const s = Math.min(step, o.interval - waited);
      if (!(await wait(s))) return;
      waited += s;
      cur = await snapshotOf(client);
      if (io.refresh && waited < o.interval - 1e-9) io.out.write(`\r${statsRow(prev, cur, seconds(prevAt))}\x1b[K`);
    }
    const row = statsRow(prev, cur, seconds(prevAt));
    io.out.write(io.refresh ? `\r${row}\x1b[K\n` : `${row}\n`);
    prev = cur;
    prevAt = process.hrtime.bigint();
  }
}

export const intervalArg = validated((v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0.1 || n > 86_400) throw new Error('--interval must be 0.1..86400 seconds');
  return n;
});

export const countArg = validated((v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error('--count must be a positive integer');
  return n;
});

export function addStatsCommand(program: Command): void {
  program
    .command('stats')
    .description("a mount's client cache counters: a dstat-like view of hits, misses, OSS traffic, dirty and grant, or --json")
    .argument('<mountpoint>', 'a Stria mountpoint (or any path inside it)')
    .option('-i, --interval <seconds>', 'seconds between lines', intervalArg, 1)
    .option('-c, --count <n>', 'stop after this many lines (--json: 1 unless given)', countArg)
    .option('--json', 'print the full counters as one JSON line')
    .action(async (mountpoint: string, o: { interval: number; count?: number; json?: boolean }) => {
      try {
        await runStats(mountpoint, { interval: o.interval, count: o.count, json: o.json === true }, { out: process.stdout, refresh: process.stdout.isTTY === true });
      } catch (e) {
        process.stderr.write(`stria stats: ${toStriaError(e).message}\n`);
        process.exitCode = 1;
      }
    });
}
