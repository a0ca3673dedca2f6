/**
 * The client cache's lctl parameters (reference §5, §8.6), with Lustre's names and formats:
 *
 *   llite.<fs>-<inst>.max_cached_mb            users/max_cached_mb/used_mb/unused_mb; set: MiB
 *   llite.<fs>-<inst>.max_read_ahead_mb        MiB, settable
 *   llite.<fs>-<inst>.max_read_ahead_per_file_mb
 *   llite.<fs>-<inst>.max_read_ahead_whole_mb
 *   llite.<fs>-<inst>.read_ahead_stats         lprocfs stats: hits, misses [pages], ...
 *   llite.<fs>-<inst>.cache_stats              hit/miss bytes and requests per level
 *   osc.<dev>.cur_grant_bytes                  the OSC's unspent grant
 *   osc.<dev>.max_dirty_mb                     MiB of dirty data allowed per OST, settable
 *
 * The cache's counters only grow; writing a stats file (any value, as in Lustre) restarts
 * what it shows from that moment by keeping the counters seen then as a baseline.
 */
import type { CacheControl, CacheStatsSnapshot, CacheTunables } from '../client/cache/types.js';
import type { OstClient } from '../client/osc.js';
import { now, type Timestamp } from '../common/time.js';
import type { Param } from './params.js';
import { ro } from './common-params.js';
import { formatCounterLine, formatStats, formatStatsHeader, type CounterSnapshot, type StatUnit } from './stats.js';
import { checkRange, parseSizeValue } from './values.js';
import type { LliteStats } from './llite-stats.js';

/** The client's cache as the tools see it (StriaClient.cache). */
export type ClientCache = CacheControl & { tunables: CacheTunables };

const MiB = 1 << 20;
/** Lustre's OSC_MAX_DIRTY_MB_MAX: max_dirty_mb stays below it */
export const OSC_MAX_DIRTY_MB_MAX = 2048;
/** No single tunable may exceed this (the largest byte count these parameters accept). */
const MAX_TUNABLE_MB = 1 << 30;

/**
 * A size written to a *_mb parameter: MiB when bare (Lustre's lprocfs_str_with_units_to_s64
 * with default unit 'M'), or with a unit (4G, 512M, 1048576B...). Lustre also takes
 * "max_cached_mb: N" as max_cached_mb prints it; so do we.
 */
export function parseMbValue(value: string, what: string): number {
  const v = value.replace(/\n$/, '').trim().replace(new RegExp(`^${what}:\\s*`), '');
  const { bytes } = parseSizeValue(v, what, MiB);
  return bytes;
}

const mb = (bytes: number) => Math.floor(bytes / MiB);

/** `max_cached_mb` as Lustre's ll_max_cached_mb_seq_show prints it. */
export function formatMaxCachedMb(s: CacheStatsSnapshot, maxCachedBytes: number): string {
  const max = mb(maxCachedBytes);
  const used = mb(s.memory.cachedBytes);
  return `users: 1\nmax_cached_mb: ${max}\nused_mb: ${used}\nunused_mb: ${Math.max(0, max - used)}\n`;
}

/** Counters that restart at zero when the file is written, over ever-growing sources. */
class ClearableCounters<K extends string> {
  private base: Record<K, number>;
  private started: Timestamp = now();

  constructor(private readonly read: () => Record<K, number>) {
    this.base = read();
  }

  get startTime(): Timestamp {
    return this.started;
  }

  current(): Record<K, number> {
    const cur = this.read();
    const out = { ...cur };
    // a source that starts over (a cache rebuilt) counts from zero again, never below it
    for (const k of Object.keys(cur) as K[]) out[k] = cur[k] >= this.base[k] ? cur[k] - this.base[k] : cur[k];
    return out;
  }

  clear(): void {
    this.base = this.read();
    this.started = now();
  }
}

function eventCounter(name: string, samples: number, unit: StatUnit): CounterSnapshot {
  return { name, unit, minmax: false, samples, min: 0, max: 0, sum: 0, sumsq: 0n };
}

