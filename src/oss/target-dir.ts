/**
 * A target directory: formatted once (a marker file naming the target) and
 * served by one process at a time (a lock file holding the owner's pid).
 */
import { link, mkdir, open, readdir, readFile, rename, stat, unlink, utimes } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { err } from '../common/errno.js';
import { writeFileAtomic } from '../common/atomic-file.js';
import { targetName, validateFsname, validateTargetIndex, type TargetKind } from '../common/targets.js';

export const MARKER_FILE = 'stria-target.json';
export const LOCK_FILE = 'stria-target.lock';
export const MARKER_VERSION = 1;

export interface TargetMarker {
  fsname: string;
  index: number;
  uuid: string;
  kind: TargetKind;
  version: number;
  /** the UUID of the filesystem this target belongs to, learnt from the MGS at first registration */
  fsUuid?: string;
}

/** Records the filesystem UUID in a target's marker (first registration with the MGS). */
export async function recordFsUuid(dir: string, fsUuid: string): Promise<void> {
  const m = await readMarker(dir);
  if (!m) throw err('ENOENT', `${dir} is not a formatted target`, 'BAD_TARGET_MARKER');
  if (m.fsUuid === fsUuid) return;
  await writeFileAtomic(join(dir, MARKER_FILE), JSON.stringify({ ...m, fsUuid }, null, 2) + '\n');
}

export interface TargetIdentity {
  fsname: string;
  index: number;
  kind: TargetKind;
}

export interface OpenedTargetDir {
  marker: TargetMarker;
  /** true when this open formatted an empty directory */
  formatted: boolean;
  /** removes the lock file if it is still ours */
  release(): Promise<void>;
}

interface LockOwner {
  pid: number;
  host: string;
}

/**
 * Validates (or formats, when empty) `dir` as target `id` and locks it.
 * `ensureLayout` creates the target's own structure; it runs on every open
 * (after the marker is written), so a format interrupted after the marker
 * completes at the next open instead of leaving an unrecognisable directory.
 */
export async function openTargetDir(
  dir: string,
  id: TargetIdentity,
  ensureLayout: (dir: string) => Promise<void>,
): Promise<OpenedTargetDir> {
  validateFsname(id.fsname);
  validateTargetIndex(id.index);
  await requireDirectory(dir);
  const wanted = targetName(id.fsname, id.kind, id.index);

  let marker = await readMarker(dir);
  if (marker) checkMarker(dir, marker, id, wanted);
  else await requireEmpty(dir, wanted);

  const lock = await acquireLock(dir, wanted);
  try {
    // Another process may have formatted it between our look and the lock.
    marker = await readMarker(dir);
    let formatted = false;
    if (marker) {
      checkMarker(dir, marker, id, wanted);
    } else {
      await requireEmpty(dir, wanted);
      marker = { fsname: id.fsname, index: id.index, uuid: `${wanted}_UUID`, kind: id.kind, version: MARKER_VERSION };
      await writeFileAtomic(join(dir, MARKER_FILE), JSON.stringify(marker, null, 2) + '\n');
      formatted = true;
    }
    await ensureLayout(dir);
    return { marker, formatted, release: lock };
  } catch (e) {
    await lock();
    throw e;
  }
}

async function requireDirectory(dir: string): Promise<void> {
  let st;
  try {
    st = await stat(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw err('ENOENT', `target directory ${dir} does not exist (create it first)`, 'NO_TARGET_DIR');
    }
    throw e;
  }
  if (!st.isDirectory()) throw err('ENOTDIR', `target path ${dir} is not a directory`, 'NO_TARGET_DIR');
}

async function readMarker(dir: string): Promise<TargetMarker | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, MARKER_FILE), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch {
    throw err('EINVAL', `${join(dir, MARKER_FILE)} is not valid JSON`, 'BAD_TARGET_MARKER');
  }
  const r = m as Partial<TargetMarker> | null;
  if (
    !r ||
    typeof r !== 'object' ||
    typeof r.fsname !== 'string' ||
    !Number.isInteger(r.index) ||
    typeof r.uuid !== 'string' ||
    (r.kind !== 'ost' && r.kind !== 'mdt') ||
    !Number.isInteger(r.version)
  ) {
    throw err('EINVAL', `${join(dir, MARKER_FILE)} is not a valid target marker`, 'BAD_TARGET_MARKER');
  }
  if ((r.version as number) > MARKER_VERSION) {
    throw err('EINVAL', `${join(dir, MARKER_FILE)} has version ${r.version}, this software knows up to ${MARKER_VERSION}`, 'BAD_TARGET_MARKER');
  }
  return r as TargetMarker;
}

function checkMarker(dir: string, m: TargetMarker, id: TargetIdentity, wanted: string): void {
  if (m.fsname !== id.fsname || m.index !== id.index || m.kind !== id.kind) {
    const held = targetName(m.fsname, m.kind, m.index);
    throw err('EINVAL', `directory ${dir} holds ${held}, not ${wanted}`, 'FOREIGN_TARGET');
  }
}

