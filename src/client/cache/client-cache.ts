/**
 * The client's data cache levels below the kernel's page cache (reference §5): object
 * pages in memory (llite.*.max_cached_mb), blocks on a local disk (--cache-dir), then the
 * OSTs; plus readahead and the write-back cache.
 *
 * Coherence follows the lock rule. A memory page holds object bytes that a granted extent
 * lock covers whole; it is dropped when a lock on those bytes goes. A disk block is keyed
 * by the object's data version as the OST reported it when the covering lock was granted:
 * while the lock is held nobody else can change the bytes, and any later change gives the
 * object a new version, so a block outlives the lock (and the client) and is still never
 * served stale. Bytes this client wrote under a lock make that lock's version unusable
 * for the disk level until a fresh lock reports a fresh version.
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from '../../common/log.js';
import { fidKey, type Fid } from '../../common/fid.js';
import { fileSizeFromObject, mapExtent, type ObjectExtent, type Raid0Layout } from '../../common/layout.js';
import { compareTime, type Timestamp } from '../../common/time.js';
import type { ClientLock } from '../../ldlm/client.js';
import { EXTENT_EOF } from '../../ldlm/extent.js';
import { LockMode } from '../../ldlm/modes.js';
import { objectResource } from '../../ldlm/protocol.js';
import type { ClientDlm, DataRevoke, HeldLocks } from '../dlm.js';
import type { OstClient } from '../osc.js';
import { DEFAULT_PAGE_SIZE, PageCache } from './page-cache.js';
import { FileReadahead, ReadaheadBudget, WholeFileTracker } from './readahead.js';
import type { SsdCache } from './ssd-cache.js';
import { objectKey, type ObjectRef } from './dirty-store.js';
import { WriteBack } from './writeback.js';
import type { CacheStatsSnapshot, CacheTunables, LevelCounters } from './types.js';

export interface ClientCacheOptions {
  maxCachedBytes?: number;
  pageSize?: number;
  maxReadAheadBytes?: number;
  maxReadAheadPerFileBytes?: number;
  maxReadAheadWholeBytes?: number;
  maxDirtyBytesPerOst?: number;
  /** dirty bytes older than this go to the OSTs (ms) */
  dirtyExpireMs?: number;
  /** the local disk level, when the mount has --cache-dir */
  ssd?: SsdCache;
}

/** Lustre's defaults, scaled down for a user-space client: llite max_cached_mb is half of RAM there. */
export const DEFAULT_MAX_CACHED_BYTES = 256 << 20;
export const DEFAULT_MAX_READ_AHEAD_BYTES = 64 << 20;
export const DEFAULT_MAX_READ_AHEAD_PER_FILE_BYTES = 16 << 20;
export const DEFAULT_MAX_READ_AHEAD_WHOLE_BYTES = 2 << 20;
export const DEFAULT_MAX_DIRTY_BYTES_PER_OST = 32 << 20;
export const DEFAULT_DIRTY_EXPIRE_MS = 5_000;

/** The parts of the client the cache uses. */
export interface CacheHost {
  osc(index: number): OstClient;
  readonly dlm: ClientDlm;
  log: Logger;
  /** sizes of the layout's objects from the OSTs (a glimpse), for reads that reach an object's end */
  glimpseSizes(layout: Raid0Layout): Promise<number[]>;
}

/** An open file as readahead sees it: who fetches a range into the cache, and what size the file had at open. */
export interface ReadaheadHandle {
  sizeHint: number;
  prefetch(start: number, length: number): Promise<void>;
}

interface ObjectRead {
  data: Buffer;
  /** where the object ends, if inside the range read */
  end: number | undefined;
}

function counters(): LevelCounters {
  return { hitBytes: 0, hitRequests: 0, missBytes: 0, missRequests: 0 };
}

