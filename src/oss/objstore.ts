/**
 * The on-disk object store of one OST: a directory holding objects as plain
 * sparse files at `O/<seq>/d<oid % 32>/<oid>` (reference §1), created ahead of
 * use by precreation, with a durable LAST_ID per sequence.
 */
import { constants as fsc, readSync, writeSync } from 'node:fs';
import { open, readFile, stat, statfs as fsStatfs, unlink, utimes, type FileHandle } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import { err, toStriaError } from '../common/errno.js';
import { OST_SEQ_MAX_OID } from '../common/fid.js';
import { silentLogger, type Logger } from '../common/log.js';
import { ostName } from '../common/targets.js';
import { compareTime, fromNs, isTimestamp, type Timestamp } from '../common/time.js';
import type { ObjAttr, StatFs } from '../common/statfs.js';
import { writeFileAtomic } from '../common/atomic-file.js';
import { HandleCache } from './handle-cache.js';
import { PLAIN_BULKS, type BulkSource } from '../lnet/bulk-pool.js';
import { MAX_IO_BYTES, MAX_OBJECT_BYTES, MAX_ORPHANS, MAX_PRECREATE } from './limits.js';
import { describeObject, groupSubdirs, isIdifSeq, objectGroup, objectLocation, type ObjectGroup, type ObjectLocation } from './objpath.js';
import { fsyncDir, mkdirDurable, openTargetDir } from './target-dir.js';

export type { ObjAttr, StatFs } from '../common/statfs.js';

export interface ObjectStoreOptions {
  fsname: string;
  index: number;
  log?: Logger;
  /** open object files kept cached (default 256) */
  maxOpenFiles?: number;
}

const LAST_ID_FILE = 'LAST_ID';
const CREATE_PARALLELISM = 16;
/**
 * Reads and writes up to this size may be done on the event loop's thread: a few KiB cost
 * less to copy than the two thread switches of a thread-pool request, which dominated the
 * latency of small I/O. Larger ones go to the pool, where the copy overlaps with other work.
 */
export const INLINE_IO_MAX_BYTES = 64 * 1024;
/** An inline read slower than this came from the disk, not the page cache... */
const INLINE_READ_SLOW_MS = 0.05;
/** ...and reads then go to the pool for this long. */
const POOL_READS_AFTER_SLOW_MS = 100;
/** During orphan cleanup LAST_ID follows the deletions this often (as Lustre's ofd does), so a restart rescans little. */
const ORPHAN_LAST_ID_STEP = 512;

interface GroupState {
  ready: Promise<void> | undefined;
  lastId: number | undefined;
  /** precreate and orphan cleanup of one group run one at a time */
  tail: Promise<unknown>;
}

export class ObjectStore {
  readonly index: number;
  readonly fsname: string;
  readonly uuid: string;
  /** the filesystem this OST belongs to, once known (see recordFsUuid) */
  fsUuid: string | undefined;
  readonly dir: string;
  /** e.g. "testfs-OST0002" */
  readonly name: string;

  private readonly log: Logger;
  private readonly handles: HandleCache;
  private readonly groups = new Map<string, GroupState>();
  /** hash directories that lost entries since the last sync */
  private readonly dirtyDirs = new Set<string>();
  private readonly inflight = new Set<Promise<unknown>>();
  /** reads running in the thread pool: while there are some, new ones join them there */
  private pooledReads = 0;
  /** performance.now() until which reads go to the pool (an inline one had to wait for the disk) */
  private poolReadsUntil = 0;
  private closed = false;

  private constructor(
    dir: string,
    opts: ObjectStoreOptions,
    uuid: string,
    private readonly releaseLock: () => Promise<void>,
  ) {
    this.dir = dir;
    this.fsname = opts.fsname;
    this.index = opts.index;
    this.uuid = uuid;
    this.name = ostName(opts.fsname, opts.index);
    this.log = opts.log ?? silentLogger();
    this.handles = new HandleCache(opts.maxOpenFiles ?? 256, this.log);
  }

  /** Opens (formatting it when empty) the OST in `dir`, which must exist; locks it against other processes. */
  static async open(dir: string, opts: ObjectStoreOptions): Promise<ObjectStore> {
    const abs = resolve(dir);
    const t = await openTargetDir(abs, { fsname: opts.fsname, index: opts.index, kind: 'ost' }, (d) =>
      mkdirDurable(join(d, 'O'), d),
    );
    const store = new ObjectStore(abs, opts, t.marker.uuid, t.release);
    store.fsUuid = t.marker.fsUuid;
    store.log.info({ target: store.name, dir: abs, formatted: t.formatted }, t.formatted ? 'OST formatted' : 'OST opened');
    return store;
  }

