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
import { FileReadahead, ReadaheadBudget, WholeFileTracker, type ReadaheadPlan } from './readahead.js';
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
/** dense-random readahead is for files up to this part of max_cached_mb: they stay cached once read */
export const DENSE_CACHE_FRACTION = 0.5;

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

/**
 * Where a read collects the page buffers of object bytes [start, end): slot i is page
 * first + i. Pages are taken as they are, not copied (see ClientCache.readv for why that is safe).
 */
interface PageSink {
  start: number;
  end: number;
  first: number;
  slots: Array<Buffer | undefined>;
}

interface InflightPage {
  done: Promise<void>;
}

function inflightKey(objectId: string, page: number): string {
  return `${objectId}#${page}`;
}

interface ObjectRead {
  /** the object's bytes [start, end) in order, zeros past its end */
  pieces: Buffer[];
  /** where the object ends, if inside the range read */
  end: number | undefined;
  /** some of it was not in memory */
  missed: boolean;
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
  /** pages being fetched (object key#page): a read that needs one waits instead of fetching it again */
  private readonly inflight = new Map<string, InflightPage>();
  /** per open file: its first reads, for the whole-file decision */
  private readonly opens = new WeakMap<ReadaheadHandle, { reads: number; wholePlanned: boolean }>();
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

  /** This client holds bytes of the object not yet written to its OST. */
  hasDirty(ost: number, seq: number, oid: number): boolean {
    return this.writeback.hasDirty({ ost, seq, oid });
  }

  private readaheadOf(handle: ReadaheadHandle): FileReadahead {
    let r = this.readaheads.get(handle);
    if (!r) {
      r = new FileReadahead(() => ({
        rpcBytes: 4 << 20,
        maxPerFileBytes: this.tunables.maxReadAheadPerFileBytes,
        maxWholeBytes: this.tunables.maxReadAheadWholeBytes,
        denseMaxFileBytes: Math.floor(this.pages.maxBytes * DENSE_CACHE_FRACTION),
      }));
      this.readaheads.set(handle, r);
    }
    return r;
  }

  /**
   * Reads file bytes under `held` (PR or PW locks over the range's objects), as the pieces
   * they are made of, in order: cached pages and subarrays of them, not one assembled
   * buffer. `handle` identifies the open file for readahead; `prefetch` takes locks for a
   * readahead range.
   *
   * The pieces are READ-ONLY and may be the page cache's own buffers. That is safe to hand
   * on (to the kernel, say) after the locks are released because no page buffer is ever
   * written once it holds data: the cache replaces a page on write or truncate and never
   * modifies one in place (page-cache.ts), a fetched page is a fresh buffer per page that
   * nothing writes after its fetch settled, disk-cache blocks are fresh buffers, and bytes
   * overlaid from dirty (pooled) write-back buffers are copied into a fresh buffer. A
   * dropped or evicted page only loses its cache entry; the reader's reference keeps its
   * bytes as they were when read. Whoever takes pieces must not write to them either.
   */
  async readv(
    fid: Fid,
    layout: Raid0Layout,
    offset: number,
    length: number,
    held: HeldLocks,
    handle?: ReadaheadHandle,
  ): Promise<Buffer[]> {
    const { pieces, bytes, missed } = await this.readRange(layout, offset, length, held);
    if (handle) this.planReadahead(fid, layout, offset, length, bytes, held, handle, missed);
    return pieces;
  }

