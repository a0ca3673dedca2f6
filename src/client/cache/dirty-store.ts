/**
 * Dirty (written, not yet flushed) object bytes of the write-back cache, as byte extents
 * per object: sequential writes grow one extent in place, so a run of 128 KiB writes
 * becomes one RPC-sized buffer without a copy per write. Extents being flushed stay
 * visible to reads ("in flight") until their RPC completes, under the newer dirty bytes.
 *
 * Extent buffers come from a pool and go back to it when their bytes are on the OST (or
 * dropped): a stream of 4 MiB extents allocated afresh kept V8's collector busy (their
 * backing stores are external memory that survives the young generation). An extent's
 * buffer is referenced only from here and, while its RPC runs, by that RPC.
 */
import { BulkPool, type BulkSource } from '../../lnet/bulk-pool.js';

export interface ObjectRef {
  ost: number;
  seq: number;
  oid: number;
}

export function objectKey(o: ObjectRef): string {
  return `${o.ost}:${o.seq}:${o.oid}`;
}

/** Object bytes [off, off + len) held in buf[0, len); buf may have room to grow. */
export interface DirtyExtent {
  off: number;
  len: number;
  buf: Buffer;
  /** when the oldest byte of this extent was written (performance.now()) */
  since: number;
}

export interface ObjectDirty {
  readonly ref: ObjectRef;
  readonly key: string;
  /** sorted by offset, non-overlapping */
  extents: DirtyExtent[];
  inflight: Set<DirtyExtent>;
  bytes: number;
}

export class DirtyStore {
  private readonly objects = new Map<string, ObjectDirty>();
  private totalBytes = 0;
  private readonly perOst = new Map<number, number>();

  /** `maxExtentBytes`: an extent grows no larger (one RPC's worth); a new one starts after it */
  constructor(
    private readonly maxExtentBytes: number,
    private readonly bulks: BulkSource = new BulkPool({ minBytes: 256 * 1024, maxBytes: Math.max(256 * 1024, maxExtentBytes), maxIdleBytes: 4 * maxExtentBytes }),
  ) {}

  get bytes(): number {
    return this.totalBytes;
  }

  bytesOnOst(ost: number): number {
    return this.perOst.get(ost) ?? 0;
  }

  get(key: string): ObjectDirty | undefined {
    return this.objects.get(key);
  }

  all(): IterableIterator<ObjectDirty> {
    return this.objects.values();
  }

  /** Copies `data` into the dirty bytes of object `ref` at `off`; returns how many new dirty bytes it added (overwrites add none). */
  write(ref: ObjectRef, off: number, data: Buffer, nowMs: number): number {
    if (data.length === 0) return 0;
    const key = objectKey(ref);
    let od = this.objects.get(key);
    if (!od) {
      od = { ref, key, extents: [], inflight: new Set(), bytes: 0 };
      this.objects.set(key, od);
    }
    const before = od.bytes;
    const end = off + data.length;
    const ex = od.extents;
    const last = ex[ex.length - 1];
    if (last && last.off + last.len === off && last.len + data.length <= this.maxExtentBytes) {
      appendTo(last, data, this.maxExtentBytes, this.bulks);
      od.bytes += data.length;
    } else if (!last || last.off + last.len < off) {
      ex.push(newExtent(off, data, nowMs, this.maxExtentBytes, this.bulks));
      od.bytes += data.length;
    } else {
      this.merge(od, off, end, data, nowMs);
    }
    const added = od.bytes - before;
    this.account(ref.ost, added);
    return added;
  }

  /** The general case: the write overlaps or falls between existing extents. */
  private merge(od: ObjectDirty, off: number, end: number, data: Buffer, nowMs: number): void {
    const ex = od.extents;
    // extents touching [off, end] (adjacent ones too, so neighbours join); they are sorted
    // and apart, so their ends increase too: the first one ending at or after off is found
    // by bisection (a random writer keeps thousands of extents)
    let i = 0;
    let hi = ex.length;
    while (i < hi) {
      const mid = (i + hi) >> 1;
      if (ex[mid]!.off + ex[mid]!.len < off) i = mid + 1;
      else hi = mid;
    }
    let j = i;
    while (j < ex.length && ex[j]!.off <= end) j++;
    const touching = ex.slice(i, j);
    const start = Math.min(off, ...touching.map((e) => e.off));
    const stop = Math.max(end, ...touching.map((e) => e.off + e.len));
    if (stop - start > this.maxExtentBytes && touching.every((e) => e.off + e.len <= off || e.off >= end)) {
      // only neighbours, and joining them would exceed an RPC: keep apart
      ex.splice(i, 0, newExtent(off, data, nowMs, this.maxExtentBytes, this.bulks));
      ex.sort((a, b) => a.off - b.off);
      od.bytes += data.length;
      return;
    }
    const merged: DirtyExtent = { off: start, len: stop - start, buf: this.bulks.take(stop - start), since: nowMs };
    let oldBytes = 0;
    for (const e of touching) {
      e.buf.copy(merged.buf, e.off - start, 0, e.len);
      merged.since = Math.min(merged.since, e.since);
      oldBytes += e.len;
      this.bulks.give(e.buf);
    }
    // gaps between old extents that the new data does not cover cannot exist: every
    // touching extent overlaps or abuts [off, end], so [start, stop) is covered
    data.copy(merged.buf, off - start);
    ex.splice(i, j - i, merged);
    od.bytes += merged.len - oldBytes;
  }

