/**
 * Layered reads for stores that buffer writes: a transaction's own writes
 * over an overlay of committed-but-not-yet-durable transactions over the
 * backend's durable state. A `null` value is a deletion that hides the
 * layers below it.
 */
import { compareKeys } from './key-order.js';

/** Encoded values by key; null = deleted. */
export type WriteSet = Map<string, Buffer | null>;

interface OverlayEntry {
  value: Buffer | null;
  /** commit generation of the last transaction that wrote the key */
  gen: number;
}

/**
 * Writes of transactions that have finished logically but whose backend
 * commit has not landed yet. Later transactions read through it, so they
 * can run while earlier ones are still being made durable (group commit).
 */
export class Overlay {
  private readonly entries = new Map<string, OverlayEntry>();

  get size(): number {
    return this.entries.size;
  }

  /** undefined: not in the overlay (read the backend); null: deleted */
  get(key: string): Buffer | null | undefined {
    return this.entries.get(key)?.value;
  }

  add(writes: WriteSet, gen: number): void {
    for (const [key, value] of writes) this.entries.set(key, { value, gen });
  }

  /** The backend now shows every generation <= `gen`: forget those entries unless rewritten since. */
  retire(writes: WriteSet, gen: number): void {
    for (const key of writes.keys()) {
      const e = this.entries.get(key);
      if (e && e.gen <= gen) this.entries.delete(key);
    }
  }

  clear(): void {
    this.entries.clear();
  }

  *inRange(prefix: string, after: string | undefined): Iterable<[string, Buffer | null]> {
    for (const [key, e] of this.entries) if (inScanRange(key, prefix, after)) yield [key, e.value];
  }
}

export function inScanRange(key: string, prefix: string, after: string | undefined): boolean {
  return key.startsWith(prefix) && (after === undefined || compareKeys(key, after) > 0);
}

/** Sorted union of upper layers already cut to one scan range; later layers win. */
export function upperLayers(layers: Iterable<Iterable<[string, Buffer | null]>>): Array<[string, Buffer | null]> {
  const merged = new Map<string, Buffer | null>();
  for (const layer of layers) for (const [k, v] of layer) merged.set(k, v);
  return [...merged].sort((a, b) => compareKeys(a[0], b[0]));
}

/**
 * Merges the backend's ascending entries with the sorted upper layers, upper
 * layers winning, deletions dropped, stopping at `limit` live entries.
 * `base` is consumed lazily so deletions above cost no extra round trips.
 */
export function mergeScan(
  base: Iterable<[string, Buffer]>,
  upper: Array<[string, Buffer | null]>,
  limit: number,
): Array<[string, Buffer]> {
  const out: Array<[string, Buffer]> = [];
  if (limit <= 0) return out;
  const it = base[Symbol.iterator]();
  let b = it.next();
  let u = 0;
  while (out.length < limit) {
    const bk = b.done ? undefined : b.value[0];
    const up = u < upper.length ? upper[u]! : undefined;
    if (bk === undefined && up === undefined) break;
    const c = bk === undefined ? 1 : up === undefined ? -1 : compareKeys(bk, up[0]);
    if (c < 0) {
      out.push(b.value as [string, Buffer]);
      b = it.next();
    } else {
      if (c === 0) b = it.next();
      if (up![1] !== null) out.push([up![0], up![1]]);
      u++;
    }
  }
  it.return?.();
  return out;
}
