/**
 * The kernel's mount table (/proc/self/mountinfo), to map an ordinary path to
 * the Stria filesystem mounted there: the mount's source is the filesystem
 * spec (MGSNID:/FSNAME[/SUBDIR]) and its type is fuse.stria.
 */
import { readFile } from 'node:fs/promises';

export const STRIA_FSTYPE = 'fuse.stria';
export const MOUNTINFO = '/proc/self/mountinfo';

export interface MountEntry {
  mountId: number;
  parentId: number;
  /** the directory of the mounted filesystem that appears at the mountpoint ("/" unless a bind mount) */
  root: string;
  mountpoint: string;
  fstype: string;
  source: string;
}

/** Undoes the kernel's octal escapes (\040 space, \011 tab, \012 newline, \134 backslash). */
export function unescapeMountField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/**
 * Parses mountinfo text, one mount per line:
 *   36 35 98:0 /root /mnt/point rw,noatime shared:1 - fstype source superopts
 * The optional fields end at the lone "-". Lines that do not parse are skipped.
 */
export function parseMountinfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    const dash = f.indexOf('-', 6);
    if (f.length < 10 || dash < 0 || dash + 2 >= f.length) continue;
    const mountId = Number(f[0]);
    const parentId = Number(f[1]);
    if (!Number.isInteger(mountId) || !Number.isInteger(parentId)) continue;
    out.push({
      mountId,
      parentId,
      root: unescapeMountField(f[3]!),
      mountpoint: unescapeMountField(f[4]!),
      fstype: unescapeMountField(f[dash + 1]!),
      source: unescapeMountField(f[dash + 2]!),
    });
  }
  return out;
}

export async function readMountTable(file = MOUNTINFO): Promise<MountEntry[]> {
  return parseMountinfo(await readFile(file, 'utf8'));
}

function isUnder(path: string, dir: string): boolean {
  return dir === '/' || path === dir || path.startsWith(dir + '/');
}

/**
 * The mount an absolute, normalized path lives on: the longest mountpoint
 * containing it; of several mounts at one mountpoint the last one listed
 * (mounted last) is the one visible.
 */
export function mountOf(mounts: MountEntry[], absPath: string): MountEntry | undefined {
  let best: MountEntry | undefined;
  for (const m of mounts) {
    if (!isUnder(absPath, m.mountpoint)) continue;
    if (!best || m.mountpoint.length >= best.mountpoint.length) best = m;
  }
  return best;
}

/** The path inside the mounted filesystem, as components (a bind mount's root included). */
export function pathInMount(m: MountEntry, absPath: string): string[] {
  const rel = m.mountpoint === '/' ? absPath : absPath.slice(m.mountpoint.length);
  return [...m.root.split('/'), ...rel.split('/')].filter((p) => p.length > 0);
}

/** Every visible Stria mount, in mount order; a mountpoint covered by a later mount is left out. */
export function striaMounts(mounts: MountEntry[]): MountEntry[] {
  return mounts.filter((m) => m.fstype === STRIA_FSTYPE && mountOf(mounts, m.mountpoint) === m);
}
