/**
 * Reusable buffers for large bulk payloads. A server that allocated a fresh ArrayBuffer per
 * 1 MiB read reply kept V8 busy with major collections (their backing stores count as
 * external memory, and the many in flight at once survive the young generation); buffers
 * taken from here and given back once sent are allocated once.
 *
 * Ownership is explicit: give() a buffer only when nothing else refers to it any more.
 * A buffer that is never given back is simply garbage collected.
 */

/** Where a bulk buffer comes from; the default allocates and give() does nothing. */
export interface BulkSource {
  /** A buffer of exactly `n` bytes, contents undefined. */
  take(n: number): Buffer;
  /** Takes back a buffer take() returned, when nothing refers to it any more. */
  give(buf: Buffer): void;
}

export const PLAIN_BULKS: BulkSource = {
  take: (n) => Buffer.allocUnsafe(n),
  give: () => undefined,
};

export interface BulkPoolOptions {
  /** smaller requests are plain allocations (default 128 KiB) */
  minBytes?: number;
  /** larger requests are plain allocations (default 4 MiB) */
  maxBytes?: number;
  /** idle buffers kept, in bytes over all sizes (default 64 MiB) */
  maxIdleBytes?: number;
}

export class BulkPool implements BulkSource {
  private readonly minBytes: number;
  private readonly maxBytes: number;
  private readonly maxIdleBytes: number;
  /** idle buffers by size class (a power of two) */
  private readonly idle = new Map<number, Buffer[]>();
  private idleBytes = 0;
  /** backing store of every buffer lent out -> the whole buffer it was cut from */
  private readonly lent = new WeakMap<ArrayBufferLike, Buffer>();
  readonly stats = { taken: 0, reused: 0, given: 0 };

  constructor(opts: BulkPoolOptions = {}) {
    this.minBytes = opts.minBytes ?? 128 * 1024;
    this.maxBytes = opts.maxBytes ?? 4 * 1024 * 1024;
    this.maxIdleBytes = opts.maxIdleBytes ?? 64 * 1024 * 1024;
  }

  /** bytes held by idle buffers */
  get idleSize(): number {
    return this.idleBytes;
  }

  take(n: number): Buffer {
    if (!Number.isSafeInteger(n) || n < this.minBytes || n > this.maxBytes) return Buffer.allocUnsafe(Math.max(0, n));
    const size = sizeClass(n);
    const free = this.idle.get(size);
    let whole = free?.pop();
    if (whole) {
      this.idleBytes -= size;
      this.stats.reused++;
    } else {
      // Its own ArrayBuffer (allocUnsafe only shares its small pool below 4 KiB).
      whole = Buffer.allocUnsafe(size);
    }
    this.stats.taken++;
    this.lent.set(whole.buffer, whole);
    return whole.subarray(0, n);
  }

  give(buf: Buffer): void {
    const whole = this.lent.get(buf.buffer);
    if (whole === undefined) return;
    this.lent.delete(buf.buffer);
    this.stats.given++;
    if (this.idleBytes + whole.length > this.maxIdleBytes) return;
    let free = this.idle.get(whole.length);
    if (!free) this.idle.set(whole.length, (free = []));
    free.push(whole);
    this.idleBytes += whole.length;
  }

  /** Whether `buf` is lent out by this pool (and not given back yet). */
  owns(buf: Buffer): boolean {
    return this.lent.has(buf.buffer);
  }
}

function sizeClass(n: number): number {
  let size = 1;
  while (size < n) size *= 2;
  return size;
}
