/** Parameter shapes shared by several device types. */
import type { StatFs } from '../common/statfs.js';
import type { Param } from './params.js';
import type { StatsSet } from './stats.js';

/** A read-only value computed on each read. */
export function ro(get: () => string | number | Promise<string | number>): Param {
  return { get: async () => String(await get()) };
}

/** A stats file: reading prints the counters, writing anything clears them (as Lustre). */
export function statsParam(stats: () => StatsSet): Param {
  return {
    get: () => stats().format(),
    set: () => stats().clear(),
  };
}

/**
 * blocksize, kbytestotal, kbytesfree, kbytesavail, filestotal, filesfree of one
 * statfs source, as every Lustre device with space shows them.
 */
export function statfsParams(prefix: string, fetch: () => Promise<StatFs>): Array<[string, Param]> {
  const kb = (blocks: number, bsize: number) => Math.floor((blocks * bsize) / 1024);
  const field = (f: (s: StatFs) => number): Param => ro(async () => f(await fetch()));
  return [
    [`${prefix}.blocksize`, field((s) => s.bsize)],
    [`${prefix}.kbytestotal`, field((s) => kb(s.blocks, s.bsize))],
    [`${prefix}.kbytesfree`, field((s) => kb(s.bfree, s.bsize))],
    [`${prefix}.kbytesavail`, field((s) => kb(s.bavail, s.bsize))],
    [`${prefix}.filestotal`, field((s) => s.files)],
    [`${prefix}.filesfree`, field((s) => s.ffree)],
  ];
}
