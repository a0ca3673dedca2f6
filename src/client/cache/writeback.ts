/**
 * The client's write-back cache (reference §5 "grants", "dirty pages"): a write under a PW
 * lock is copied into the dirty store and answered at once when the OST has granted this
 * client space for it, so a cached write can never fail later for lack of space. Dirty
 * bytes go to the OSTs in RPC-sized writes: as soon as an RPC's worth has gathered, when
 * they have waited `dirtyExpireMs`, when an OST's dirty bytes reach `max_dirty_mb`, on
 * fsync, and before a lock covering them is given back. A failed flush is remembered for
 * the file and reported by its next fsync or close. Without grant (or under pressure that
 * does not clear), a write goes through to the OST as before.
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from '../../common/log.js';
import { fidKey, type Fid } from '../../common/fid.js';
import { err, toStriaError, type StriaError } from '../../common/errno.js';
import { now, type Timestamp } from '../../common/time.js';
import type { OstClient } from '../osc.js';
import { MAX_WRITE_SEGMENTS } from '../../oss/limits.js';
import { DirtyStore, objectKey, type DirtyExtent, type ObjectRef } from './dirty-store.js';

const PAGE = 4096;
/** how often the flusher looks for old dirty bytes */
const FLUSH_TICK_MS = 500;
/** the longest a writer waits for dirty bytes to drain before writing through */
const THROTTLE_WAIT_MS = 30_000;
/** overlapping in-flight extents are waited for, then what was written meanwhile goes: bounded rounds */
const MAX_FLUSH_ROUNDS = 64;

export interface WritebackOptions {
  /** dirty bytes allowed per OST (osc.*.max_dirty_mb) */
  maxDirtyBytesPerOst: () => number;
  /** dirty bytes older than this are flushed by the periodic flusher */
  dirtyExpireMs: number;
  /** an extent grows to at most this (one RPC's worth) */
  rpcBytes: number;
}

export interface WritebackStats {
  cachedWrites: number;
  cachedBytes: number;
  writeThroughs: number;
  noGrant: number;
  throttled: number;
  flushes: number;
  flushedBytes: number;
  flushErrors: number;
}

interface ObjectState {
  fid: Fid;
  ost: number;
  /** when this client last wrote bytes of the object that are not on the OST yet: stat shows it as mtime */
  lastWrite: Timestamp;
  /** grant taken locally for this object's dirty bytes, not yet reported to the OST */
  grant: number;
  /** the OSC's grant generation that grant belongs to (a new export voids it) */
  grantGen: number;
  /** flush RPCs running for this object */
  running: Set<Promise<void>>;
}

export class WriteBack {
  readonly dirty: DirtyStore;
  readonly stats: WritebackStats = { cachedWrites: 0, cachedBytes: 0, writeThroughs: 0, noGrant: 0, throttled: 0, flushes: 0, flushedBytes: 0, flushErrors: 0 };
  private readonly objects = new Map<string, ObjectState>();
  /** the first failed flush of each file since it was last reported */
  private readonly errors = new Map<string, StriaError>();
  /** writers waiting for dirty bytes to drain, woken after every flush */
  private readonly drained = new Set<() => void>();
  private readonly timer: NodeJS.Timeout;
  private closed = false;

  constructor(
    private readonly osc: (ost: number) => OstClient,
    private readonly opts: WritebackOptions,
    private readonly log: Logger,
    /** told after each flush RPC of an object lands (or fails): cached pages read before it may be stale */
    private readonly onFlushed: (key: string, ver?: string) => void = () => undefined,
  ) {
    this.dirty = new DirtyStore(opts.rpcBytes);
    this.timer = setInterval(() => this.flushExpired(), FLUSH_TICK_MS);
    this.timer.unref();
  }

  /**
   * Caches a write of object bytes, or returns false when it must go through to the OST
   * (no grant, or the OST's dirty bytes would not drain). The caller holds a PW lock
   * covering the bytes.
   */
  async cacheWrite(fid: Fid, ref: ObjectRef, off: number, data: Buffer): Promise<boolean> {
    if (this.closed || data.length === 0) return false;
    const key = objectKey(ref);
    if (!(await this.roomOn(ref.ost, data.length))) return false;
    const osc = this.osc(ref.ost);
    const want = roundUp(data.length);
    if (!osc.tryConsumeGrant(want)) {
      this.stats.noGrant++;
      return false;
    }
    let st = this.objects.get(key);
    if (!st) {
      st = { fid, ost: ref.ost, lastWrite: now(), grant: 0, grantGen: osc.grantGeneration, running: new Set() };
      this.objects.set(key, st);
    }
    if (st.grantGen !== osc.grantGeneration) {
      st.grant = 0;
      st.grantGen = osc.grantGeneration;
    }
    st.fid = fid;
    st.lastWrite = now();
    const added = this.dirty.write(ref, off, data, performance.now());
    // overwritten dirty bytes needed no new space
    const keep = roundUp(added);
    if (want > keep) osc.returnGrant(want - keep, st.grantGen);
    st.grant += keep;
    this.stats.cachedWrites++;
    this.stats.cachedBytes += data.length;
    const full = this.dirty.takeFull(key);
    if (full.length > 0) void this.send(key, full);
    return true;
  }

