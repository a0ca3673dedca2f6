/**
 * Client readahead, after Lustre's ll_readahead_state (lustre.md §5, simplified):
 * - sequential: from the second contiguous read, a window of max(RPC, 1 MiB) is planned past
 *   the read; each time the reader enters the last planned window the next one is planned,
 *   twice as long, up to max_read_ahead_per_file_mb;
 * - strided: the same length read at a constant stride three times in a row plans the next
 *   strides (about one RPC of data);
 * - whole file: files up to max_read_ahead_whole_mb are read whole on their second read;
 * - dense random: random reads of a file small enough to stay cached (denseMaxFileBytes)
 *   that miss the cache twice inside one RPC-sized chunk of the file plan the rest of that
 *   chunk, once: a reader that goes all over such a file takes it in a few large reads
 *   instead of one round trip per page, and a reader that touches a chunk once costs nothing;
 * - anything else is random: nothing is planned and the window starts over.
 * Plans only say what to fetch; the caller fetches, within the global ReadaheadBudget.
 */
import { LRUCache } from 'lru-cache';
import { err } from '../../common/errno.js';

export interface ReadaheadLimits {
  /** bytes per read RPC (max_pages_per_rpc) */
  rpcBytes: number;
  /** max_read_ahead_per_file_mb in bytes; 0 disables readahead */
  maxPerFileBytes: number;
  /** max_read_ahead_whole_mb in bytes */
  maxWholeBytes: number;
  /** files up to this size get dense-random readahead (0 or absent: never) */
  denseMaxFileBytes?: number;
}

/** What the cache knows about a read that missed it. */
export interface ReadMiss {
  /** the file's size, when known without asking the OSTs */
  fileSize: number | undefined;
}

export interface ReadaheadPlan {
  start: number;
  length: number;
  kind: 'sequential' | 'strided' | 'whole' | 'dense';
}

export interface ReadaheadStats {
  hits: number;
  misses: number;
  sequentialWindows: number;
  stridedWindows: number;
  wholeFile: number;
  denseChunks: number;
  bytes: number;
}

const MiB = 1024 * 1024;
/** how far a read may start from where the previous one ended and still count as sequential */
const DEFAULT_SLACK_BYTES = 4096;
/** planned ranges remembered to tell hits from misses */
const PLANNED_MEMORY = 512;
/** strides planned ahead at most, however small the reads (each is a separate fetch) */
const MAX_STRIDES_AHEAD = 256;
/** misses inside one chunk that make random reads dense there */
const DENSE_MISSES = 2;
/** a dense chunk is fetched in pieces this large: a read waiting for one waits for less */
export const DENSE_PIECE_BYTES = MiB;
/** chunks whose misses are remembered, per open file */
const DENSE_CHUNKS_REMEMBERED = 4096;

export class FileReadahead {
  readonly #limits: () => ReadaheadLimits;
  readonly #slack: number;
  readonly stats: ReadaheadStats = { hits: 0, misses: 0, sequentialWindows: 0, stridedWindows: 0, wholeFile: 0, denseChunks: 0, bytes: 0 };

  #reads = 0;
  #lastOffset = -1;
  #lastLength = 0;
  #lastEnd = -1;
  // sequential window
  #window = 0;
  /** start of the sequential run's readahead (reads from here to #raEnd are inside the pattern) */
  #seqOrigin = 0;
  /** start of the last window planned: the reader entering it triggers the next */
  #windowStart = 0;
  /** everything before this (from #seqOrigin) has been planned already */
  #raEnd = 0;
  // strided pattern
  #stride = 0;
  #strideRun = 0;
  /** start of the next stride not planned yet */
  #strideNext = 0;
  #wholeDone = false;
  /** recently planned ranges [start, end), for hit/miss accounting */
  #planned: Array<[number, number]> = [];
  /** dense random: misses per chunk (chunk index -> count; planned chunks stay at DENSE_MISSES) */
  #chunkMisses = new Map<number, number>();

  /** @param opts.slackBytes how far from the previous end a read may start and still be sequential (a page) */
  constructor(limits: () => ReadaheadLimits, opts: { slackBytes?: number } = {}) {
    this.#limits = limits;
    this.#slack = opts.slackBytes ?? DEFAULT_SLACK_BYTES;
  }