export class ClientCache {
  readonly pages: PageCache;
  readonly writeback: WriteBack;
  readonly ssd: SsdCache | undefined;
  readonly tunables: CacheTunables;
  private readonly mem = counters();
  private readonly disk = counters();
  private readonly ra = { hits: 0, misses: 0, readaheadBytes: 0, wholeFileReads: 0, stridedWindows: 0 };
  private readonly readaheads = new WeakMap<ReadaheadHandle, FileReadahead>();
  private readonly whole: WholeFileTracker;
  private readonly budget: ReadaheadBudget;
  /** locks this client wrote under: their grant-time version no longer describes the object */
  private readonly wroteUnder = new WeakSet<ClientLock>();
  /** write epochs: a page read that started before the object's last write or flush is not kept */
  private epoch = 0;
  private readonly lastChange = new Map<string, number>();
  /** the object's version after this client's last write to it, as the OST reported it */
  private readonly writtenVersions = new Map<string, string>();
  private changeFloor = 0;

  constructor(private readonly host: CacheHost, opts: ClientCacheOptions = {}) {
    const t: CacheTunables = {
      maxCachedBytes: opts.maxCachedBytes ?? DEFAULT_MAX_CACHED_BYTES,
      maxReadAheadBytes: opts.maxReadAheadBytes ?? DEFAULT_MAX_READ_AHEAD_BYTES,
      maxReadAheadPerFileBytes: opts.maxReadAheadPerFileBytes ?? DEFAULT_MAX_READ_AHEAD_PER_FILE_BYTES,
      maxReadAheadWholeBytes: opts.maxReadAheadWholeBytes ?? DEFAULT_MAX_READ_AHEAD_WHOLE_BYTES,
      maxDirtyBytesPerOst: opts.maxDirtyBytesPerOst ?? DEFAULT_MAX_DIRTY_BYTES_PER_OST,
    };
    this.pages = new PageCache({ maxBytes: t.maxCachedBytes, pageSize: opts.pageSize ?? DEFAULT_PAGE_SIZE });
    const pages = this.pages;
    // the setter trims the page cache at once (lctl set_param llite.*.max_cached_mb)
    this.tunables = {
      get maxCachedBytes() {
        return pages.maxBytes;
      },
      set maxCachedBytes(n: number) {
        pages.maxBytes = n;
      },
      maxReadAheadBytes: t.maxReadAheadBytes,
      maxReadAheadPerFileBytes: t.maxReadAheadPerFileBytes,
      maxReadAheadWholeBytes: t.maxReadAheadWholeBytes,
      maxDirtyBytesPerOst: t.maxDirtyBytesPerOst,
    };
    this.ssd = opts.ssd;
    this.whole = new WholeFileTracker(() => this.tunables.maxReadAheadWholeBytes);
    this.budget = new ReadaheadBudget(() => this.tunables.maxReadAheadBytes);
    this.writeback = new WriteBack(
      (i) => host.osc(i),
      { maxDirtyBytesPerOst: () => this.tunables.maxDirtyBytesPerOst, dirtyExpireMs: opts.dirtyExpireMs ?? DEFAULT_DIRTY_EXPIRE_MS, rpcBytes: 4 << 20 },
      host.log,
      (key, ver) => {
        this.changed(key);
        if (ver !== undefined) this.noteVersion(key, ver);
      },
    );
    host.dlm.dataRevokeListeners.add((ev) => this.onRevoke(ev));
    host.dlm.lvbCurrent = (l) => !this.wroteUnder.has(l);
    host.dlm.glimpseListeners.add((o) => this.writeback.flushObject({ ost: o.ostIdx, seq: o.seq, oid: o.oid }));
  }

  private changed(key: string): void {
    this.lastChange.set(key, ++this.epoch);
    if (this.lastChange.size > 100_000) {
      // forget the oldest half; what is forgotten counts as changed at the floor
      let n = 0;
      for (const [k, v] of this.lastChange) {
        if (n++ > 50_000) break;
        this.changeFloor = Math.max(this.changeFloor, v);
        this.lastChange.delete(k);
      }
    }
  }

