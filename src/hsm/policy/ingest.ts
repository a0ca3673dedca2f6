/**
 * Turns a page of changelog records into index updates, in record order:
 *
 *   CREAT MKNOD                 a new file (its name is kept), read it
 *   MKDIR / RMDIR               a directory's name, for paths / forgotten
 *   UNLNK (last link)           the file leaves the index; with CLF_UNLINK_HSM_EXISTS its
 *                               archive copy is queued for removal (remove.after later)
 *   RENME                       the moved file or directory gets its new name; a replaced
 *                               file that lost its last link goes as with UNLNK
 *   HSM CLOSE TRUNC SATTR MTIME CTIME LYOUT ...   the file changed: read it again
 *
 * Each file touched by the page is read once (after the whole page: the last state is
 * what counts), then every change and the page's last record index are written in one
 * index transaction, so a crash replays the page at worst, never skips it.
 */
import { toStriaError } from '../../common/errno.js';
import { fidKey, type Fid } from '../../common/fid.js';
import type { Logger } from '../../common/log.js';
import { CL, CLF_UNLINK_HSM_EXISTS, CLF_UNLINK_LAST, type ChangelogRecord } from '../../mds/changelog-types.js';
import { needsArchive, type FileEntry, type FileIndex, type ObjectSpace } from './file-index.js';
import type { FileFacts } from './file-stat.js';

/** records whose target may have changed data or HSM state */
const REFRESH_TYPES: ReadonlySet<number> = new Set([
  CL.CREAT, CL.MKNOD, CL.HSM, CL.CLOSE, CL.TRUNC, CL.SATTR, CL.MTIME, CL.CTIME, CL.LYOUT, CL.OPEN, CL.ATIME, 20 /* MIGRT */, 21 /* FLRW */, 22 /* RESYNC */,
]);

/** Files read at once while ingesting. */
const STAT_CONCURRENCY = 16;

export const META_LAST_RECORD = 'lastRecord';

export interface IngestDeps {
  index: FileIndex;
  stat: (fid: Fid) => Promise<FileFacts>;
  log: Logger;
  /** where removals of deleted files' archive copies go, when the policy removes them */
  removeAfterMs?: number;
  defaultArchiveId: number;
  now: () => number;
}

export interface IngestResult {
  records: number;
  refreshed: number;
  /** indexed files that went */
  deleted: number;
  removalsQueued: number;
  /** a directory was renamed: paths below it changed */
  dirRenamed: boolean;
}

type NameRef = { parent: string; name: string } | null;

function isZero(f: Fid | undefined): boolean {
  return !f || (f.seq === 0 && f.oid === 0 && f.ver === 0);
}

function timeMs(r: ChangelogRecord): number {
  return r.time.sec * 1000 + Math.floor(r.time.nsec / 1e6);
}

/** An index entry from what a file read gave (keeping what the index knew beyond it). */
export function entryFromFacts(f: FileFacts, old: FileEntry | undefined, now: number): FileEntry {
  const e: FileEntry = {
    fid: f.inode.fid,
    size: f.size,
    mtime: f.mtime,
    atime: f.atime,
    ctime: f.ctime,
    hsm: f.inode.hsm?.flags ?? 0,
    archiveId: f.inode.hsm?.archiveId ?? 0,
    objects: f.objects as ObjectSpace[],
    seen: old?.seen ?? now,
  };
  const pool = f.inode.layout?.pool;
  if (pool) e.pool = pool;
  if (old?.parent !== undefined && old.name !== undefined) {
    e.parent = old.parent;
    e.name = old.name;
  }
  // an archive asked for and not done yet stays asked for (the file did not need one again)
  if (old?.archiveAsked !== undefined && old.mtime === e.mtime && needsArchive(e)) e.archiveAsked = old.archiveAsked;
  return e;
}