  /** The file's bytes in pieces, how many there are, and whether any came from below memory. */
  private async readRange(layout: Raid0Layout, offset: number, length: number, held: HeldLocks): Promise<{ pieces: Buffer[]; bytes: number; missed: boolean }> {
    if (length === 0 || layout.objects.length === 0) return { pieces: [], bytes: 0, missed: false };
    const extents = mapExtent(offset, length, layout.stripeSize, layout.objects.length);
    const got = await Promise.all(
      extents.map((ext) => {
        const o = layout.objects[ext.stripe]!;
        return this.readObject({ ost: o.ostIdx, seq: o.seq, oid: o.oid }, lockOn(held, o.seq, o.oid), ext.objStart, ext.objEnd);
      }),
    );
    let pieces: Buffer[];
    if (extents.length === 1 && extents[0]!.pieces.length === 1) {
      // within one stripe: the object's bytes are the file's, in order
      pieces = got[0]!.pieces;
    } else {
      const parts: Array<{ at: number; pieces: Buffer[] }> = [];
      extents.forEach((ext, i) => {
        const r = got[i]!;
        for (const p of ext.pieces) {
          const from = p.objectOffset - ext.objStart;
          parts.push({ at: p.fileOffset, pieces: slicePieces(r.pieces, from, from + p.length) });
        }
      });
      parts.sort((a, b) => a.at - b.at);
      pieces = parts.flatMap((p) => p.pieces);
    }
    const missed = got.some((r) => r.missed);
    if (!got.some((r) => r.end !== undefined)) return { pieces, bytes: length, missed };
    const size = await this.fileSize(layout, held);
    const bytes = Math.max(0, Math.min(length, size - offset));
    return { pieces: slicePieces(pieces, 0, bytes), bytes, missed };
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
    let objEnd: number | undefined;
    let missing: number[] | undefined;
    const first = Math.floor(start / P);
    const last = Math.floor((end - 1) / P);
    const sink: PageSink = { start, end, first, slots: new Array<Buffer | undefined>(last - first + 1) };
    for (let p = first; p <= last; p++) {
      const page = this.pages.get(ref.ost, ref.seq, ref.oid, p);
      if (!page) {
        (missing ??= []).push(p);
        continue;
      }
      this.takePage(sink, p, page.data, this.mem);
      if (page.eof) {
        objEnd = p * P + page.data.length;
        break;
      }
    }
    const stillMissing = missing === undefined ? [] : objEnd === undefined ? missing : missing.filter((p) => p * P < objEnd!);
    const missed = stillMissing.length > 0;
    if (!missed) this.mem.hitRequests++;
    else {
      const fetchedEnd = await this.loadPages(ref, key, lock, began, stillMissing, sink);
      if (fetchedEnd !== undefined) objEnd = Math.min(objEnd ?? Infinity, fetchedEnd);
    }
    let pieces = pagePieces(sink, P, objEnd);
    if (this.writeback.dirty.get(key)) {
      // dirty bytes go over a copy: never over a cached page, nor handing out a pooled write-back buffer
      const out = Buffer.concat(pieces);
      const dirtyTop = this.writeback.dirty.overlay(key, start, out);
      if (objEnd !== undefined && dirtyTop > objEnd) objEnd = dirtyTop >= end ? undefined : dirtyTop;
      pieces = [out];
    }
    return { pieces, end: objEnd !== undefined && objEnd < end ? objEnd : undefined, missed };
  }

  /**
   * Readahead of object bytes [start, end): only the pages memory lacks and nobody is
   * fetching are loaded (from disk blocks or the OST), and nothing is copied out. Pages
   * already cached are not touched: readahead over them neither costs a copy nor counts
   * as a hit.
   */
  private async prefetchObject(ref: ObjectRef, lock: ClientLock | undefined, start: number, end: number): Promise<void> {
    if (end <= start) return;
    const P = this.pages.pageSize;
    const began = this.epoch;
    const missing: number[] = [];
    const first = Math.floor(start / P);
    const last = Math.floor((end - 1) / P);
    const key = objectKey(ref);
    for (let p = first; p <= last; p++) {
      const page = this.pages.peek(ref.ost, ref.seq, ref.oid, p);
      if (!page) {
        if (!this.inflight.has(inflightKey(key, p))) missing.push(p);
      } else if (page.eof) break;
    }
    if (missing.length > 0) await this.loadPages(ref, key, lock, began, missing, undefined);
  }