  /** An OST reported the object's version after one of this client's writes: keep the newest. */
  private noteVersion(key: string, ver: string): void {
    const cur = this.writtenVersions.get(key);
    if (cur === undefined || newerVersion(ver, cur)) this.writtenVersions.set(key, ver);
    if (this.writtenVersions.size > 100_000) this.writtenVersions.delete(this.writtenVersions.keys().next().value!);
  }

  private changedSince(key: string, epoch: number): boolean {
    return (this.lastChange.get(key) ?? this.changeFloor) > epoch;
  }

  /** A lock on an object goes: its dirty bytes go to the OST first, then the pages it covered are dropped. */
  private async onRevoke(ev: DataRevoke): Promise<void> {
    const ref = { ost: ev.ostIdx, seq: ev.seq, oid: ev.oid };
    if (ev.why === 'evicted') this.writeback.discard(ref);
    else await this.writeback.flushObject(ref);
    this.pages.invalidate(ev.ostIdx, ev.seq, ev.oid, ev.extent.start, ev.extent.end >= EXTENT_EOF ? Number.MAX_SAFE_INTEGER : ev.extent.end);
    this.changed(objectKey(ref));
  }

  private readaheadOf(handle: ReadaheadHandle): FileReadahead {
    let r = this.readaheads.get(handle);
    if (!r) {
      r = new FileReadahead(() => ({
        rpcBytes: 4 << 20,
        maxPerFileBytes: this.tunables.maxReadAheadPerFileBytes,
        maxWholeBytes: this.tunables.maxReadAheadWholeBytes,
      }));
      this.readaheads.set(handle, r);
    }
    return r;
  }

  /**
   * Reads file bytes under `held` (PR or PW locks over the range's objects). `handle`
   * identifies the open file for readahead; `prefetch` takes locks for a readahead range.
   */
  async read(
    fid: Fid,
    layout: Raid0Layout,
    offset: number,
    length: number,
    held: HeldLocks,
    handle?: ReadaheadHandle,
  ): Promise<Buffer> {
    const out = await this.readRange(layout, offset, length, held);
    if (handle) this.planReadahead(fid, offset, length, out.length, handle);
    return out;
  }

  private async readRange(layout: Raid0Layout, offset: number, length: number, held: HeldLocks): Promise<Buffer> {
    if (length === 0 || layout.objects.length === 0) return Buffer.alloc(0);
    const extents = mapExtent(offset, length, layout.stripeSize, layout.objects.length);
    const got = await Promise.all(
      extents.map((ext) => {
        const o = layout.objects[ext.stripe]!;
        return this.readObject({ ost: o.ostIdx, seq: o.seq, oid: o.oid }, lockOn(held, o.seq, o.oid), ext.objStart, ext.objEnd);
      }),
    );
    const out = Buffer.allocUnsafe(length);
    let short = false;
    extents.forEach((ext, i) => {
      const r = got[i]!;
      if (r.end !== undefined) short = true;
      for (const p of ext.pieces) r.data.copy(out, p.fileOffset - offset, p.objectOffset - ext.objStart, p.objectOffset - ext.objStart + p.length);
    });
    if (!short) return out;
    const size = await this.fileSize(layout, held);
    return out.subarray(0, Math.max(0, Math.min(length, size - offset)));
  }

  /**
   * The file's size when a read reached an object's end: from the locks' grant-time sizes
   * and this client's own writes when every object is locked whole, else from the OSTs;
   * dirty bytes count either way.
   */
  async fileSize(layout: Raid0Layout, held?: HeldLocks): Promise<number> {
    const n = layout.objects.length;
    const local = layout.objects.map((o) => this.lockedObjectSize(o.ostIdx, o.seq, o.oid, held));
    const sizes = local.every((s) => s !== undefined) ? (local as number[]) : await this.host.glimpseSizes(layout);
    let size = 0;
    layout.objects.forEach((o, i) => {
      const obj = Math.max(sizes[i]!, this.writeback.dirty.endOf(objectKey({ ost: o.ostIdx, seq: o.seq, oid: o.oid })));
      size = Math.max(size, fileSizeFromObject(obj, i, layout.stripeSize, n));
    });
    return size;
  }