/** Leftovers of an interrupted format (lock, marker temp file) do not count as content. */
function isFormatLeftover(name: string): boolean {
  return name === LOCK_FILE || (name.startsWith(`.${MARKER_FILE}.`) && name.endsWith('.tmp')) || name.startsWith(`${LOCK_FILE}.`);
}

async function requireEmpty(dir: string, wanted: string): Promise<void> {
  const content = (await readdir(dir)).filter((n) => !isFormatLeftover(n));
  if (content.length > 0) {
    throw err(
      'EINVAL',
      `directory ${dir} is not empty and holds no ${MARKER_FILE}: refusing to format it as ${wanted}`,
      'NOT_A_TARGET',
    );
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readOwner(path: string): Promise<LockOwner | undefined> {
  try {
    const o = JSON.parse(await readFile(path, 'utf8')) as Partial<LockOwner>;
    if (Number.isSafeInteger(o.pid) && typeof o.host === 'string') return o as LockOwner;
  } catch {
    // unreadable or half-written: judged by the caller
  }
  return undefined;
}

/** The holder touches its lock file this often (like ldiskfs multi-mount protection)... */
const HEARTBEAT_MS = 5_000;
/** ...so a lock untouched for this long has no live holder, whatever host it names. */
const STALE_MS = 30_000;
/** Lock files held by this process: the pid check alone cannot tell them from a previous incarnation's. */
const heldHere = new Set<string>();

async function isStale(path: string, owner: LockOwner | undefined, me: LockOwner): Promise<boolean> {
  let mtimeMs: number;
  try {
    mtimeMs = (await stat(path)).mtimeMs;
  } catch {
    return true;
  }
  if (Date.now() - mtimeMs > STALE_MS) return true;
  if (!owner || owner.host !== me.host) return false;
  if (owner.pid === me.pid) return !heldHere.has(path);
  return !isAlive(owner.pid);
}

/** Returns the release function; throws EBUSY when a live process holds the lock. */
async function acquireLock(dir: string, wanted: string): Promise<() => Promise<void>> {
  const path = resolve(dir, LOCK_FILE);
  const me: LockOwner = { pid: process.pid, host: hostname() };
  if (heldHere.has(path)) throw err('EBUSY', `${wanted} in ${dir} is already served by this process (pid ${me.pid})`, 'TARGET_BUSY');
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      const fh = await open(path, 'wx', 0o644);
      try {
        await fh.writeFile(JSON.stringify(me));
      } finally {
        await fh.close();
      }
      return holdLock(path, me);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const owner = await readOwner(path);
    if (!owner && attempt === 0) {
      // Possibly being written by its creator right now: look again before judging it.
      await new Promise((r) => setTimeout(r, 50));
      continue;
    }
    if (!(await isStale(path, owner, me))) {
      const who = owner ? `pid ${owner.pid} on host ${owner.host}` : 'an unknown process';
      throw err('EBUSY', `${wanted} in ${dir} is already served by ${who} (lock ${path}; it goes stale ${STALE_MS / 1000} s after its holder stops)`, 'TARGET_BUSY');
    }
    await removeStaleLock(path, owner);
  }
  throw err('EBUSY', `could not lock ${wanted} in ${dir}: the lock file keeps changing`, 'TARGET_BUSY');
}

function holdLock(path: string, me: LockOwner): () => Promise<void> {
  heldHere.add(path);
  const beat = setInterval(() => {
    const t = new Date();
    utimes(path, t, t).catch(() => undefined);
  }, HEARTBEAT_MS);
  beat.unref();
  let released = false;
  return async () => {
    if (released) return;
    released = true;
    clearInterval(beat);
    const owner = await readOwner(path);
    if (owner && owner.pid === me.pid && owner.host === me.host) await unlink(path).catch(() => undefined);
    heldHere.delete(path);
  };
}

/**
 * Takes a stale lock aside under a private name first, so that a lock another
 * process created after our look is put back instead of being deleted.
 */
async function removeStaleLock(path: string, seen: LockOwner | undefined): Promise<void> {
  const aside = `${path}.${process.pid}.stale`;
  try {
    await rename(path, aside);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  const moved = await readOwner(aside);
  const same = moved?.pid === seen?.pid && moved?.host === seen?.host;
  // Not the lock we judged: someone took it meanwhile, so it goes back for the next look.
  if (!same && moved) await link(aside, path).catch(() => undefined);
  await unlink(aside).catch(() => undefined);
}

/** mkdir -p, then fsync the directory that received the new entry. */
export async function mkdirDurable(path: string, parent: string): Promise<void> {
  await mkdir(path, { recursive: true });
  await fsyncDir(parent);
}

export async function fsyncDir(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
