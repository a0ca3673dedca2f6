/**
 * The policy engine's own index of the filesystem (an LMDB environment in its state
 * directory), fed by the MDT changelog so that no cycle scans the namespace:
 *
 *   files    <fid key>                  FileEntry     what the engine last learnt of a file
 *   archq    [mtime ms, fid key]        skip mark     files that need an archive, oldest change first
 *   relq     [ost, atime ms, fid key]   skip mark     archived clean files with objects on that OST, coldest first
 *   rmq      [due ms, fid key]          Removal       archive copies of deleted files to remove
 *   dirs     <fid key>                  DirEntryRef   a directory's parent and name (paths are built from these)
 *   meta     string                     any           changelog user, last record consumed, filesystem
 *
 * Every change to a file updates its secondary keys in the same LMDB transaction, so
 * the queues always agree with the entries. A queue key's value is '' or a skip mark:
 * the fingerprint of the rules under which no rule can match the file until it changes
 * (storing it again, as every change does, clears the mark), or in archq "asked:<ms>"
 * while an archive asked for then has not completed.
 */
import { mkdirSync } from 'node:fs';
import { open, type Database, type RootDatabase } from 'lmdb';
import { err } from '../../common/errno.js';
import { fidKey, type Fid } from '../../common/fid.js';
import { HS } from '../flags.js';

/** One object of a file: the OST it is on and the bytes it occupies there. */
export interface ObjectSpace {
  ost: number;
  bytes: number;
}

export interface FileEntry {
  fid: Fid;
  size: number;
  /** ms since the epoch */
  mtime: number;
  /** as last known: reads do not reach the changelog, so candidates are re-read before acting */
  atime: number;
  ctime: number;
  /** HS_* flags */
  hsm: number;
  archiveId: number;
  pool?: string;
  objects: ObjectSpace[];
  /** one name of the file: its directory's fid key and the name, when known */
  parent?: string;
  name?: string;
  /** when this engine first indexed the file, ms */
  seen: number;
  /** when an archive was last asked for, ms */
  archiveAsked?: number;
}

export interface Removal {
  fid: Fid;
  archiveId: number;
  /** when the file was deleted, ms */
  deleted: number;
  attempts: number;
}

export interface DirEntryRef {
  parent: string;
  name: string;
}

/** Needs a (new) archive copy: never archived, or changed since. */
export function needsArchive(e: FileEntry): boolean {
  if (e.hsm & (HS.NOARCHIVE | HS.RELEASED)) return false;
  return !(e.hsm & HS.EXISTS) || (e.hsm & HS.DIRTY) !== 0 || !(e.hsm & HS.ARCHIVED);
}

/** May be released: its archive copy is current and nothing forbids it. */
export function releasable(e: FileEntry): boolean {
  const need = HS.EXISTS | HS.ARCHIVED;
  return (e.hsm & need) === need && !(e.hsm & (HS.DIRTY | HS.RELEASED | HS.NORELEASE | HS.LOST)) && e.objects.length > 0;
}

type ArchKey = [number, string];
/** archq value of a file whose archive was asked for at the time that follows */
const ASKED = 'asked:';
export type RelKey = [number, number, string];

function osts(e: FileEntry): Set<number> {
  return new Set(e.objects.map((o) => o.ost));
}
type RmKey = [number, string];

export class FileIndex {
  private constructor(
    private readonly root: RootDatabase,
    private readonly files: Database<FileEntry, string>,
    private readonly archq: Database<string, ArchKey>,
    private readonly relq: Database<string, RelKey>,
    private readonly rmq: Database<Removal, RmKey>,
    private readonly dirs: Database<DirEntryRef, string>,
    private readonly meta: Database<unknown, string>,
  ) {}

  static open(dir: string): FileIndex {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    let root: RootDatabase;
    try {
      root = open({ path: dir, noSubdir: false, maxDbs: 8 });
    } catch (e) {
      throw err('EINVAL', `${dir} is not a usable policy state directory: ${(e as Error).message}`, 'BAD_STATE_DIR');
    }
    return new FileIndex(
      root,
      root.openDB<FileEntry, string>('files', {}),
      root.openDB<string, ArchKey>('archq', {}),
      root.openDB<string, RelKey>('relq', {}),
      root.openDB<Removal, RmKey>('rmq', {}),
      root.openDB<DirEntryRef, string>('dirs', {}),
      root.openDB<unknown, string>('meta', {}),
    );
  }

  async close(): Promise<void> {
    await this.root.close();
  }

  /** Runs `fn` as one atomic, durable LMDB transaction. */
  batch<T>(fn: () => T): T {
    return this.root.transactionSync(fn);
  }