  /** Waits until the OST's dirty bytes leave room for `bytes`; false if they did not in time. */
  private async roomOn(ost: number, bytes: number): Promise<boolean> {
    const max = this.opts.maxDirtyBytesPerOst();
    if (max <= 0) return false;
    if (this.dirty.bytesOnOst(ost) + bytes <= max) return true;
    this.stats.throttled++;
    const deadline = performance.now() + THROTTLE_WAIT_MS;
    while (this.dirty.bytesOnOst(ost) + bytes > max) {
      if (this.closed || performance.now() > deadline) return false;
      this.flushOst(ost);
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, 1000);
        function done() {
          clearTimeout(t);
          resolve();
        }
        this.drained.add(done);
      });
    }
    return true;
  }

  /** Starts flushing every dirty byte of one OST that is not already going (memory pressure). */
  private flushOst(ost: number): void {
    for (const od of this.dirty.all()) {
      if (od.ref.ost !== ost) continue;
      const ext = this.takeSendable(od.key, Infinity);
      if (ext.length > 0) void this.send(od.key, ext);
    }
  }

  /** Dirty extents of the object that overlap nothing in flight (so writes reach the OST in order). */
  private takeSendable(key: string, olderThan: number): DirtyExtent[] {
    const od = this.dirty.get(key);
    if (!od) return [];
    if (od.inflight.size === 0) return this.dirty.take(key, olderThan);
    const busy = new IntervalSet([...od.inflight]);
    const free = od.extents.filter((e) => e.since < olderThan && !busy.overlaps(e));
    if (free.length === 0) return [];
    const chosen = new Set(free);
    od.extents = od.extents.filter((e) => !chosen.has(e));
    for (const e of free) od.inflight.add(e);
    return free;
  }

  private send(key: string, extents: DirtyExtent[]): Promise<void> {
    const st = this.objects.get(key);
    const od = this.dirty.get(key);
    if (!st || !od) return Promise.resolve();
    const osc = this.osc(od.ref.ost);
    const work = Promise.all(
      rpcBatches(extents, osc.maxRpcBytes, MAX_WRITE_SEGMENTS).map(async (batch) => {
        const bytes = batch.reduce((n, e) => n + e.len, 0);
        const grantUsed = Math.min(st.grant, batch.reduce((n, e) => n + roundUp(e.len), 0));
        const gen = st.grantGen;
        let ver: string | undefined;
        st.grant -= grantUsed;
        try {
          const segments = batch.map((e) => ({ offset: e.off, data: e.buf.subarray(0, e.len) }));
          // the time of the object's last cached write: what stat showed before the flush
          const res = await osc.writeSegments(od.ref.seq, od.ref.oid, segments, { grantUsed, grantGeneration: gen, mtime: st.lastWrite });
          ver = res.ver;
          this.stats.flushes++;
          this.stats.flushedBytes += bytes;
        } catch (failure) {
          // the OST did not take the bytes, so it did not count the grant as used either
          osc.returnGrant(grantUsed, gen);
          this.stats.flushErrors++;
          const se = toStriaError(failure);
          const fk = fidKey(st.fid);
          if (!this.errors.has(fk)) this.errors.set(fk, se);
          this.log.warn({ fid: fk, object: key, offset: batch[0]!.off, ranges: batch.length, bytes, err: se.message }, 'write-back flush failed: the data is lost, the next fsync or close reports it');
        } finally {
          for (const e of batch) this.dirty.done(key, e);
          this.onFlushed(key, ver);
        }
      }),
    ).then(() => undefined);
    st.running.add(work);
    void work.finally(() => {
      st.running.delete(work);
      this.settle(key);
      for (const wake of [...this.drained]) {
        this.drained.delete(wake);
        wake();
      }
    });
    return work;
  }

  /** An object with nothing dirty left gives back the grant it took and is forgotten. */
  private settle(key: string): void {
    const st = this.objects.get(key);
    if (!st || st.running.size > 0 || this.dirty.get(key)) return;
    if (st.grant > 0) {
      this.osc(st.ost).returnGrant(st.grant, st.grantGen);
      st.grant = 0;
    }
    this.objects.delete(key);
  }

  /** Sends every dirty byte of the object and waits until none is left in flight. */
  async flushObject(ref: ObjectRef): Promise<void> {
    const key = objectKey(ref);
    for (let round = 0; round < MAX_FLUSH_ROUNDS; round++) {
      const st = this.objects.get(key);
      const ext = this.takeSendable(key, Infinity);
      if (ext.length > 0) void this.send(key, ext);
      const running = st ? [...st.running] : [];
      if (running.length === 0) {
        if (!this.dirty.get(key)) return;
        continue;
      }
      await Promise.all(running);
    }
    throw toStriaError(new Error(`dirty data of object ${key} did not drain in ${MAX_FLUSH_ROUNDS} rounds`));
  }

  /** Flushes the given objects (a file's stripes) side by side. */
  async flushObjects(refs: ObjectRef[]): Promise<void> {
    // stat calls this for every file: objects with nothing dirty or running cost nothing
    const busy = refs.filter((r) => this.objects.has(objectKey(r)) || this.dirty.get(objectKey(r)) !== undefined);
    if (busy.length > 0) await Promise.all(busy.map((r) => this.flushObject(r)));
  }

  hasDirty(ref: ObjectRef): boolean {
    return this.dirty.get(objectKey(ref)) !== undefined;
  }

  /** When this client last wrote cached bytes of the object still not on the OST, if it has any. */
  pendingMtime(ref: ObjectRef): Timestamp | undefined {
    const key = objectKey(ref);
    return this.dirty.get(key) ? this.objects.get(key)?.lastWrite : undefined;
  }

  /**
   * The lock covering the object's dirty bytes was lost without a flush (eviction): they
   * cannot be written any more, and the file's next fsync or close says so (EIO).
   */
  discard(ref: ObjectRef): void {
    const key = objectKey(ref);
    const dropped = this.dirty.truncate(key, 0);
    const st = this.objects.get(key);
    if (dropped > 0 && st) {
      const fk = fidKey(st.fid);
      if (!this.errors.has(fk)) this.errors.set(fk, err('EIO', `${dropped} bytes of cached writes were lost: this client was evicted`, 'EVICTED_DIRTY'));
      this.log.warn({ fid: fk, object: key, bytes: dropped }, 'cached writes dropped: the client was evicted');
    }
    this.settle(key);
  }

  /** Throws (once) the error of a failed flush of the file since the last report. */
  takeError(fid: Fid): void {
    const fk = fidKey(fid);
    const e = this.errors.get(fk);
    if (!e) return;
    this.errors.delete(fk);
    throw e;
  }

  private flushExpired(): void {
    const cutoff = performance.now() - this.opts.dirtyExpireMs;
    for (const od of this.dirty.all()) {
      const ext = this.takeSendable(od.key, cutoff);
      if (ext.length > 0) void this.send(od.key, ext);
    }
  }

  /** Flushes everything and stops the flusher (unmount). */
  async close(): Promise<void> {
    clearInterval(this.timer);
    const refs = [...this.dirty.all()].map((od) => od.ref);
    await Promise.all(refs.map((r) => this.flushObject(r).catch(() => undefined)));
    this.closed = true;
    for (const wake of [...this.drained]) wake();
  }
}

