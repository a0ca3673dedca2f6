/**
 * Cold runs: the kernel's page, dentry and inode caches go (which also drops
 * what a FUSE mount kept), and for a Stria mount the client's unused LDLM locks
 * too, so the next access has to ask the servers again.
 */
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { STRIA_BIN } from '../../test/helpers/cluster.js';

const run = promisify(execFile);

export async function syncAll(): Promise<void> {
  await run('sync', [], { timeout: 5 * 60_000 });
}

export async function dropKernelCaches(): Promise<void> {
  await syncAll();
  await writeFile('/proc/sys/vm/drop_caches', '3');
}

/** lctl set_param ldlm.namespaces.*.lru_size=clear against the daemons and mounts of runDir. */
export async function clearStriaLocks(runDir: string): Promise<void> {
  const lctl = join(STRIA_BIN, '..', 'lctl.js');
  await run(process.execPath, [lctl, 'set_param', 'ldlm.namespaces.*.lru_size=clear'], {
    env: { ...process.env, STRIA_RUN_DIR: runDir },
    timeout: 60_000,
  });
}
