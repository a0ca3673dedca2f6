/**
 * The client's memory page cache (llite.*.max_cached_mb): pages of OST objects, least
 * recently used evicted first. A page holds object bytes [page*pageSize, (page+1)*pageSize),
 * fewer when the object ends inside it (`eof`). Pages are only valid under an extent lock;
 * the caller drops them with `invalidate` when the lock goes (lustre.md §5 coherency model).
 *
 * Cached buffers are never modified in place: a write or truncate replaces the page with a
 * new buffer, so a page a reader got from `get` stays intact while it is being copied out.
 */
import { LRUCache } from 'lru-cache';
import { err } from '../../common/errno.js';

/**
 * Measured with bench/page-size.ts (node dist/bench/page-size.js; 64 MiB cache, 2-core VM
 * under load, best of 3; MiB/s figures are noisy, the byte counts are exact):
 *   page    random 4K (256 MiB obj)   sequential 128K          64K files       hit path 128K
 *           amplif.  MiB/s            fetch/MiB  MiB/s          fetch/MiB       MiB/s
 *   16 KiB    3.1    1066             64         4223           64              17844
 *   64 KiB   12.1     995             16         6543           16              27857
 *   256 KiB  48.2     376              4         8267           16              21316
 *   1 MiB   192.4     102              1         6907           16              37365
 * Sequential and whole-file reads fetch exactly the bytes read at every size (amplification
 * 1.00); a random 4 KiB miss fetches a whole page, so random traffic grows with the page.
 * 64 KiB: a 128 KiB kernel read is 2 lookups (8 at 16 KiB, with 4x the entries per cached
 * GiB), a 64 KiB file is one page, and a random 4 KiB miss costs one 64 KiB fetch, about the
 * latency of a 4 KiB RPC; 256 KiB and up quadruple random traffic again for no sequential
 * gain, since readahead fetches RPC-sized (up to 4 MiB) runs of pages anyway.
 */
export const DEFAULT_PAGE_SIZE = 64 * 1024;

/** Accounted per page on top of its data: the entry, its key and its index slot. */
export const PAGE_OVERHEAD_BYTES = 128;

export interface CachedPage {
  readonly data: Buffer;
  readonly eof: boolean;
}

interface ObjectPages {
  readonly key: string;
  readonly pages: Set<number>;
  /** pages marked eof; normally at most one, kept as a set so a caller's mistake cannot corrupt the index */
  readonly eofPages: Set<number>;
  dataBytes: number;
}

interface Entry {
  readonly page: CachedPage;
  readonly obj: ObjectPages;
  readonly index: number;
}

function objectKey(ost: number, seq: number, oid: number): string {
  return `${ost}:${seq}:${oid}`;
}

function pageKey(obj: string, page: number): string {
  return `${obj}:${page}`;
}

export class PageCache {
  readonly pageSize: number;
  #maxBytes: number;
  #lru: LRUCache<string, Entry>;
  readonly #objects = new Map<string, ObjectPages>();
  #dataBytes = 0;

  constructor(opts: { maxBytes: number; pageSize: number }) {
    if (!Number.isSafeInteger(opts.pageSize) || opts.pageSize <= 0) {
      throw err('EINVAL', `page cache: invalid page size ${opts.pageSize}`);
    }
    this.pageSize = opts.pageSize;
    this.#maxBytes = PageCache.#checkMax(opts.maxBytes);
    this.#lru = this.#newLru(this.#maxBytes);
  }