/** The request counts of the cache levels, shown in llite.*.stats (each read served or not by a level). */
const LLITE_CACHE_COUNTERS = ['cache_hit', 'cache_miss', 'ssd_cache_hit', 'ssd_cache_miss'] as const;

function lliteCacheCounts(s: CacheStatsSnapshot): Record<(typeof LLITE_CACHE_COUNTERS)[number], number> {
  return {
    cache_hit: s.memory.hitRequests,
    cache_miss: s.memory.missRequests,
    ssd_cache_hit: s.ssd.hitRequests,
    ssd_cache_miss: s.ssd.missRequests,
  };
}

/**
 * llite.*.stats: the VFS counters of the FUSE adapter followed by the cache's
 * `cache_hit`/`cache_miss` (memory) and `ssd_cache_hit`/`ssd_cache_miss` request
 * counts; writing clears both.
 */
export function lliteStatsParam(llite: LliteStats, cache: ClientCache | undefined): Param {
  if (!cache) return { get: () => llite.stats.format(), set: () => llite.stats.clear() };
  const counts = new ClearableCounters(() => lliteCacheCounts(cache.stats()));
  return {
    get: () => {
      const c = counts.current();
      const extra = LLITE_CACHE_COUNTERS.map((n) => eventCounter(n, c[n], 'reqs'));
      return formatStats(llite.stats.startTime, [...llite.stats.all(), ...extra]);
    },
    set: () => {
      llite.stats.clear();
      counts.clear();
    },
  };
}

function readaheadCounts(s: CacheStatsSnapshot) {
  return {
    hits: s.readahead.hits,
    misses: s.readahead.misses,
    whole_file_read: s.readahead.wholeFileReads,
    strided_window: s.readahead.stridedWindows,
  };
}

/**
 * read_ahead_stats in Lustre's form: the lprocfs header, then `hits` and `misses` (pages
 * found or not already read ahead) and the windows opened for whole-file and strided
 * reads, each line as `NAME N samples [unit]`. Lines at zero are left out, as Lustre does.
 */
export function formatReadAheadStats(start: Timestamp, c: ReturnType<typeof readaheadCounts>, at: Timestamp = now()): string {
  let out = formatStatsHeader(start, at);
  const lines: CounterSnapshot[] = [
    eventCounter('hits', c.hits, 'pages'),
    eventCounter('misses', c.misses, 'pages'),
    eventCounter('whole_file_read', c.whole_file_read, 'reqs'),
    eventCounter('strided_window', c.strided_window, 'reqs'),
  ];
  for (const l of lines) if (l.samples > 0) out += formatCounterLine(l);
  return out;
}

function levelCounts(s: CacheStatsSnapshot) {
  return {
    mem_hit_bytes: s.memory.hitBytes,
    mem_hit_requests: s.memory.hitRequests,
    mem_miss_bytes: s.memory.missBytes,
    mem_miss_requests: s.memory.missRequests,
    ssd_hit_bytes: s.ssd.hitBytes,
    ssd_hit_requests: s.ssd.hitRequests,
    ssd_miss_bytes: s.ssd.missBytes,
    ssd_miss_requests: s.ssd.missRequests,
    oss_read_bytes: s.oss.readBytes,
    oss_read_requests: s.oss.readRequests,
    oss_write_bytes: s.oss.writeBytes,
    oss_write_requests: s.oss.writeRequests,
    readahead_bytes: s.readahead.readaheadBytes,
  };
}

/**
 * cache_stats: what each level served in bytes and requests since the start (or the last
 * write to the file), then the levels' current sizes, as `name: value` lines.
 */
export function formatCacheStats(start: Timestamp, c: ReturnType<typeof levelCounts>, s: CacheStatsSnapshot, at: Timestamp = now()): string {
  let out = formatStatsHeader(start, at, ':');
  for (const [k, v] of Object.entries(c)) out += `${k}: ${v}\n`;
  out += `mem_cached_bytes: ${s.memory.cachedBytes}\n`;
  out += `mem_max_bytes: ${s.memory.maxBytes}\n`;
  out += `ssd_enabled: ${s.ssd.enabled ? 1 : 0}\n`;
  out += `ssd_cached_bytes: ${s.ssd.cachedBytes}\n`;
  out += `ssd_max_bytes: ${s.ssd.maxBytes}\n`;
  out += `ssd_errors: ${s.ssd.errors}\n`;
  out += `dirty_bytes: ${s.dirtyBytes}\n`;
  out += `max_dirty_bytes: ${s.maxDirtyBytes}\n`;
  out += `grant_bytes: ${s.grantBytes}\n`;
  return out;
}