function roundUp(n: number): number {
  return Math.ceil(n / PAGE) * PAGE;
}

/**
 * Extents (apart, as a dirty object's are) grouped into write RPCs in offset order: at most
 * `maxBytes` and `maxRanges` ranges each; an extent of maxBytes or more goes alone (the OSC
 * splits it).
 */
export function rpcBatches(extents: readonly DirtyExtent[], maxBytes: number, maxRanges: number): DirtyExtent[][] {
  const sorted = [...extents].sort((a, b) => a.off - b.off);
  const out: DirtyExtent[][] = [];
  let cur: DirtyExtent[] = [];
  let bytes = 0;
  for (const e of sorted) {
    if (cur.length > 0 && (bytes + e.len > maxBytes || cur.length >= maxRanges)) {
      out.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push(e);
    bytes += e.len;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

/** Extents that may overlap one another, asked whether a range meets any (a binary search). */
class IntervalSet {
  private readonly sorted: DirtyExtent[];
  /** maxEnd[i]: the furthest end among sorted[0..i] */
  private readonly maxEnd: number[];

  constructor(extents: DirtyExtent[]) {
    this.sorted = extents.sort((a, b) => a.off - b.off);
    let m = 0;
    this.maxEnd = this.sorted.map((e) => (m = Math.max(m, e.off + e.len)));
  }

  overlaps(e: { off: number; len: number }): boolean {
    // how many start before e ends
    let lo = 0;
    let hi = this.sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.sorted[mid]!.off < e.off + e.len) lo = mid + 1;
      else hi = mid;
    }
    return lo > 0 && this.maxEnd[lo - 1]! > e.off;
  }
}
