/**
 * Cold runs. The kernel's page, dentry and inode caches go (which also drops what a
 * FUSE mount kept); for a Stria mount the client's unused LDLM locks go first, and with
 * them the mount's cached pages and attributes, so the next access asks the servers.
 *
 * In a container /proc/sys is read-only: there each file under the work directory is
 * dropped from the page cache on its own (POSIX_FADV_DONTNEED through `dd
 * iflag=nocache`), which needs no privilege; dentries and inodes then stay cached.
 */
import { execFile } from 'node:child_process';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { toStriaError } from '../common/errno.js';
import { ask, type Endpoint } from '../ctl/control-client.js';

const run = promisify(execFile);
const DROP_CACHES = '/proc/sys/vm/drop_caches';
/** dd processes at once when files are dropped one by one */
const FILE_DROP_PARALLEL = 8;

export type ColdMethod = 'drop_caches' | 'per-file';

export async function syncAll(): Promise<void> {
  await run('sync', [], { timeout: 5 * 60_000 });
}

/**
 * Drops the kernel's caches: all of them when /proc/sys/vm/drop_caches is writable,
 * else the page cache of every file below `dir`. Returns how it was done.
 */
export async function dropKernelCaches(dir: string, dropCachesFile = DROP_CACHES): Promise<ColdMethod> {
  await syncAll();
  try {
    await writeFile(dropCachesFile, '3');
    return 'drop_caches';
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EROFS' && code !== 'EACCES' && code !== 'EPERM') throw toStriaError(e);
  }
  await dropFileCaches(dir);
  return 'per-file';
}

/** POSIX_FADV_DONTNEED on every regular file below dir (after a sync, so nothing dirty stays). */
export async function dropFileCaches(dir: string): Promise<number> {
  const files: string[] = [];
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (e.isFile()) files.push(join(e.parentPath ?? e.path, e.name));
  }
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(FILE_DROP_PARALLEL, files.length) }, async () => {
      for (let i = next++; i < files.length; i = next++) {
        await run('dd', [`if=${files[i]}`, 'iflag=nocache', 'count=0', 'status=none'], { timeout: 60_000 });
      }
    }),
  );
  return files.length;
}

/** `lctl set_param ldlm.namespaces.*.lru_size=clear` on one mount process: its unused locks are cancelled. */
export async function clearMountLocks(ep: Endpoint): Promise<void> {
  const r = await ask(ep, { op: 'set', pattern: 'ldlm.namespaces.*.lru_size', value: 'clear' });
  if (!r) throw new Error(`the stria mount process ${ep.pid} is gone`);
  if (!r.ok) throw new Error(`clearing the locks of stria mount process ${ep.pid}: ${r.error.message}`);
  const failed = 'written' in r ? r.written.find((w) => w.error) : undefined;
  if (failed) throw new Error(`clearing the locks of stria mount process ${ep.pid}: ${failed.name}: ${failed.error!.message}`);
}