  /**
   * Creates objects LAST_ID+1.. (at most `count`, fewer when the sequence runs
   * out of oids) and makes them and the new LAST_ID durable before returning.
   */
  precreate(seq: number, count: number): Promise<{ seq: number; first: number; last: number }> {
    return this.run(async () => {
      if (!Number.isInteger(count) || count < 1 || count > MAX_PRECREATE) {
        throw err('EINVAL', `precreate count ${count} must be an integer in 1..${MAX_PRECREATE}`, 'BAD_REQUEST');
      }
      const group = this.creationGroup(seq);
      return this.serialize(group, async () => {
        await this.ensureGroup(group);
        const last = await this.lastIdOf(group);
        if (last >= OST_SEQ_MAX_OID) {
          throw err('ENOSPC', `sequence 0x${seq.toString(16)} on ${this.name} is full (LAST_ID 0x${last.toString(16)}); use a new sequence`, 'SEQUENCE_EXHAUSTED');
        }
        const first = last + 1;
        const end = Math.min(last + count, OST_SEQ_MAX_OID);
        const subdirs = await this.createObjects(seq, first, end);
        for (const d of subdirs) await fsyncDir(d);
        await this.writeLastId(group, end);
        return { seq, first, last: end };
      });
    });
  }

  /** LAST_ID of the sequence: the highest oid precreated (0 before any). */
  lastId(seq: number): Promise<number> {
    return this.run(() => this.lastIdOf(this.creationGroup(seq)));
  }

  /**
   * Orphan cleanup after an MDT reconnect: destroys precreated objects above
   * `lastUsedOid` and lowers LAST_ID to it, so they are created afresh later.
   * Returns how many objects were destroyed.
   */
  deleteOrphans(seq: number, lastUsedOid: number): Promise<number> {
    return this.run(async () => {
      if (!Number.isInteger(lastUsedOid) || lastUsedOid < 0 || lastUsedOid > 0xffffffff) {
        throw err('EINVAL', `last used oid ${lastUsedOid} is not a valid object id`, 'BAD_REQUEST');
      }
      const group = this.creationGroup(seq);
      return this.serialize(group, async () => {
        const last = await this.lastIdOf(group);
        if (lastUsedOid >= last) {
          if (lastUsedOid > last) {
            // The MDT may have handed out oids this OST no longer knows (restored or
            // reformatted OST): never create them again, so no oid serves two files.
            this.log.warn({ target: this.name, seq, lastId: last, lastUsedOid }, 'MDT used objects beyond LAST_ID; moving LAST_ID up');
            await this.ensureGroup(group);
            await this.writeLastId(group, lastUsedOid);
          }
          return 0;
        }
        if (last - lastUsedOid > MAX_ORPHANS) {
          // Too many to be orphans of one precreate window: the MDT's record is suspect,
          // so leave the objects (they leak) rather than destroy what may be file data.
          this.log.error({ target: this.name, seq, lastId: last, lastUsedOid }, 'refusing to delete more than max orphans; LAST_ID kept');
          return 0;
        }
        let deleted = 0;
        const touched = new Set<string>();
        for (let oid = last; oid > lastUsedOid; oid--) {
          const loc = this.locate(seq, oid);
          const path = join(this.dir, loc.path);
          this.handles.forget(path);
          try {
            await unlink(path);
            deleted++;
          } catch (e) {
            if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw toStriaError(e);
          }
          touched.add(join(this.dir, loc.subdir));
          if (oid % ORPHAN_LAST_ID_STEP === 0 && oid - 1 > lastUsedOid) {
            for (const d of touched) await fsyncDir(d);
            touched.clear();
            await this.writeLastId(group, oid - 1);
          }
        }
        for (const d of touched) await fsyncDir(d);
        await this.writeLastId(group, lastUsedOid);
        this.log.info({ target: this.name, seq, from: lastUsedOid + 1, to: last, deleted }, 'orphan objects destroyed');
        return deleted;
      });
    });
  }

