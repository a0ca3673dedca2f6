/**
 * The commands a mounted client answers on its control socket for `stria warmup` and
 * `stria stats`:
 *
 *   mount.info                 → MountInfo (which mount this process serves)
 *   cache.warmup  {path}       → { size, loadedBytes }
 *   cache.check   {path}       → { size, cachedBytes }
 *   cache.evict   {path}       → { size, droppedBytes }
 *   cache.stats                → CacheStatsSnapshot
 *
 * `path` names a regular file below the mount's root (the mounted fileset), as a string
 * "dir/file" or as components; it may not climb out with "..".
 */
import { z } from 'zod';
import { err } from '../common/errno.js';
import type { Fid } from '../common/fid.js';
import type { StriaClient } from '../client/client.js';
import { resolvePath } from '../client/fs-spec.js';
import type { ParamRegistry } from './params.js';
import type { ClientCache } from './cache-params.js';

export interface MountInfo {
  /** where the filesystem is mounted, when the mount told the control server */
  mountpoint?: string;
  fsname: string;
  /** the mounted subdirectory of the filesystem (components; empty for the whole filesystem) */
  fileset: string[];
  /** the client instance id of the parameter names (llite.<fsname>-<instance>.*) */
  instance: string;
  pid: number;
}

export interface CacheCommandOptions {
  instance: string;
  mountpoint?: string;
  fileset?: string[];
}

export const PathArgs = z.object({ path: z.union([z.string().max(65536), z.array(z.string().max(4096)).max(4096)]) });

/** The components of a path argument below the mount's root. */
export function pathComponents(path: string | string[]): string[] {
  const parts = (typeof path === 'string' ? path.split('/') : path).filter((p) => p.length > 0 && p !== '.');
  for (const p of parts) {
    if (p === '..' || p.includes('/') || p.includes('\0')) throw err('EINVAL', `'${p}' is not a name inside the mount`, 'BAD_CACHE_PATH');
  }
  return parts;
}

function parseArgs(args: unknown): string[] {
  const r = PathArgs.safeParse(args);
  if (!r.success) throw err('EINVAL', 'expected { path: string | string[] }', 'BAD_CACHE_ARGS');
  return pathComponents(r.data.path);
}

/**
 * Registers mount.info and, when the client has a cache, the cache.* commands.
 * Returns a function that removes them.
 */
export function registerCacheCommands(reg: ParamRegistry, client: StriaClient, cache: ClientCache | undefined, opts: CacheCommandOptions): () => void {
  const fileset = opts.fileset ?? [];
  const info = (): MountInfo => ({
    ...(opts.mountpoint !== undefined ? { mountpoint: opts.mountpoint } : {}),
    fsname: client.fsname,
    fileset,
    instance: opts.instance,
    pid: process.pid,
  });
  const undo = [reg.command('mount.info', info)];
  if (cache) {
    const regularFile = async (args: unknown): Promise<{ fid: Fid; size: number }> => {
      const path = parseArgs(args);
      const { attr } = await resolvePath(client, [...fileset, ...path]);
      if (attr.type === 'dir') throw err('EISDIR', `/${path.join('/')} is a directory`, 'NOT_REGULAR_FILE');
      if (attr.type !== 'reg') throw err('EINVAL', `/${path.join('/')} is not a regular file`, 'NOT_REGULAR_FILE');
      return { fid: attr.fid, size: attr.size };
    };
    undo.push(
      reg.command('cache.warmup', async (args) => cache.warmup((await regularFile(args)).fid)),
      reg.command('cache.check', async (args) => cache.check((await regularFile(args)).fid)),
      reg.command('cache.evict', async (args) => {
        const { fid, size } = await regularFile(args);
        return { size, droppedBytes: await cache.evict(fid) };
      }),
      reg.command('cache.stats', () => cache.stats()),
    );
  }
  return () => {
    for (const u of undo) u();
  };
}