  /**
   * Brings `pages` (sorted, none in memory) in from disk blocks or the OST, keeping them
   * where the lock allows, and puts those in `sink`'s range into it. Pages another
   * read or readahead is already fetching are waited for, not fetched twice. Resolves with
   * where the object ends when a page found its end.
   */
  private async loadPages(
    ref: ObjectRef,
    key: string,
    lock: ClientLock | undefined,
    began: number,
    pages: number[],
    sink: PageSink | undefined,
  ): Promise<number | undefined> {
    this.mem.missRequests++;
    this.mem.missBytes += pages.length * this.pages.pageSize;
    const mine: number[] = [];
    const theirs: number[] = [];
    const waits = new Set<Promise<void>>();
    for (const p of pages) {
      const f = this.inflight.get(inflightKey(key, p));
      if (f) {
        theirs.push(p);
        waits.add(f.done);
      } else mine.push(p);
    }
    if (theirs.length === 0) return this.fetchPages(ref, key, lock, began, mine, sink);
    const [endMine, endTheirs] = await Promise.all([
      this.fetchPages(ref, key, lock, began, mine, sink),
      this.afterTheirs(ref, key, lock, began, theirs, waits, sink),
    ]);
    return endMine === undefined ? endTheirs : endTheirs === undefined ? endMine : Math.min(endMine, endTheirs);
  }

  /** Pages others were fetching: from memory once they are done, or fetched here if they were not kept. */
  private async afterTheirs(
    ref: ObjectRef,
    key: string,
    lock: ClientLock | undefined,
    began: number,
    pages: number[],
    waits: Set<Promise<void>>,
    sink: PageSink | undefined,
  ): Promise<number | undefined> {
    await Promise.all(waits);
    const P = this.pages.pageSize;
    let objEnd: number | undefined;
    const left: number[] = [];
    for (const p of pages) {
      const page = this.pages.peek(ref.ost, ref.seq, ref.oid, p);
      if (!page) {
        left.push(p);
        continue;
      }
      if (sink) this.takePage(sink, p, page.data, this.mem);
      if (page.eof) objEnd = Math.min(objEnd ?? Infinity, p * P + page.data.length);
    }
    if (left.length === 0) return objEnd;
    const fetchedEnd = await this.fetchPages(ref, key, lock, began, left, sink);
    return fetchedEnd === undefined ? objEnd : Math.min(objEnd ?? Infinity, fetchedEnd);
  }

  /** Fetches `pages` from disk blocks or the OST (all runs at once), marked in flight meanwhile. */
  private async fetchPages(
    ref: ObjectRef,
    key: string,
    lock: ClientLock | undefined,
    began: number,
    pages: number[],
    sink: PageSink | undefined,
  ): Promise<number | undefined> {
    if (pages.length === 0) return undefined;
    const P = this.pages.pageSize;
    const claims = pages.map((p) => this.claimPage(key, p));
    const settle = (from: number, to: number) => {
      for (let i = from; i < to; i++) claims[i]!.settle();
    };
    try {
      let objEnd: number | undefined;
      const version = this.diskVersion(lock, ref);
      const diskOn = version !== undefined && this.ssd?.enabled === true;
      const fromOst: number[] = diskOn ? [] : pages;
      if (diskOn) {
        for (const p of pages) {
          const block = await this.ssd!.get(blockKey(key, version, p));
          if (!block) {
            fromOst.push(p);
            continue;
          }
          if (sink) this.takePage(sink, p, block, this.disk);
          else this.disk.hitBytes += block.length;
          this.keepPage(ref, key, lock, p, block, block.length < P, began, undefined);
          if (block.length < P) objEnd = Math.min(objEnd ?? Infinity, p * P + block.length);
        }
      }
      if (this.ssd?.enabled) {
        const diskMisses = fromOst.length;
        if (diskMisses > 0) {
          this.disk.missRequests++;
          this.disk.missBytes += diskMisses * P;
        } else this.disk.hitRequests++;
      }
      const ends = await Promise.all(
        runs(fromOst).map(async (run) => {
          const end = await this.fetchRun(ref, key, lock, began, run, version, sink);
          // waiters may go on as soon as their run is in memory
          if (!diskOn) settle(pages.indexOf(run[0]!), pages.indexOf(run[run.length - 1]!) + 1);
          return end;
        }),
      );
      for (const e of ends) if (e !== undefined) objEnd = Math.min(objEnd ?? Infinity, e);
      return objEnd;
    } finally {
      settle(0, claims.length);
    }
  }

