/** Unmounting a Stria mountpoint, with the tools this host has. */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { err } from '../common/errno.js';

const run = promisify(execFile);

/** Mountpoints in /proc/self/mountinfo escape space, tab, newline and backslash as octal. */
function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export async function isStriaMount(mountpoint: string): Promise<boolean> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  return text.split('\n').some((line) => {
    const f = line.split(' ');
    const sep = f.indexOf('-');
    return sep > 0 && unescapeMount(f[4] ?? '') === mountpoint && (f[sep + 1] ?? '').startsWith('fuse.stria');
  });
}

export async function unmountPath(mountpoint: string, lazy: boolean): Promise<void> {
  if (!(await isStriaMount(mountpoint))) throw err('EINVAL', `${mountpoint} is not a Stria mountpoint`, 'NOT_MOUNTED');
  const args = lazy ? ['-u', '-z', mountpoint] : ['-u', mountpoint];
  try {
    await run('fusermount3', args);
  } catch (e) {
    const stderr = (e as { stderr?: string }).stderr?.trim();
    throw err('EBUSY', stderr || `could not unmount ${mountpoint}`, 'UMOUNT_FAILED');
  }
}