  /** The object's size while a granted lock covers all of it, from its grant and this client's writes. */
  private lockedObjectSize(ost: number, seq: number, oid: number, held?: HeldLocks): number | undefined {
    const res = objectResource(seq, oid);
    const mine = held?.locks.find((l) => l.res === res && coversAll(l));
    if (mine?.lvb) return Math.max(mine.lvb.size, mine.knownSize ?? 0);
    const ns = this.host.dlm.osc(ost);
    const l = ns.match(res, LockMode.PR, { extent: { start: 0, end: EXTENT_EOF } });
    if (!l) return undefined;
    try {
      return l.lvb ? Math.max(l.lvb.size, l.knownSize ?? 0) : undefined;
    } finally {
      ns.release(l);
    }
  }

  /** Object bytes [start, end): memory pages, then disk blocks, then the OST in as few reads as possible. */
  private async readObject(ref: ObjectRef, lock: ClientLock | undefined, start: number, end: number): Promise<ObjectRead> {
    const P = this.pages.pageSize;
    const key = objectKey(ref);
    const began = this.epoch;
    const out = Buffer.alloc(end - start);
    let objEnd: number | undefined;
    const missing: number[] = [];
    const first = Math.floor(start / P);
    const last = Math.floor((end - 1) / P);
    for (let p = first; p <= last; p++) {
      const page = this.pages.get(ref.ost, ref.seq, ref.oid, p);
      if (!page) {
        missing.push(p);
        continue;
      }
      this.copyPage(page.data, p * P, start, end, out, this.mem);
      if (page.eof) {
        objEnd = p * P + page.data.length;
        break;
      }
    }
    const stillMissing = objEnd === undefined ? missing : missing.filter((p) => p * P < objEnd!);
    if (stillMissing.length === 0) this.mem.hitRequests++;
    else {
      this.mem.missRequests++;
      this.mem.missBytes += stillMissing.length * P;
    }
    const version = this.diskVersion(lock, ref);
    const fromOst: number[] = [];
    for (const p of stillMissing) {
      const block = version !== undefined && this.ssd?.enabled ? await this.ssd.get(blockKey(key, version, p)) : undefined;
      if (!block) {
        fromOst.push(p);
        continue;
      }
      this.copyPage(block, p * P, start, end, out, this.disk);
      this.keepPage(ref, key, lock, p, block, block.length < P, began, undefined);
      if (block.length < P) objEnd = Math.min(objEnd ?? Infinity, p * P + block.length);
    }
    if (stillMissing.length > 0 && this.ssd?.enabled) {
      const diskMisses = fromOst.length;
      if (diskMisses > 0) {
        this.disk.missRequests++;
        this.disk.missBytes += diskMisses * P;
      } else this.disk.hitRequests++;
    }
    for (const run of runs(fromOst)) {
      const runStart = run[0]! * P;
      const runLen = run.length * P;
      const buf = Buffer.alloc(runLen);
      const got = await this.host.osc(ref.ost).read(ref.seq, ref.oid, runStart, runLen, (objOff, data) => data.copy(buf, objOff - runStart));
      if (got < runLen) objEnd = Math.min(objEnd ?? Infinity, runStart + got);
      const s = Math.max(start, runStart);
      const e = Math.min(end, runStart + got);
      if (e > s) buf.copy(out, s - start, s - runStart, e - runStart);
      for (const p of run) {
        const ps = p * P - runStart;
        // the page where the object ends is kept even when empty: it says where the end is
        if (ps > got || (ps === got && got === runLen)) break;
        const data = Buffer.from(buf.subarray(ps, Math.min(got, ps + P)));
        this.keepPage(ref, key, lock, p, data, data.length < P, began, version);
      }
    }
    if (objEnd !== undefined && objEnd < end) out.fill(0, Math.max(0, objEnd - start));
    const dirtyTop = this.writeback.dirty.overlay(key, start, out);
    if (objEnd !== undefined && dirtyTop > objEnd) objEnd = dirtyTop >= end ? undefined : dirtyTop;
    return { data: out, end: objEnd !== undefined && objEnd < end ? objEnd : undefined };
  }