export async function ingest(records: ChangelogRecord[], deps: IngestDeps): Promise<IngestResult> {
  const { index, log } = deps;
  const touched = new Map<string, Fid>();
  const names = new Map<string, NameRef>();
  const dirOps: Array<{ fid: Fid; ref?: { parent: string; name: string } }> = [];
  const deletions: Array<{ fid: Fid; hsmExists: boolean; when: number }> = [];
  const knownDirs = new Set<string>();
  let dirRenamed = false;
  const isDir = (f: Fid) => knownDirs.has(fidKey(f)) || index.isDir(f);
  const deleteFile = (fid: Fid, flags: number, r: ChangelogRecord) => {
    if (!(flags & CLF_UNLINK_LAST)) return false;
    const k = fidKey(fid);
    touched.delete(k);
    names.delete(k);
    deletions.push({ fid, hsmExists: (flags & CLF_UNLINK_HSM_EXISTS) !== 0, when: timeMs(r) });
    return true;
  };

  for (const r of records) {
    const k = fidKey(r.tfid);
    switch (r.type) {
      case CL.MKDIR:
        if (r.pfid && r.name) {
          dirOps.push({ fid: r.tfid, ref: { parent: fidKey(r.pfid), name: r.name } });
          knownDirs.add(k);
        }
        break;
      case CL.RMDIR:
        dirOps.push({ fid: r.tfid });
        knownDirs.delete(k);
        break;
      case CL.UNLNK:
        if (!deleteFile(r.tfid, r.flags ?? 0, r) && r.pfid && r.name) {
          // one of several names went: forget it if it is the one the index kept
          const e = index.getByKey(k);
          const kept = names.has(k) ? names.get(k) : e && e.parent !== undefined ? { parent: e.parent, name: e.name! } : undefined;
          if (kept && kept.parent === fidKey(r.pfid) && kept.name === r.name) names.set(k, null);
        }
        break;
      case CL.HLINK:
        if (r.pfid && r.name && !names.get(k) && !index.getByKey(k)?.name) names.set(k, { parent: fidKey(r.pfid), name: r.name });
        break;
      case CL.RENME: {
        if (!isZero(r.tfid)) deleteFile(r.tfid, r.flags ?? 0, r);
        const moved = r.sfid;
        if (!moved || isZero(moved) || !r.pfid || !r.name) break;
        const ref = { parent: fidKey(r.pfid), name: r.name };
        if (isDir(moved)) {
          dirOps.push({ fid: moved, ref });
          knownDirs.add(fidKey(moved));
          dirRenamed = true;
        } else names.set(fidKey(moved), ref);
        break;
      }
      default:
        if (REFRESH_TYPES.has(r.type) && !isDir(r.tfid)) {
          touched.set(k, r.tfid);
          if ((r.type === CL.CREAT || r.type === CL.MKNOD) && r.pfid && r.name) names.set(k, { parent: fidKey(r.pfid), name: r.name });
        }
    }
  }

  const facts = new Map<string, FileFacts | 'gone'>();
  const queue = [...touched.entries()];
  await Promise.all(
    Array.from({ length: Math.min(STAT_CONCURRENCY, queue.length) }, async () => {
      for (let next = queue.shift(); next; next = queue.shift()) {
        const [k, fid] = next;
        try {
          facts.set(k, await deps.stat(fid));
        } catch (e) {
          const se = toStriaError(e);
          if (se.code === 'ENOENT' || se.errno === 2) facts.set(k, 'gone');
          else log.warn({ fid: k, err: se.message }, 'cannot read a changed file; the index keeps what it knew');
        }
      }
    }),
  );

  const now = deps.now();
  const result: IngestResult = { records: records.length, refreshed: 0, deleted: 0, removalsQueued: 0, dirRenamed };
  const last = records.length > 0 ? records[records.length - 1]!.index : undefined;
  index.batch(() => {
    for (const op of dirOps) {
      if (op.ref) index.setDir(op.fid, op.ref);
      else index.deleteDir(op.fid);
    }
    for (const [k, f] of facts) {
      // gone: the record saying so (UNLNK) comes later and knows what to do with the copy
      if (f === 'gone' || f.inode.type !== 'reg') continue;
      const e = entryFromFacts(f, index.getByKey(k), now);
      const n = names.get(k);
      if (n) {
        e.parent = n.parent;
        e.name = n.name;
      } else if (n === null) {
        delete e.parent;
        delete e.name;
      }
      names.delete(k);
      index.put(e);
      result.refreshed++;
    }
    for (const [k, n] of names) {
      const e = index.getByKey(k);
      if (!e) continue;
      if (n) index.put({ ...e, parent: n.parent, name: n.name });
      else {
        const { parent: _p, name: _n, ...rest } = e;
        index.put(rest);
      }
    }
    for (const d of deletions) {
      const old = index.delete(d.fid);
      if (old) result.deleted++;
      if (!d.hsmExists) continue;
      if (deps.removeAfterMs === undefined) {
        log.info({ fid: fidKey(d.fid) }, 'deleted file had an archive copy; no remove policy: the copy stays');
        continue;
      }
      const archiveId = old?.archiveId || deps.defaultArchiveId;
      index.addRemoval(d.when + deps.removeAfterMs, { fid: d.fid, archiveId, deleted: d.when, attempts: 0 });
      result.removalsQueued++;
    }
    if (last !== undefined) index.setMeta(META_LAST_RECORD, last);
  });
  return result;
}