  /**
   * One read of [offset, offset+length); `fileSize` bounds what is planned (a large number
   * when unknown). `miss` says the read missed the cache (dense random readahead).
   */
  onRead(offset: number, length: number, fileSize: number, miss?: ReadMiss): ReadaheadPlan[] {
    if (length <= 0 || offset < 0) return [];
    const end = offset + length;
    if (this.#covered(offset, end)) this.stats.hits++;
    else this.stats.misses++;
    this.#reads++;

    const limits = this.#limits();
    const plans: ReadaheadPlan[] = [];
    // max_read_ahead_per_file_mb = 0 turns readahead off, whole-file reads included
    if (limits.maxPerFileBytes > 0 && !this.#wholeDone && this.#reads >= 2 && fileSize > 0 && fileSize <= limits.maxWholeBytes) {
      this.#wholeDone = true;
      this.#planWhole(offset, end, fileSize, plans);
    }

    const sequential = this.#lastEnd >= 0 && (
      Math.abs(offset - this.#lastEnd) <= this.#slack ||
      (this.#raEnd > 0 && offset >= this.#seqOrigin && offset <= this.#raEnd + this.#slack));
    this.#trackStride(offset, length, sequential);

    if (sequential) {
      this.#planSequential(end, fileSize, limits, plans);
    } else if (this.#strideRun >= 3) {
      this.#resetWindow();
      this.#planStrided(offset, length, fileSize, limits, plans);
    } else {
      this.#resetWindow();
      if (miss) this.#planDense(offset, end, miss, limits, plans);
    }

    this.#lastOffset = offset;
    this.#lastLength = length;
    // reads inside the window may arrive out of order (FUSE async reads): remember the furthest
    this.#lastEnd = sequential ? Math.max(end, this.#lastEnd) : end;
    for (const p of plans) {
      this.stats.bytes += p.length;
      this.#remember(p.start, p.start + p.length);
    }
    return plans;
  }

  /** forgets the access pattern (the statistics stay) */
  reset(): void {
    this.#reads = 0;
    this.#lastOffset = -1;
    this.#lastLength = 0;
    this.#lastEnd = -1;
    this.#resetWindow();
    this.#stride = 0;
    this.#strideRun = 0;
    this.#strideNext = 0;
    this.#wholeDone = false;
    this.#chunkMisses.clear();
  }

  #resetWindow(): void {
    this.#window = 0;
    this.#seqOrigin = 0;
    this.#windowStart = 0;
    this.#raEnd = 0;
  }

  #planSequential(readEnd: number, fileSize: number, limits: ReadaheadLimits, plans: ReadaheadPlan[]): void {
    if (limits.maxPerFileBytes <= 0) return;
    if (this.#window === 0) {
      this.#window = Math.min(Math.max(limits.rpcBytes, MiB), limits.maxPerFileBytes);
      if (this.#raEnd === 0) this.#seqOrigin = Math.max(0, this.#lastOffset);
    } else if (readEnd > this.#windowStart) {
      // the reader reached the last window: plan the next, twice as long
      this.#window = Math.min(this.#window * 2, limits.maxPerFileBytes);
    } else {
      return;
    }
    const start = Math.max(this.#raEnd, readEnd);
    const stop = Math.min(start + this.#window, fileSize);
    if (stop <= start) return;
    plans.push({ start, length: stop - start, kind: 'sequential' });
    this.stats.sequentialWindows++;
    this.#windowStart = start;
    this.#raEnd = stop;
  }

  #planDense(offset: number, end: number, miss: ReadMiss, limits: ReadaheadLimits, plans: ReadaheadPlan[]): void {
    const size = miss.fileSize;
    const max = limits.denseMaxFileBytes ?? 0;
    if (limits.maxPerFileBytes <= 0 || size === undefined || size <= 0 || size > max || offset >= size) return;
    const chunkBytes = Math.max(limits.rpcBytes, DENSE_PIECE_BYTES);
    const chunk = Math.floor(offset / chunkBytes);
    // a read across two chunks counts for the first
    const n = this.#chunkMisses.get(chunk) ?? 0;
    if (n >= DENSE_MISSES) return;
    if (this.#chunkMisses.size >= DENSE_CHUNKS_REMEMBERED && n === 0) this.#chunkMisses.clear();
    this.#chunkMisses.set(chunk, n + 1);
    if (n + 1 < DENSE_MISSES) return;
    const chunkStart = chunk * chunkBytes;
    const chunkEnd = Math.min(chunkStart + chunkBytes, size);
    // the rest of the chunk, in pieces, around what this read takes
    let any = false;
    for (const [s, e] of [[chunkStart, Math.min(offset, chunkEnd)], [Math.max(end, chunkStart), chunkEnd]] as const) {
      for (let at = s; at < e; at += DENSE_PIECE_BYTES) {
        plans.push({ start: at, length: Math.min(DENSE_PIECE_BYTES, e - at), kind: 'dense' });
        any = true;
      }
    }
    if (any) this.stats.denseChunks++;
  }

  #trackStride(offset: number, length: number, sequential: boolean): void {
    const step = offset - this.#lastOffset;
    if (sequential || this.#lastOffset < 0 || length !== this.#lastLength || step <= length) {
      this.#stride = 0;
      this.#strideRun = 1;
      this.#strideNext = 0;
    } else if (step === this.#stride) {
      this.#strideRun++;
    } else {
      this.#stride = step;
      this.#strideRun = 2;
      this.#strideNext = 0;
    }
  }

  #planStrided(offset: number, length: number, fileSize: number, limits: ReadaheadLimits, plans: ReadaheadPlan[]): void {
    if (limits.maxPerFileBytes <= 0) return;
    const stride = this.#stride;
    // about one RPC of data, with the span (gaps included) within the per-file limit
    const want = Math.max(1, Math.min(
      Math.ceil(limits.rpcBytes / length),
      MAX_STRIDES_AHEAD,
      Math.floor(limits.maxPerFileBytes / stride),
      Math.floor(limits.maxPerFileBytes / length)));
    const firstUnplanned = Math.max(this.#strideNext, offset + stride);
    const planned = (firstUnplanned - (offset + stride)) / stride;
    // plan again once fewer than half the wanted strides remain ahead of the reader
    if (planned * 2 > want) return;
    let next = firstUnplanned;
    let added = 0;
    for (let i = planned; i < want && next < fileSize; i++, next += stride) {
      plans.push({ start: next, length: Math.min(length, fileSize - next), kind: 'strided' });
      added++;
    }
    this.#strideNext = next;
    if (added > 0) this.stats.stridedWindows++;
  }

  #planWhole(offset: number, end: number, fileSize: number, plans: ReadaheadPlan[]): void {
    const before = offset > 0 ? [[0, Math.min(offset, fileSize)]] : [];
    const after = end < fileSize ? [[end, fileSize]] : [];
    let any = false;
    for (const [s, e] of [...before, ...after]) {
      for (const [gs, ge] of this.#gaps(s, e)) {
        plans.push({ start: gs, length: ge - gs, kind: 'whole' });
        any = true;
      }
    }
    if (any) this.stats.wholeFile++;
    // all of the file is planned: reads anywhere in it are inside the pattern, and sequential
    // readahead only resumes past its current end
    this.#seqOrigin = 0;
    this.#raEnd = Math.max(this.#raEnd, fileSize);
    this.#windowStart = this.#raEnd;
  }

  /** the parts of [start, end) not covered by remembered plans */
  #gaps(start: number, end: number): Array<[number, number]> {
    const sorted = this.#planned.filter(([s, e]) => e > start && s < end).sort((a, b) => a[0] - b[0]);
    const gaps: Array<[number, number]> = [];
    let at = start;
    for (const [s, e] of sorted) {
      if (s > at) gaps.push([at, Math.min(s, end)]);
      at = Math.max(at, e);
      if (at >= end) break;
    }
    if (at < end) gaps.push([at, end]);
    return gaps;
  }

  #covered(start: number, end: number): boolean {
    return this.#planned.some(([s, e]) => s <= start && end <= e);
  }