  private copyPage(data: Buffer, pageStart: number, start: number, end: number, out: Buffer, level: LevelCounters): void {
    const s = Math.max(start, pageStart);
    const e = Math.min(end, pageStart + data.length);
    if (e > s) data.copy(out, s - start, s - pageStart, e - pageStart);
    level.hitBytes += Math.max(0, e - s);
  }

  /**
   * Keeps a page read under `lock` in memory (and on disk when `version` is usable), if
   * the lock covers the whole page and the object did not change since the read began.
   */
  private keepPage(ref: ObjectRef, key: string, lock: ClientLock | undefined, page: number, data: Buffer, eof: boolean, began: number, version: string | undefined): void {
    if (!lock || this.changedSince(key, began)) return;
    const P = this.pages.pageSize;
    const ext = lock.extent ?? { start: 0, end: EXTENT_EOF };
    const pageEnd = eof ? EXTENT_EOF : page * P + P - 1;
    if (ext.start > page * P || ext.end < pageEnd) return;
    // OST bytes under newer dirty ones: once those are flushed the page would be stale
    if (this.writeback.hasDirty(ref)) return;
    this.pages.put(ref.ost, ref.seq, ref.oid, page, data, eof);
    if (version !== undefined) this.ssd?.put(blockKey(key, version, page), data);
  }

  /** The lock's grant-time object version, when blocks keyed by it are still true. */
  private diskVersion(lock: ClientLock | undefined, ref: ObjectRef): string | undefined {
    if (!lock || !this.ssd) return undefined;
    if (!this.wroteUnder.has(lock)) return lock.lvb?.ver;
    // Written under this very lock, which nobody else can write under: once none of our
    // bytes are still on their way, the OST's reply to our last write names the version.
    if (this.writeback.hasDirty(ref)) return undefined;
    return this.writtenVersions.get(objectKey(ref));
  }

  private planReadahead(fid: Fid, offset: number, length: number, got: number, handle: ReadaheadHandle): void {
    const fr = this.readaheadOf(handle);
    const before = { hits: fr.stats.hits, misses: fr.stats.misses };
    // a short read ends the file there; otherwise its size is at least what was read
    const size = got < length ? offset + got : Math.max(handle.sizeHint, offset + got);
    const plans = fr.onRead(offset, length, got < length ? size : Number.MAX_SAFE_INTEGER);
    this.ra.hits += fr.stats.hits - before.hits;
    this.ra.misses += fr.stats.misses - before.misses;
    if (got === length && size <= this.tunables.maxReadAheadWholeBytes && this.whole.onRead(fidKey(fid), size)) {
      // a small file read a second time: the rest of it at once (a read that took it all needs nothing)
      const rest = [
        { start: 0, length: offset },
        { start: offset + got, length: size - offset - got },
      ].filter((r) => r.length > 0);
      if (rest.length > 0) this.ra.wholeFileReads++;
      for (const r of rest) plans.push({ ...r, kind: 'whole' });
    }
    for (const p of plans) {
      const take = this.budget.takeUpTo(p.length);
      if (take <= 0) break;
      if (p.kind === 'strided') this.ra.stridedWindows++;
      this.ra.readaheadBytes += take;
      void handle.prefetch(p.start, take).finally(() => this.budget.give(take));
    }
  }

  /** Reads a range into the cache levels only (readahead, warmup). */
  async prefetch(layout: Raid0Layout, offset: number, length: number, held: HeldLocks): Promise<void> {
    await this.readRange(layout, offset, length, held);
  }

