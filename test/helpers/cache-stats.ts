/** The cache counters of a mount, through `stria stats --json` (what an admin runs). */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { STRIA_BIN } from './cluster.js';
import type { CacheStatsSnapshot } from '../../src/client/cache/types.js';

const run = promisify(execFile);

export type CacheSnapshot = CacheStatsSnapshot;

export async function cacheStats(runDir: string, mountpoint: string): Promise<CacheSnapshot> {
  const r = await run(process.execPath, [STRIA_BIN, 'stats', '--json', mountpoint], { env: { ...process.env, STRIA_RUN_DIR: runDir }, timeout: 60_000 });
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as CacheSnapshot;
}