  getMeta<T>(key: string): T | undefined {
    return this.meta.get(key) as T | undefined;
  }

  setMeta(key: string, value: unknown): void {
    this.meta.putSync(key, value);
  }

  get(fid: Fid): FileEntry | undefined {
    return this.files.get(fidKey(fid));
  }

  getByKey(key: string): FileEntry | undefined {
    return this.files.get(key);
  }

  fileCount(): number {
    return this.files.getCount();
  }

  isEmpty(): boolean {
    return this.files.getCount() === 0 && this.dirs.getCount() === 0;
  }

  /** Stores an entry and moves its queue keys (call inside batch()). */
  put(e: FileEntry): void {
    const key = fidKey(e.fid);
    const old = this.files.get(key);
    if (old) this.unqueue(key, old);
    this.files.putSync(key, e);
    if (needsArchive(e)) this.archq.putSync([e.mtime, key], e.archiveAsked !== undefined ? `${ASKED}${e.archiveAsked}` : '');
    if (releasable(e)) for (const ost of osts(e)) this.relq.putSync([ost, e.atime, key], '');
  }

  /** No archive rule can match `e` before it changes (under the rules fingerprinted `mark`). */
  skipArchive(e: FileEntry, mark: string): void {
    if (needsArchive(e)) this.archq.putSync([e.mtime, fidKey(e.fid)], mark);
  }

  /** No release rule can match `e` before it changes. */
  skipRelease(e: FileEntry, mark: string): void {
    if (releasable(e)) for (const ost of osts(e)) this.relq.putSync([ost, e.atime, fidKey(e.fid)], mark);
  }

  delete(fid: Fid): FileEntry | undefined {
    const key = fidKey(fid);
    const old = this.files.get(key);
    if (!old) return undefined;
    this.unqueue(key, old);
    this.files.removeSync(key);
    return old;
  }

  private unqueue(key: string, e: FileEntry): void {
    this.archq.removeSync([e.mtime, key]);
    for (const ost of osts(e)) this.relq.removeSync([ost, e.atime, key]);
  }

  /**
   * Up to `limit` files needing an archive whose last change is at or before `until` (ms),
   * oldest first, leaving out those marked `skip` and those whose archive was asked for
   * at or after `askedSince`.
   */
  archiveCandidates(until: number, skip: string, askedSince: number, limit: number): FileEntry[] {
    const out: FileEntry[] = [];
    for (const { key, value } of this.archq.getRange({})) {
      if (key[0] > until || out.length >= limit) break;
      if ((value !== '' && value === skip) || (value.startsWith(ASKED) && Number(value.slice(ASKED.length)) >= askedSince)) continue;
      const e = this.files.get(key[1]);
      if (e) out.push(e);
    }
    return out;
  }

  /**
   * Up to `limit` releasable files with objects on `ost`, least recently accessed first,
   * from after the queue position `from` on, leaving out those marked `skip`; `next` is
   * where to go on from.
   */
  releaseCandidates(ost: number, skip: string, limit: number, from?: RelKey): { files: FileEntry[]; next?: RelKey } {
    const files: FileEntry[] = [];
    let next: RelKey | undefined;
    for (const { key, value } of this.relq.getRange({ start: from ?? [ost], end: [ost + 1] })) {
      if (from && key[1] === from[1] && key[2] === from[2]) continue;
      if (files.length >= limit) break;
      next = key;
      if (value !== '' && value === skip) continue;
      const e = this.files.get(key[2]);
      if (e) files.push(e);
    }
    return { files, next };
  }

  addRemoval(due: number, r: Removal): void {
    this.rmq.putSync([due, fidKey(r.fid)], r);
  }

  /** Removals due at or before `now`, oldest first. */
  *dueRemovals(now: number): Generator<{ due: number; removal: Removal }> {
    for (const { key, value } of this.rmq.getRange({})) {
      if (key[0] > now) return;
      yield { due: key[0], removal: value };
    }
  }

  dropRemoval(due: number, fid: Fid): void {
    this.rmq.removeSync([due, fidKey(fid)]);
  }

  removalCount(): number {
    return this.rmq.getCount();
  }

  setDir(fid: Fid | string, ref: DirEntryRef): void {
    this.dirs.putSync(typeof fid === 'string' ? fid : fidKey(fid), ref);
  }

  getDir(key: string): DirEntryRef | undefined {
    return this.dirs.get(key);
  }

  deleteDir(fid: Fid): void {
    this.dirs.removeSync(fidKey(fid));
  }

  isDir(fid: Fid): boolean {
    return this.dirs.get(fidKey(fid)) !== undefined;
  }
}