  /**
   * Writes file bytes under PW locks: into memory pages that hold them, and into the
   * write-back cache when the OST granted space (`sync`: straight to the OST).
   */
  async write(fid: Fid, layout: Raid0Layout, offset: number, data: Buffer, held: HeldLocks, sync: boolean): Promise<void> {
    const extents = mapExtent(offset, data.length, layout.stripeSize, layout.objects.length);
    await Promise.all(
      extents.map(async (ext) => {
        const o = layout.objects[ext.stripe]!;
        const ref = { ost: o.ostIdx, seq: o.seq, oid: o.oid };
        const key = objectKey(ref);
        const bytes = objectBytes(ext, data, offset);
        const lock = lockOn(held, o.seq, o.oid);
        if (lock) this.wroteUnder.add(lock);
        this.changed(key);
        this.pages.applyWrite(ref.ost, ref.seq, ref.oid, ext.objStart, bytes);
        if (!sync && (await this.writeback.cacheWrite(fid, ref, ext.objStart, bytes))) return;
        // through to the OST, after older dirty bytes of the object so they cannot land over it
        await this.writeback.flushObject(ref);
        const res = await this.host.osc(ref.ost).write(ref.seq, ref.oid, ext.objStart, [bytes], sync);
        this.changed(key);
        if (res.ver !== undefined) this.noteVersion(key, res.ver);
      }),
    );
  }

  /** Every dirty byte of the file goes to the OSTs; a failed background flush since the last report is thrown. */
  async flushFile(fid: Fid, layout: Raid0Layout | undefined): Promise<void> {
    if (layout) await this.writeback.flushObjects(layout.objects.map((o) => ({ ost: o.ostIdx, seq: o.seq, oid: o.oid })));
    this.writeback.takeError(fid);
  }

  /** Object bytes or attributes change under these locks: what they said at grant no longer holds. */
  markWritten(held: HeldLocks): void {
    for (const l of held.locks) this.wroteUnder.add(l);
  }

  /** After a truncate to `size` under `held`: pages above the new end go. */
  truncated(layout: Raid0Layout, objectSizes: number[], held: HeldLocks): void {
    for (const l of held.locks) this.wroteUnder.add(l);
    layout.objects.forEach((o, i) => {
      this.pages.truncate(o.ostIdx, o.seq, o.oid, objectSizes[i]!);
      const key = objectKey({ ost: o.ostIdx, seq: o.seq, oid: o.oid });
      this.changed(key);
      // the punch made a version this client was not told: no disk blocks until a new lock says
      this.writtenVersions.delete(key);
    });
  }

  /** The file size and mtime as this client's unflushed writes make them, for stat. */
  pendingAttrs(layout: Raid0Layout): { size: number; mtime: Timestamp | undefined } {
    const n = layout.objects.length;
    let size = 0;
    let mtime: Timestamp | undefined;
    layout.objects.forEach((o, i) => {
      const ref = { ost: o.ostIdx, seq: o.seq, oid: o.oid };
      const end = this.writeback.dirty.endOf(objectKey(ref));
      if (end > 0) size = Math.max(size, fileSizeFromObject(end, i, layout.stripeSize, n));
      const t = this.writeback.pendingMtime(ref);
      if (t && (!mtime || compareTime(t, mtime) > 0)) mtime = t;
    });
    return { size, mtime };
  }

  /** Drops a file's pages and disk blocks (warmup --evict); resolves with the bytes dropped. */
  async evict(layout: Raid0Layout): Promise<number> {
    let bytes = 0;
    for (const o of layout.objects) {
      bytes += this.pages.cachedBytesOf(o.ostIdx, o.seq, o.oid);
      this.pages.invalidate(o.ostIdx, o.seq, o.oid);
      this.changed(objectKey({ ost: o.ostIdx, seq: o.seq, oid: o.oid }));
      if (this.ssd) bytes += await this.ssd.dropObject(objectKey({ ost: o.ostIdx, seq: o.seq, oid: o.oid }));
    }
    return bytes;
  }