  /**
   * Bytes present at [offset, offset+length): holes read as zeros, short only at EOF.
   * One pread, no fstat first: a read at or past the end comes back short by itself, and the
   * stat cost a second trip through the thread pool on every read. A small read is done on
   * this thread (see INLINE_IO_MAX_BYTES) while reads come from the page cache one at a time;
   * with others in flight, or once one had to wait for the disk, they go to the pool, where
   * several can wait at the disk at once. The buffer comes from `source` (a reply bulk pool:
   * see BulkPool for who may give it back).
   */
  read(seq: number, oid: number, offset: number, length: number, source: BulkSource = PLAIN_BULKS): Promise<Buffer> {
    return this.run(async () => {
      checkRange(offset, length);
      return this.withObject(seq, oid, false, async (fh) => {
        const buf = source.take(length);
        let got = 0;
        const inline = length <= INLINE_IO_MAX_BYTES && this.pooledReads === 0 && performance.now() >= this.poolReadsUntil;
        if (!inline) this.pooledReads++;
        try {
          const t0 = inline ? performance.now() : 0;
          while (got < length) {
            const bytesRead = inline
              ? readSync(fh.fd, buf, got, length - got, offset + got)
              : (await fh.read(buf, got, length - got, offset + got)).bytesRead;
            if (bytesRead === 0) break; // end of the object
            got += bytesRead;
          }
          // That one waited for the disk: the next ones may too, and in the pool several
          // can wait at once while this thread goes on.
          if (inline && performance.now() - t0 > INLINE_READ_SLOW_MS) this.poolReadsUntil = performance.now() + POOL_READS_AFTER_SLOW_MS;
        } catch (e) {
          source.give(buf);
          throw e;
        } finally {
          if (!inline) this.pooledReads--;
        }
        if (got === length) return buf;
        // Never hand out the unfilled (uninitialised) tail, nor keep it alive behind a view.
        const exact = Buffer.from(buf.subarray(0, got));
        source.give(buf);
        return exact;
      });
    });
  }

  /**
   * Writes all of `data` at `offset`; with `sync`, the data is on disk before this resolves.
   * Small writes go to the page cache from this thread (see INLINE_IO_MAX_BYTES), large ones
   * through the thread pool. `mtime`: see writeSegments.
   */
  write(seq: number, oid: number, offset: number, data: Buffer, sync = false, mtime?: Timestamp): Promise<number> {
    return this.writeSegments(seq, oid, [{ offset, length: data.length }], data, sync, mtime);
  }

  /**
   * Writes `data`, the concatenation of the segments' bytes, to the segments' offsets (one
   * RPC's niobufs); with `sync`, all of it is on disk before this resolves. `mtime`: when
   * the client wrote these bytes (its write-back cache sends them later); the object's
   * mtime becomes that, or stays what it was before this write if that is later.
   */
  writeSegments(seq: number, oid: number, segments: ReadonlyArray<{ offset: number; length: number }>, data: Buffer, sync = false, mtime?: Timestamp): Promise<number> {
    return this.run(async () => {
      for (const s of segments) checkRange(s.offset, s.length);
      if (mtime !== undefined && !isTimestamp(mtime)) throw err('EINVAL', 'mtime is not a valid timestamp', 'BAD_REQUEST');
      return this.withObject(seq, oid, true, async (fh) => {
        const before = mtime === undefined ? undefined : toAttr(await fh.stat({ bigint: true }));
        let at = 0;
        for (const s of segments) {
          let done = 0;
          while (done < s.length) {
            const n = s.length - done;
            const bytesWritten = n <= INLINE_IO_MAX_BYTES
              ? writeSync(fh.fd, data, at + done, n, s.offset + done)
              : (await fh.write(data, at + done, n, s.offset + done)).bytesWritten;
            if (bytesWritten <= 0) throw err('EIO', `write to object ${describeObject(seq, oid)} made no progress`);
            done += bytesWritten;
          }
          at += s.length;
        }
        if (before && mtime) {
          const keep = compareTime(before.mtime, mtime) > 0 ? before.mtime : mtime;
          await fh.utimes(utimeArg(before.atime), utimeArg(keep));
        }
        if (sync) await fh.datasync();
        return at;
      });
    });
  }

  getattr(seq: number, oid: number): Promise<ObjAttr> {
    return this.run(async () => {
      const path = this.objectPath(seq, oid);
      try {
        return toAttr(await stat(path, { bigint: true }));
      } catch (e) {
        throw this.objectError(e, seq, oid);
      }
    });
  }

  /**
   * Sets atime and/or mtime. Resolution is the microsecond (Node's utimes):
   * nanoseconds below it are dropped, as is the omitted time's sub-microsecond part.
   */
  setattr(seq: number, oid: number, attrs: { atime?: Timestamp; mtime?: Timestamp }): Promise<ObjAttr> {
    return this.run(async () => {
      for (const k of ['atime', 'mtime'] as const) {
        const t = attrs[k];
        if (t !== undefined && !isTimestamp(t)) throw err('EINVAL', `${k} is not a valid timestamp`, 'BAD_REQUEST');
      }
      const path = this.objectPath(seq, oid);
      try {
        if (attrs.atime || attrs.mtime) {
          const cur = attrs.atime && attrs.mtime ? undefined : toAttr(await stat(path, { bigint: true }));
          const atime = attrs.atime ?? cur!.atime;
          const mtime = attrs.mtime ?? cur!.mtime;
          await utimes(path, utimeArg(atime), utimeArg(mtime));
        }
        return toAttr(await stat(path, { bigint: true }));
      } catch (e) {
        throw this.objectError(e, seq, oid);
      }
    });
  }

