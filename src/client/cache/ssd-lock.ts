/**
 * One client per cache dir on a host: `<dir>/.lock` is created O_EXCL holding the owner's
 * pid. A lock whose pid is dead is stale and taken over.
 */
import { open, readFile, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { err } from '../../common/errno.js';

export const LOCK_FILE = '.lock';
const MAX_TAKEOVER_ATTEMPTS = 5;
/** a lock file without a pid younger than this may be a writer between create and write */
const EMPTY_LOCK_GRACE_MS = 5_000;

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: it exists but belongs to someone else
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Takes the lock of dir. Throws EBUSY when a live process holds it; I/O errors
 * (the dir unusable) are thrown as they are.
 */
export async function acquireDirLock(dir: string): Promise<void> {
  const path = join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < MAX_TAKEOVER_ATTEMPTS; attempt++) {
    try {
      const fh = await open(path, 'wx', 0o644);
      try {
        await fh.writeFile(`${process.pid}\n`);
      } finally {
        await fh.close();
      }
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    let owner = NaN;
    try {
      owner = Number.parseInt(await readFile(path, 'utf8'), 10);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue; // released meanwhile
      throw e;
    }
    // Our own pid in a lock we do not hold (the caller checks in-process opens) is a
    // leftover of an earlier process that had the same pid, e.g. pid 1 in a container.
    if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && pidAlive(owner)) {
      throw err('EBUSY', `ssd cache dir ${dir} is in use by process ${owner}`, 'SSD_CACHE_LOCKED');
    }
    if (!(Number.isInteger(owner) && owner > 0)) {
      const age = await stat(path).then((st) => Date.now() - st.mtimeMs, () => Infinity);
      if (age < EMPTY_LOCK_GRACE_MS) throw err('EBUSY', `ssd cache dir ${dir} is being locked by another process`, 'SSD_CACHE_LOCKED');
    }
    // A dead owner, or an old lock without a pid (its writer died between create and write): stale.
    await unlink(path).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw e;
    });
  }
  throw err('EBUSY', `ssd cache dir ${dir}: lock keeps changing hands`, 'SSD_CACHE_LOCKED');
}

export async function releaseDirLock(dir: string): Promise<void> {
  await unlink(join(dir, LOCK_FILE)).catch(() => undefined);
}