  /** Bytes of the file the disk level holds under the objects' current versions (taken from `held`). */
  diskBytesOf(layout: Raid0Layout, held: HeldLocks): number {
    if (!this.ssd) return 0;
    let bytes = 0;
    for (const o of layout.objects) {
      const v = this.diskVersion(lockOn(held, o.seq, o.oid), { ost: o.ostIdx, seq: o.seq, oid: o.oid });
      if (v !== undefined) bytes += this.ssd.cachedBytesOf(objectKey({ ost: o.ostIdx, seq: o.seq, oid: o.oid }), v);
    }
    return bytes;
  }

  stats(oscs: OstClient[]): CacheStatsSnapshot {
    const oss = { readBytes: 0, readRequests: 0, writeBytes: 0, writeRequests: 0 };
    let grantBytes = 0;
    for (const c of oscs) {
      oss.readBytes += c.stats.readBytes;
      oss.readRequests += c.stats.readRpcs;
      oss.writeBytes += c.stats.writeBytes;
      oss.writeRequests += c.stats.writeRpcs;
      grantBytes += c.curGrantBytes;
    }
    const s = this.ssd?.stats();
    return {
      memory: { ...this.mem, cachedBytes: this.pages.bytes, maxBytes: this.pages.maxBytes, pageSize: this.pages.pageSize },
      ssd: { ...this.disk, enabled: s?.enabled ?? false, cachedBytes: s?.cachedBytes ?? 0, maxBytes: s?.maxBytes ?? 0, errors: s?.errors ?? 0, dirs: s?.dirs ?? [] },
      oss,
      dirtyBytes: this.writeback.dirty.bytes,
      maxDirtyBytes: this.tunables.maxDirtyBytesPerOst * Math.max(1, oscs.length),
      grantBytes,
      readahead: { ...this.ra },
    };
  }

  async close(): Promise<void> {
    await this.writeback.close();
    await this.ssd?.close();
  }

  /** A monotonic clock for tests that want to know whether a flush has happened since. */
  static now(): number {
    return performance.now();
  }
}

function lockOn(held: HeldLocks, seq: number, oid: number): ClientLock | undefined {
  const res = objectResource(seq, oid);
  return held.locks.find((l) => l.res === res);
}

function coversAll(l: ClientLock): boolean {
  return !l.extent || (l.extent.start === 0 && l.extent.end >= EXTENT_EOF);
}

/** Versions are "<OST boot epoch>.<counter>"; of one epoch, the larger counter is newer. */
function newerVersion(a: string, b: string): boolean {
  const [ea, na] = a.split('.');
  const [eb, nb] = b.split('.');
  if (ea !== eb) return true;
  return Number(na) > Number(nb);
}

export function blockKey(objectId: string, version: string, page: number): string {
  return `${objectId}/${version}/${page}`;
}

/** The object-contiguous bytes of `data` that one stripe's extent takes. */
function objectBytes(ext: ObjectExtent, data: Buffer, base: number): Buffer {
  if (ext.pieces.length === 1) {
    const p = ext.pieces[0]!;
    return data.subarray(p.fileOffset - base, p.fileOffset - base + p.length);
  }
  return Buffer.concat(ext.pieces.map((p) => data.subarray(p.fileOffset - base, p.fileOffset - base + p.length)));
}

/** Sorted page numbers grouped into runs of consecutive ones, each at most 64 pages (4 MiB of 64 KiB pages). */
function runs(pages: number[]): number[][] {
  const out: number[][] = [];
  for (const p of pages) {
    const cur = out[out.length - 1];
    if (cur && cur[cur.length - 1] === p - 1 && cur.length < 64) cur.push(p);
    else out.push([p]);
  }
  return out;
}