  /** Truncates or extends the object to `size` bytes. */
  punch(seq: number, oid: number, size: number): Promise<ObjAttr> {
    return this.run(async () => {
      if (!Number.isSafeInteger(size) || size < 0 || size > MAX_OBJECT_BYTES) {
        throw err('EINVAL', `punch size ${size} must be an integer in 0..2^53`, 'BAD_REQUEST');
      }
      return this.withObject(seq, oid, true, async (fh) => {
        await fh.truncate(size);
        return toAttr(await fh.stat({ bigint: true }));
      });
    });
  }

  destroy(seq: number, oid: number): Promise<void> {
    return this.run(async () => {
      const loc = this.locate(seq, oid);
      const path = join(this.dir, loc.path);
      this.handles.forget(path);
      try {
        await unlink(path);
      } catch (e) {
        throw this.objectError(e, seq, oid);
      }
      this.dirtyDirs.add(join(this.dir, loc.subdir));
    });
  }

  statfs(): Promise<StatFs> {
    return this.run(async () => {
      const s = await fsStatfs(this.dir);
      return { bsize: s.bsize, blocks: s.blocks, bfree: s.bfree, bavail: s.bavail, files: s.files, ffree: s.ffree };
    });
  }

  /**
   * Makes data durable: one object (seq and oid), every object of a sequence
   * written since the last sync (seq only), or the whole target (neither).
   */
  sync(seq?: number, oid?: number): Promise<void> {
    return this.run(async () => {
      if (oid !== undefined && seq === undefined) throw err('EINVAL', 'sync of an object needs its sequence', 'BAD_REQUEST');
      if (seq !== undefined && oid !== undefined) {
        await this.withObject(seq, oid, false, (fh) => fh.sync());
        return;
      }
      const prefix = seq === undefined ? this.dir + sep : join(this.dir, objectGroup(seq, this.index, this.fsname).dir) + sep;
      await this.handles.flush((p) => p.startsWith(prefix));
      for (const d of [...this.dirtyDirs]) {
        if (!d.startsWith(prefix)) continue;
        this.dirtyDirs.delete(d);
        try {
          await fsyncDir(d);
        } catch (e) {
          this.dirtyDirs.add(d);
          throw toStriaError(e);
        }
      }
    });
  }

  /** Waits for running operations, closes every file and releases the target lock. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
    try {
      await this.handles.closeAll();
      for (const d of this.dirtyDirs) await fsyncDir(d).catch(() => undefined);
    } finally {
      await this.releaseLock();
    }
    this.log.info({ target: this.name }, 'OST closed');
  }

  private run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(err('ESHUTDOWN', `${this.name} is shut down`, 'TARGET_CLOSED'));
    const p = fn();
    this.inflight.add(p);
    const drop = () => this.inflight.delete(p);
    p.then(drop, drop);
    return p;
  }

  private serialize<T>(group: ObjectGroup, fn: () => Promise<T>): Promise<T> {
    const st = this.groupState(group);
    const next = st.tail.then(fn, fn);
    st.tail = next.catch(() => undefined);
    return next;
  }

  private groupState(group: ObjectGroup): GroupState {
    let st = this.groups.get(group.dir);
    if (!st) {
      st = { ready: undefined, lastId: undefined, tail: Promise.resolve() };
      this.groups.set(group.dir, st);
    }
    return st;
  }

  /** Sequences new objects may be created in: IDIF objects above 2^32 are never precreated. */
  private creationGroup(seq: number): ObjectGroup {
    const group = objectGroup(seq, this.index, this.fsname);
    if (isIdifSeq(seq) && seq % 0x10000 !== 0) {
      throw err('EINVAL', `sequence 0x${seq.toString(16)} is not the base IDIF sequence of ${this.name}`, 'BAD_SEQUENCE');
    }
    return group;
  }

  private locate(seq: number, oid: number): ObjectLocation {
    return objectLocation(seq, oid, this.index, this.fsname);
  }

  private objectPath(seq: number, oid: number): string {
    return join(this.dir, this.locate(seq, oid).path);
  }