  private account(ost: number, delta: number): void {
    if (delta === 0) return;
    this.totalBytes += delta;
    this.perOst.set(ost, (this.perOst.get(ost) ?? 0) + delta);
  }

  /** Lays dirty bytes (in flight first, then newer dirty ones) over `out`, which holds object bytes [off, off + out.length). Returns the highest object offset (exclusive) a dirty byte landed at, or 0. */
  overlay(key: string, off: number, out: Buffer): number {
    const od = this.objects.get(key);
    if (!od) return 0;
    let top = 0;
    const end = off + out.length;
    const lay = (e: DirtyExtent) => {
      const s = Math.max(off, e.off);
      const t = Math.min(end, e.off + e.len);
      if (s >= t) return;
      e.buf.copy(out, s - off, s - e.off, t - e.off);
      top = Math.max(top, t);
    };
    for (const e of od.inflight) lay(e);
    for (const e of od.extents) lay(e);
    return top;
  }

  /** One past the highest dirty or in-flight byte of the object, or 0. */
  endOf(key: string): number {
    const od = this.objects.get(key);
    if (!od) return 0;
    let end = 0;
    for (const e of od.inflight) end = Math.max(end, e.off + e.len);
    const last = od.extents[od.extents.length - 1];
    if (last) end = Math.max(end, last.off + last.len);
    return end;
  }

  /** Moves extents (all, or those written before `olderThan`) to in flight and returns them. */
  take(key: string, olderThan = Infinity): DirtyExtent[] {
    const od = this.objects.get(key);
    if (!od) return [];
    const taken: DirtyExtent[] = [];
    od.extents = od.extents.filter((e) => {
      if (e.since >= olderThan) return true;
      taken.push(e);
      od.inflight.add(e);
      return false;
    });
    return taken;
  }

  /** Takes the full-sized extents only (an RPC's worth): what to send without waiting. */
  takeFull(key: string): DirtyExtent[] {
    const od = this.objects.get(key);
    if (!od) return [];
    const taken: DirtyExtent[] = [];
    od.extents = od.extents.filter((e) => {
      if (e.len < this.maxExtentBytes) return true;
      taken.push(e);
      od.inflight.add(e);
      return false;
    });
    return taken;
  }

  /** An in-flight extent is on the OST (or failed and is dropped): it no longer counts. */
  done(key: string, e: DirtyExtent): void {
    const od = this.objects.get(key);
    if (!od || !od.inflight.delete(e)) return;
    this.bulks.give(e.buf);
    od.bytes -= e.len;
    this.account(od.ref.ost, -e.len);
    if (od.bytes === 0 && od.extents.length === 0 && od.inflight.size === 0) this.objects.delete(key);
  }

  /** Drops dirty (not in flight) bytes at or above object offset `size` (a truncate); returns the bytes dropped. */
  truncate(key: string, size: number): number {
    const od = this.objects.get(key);
    if (!od) return 0;
    let dropped = 0;
    od.extents = od.extents.flatMap((e) => {
      if (e.off >= size) {
        dropped += e.len;
        this.bulks.give(e.buf);
        return [];
      }
      if (e.off + e.len > size) {
        dropped += e.off + e.len - size;
        e.len = size - e.off;
      }
      return [e];
    });
    od.bytes -= dropped;
    this.account(od.ref.ost, -dropped);
    if (od.bytes === 0 && od.inflight.size === 0) this.objects.delete(key);
    return dropped;
  }

  /** Oldest dirty (not in flight) byte's time over all objects, or undefined. */
  oldest(): number | undefined {
    let t: number | undefined;
    for (const od of this.objects.values()) for (const e of od.extents) if (t === undefined || e.since < t) t = e.since;
    return t;
  }
}

function newExtent(off: number, data: Buffer, nowMs: number, max: number, bulks: BulkSource): DirtyExtent {
  // Room to grow for sequential writers, without reserving a whole RPC for a small write.
  const cap = Math.max(data.length, Math.min(max, data.length * 4));
  const buf = bulks.take(cap);
  data.copy(buf);
  return { off, len: data.length, buf, since: nowMs };
}

function appendTo(e: DirtyExtent, data: Buffer, max: number, bulks: BulkSource): void {
  const need = e.len + data.length;
  if (need > e.buf.length) {
    const grown = bulks.take(Math.max(need, Math.min(max, e.buf.length * 2)));
    e.buf.copy(grown, 0, 0, e.len);
    bulks.give(e.buf);
    e.buf = grown;
  }
  data.copy(e.buf, e.len);
  e.len = need;
}
