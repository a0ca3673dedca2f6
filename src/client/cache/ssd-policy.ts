/**
 * Segmented LRU by bytes (the "SLRU" of 2Q/ARC lineage): a block enters a probation
 * segment; a second access promotes it to a protected segment capped at a share of
 * the capacity. Eviction takes probation's oldest first, so a one-off scan (blocks
 * read once) recycles probation and cannot push out blocks read repeatedly.
 * protectedShare 0 is plain LRU.
 */
export interface Sized {
  size: number;
}

export class SegmentedLru<V extends Sized> {
  /** Maps iterate in insertion order: first is least recently used */
  private readonly probation = new Map<string, V>();
  private readonly protectedSeg = new Map<string, V>();
  private protectedBytes = 0;
  private total = 0;

  constructor(
    private readonly capacityBytes: number,
    private readonly protectedShare = 0.8,
  ) {}

  get bytes(): number {
    return this.total;
  }

  get count(): number {
    return this.probation.size + this.protectedSeg.size;
  }

  get(key: string): V | undefined {
    return this.probation.get(key) ?? this.protectedSeg.get(key);
  }

  has(key: string): boolean {
    return this.probation.has(key) || this.protectedSeg.has(key);
  }

  isProtected(key: string): boolean {
    return this.protectedSeg.has(key);
  }

  /** Inserts as most recently used (of probation, or of protected when restoring a saved order). */
  add(key: string, value: V, protect = false): void {
    this.remove(key);
    if (protect && this.protectedShare > 0) {
      this.protectedSeg.set(key, value);
      this.protectedBytes += value.size;
      this.demoteOverflow();
    } else {
      this.probation.set(key, value);
    }
    this.total += value.size;
  }

  /** Records an access; returns the value, or undefined when absent. */
  touch(key: string): V | undefined {
    const prot = this.protectedSeg.get(key);
    if (prot) {
      this.protectedSeg.delete(key);
      this.protectedSeg.set(key, prot);
      return prot;
    }
    const prob = this.probation.get(key);
    if (!prob) return undefined;
    this.probation.delete(key);
    if (this.protectedShare > 0) {
      this.protectedSeg.set(key, prob);
      this.protectedBytes += prob.size;
      this.demoteOverflow();
    } else {
      this.probation.set(key, prob);
    }
    return prob;
  }

  remove(key: string): V | undefined {
    let v = this.probation.get(key);
    if (v) {
      this.probation.delete(key);
    } else {
      v = this.protectedSeg.get(key);
      if (!v) return undefined;
      this.protectedSeg.delete(key);
      this.protectedBytes -= v.size;
    }
    this.total -= v.size;
    return v;
  }

  /** Entries in eviction order: probation oldest→newest, then protected oldest→newest. */
  *evictionOrder(): IterableIterator<[string, V]> {
    yield* this.probation.entries();
    yield* this.protectedSeg.entries();
  }

  /** Entries from least to most valuable with their segment, for persisting the order. */
  *entriesWithSegment(): IterableIterator<[string, V, boolean]> {
    for (const [k, v] of this.probation) yield [k, v, false];
    for (const [k, v] of this.protectedSeg) yield [k, v, true];
  }

  private demoteOverflow(): void {
    const cap = this.capacityBytes * this.protectedShare;
    // keep at least one protected entry so a single huge block still counts as hot
    while (this.protectedBytes > cap && this.protectedSeg.size > 1) {
      const [k, v] = this.protectedSeg.entries().next().value as [string, V];
      this.protectedSeg.delete(k);
      this.protectedBytes -= v.size;
      this.probation.set(k, v);
    }
  }
}