  private async withObject<T>(seq: number, oid: number, writes: boolean, fn: (fh: FileHandle) => Promise<T>): Promise<T> {
    const path = this.objectPath(seq, oid);
    try {
      return await this.handles.use(path, fn, writes);
    } catch (e) {
      throw this.objectError(e, seq, oid);
    }
  }

  private objectError(e: unknown, seq: number, oid: number): Error {
    if ((e as NodeJS.ErrnoException)?.code === 'ENOENT') {
      return err('ENOENT', `object ${describeObject(seq, oid)} does not exist on ${this.name}`, 'NO_SUCH_OBJECT');
    }
    return toStriaError(e);
  }

  private ensureGroup(group: ObjectGroup): Promise<void> {
    const st = this.groupState(group);
    if (!st.ready) {
      st.ready = (async () => {
        const gdir = join(this.dir, group.dir);
        await mkdirDurable(gdir, join(this.dir, 'O'));
        for (const d of groupSubdirs(group)) await mkdirDurable(join(this.dir, d), gdir);
      })();
      st.ready.catch(() => {
        st.ready = undefined;
      });
    }
    return st.ready;
  }

  private async lastIdOf(group: ObjectGroup): Promise<number> {
    const st = this.groupState(group);
    if (st.lastId !== undefined) return st.lastId;
    const path = join(this.dir, group.dir, LAST_ID_FILE);
    let raw: Buffer;
    try {
      raw = await readFile(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return (st.lastId = 0);
      throw toStriaError(e);
    }
    // Lustre's LAST_ID: one little-endian u64.
    if (raw.length !== 8) throw err('EIO', `${path} holds ${raw.length} bytes, expected 8`, 'BAD_LAST_ID');
    const v = raw.readBigUInt64LE(0);
    if (v > BigInt(0xffffffff)) throw err('EIO', `${path} holds ${v}, beyond any object id`, 'BAD_LAST_ID');
    return (st.lastId = Number(v));
  }

  private async writeLastId(group: ObjectGroup, value: number): Promise<void> {
    const buf = Buffer.alloc(8);
    buf.writeBigUInt64LE(BigInt(value));
    await writeFileAtomic(join(this.dir, group.dir, LAST_ID_FILE), buf);
    this.groupState(group).lastId = value;
  }

  /** Creates empty objects first..last; returns the hash directories that got entries. */
  private async createObjects(seq: number, first: number, last: number): Promise<Set<string>> {
    const subdirs = new Set<string>();
    let next = first;
    const worker = async () => {
      while (next <= last) {
        const loc = this.locate(seq, next++);
        subdirs.add(join(this.dir, loc.subdir));
        // No O_TRUNC: a file already there (left by a precreate that crashed before
        // its LAST_ID was written) is kept as it is, as Lustre's ofd does.
        const fh = await open(join(this.dir, loc.path), fsc.O_CREAT | fsc.O_WRONLY, 0o600);
        await fh.close();
      }
    };
    const n = Math.min(CREATE_PARALLELISM, last - first + 1);
    const results = await Promise.allSettled(Array.from({ length: n }, worker));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw toStriaError(failed.reason);
    return subdirs;
  }
}

function checkRange(offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0) throw err('EINVAL', `offset ${offset} must be a non-negative integer`, 'BAD_REQUEST');
  if (!Number.isSafeInteger(length) || length < 0 || length > MAX_IO_BYTES) {
    throw err('EINVAL', `length ${length} must be an integer in 0..${MAX_IO_BYTES}`, 'BAD_REQUEST');
  }
  // Compared by subtraction: offset + length itself may round down past 2^53.
  if (offset > MAX_OBJECT_BYTES - length) throw err('EINVAL', `offset ${offset} + length ${length} is beyond 2^53`, 'BAD_REQUEST');
}

function toAttr(st: import('node:fs').BigIntStats): ObjAttr {
  return {
    size: Number(st.size),
    blocks: Number(st.blocks),
    atime: fromNs(st.atimeNs),
    mtime: fromNs(st.mtimeNs),
    ctime: fromNs(st.ctimeNs),
  };
}

/**
 * utimes() takes seconds as a double and libuv keeps whole microseconds,
 * truncating toward zero. A decimal string half a microsecond beyond the wanted
 * value (away from zero) lands on exactly that microsecond after the
 * double rounding; a string also keeps pre-1970 times, which Node turns into "now" as numbers.
 */
export function utimeArg(t: Timestamp): string {
  const us = BigInt(t.sec) * 1_000_000n + BigInt(Math.floor(t.nsec / 1000));
  const neg = us < 0n;
  const abs = neg ? -us : us;
  return `${neg ? '-' : ''}${abs / 1_000_000n}.${(abs % 1_000_000n).toString().padStart(6, '0')}5`;
}