function clearableParam<K extends string>(counters: ClearableCounters<K>, format: (c: Record<K, number>) => string): Param {
  return { get: () => format(counters.current()), set: () => counters.clear() };
}

/** A tunable in MiB: reads the integer MiB, writes MiB (or a size with a unit) within [min, max] MiB. */
function mbTunable(read: () => number, write: (bytes: number) => void, what: string, range: () => [number, number]): Param {
  return {
    get: () => String(mb(read())),
    set: (v) => {
      const bytes = parseMbValue(v, what);
      const [lo, hi] = range();
      checkRange(mb(bytes), lo, hi, what);
      write(bytes);
    },
  };
}

/** The llite-level cache parameters of one mount (`llite` is `llite.<fs>-<inst>`). */
export function lliteCacheParams(llite: string, cache: ClientCache): Array<[string, Param]> {
  const t = cache.tunables;
  const ra = new ClearableCounters(() => readaheadCounts(cache.stats()));
  const levels = new ClearableCounters(() => levelCounts(cache.stats()));
  return [
    [
      `${llite}.max_cached_mb`,
      {
        get: () => formatMaxCachedMb(cache.stats(), t.maxCachedBytes),
        set: (v) => {
          const bytes = parseMbValue(v, 'max_cached_mb');
          checkRange(mb(bytes), 1, MAX_TUNABLE_MB, 'max_cached_mb');
          t.maxCachedBytes = bytes;
        },
      },
    ],
    // Lustre's ranges: per-file at most the total, whole-file at most per-file; lowering
    // the total lowers the other two with it.
    [
      `${llite}.max_read_ahead_mb`,
      mbTunable(
        () => t.maxReadAheadBytes,
        (b) => {
          t.maxReadAheadBytes = b;
          if (t.maxReadAheadPerFileBytes > b) t.maxReadAheadPerFileBytes = b;
          if (t.maxReadAheadWholeBytes > t.maxReadAheadPerFileBytes) t.maxReadAheadWholeBytes = t.maxReadAheadPerFileBytes;
        },
        'max_read_ahead_mb',
        () => [0, MAX_TUNABLE_MB],
      ),
    ],
    [
      `${llite}.max_read_ahead_per_file_mb`,
      mbTunable(() => t.maxReadAheadPerFileBytes, (b) => (t.maxReadAheadPerFileBytes = b), 'max_read_ahead_per_file_mb', () => [0, mb(t.maxReadAheadBytes)]),
    ],
    [
      `${llite}.max_read_ahead_whole_mb`,
      mbTunable(() => t.maxReadAheadWholeBytes, (b) => (t.maxReadAheadWholeBytes = b), 'max_read_ahead_whole_mb', () => [0, mb(t.maxReadAheadPerFileBytes)]),
    ],
    [`${llite}.read_ahead_stats`, clearableParam(ra, (c) => formatReadAheadStats(ra.startTime, c))],
    [`${llite}.cache_stats`, clearableParam(levels, (c) => formatCacheStats(levels.startTime, c, cache.stats()))],
  ];
}

/**
 * The OSC-level cache parameters of one OSC device (`p` is `osc.<dev>`). max_dirty_mb is
 * one value for every OST of the mount: setting it on one OSC sets it on all.
 */
export function oscCacheParams(p: string, osc: OstClient, cache: ClientCache): Array<[string, Param]> {
  const t = cache.tunables;
  return [
    [`${p}.cur_grant_bytes`, ro(() => osc.curGrantBytes)],
    [
      `${p}.max_dirty_mb`,
      mbTunable(() => t.maxDirtyBytesPerOst, (b) => (t.maxDirtyBytesPerOst = b), 'max_dirty_mb', () => [1, OSC_MAX_DIRTY_MB_MAX - 1]),
    ],
  ];
}