  /**
   * One run of consecutive pages from the OST, scattered as it arrives into one buffer per
   * page (what the cache keeps: an evicted page never keeps others alive); resolves with
   * where the object ends if inside the run.
   */
  private async fetchRun(
    ref: ObjectRef,
    key: string,
    lock: ClientLock | undefined,
    began: number,
    run: number[],
    version: string | undefined,
    sink: PageSink | undefined,
  ): Promise<number | undefined> {
    const P = this.pages.pageSize;
    const runStart = run[0]! * P;
    const runLen = run.length * P;
    const bufs = run.map(() => Buffer.allocUnsafe(P));
    const got = await this.host.osc(ref.ost).read(ref.seq, ref.oid, runStart, runLen, (objOff, data) => {
      for (let i = 0, at = objOff - runStart; i < data.length; ) {
        const within = at % P;
        const n = Math.min(P - within, data.length - i);
        data.copy(bufs[Math.floor(at / P)]!, within, i, i + n);
        i += n;
        at += n;
      }
    });
    run.forEach((p, i) => {
      const ps = i * P;
      // the page where the object ends is kept even when empty: it says where the end is
      if (ps > got || (ps === got && got === runLen)) return;
      const data = got >= ps + P ? bufs[i]! : bufs[i]!.subarray(0, got - ps);
      if (sink) this.takePage(sink, p, data, undefined);
      this.keepPage(ref, key, lock, p, data, data.length < P, began, version);
    });
    return got < runLen ? runStart + got : undefined;
  }

  /** Marks a page as being fetched; `settle` (idempotent) lets those waiting for it go on. */
  private claimPage(key: string, page: number): { settle(): void } {
    const k = inflightKey(key, page);
    let resolve!: () => void;
    const entry: InflightPage = { done: new Promise<void>((r) => (resolve = r)) };
    this.inflight.set(k, entry);
    let settled = false;
    return {
      settle: () => {
        if (settled) return;
        settled = true;
        if (this.inflight.get(k) === entry) this.inflight.delete(k);
        resolve();
      },
    };
  }