  #remember(start: number, end: number): void {
    const last = this.#planned[this.#planned.length - 1];
    if (last && last[1] === start) last[1] = end;
    else this.#planned.push([start, end]);
    if (this.#planned.length > PLANNED_MEMORY) this.#planned.shift();
  }
}

/**
 * Small files read again are read whole (max_read_ahead_whole_mb), across opens: a file's
 * first read after each open counts as one access; from the second on the answer is "read it
 * all now" (cheap when the pages are still cached, right when they were evicted).
 */
export class WholeFileTracker {
  readonly #limit: () => number;
  readonly #seen: LRUCache<string, true>;

  constructor(limit: () => number, maxFiles = 10000) {
    if (!Number.isSafeInteger(maxFiles) || maxFiles <= 0) throw err('EINVAL', `whole-file tracker: invalid file count ${maxFiles}`);
    this.#limit = limit;
    this.#seen = new LRUCache<string, true>({ max: maxFiles });
  }

  /** one access of the file (call once per open, at its first read); true: read the whole file now */
  onRead(fileKey: string, fileSize: number): boolean {
    if (fileSize <= 0 || fileSize > this.#limit()) {
      this.#seen.delete(fileKey);
      return false;
    }
    if (this.#seen.get(fileKey)) return true;
    this.#seen.set(fileKey, true);
    return false;
  }

  /** the same as onRead, for callers that count an access at open */
  onOpen(fileKey: string, fileSize: number): boolean {
    return this.onRead(fileKey, fileSize);
  }

  forget(fileKey: string): void {
    this.#seen.delete(fileKey);
  }

  get size(): number {
    return this.#seen.size;
  }
}

/** max_read_ahead_mb: bytes of readahead in flight over all files of the mount. */
export class ReadaheadBudget {
  readonly #maxBytes: () => number;
  #inFlight = 0;

  constructor(maxBytes: () => number) {
    this.#maxBytes = maxBytes;
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  /** takes all of `bytes` or nothing */
  tryTake(bytes: number): boolean {
    if (bytes < 0) throw err('EINVAL', `readahead budget: negative take ${bytes}`);
    if (this.#inFlight + bytes > this.#maxBytes()) return false;
    this.#inFlight += bytes;
    return true;
  }

  /** takes what is left, up to `bytes`; returns the bytes taken (maybe 0) */
  takeUpTo(bytes: number): number {
    if (bytes < 0) throw err('EINVAL', `readahead budget: negative take ${bytes}`);
    const taken = Math.max(0, Math.min(bytes, this.#maxBytes() - this.#inFlight));
    this.#inFlight += taken;
    return taken;
  }

  give(bytes: number): void {
    if (bytes < 0 || bytes > this.#inFlight) {
      throw err('EINVAL', `readahead budget: giving back ${bytes} bytes with ${this.#inFlight} in flight`);
    }
    this.#inFlight -= bytes;
  }
}
