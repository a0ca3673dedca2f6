/**
 * Data versions of OST objects, for client caches keyed by (object, version).
 *
 * A version is `${epoch}.${n}`: the epoch is random per OST start, so nothing seen
 * before a restart is ever reported again (no persistence needed). Within one start,
 * every data or size change takes a new n from a counter; the n of the last
 * modification is remembered for a bounded number of objects. Objects not remembered
 * report the floor, the highest n ever evicted, so an object whose entry was evicted
 * still never goes back to a version a reader saw while it held older data: any later
 * modification takes ++counter, which is above the floor.
 *
 * Readers take the version BEFORE reading data or attributes and writers bump it AFTER
 * the change landed: a version observed once a change completed is always a new one.
 */
import { randomBytes } from 'node:crypto';
import { err } from '../common/errno.js';

/** Objects whose last modification is remembered; about 100 bytes each. */
export const DEFAULT_MAX_VERSIONED_OBJECTS = 1_000_000;

export class ObjectVersions {
  readonly epoch: string;
  private readonly maxEntries: number;
  /** objectKey -> n of its last modification, oldest modification first (Map keeps insertion order) */
  private readonly last = new Map<string, number>();
  private counter = 0;
  private floor = 0;

  constructor(epoch: string = randomBytes(4).toString('hex'), maxEntries = DEFAULT_MAX_VERSIONED_OBJECTS) {
    if (!/^[0-9A-Za-z_-]{1,32}$/.test(epoch)) throw err('EINVAL', `object version epoch must be 1-32 of [0-9A-Za-z_-], not '${epoch}'`, 'BAD_EPOCH');
    if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) throw err('EINVAL', `object version table size must be a positive integer, not ${maxEntries}`, 'BAD_REQUEST');
    this.epoch = epoch;
    this.maxEntries = maxEntries;
  }

  /** The object's current data version. */
  of(seq: number, oid: number): string {
    return this.format(this.last.get(key(seq, oid)) ?? this.floor);
  }

  /** Records a change of the object's data or size; returns its new version. */
  bump(seq: number, oid: number): string {
    const k = key(seq, oid);
    const n = ++this.counter;
    this.last.delete(k); // re-inserted last: eviction takes the least recently modified
    this.last.set(k, n);
    if (this.last.size > this.maxEntries) {
      const [oldest, v] = this.last.entries().next().value!;
      this.last.delete(oldest);
      if (v > this.floor) this.floor = v;
    }
    return this.format(n);
  }

  /** The object is gone (destroyed): its entry need not be kept. Recreating it must bump. */
  forget(seq: number, oid: number): void {
    this.last.delete(key(seq, oid));
  }

  /** objects remembered individually (the rest report the floor) */
  get size(): number {
    return this.last.size;
  }

  private format(n: number): string {
    return `${this.epoch}.${n}`;
  }
}

function key(seq: number, oid: number): string {
  return `${seq}:${oid}`;
}