  /** Puts page `page`'s buffer in the sink's slot, counting the bytes of the range it holds as hits of `level`. */
  private takePage(sink: PageSink, page: number, data: Buffer, level: LevelCounters | undefined): void {
    const i = page - sink.first;
    if (i < 0 || i >= sink.slots.length) return;
    sink.slots[i] = data;
    if (!level) return;
    const pageStart = page * this.pages.pageSize;
    level.hitBytes += Math.max(0, Math.min(sink.end, pageStart + data.length) - Math.max(sink.start, pageStart));
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

  private planReadahead(fid: Fid, layout: Raid0Layout, offset: number, length: number, got: number, held: HeldLocks, handle: ReadaheadHandle, missed: boolean): void {
    const fr = this.readaheadOf(handle);
    const before = { hits: fr.stats.hits, misses: fr.stats.misses };
    const miss = missed ? { fileSize: got < length ? offset + got : this.lockedFileSize(layout, held) } : undefined;
    const plans = fr.onRead(offset, length, got < length ? offset + got : Number.MAX_SAFE_INTEGER, miss);
    this.ra.hits += fr.stats.hits - before.hits;
    this.ra.misses += fr.stats.misses - before.misses;
    this.planWhole(fid, layout, offset, got, length, held, handle, plans);
    for (const p of plans) {
      const take = this.budget.takeUpTo(p.length);
      if (take <= 0) break;
      if (p.kind === 'strided') this.ra.stridedWindows++;
      this.ra.readaheadBytes += take;
      void handle.prefetch(p.start, take).finally(() => this.budget.give(take));
    }
  }

  /**
   * Small files (max_read_ahead_whole_mb) are read whole on their second read: the second
   * read of this open, or the first read of an open after an earlier access (WholeFileTracker,
   * which counts one access per open). Only an open's first two reads are looked at, so the
   * size is worked out twice per open at most, and the rest of the file is planned once.
   */
  private planWhole(fid: Fid, layout: Raid0Layout, offset: number, got: number, length: number, held: HeldLocks, handle: ReadaheadHandle, plans: ReadaheadPlan[]): void {
    const st = this.opens.get(handle) ?? { reads: 0, wholePlanned: false };
    if (st.reads >= 2 || st.wholePlanned) return;
    st.reads++;
    this.opens.set(handle, st);
    // a short read is FileReadahead's to plan: it knows the size then
    if (got < length) return;
    const size = this.wholeFileSize(layout, held, handle.sizeHint, offset + got);
    if (size === undefined) return;
    const second = st.reads === 1 ? this.whole.onRead(fidKey(fid), size) : size <= this.tunables.maxReadAheadWholeBytes;
    if (!second || this.tunables.maxReadAheadPerFileBytes <= 0) return;
    st.wholePlanned = true;
    // the rest of it at once (a read that took it all needs nothing)
    const rest = [
      { start: 0, length: offset },
      { start: offset + got, length: size - offset - got },
    ].filter((r) => r.length > 0);
    if (rest.length > 0) this.ra.wholeFileReads++;
    for (const r of rest) plans.push({ ...r, kind: 'whole' });
  }

  /**
   * The file's size for the whole-file decision, without asking the OSTs: from the locks
   * when they cover every object whole, else the size at open when the read did not pass it
   * (a read past it means the hint is stale, and a small-file guess could be far off).
   */
  private wholeFileSize(layout: Raid0Layout, held: HeldLocks, sizeHint: number, readEnd: number): number | undefined {
    return this.lockedFileSize(layout, held) ?? (sizeHint >= readEnd ? sizeHint : undefined);
  }

  /** The file's size from the locks held over every object whole (and this client's dirty bytes), if they say. */
  private lockedFileSize(layout: Raid0Layout, held: HeldLocks): number | undefined {
    const n = layout.objects.length;
    let size = 0;
    for (let i = 0; i < n; i++) {
      const o = layout.objects[i]!;
      const s = this.lockedObjectSize(o.ostIdx, o.seq, o.oid, held);
      if (s === undefined) return undefined;
      const obj = Math.max(s, this.writeback.dirty.endOf(objectKey({ ost: o.ostIdx, seq: o.seq, oid: o.oid })));
      size = Math.max(size, fileSizeFromObject(obj, i, layout.stripeSize, n));
    }
    return size;
  }

  /** Reads a range into the cache levels only (readahead, warmup). */
  async prefetch(layout: Raid0Layout, offset: number, length: number, held: HeldLocks): Promise<void> {
    if (length <= 0 || layout.objects.length === 0) return;
    const extents = mapExtent(offset, length, layout.stripeSize, layout.objects.length);
    await Promise.all(
      extents.map((ext) => {
        const o = layout.objects[ext.stripe]!;
        return this.prefetchObject({ ost: o.ostIdx, seq: o.seq, oid: o.oid }, lockOn(held, o.seq, o.oid), ext.objStart, ext.objEnd);
      }),
    );
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

/**
 * The sink's object bytes [start, end) as page buffers and subarrays of them, zeros past
 * `objEnd` (and, defensively, where a page is missing or short, which the fetch never leaves).
 */
function pagePieces(sink: PageSink, P: number, objEnd: number | undefined): Buffer[] {
  const { start, end, first, slots } = sink;
  const stop = objEnd === undefined ? end : Math.max(start, Math.min(end, objEnd));
  const pieces: Buffer[] = [];
  let at = start;
  for (let i = 0; i < slots.length && at < stop; i++) {
    const pageStart = (first + i) * P;
    const e = Math.min(stop, pageStart + P);
    const data = slots[i];
    const have = data === undefined ? at : Math.min(e, pageStart + data.length);
    if (have > at) {
      const from = at - pageStart;
      pieces.push(from === 0 && have - pageStart === data!.length ? data! : data!.subarray(from, have - pageStart));
    }
    if (e > have) pieces.push(Buffer.alloc(e - Math.max(at, have)));
    at = e;
  }
  if (end > at) pieces.push(Buffer.alloc(end - at));
  return pieces;
}

/** Bytes [from, to) of the concatenation of `pieces`, as whole pieces and subarrays. */
function slicePieces(pieces: Buffer[], from: number, to: number): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  for (const p of pieces) {
    if (at >= to) break;
    const next = at + p.length;
    if (next > from) {
      const s = Math.max(from, at) - at;
      const e = Math.min(to, next) - at;
      out.push(s === 0 && e === p.length ? p : p.subarray(s, e));
    }
    at = next;
  }
  return out;
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