  static #checkMax(maxBytes: number): number {
    if (!Number.isFinite(maxBytes) || maxBytes < 0) throw err('EINVAL', `page cache: invalid max bytes ${maxBytes}`);
    return Math.floor(maxBytes);
  }

  #newLru(maxBytes: number): LRUCache<string, Entry> {
    return new LRUCache<string, Entry>({
      // lru-cache needs a positive bound; with 1 byte no page (overhead included) fits, so 0 caches nothing
      maxSize: Math.max(1, maxBytes),
      sizeCalculation: (e) => e.page.data.length + PAGE_OVERHEAD_BYTES,
      dispose: (e, _key, reason) => {
        // 'set' means replaced by put() (or refused as too big), which keeps the index itself
        if (reason !== 'set') this.#unindex(e);
      },
    });
  }

  get maxBytes(): number {
    return this.#maxBytes;
  }

  /** lctl set_param llite.*.max_cached_mb: a smaller bound evicts the least recent pages at once */
  set maxBytes(value: number) {
    const maxBytes = PageCache.#checkMax(value);
    if (maxBytes === this.#maxBytes) return;
    this.#maxBytes = maxBytes;
    const old = this.#lru;
    this.#lru = this.#newLru(maxBytes);
    // least recent first, so the new cache evicts (and unindexes) the oldest when it overflows
    for (const [key, entry] of [...old.rentries()] as Array<[string, Entry]>) {
      this.#unindex(entry);
      this.#store(key, entry);
    }
  }

  get bytes(): number {
    return this.#lru.calculatedSize;
  }

  /** data bytes cached, without the per-page overhead `bytes` also counts */
  get dataBytes(): number {
    return this.#dataBytes;
  }

  get pages(): number {
    return this.#lru.size;
  }

  get(ost: number, seq: number, oid: number, page: number): CachedPage | undefined {
    return this.#lru.get(pageKey(objectKey(ost, seq, oid), page))?.page;
  }

  peek(ost: number, seq: number, oid: number, page: number): CachedPage | undefined {
    return this.#lru.peek(pageKey(objectKey(ost, seq, oid), page))?.page;
  }

  put(ost: number, seq: number, oid: number, page: number, data: Buffer, eof: boolean): void {
    if (!Number.isSafeInteger(page) || page < 0) throw err('EINVAL', `page cache: invalid page index ${page}`);
    if (data.length > this.pageSize) {
      throw err('EINVAL', `page cache: ${data.length} bytes do not fit a ${this.pageSize}-byte page`);
    }
    if (!eof && data.length !== this.pageSize) {
      throw err('EINVAL', `page cache: a page short of ${this.pageSize} bytes (${data.length}) must be the eof page`);
    }
    const okey = objectKey(ost, seq, oid);
    let obj = this.#objects.get(okey);
    if (!obj) {
      obj = { key: okey, pages: new Set(), eofPages: new Set(), dataBytes: 0 };
      this.#objects.set(okey, obj);
    }
    this.#store(pageKey(okey, page), { page: { data, eof }, obj, index: page });
  }

  /** sets the entry and brings the index in line with what lru-cache kept */
  #store(key: string, entry: Entry): void {
    const previous = this.#lru.peek(key);
    this.#lru.set(key, entry);
    if (previous) this.#unindex(previous);
    // an entry bigger than the whole cache is refused (and any previous value deleted)
    if (this.#lru.peek(key) === entry) this.#index(entry);
    else if (entry.obj.pages.size === 0) this.#objects.delete(entry.obj.key);
  }

  #index(e: Entry): void {
    const obj = e.obj;
    if (!this.#objects.has(obj.key)) this.#objects.set(obj.key, obj);
    obj.pages.add(e.index);
    if (e.page.eof) obj.eofPages.add(e.index);
    obj.dataBytes += e.page.data.length;
    this.#dataBytes += e.page.data.length;
  }

  #unindex(e: Entry): void {
    const obj = e.obj;
    if (!obj.pages.delete(e.index)) return;
    obj.eofPages.delete(e.index);
    obj.dataBytes -= e.page.data.length;
    this.#dataBytes -= e.page.data.length;
    if (obj.pages.size === 0 && this.#objects.get(obj.key) === obj) this.#objects.delete(obj.key);
  }

  /** replaces a page keeping its place in the index (the LRU treats it as used) */
  #replace(obj: ObjectPages, page: number, data: Buffer, eof: boolean): void {
    this.#store(pageKey(obj.key, page), { page: { data, eof }, obj, index: page });
  }

  #drop(obj: ObjectPages, page: number): void {
    this.#lru.delete(pageKey(obj.key, page));
  }

  invalidate(ost: number, seq: number, oid: number, start = 0, end = Number.MAX_SAFE_INTEGER): number {
    const obj = this.#objects.get(objectKey(ost, seq, oid));
    if (!obj || end < start) return 0;
    const first = Math.floor(Math.max(0, start) / this.pageSize);
    const last = Math.floor(end / this.pageSize); // may be huge or Infinity for EOF: only compared
    let dropped = 0;
    for (const page of [...obj.pages]) {
      if (page >= first && page <= last) {
        this.#drop(obj, page);
        dropped++;
      }
    }
    return dropped;
  }

  applyWrite(ost: number, seq: number, oid: number, objOffset: number, data: Buffer): void {
    const obj = this.#objects.get(objectKey(ost, seq, oid));
    if (!obj || data.length === 0) return;
    const ps = this.pageSize;
    const writeEnd = objOffset + data.length;
    const firstPage = Math.floor(objOffset / ps);
    const lastPage = Math.floor((writeEnd - 1) / ps);
    // an eof page wholly before the write no longer ends the object (the gap is a hole now)
    for (const page of [...obj.eofPages]) if (page < firstPage) this.#drop(obj, page);

    const touched = lastPage - firstPage + 1 <= obj.pages.size
      ? Array.from({ length: lastPage - firstPage + 1 }, (_, i) => firstPage + i)
      : [...obj.pages].filter((p) => p >= firstPage && p <= lastPage);
    for (const page of touched) {
      const cached = this.#lru.peek(pageKey(obj.key, page))?.page;
      if (!cached) continue;
      const pageStart = page * ps;
      const from = Math.max(objOffset, pageStart) - pageStart; // within the page
      const to = Math.min(writeEnd, pageStart + ps) - pageStart;
      const src = data.subarray(pageStart + from - objOffset, pageStart + to - objOffset);
      const have = cached.data.length;
      if (to <= have) {
        const next = Buffer.allocUnsafe(have);
        cached.data.copy(next, 0, 0, from);
        src.copy(next, from);
        cached.data.copy(next, to, to);
        // a full eof page stops ending the object when the write runs on past it
        this.#replace(obj, page, next, cached.eof && writeEnd <= pageStart + ps);
      } else if (cached.eof && from <= have) {
        const next = Buffer.allocUnsafe(to);
        cached.data.copy(next, 0, 0, from);
        src.copy(next, from);
        // the object now ends here only if the write did not run on into the next page
        this.#replace(obj, page, next, writeEnd <= pageStart + ps);
      } else {
        this.#drop(obj, page);
      }
    }
  }

  truncate(ost: number, seq: number, oid: number, size: number): void {
    const obj = this.#objects.get(objectKey(ost, seq, oid));
    if (!obj) return;
    const ps = this.pageSize;
    for (const page of [...obj.pages]) {
      const cached = this.#lru.peek(pageKey(obj.key, page))?.page;
      if (!cached) continue;
      const pageStart = page * ps;
      if (pageStart >= size) {
        this.#drop(obj, page);
      } else if (pageStart + ps >= size) {
        // the page holding the object's last byte
        const len = size - pageStart;
        if (cached.data.length >= len) {
          if (cached.data.length !== len || !cached.eof) this.#replace(obj, page, cached.data.subarray(0, len), true);
        } else if (cached.eof) {
          this.#replace(obj, page, zeroExtend(cached.data, len), true);
        } else {
          this.#drop(obj, page);
        }
      } else if (cached.eof) {
        // truncated up past this page: what lay beyond the old end reads as zeros
        this.#replace(obj, page, zeroExtend(cached.data, ps), false);
      }
    }
  }

  cachedBytesOf(ost: number, seq: number, oid: number): number {
    return this.#objects.get(objectKey(ost, seq, oid))?.dataBytes ?? 0;
  }

  clear(): void {
    this.#lru.clear();
    this.#objects.clear();
    this.#dataBytes = 0;
  }
}

function zeroExtend(data: Buffer, length: number): Buffer {
  const next = Buffer.alloc(length);
  data.copy(next);
  return next;
}
