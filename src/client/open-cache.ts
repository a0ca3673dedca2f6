/**
 * Read-only opens served by one MDT open handle per file (Lustre's cached open handles:
 * llite keeps one read handle per inode, counted, while its lock lasts, so re-opening a
 * file costs no MDS_REINT OPEN / MDS_CLOSE round trip).
 *
 * - The MDT keeps knowing the file is open while any local open of it exists, and for
 *   `maxIdleMs` after the last one closed: open-unlinked files keep their objects until
 *   the shared handle closes.
 * - A handle is only shared while `current()` holds: the client's MDT lock covering the
 *   inode's layout, held across the open, is still granted. Every layout change (HSM
 *   release and restore) and an unlink revoke that lock first, so a lost lock means the
 *   cached inode may be stale: the handle is never reused again, and closes as soon as
 *   nobody uses it (the periodic sweep finds unused ones).
 * - At most `maxCount` handles stay cached; the least recently used unused ones close first.
 * - When the MDT lost this client's export (restart, eviction), it lost the handles too:
 *   they are forgotten without a close (their numbers mean nothing to the new export).
 *
 * Opens for write never come here: they stay one MDT handle each, so HSM sees every
 * writer and each close carries its own `modified`.
 */
import type { Logger } from '../common/log.js';
import { err } from '../common/errno.js';
import { fidKey, type Fid } from '../common/fid.js';
import type { Inode } from '../common/inode.js';

/** Lustre's opencache_max_ms default: how long an unused handle stays open. */
export const DEFAULT_OPENCACHE_MAX_MS = 60_000;
/** Most cached handles (the client's lock LRU keeps as many unused MDT locks). */
export const DEFAULT_OPENCACHE_MAX_COUNT = 8192;
const MAX_SWEEP_MS = 1_000;
const MIN_SWEEP_MS = 20;

/** Linux open(2) flags as the kernel passes them */
const O_ACCMODE = 0o3;
const O_TRUNC = 0o1000;

/** Opens the MDT counts as writers (HSM release refuses the file meanwhile, the close says whether it changed): never shared. */
export function opensForWrite(flags: number): boolean {
  return (flags & O_ACCMODE) !== 0 || (flags & O_TRUNC) !== 0;
}

/** What an MDT open answered. `current`, when set, says whether the inode it read is still current. */
export interface MdtOpen {
  handle: number;
  inode: Inode;
  current?: () => boolean;
}

export interface OpenCacheOptions {
  maxIdleMs?: number;
  maxCount?: number;
}

export interface OpenCacheStats {
  /** opens served by a cached handle */
  hits: number;
  /** read-only opens that went to the MDT */
  misses: number;
  /** cached handles closed on the MDT */
  closes: number;
}

interface Entry {
  readonly key: string;
  readonly fid: Fid;
  readonly handle: number;
  readonly inode: Inode;
  readonly current: () => boolean;
  users: number;
  idleSince: number;
  /** no longer the file's shared handle: closes at its last local close */
  retired: boolean;
  /** the MDT forgot the handle (new export): nothing to close */
  lost: boolean;
}

/** One local open of a shared handle; given back once with `release`. */
export interface SharedOpen {
  readonly handle: number;
  readonly inode: Inode;
}

interface Use extends SharedOpen {
  readonly entry: Entry;
  released: boolean;
}

export class OpenCache {
  /** the shared handle of each file, least recently used first */
  private readonly entries = new Map<string, Entry>();
  /** MDT opens in flight, so concurrent first opens of one file share one handle */
  private readonly opening = new Map<string, Promise<unknown>>();
  private maxIdle: number;
  private maxEntries: number;
  private sweeper: NodeJS.Timeout | undefined;
  private closed = false;
  readonly stats: OpenCacheStats = { hits: 0, misses: 0, closes: 0 };

  constructor(
    private readonly closeOnMdt: (fid: Fid, handle: number) => Promise<void>,
    opts: OpenCacheOptions = {},
    private readonly log?: Logger,
  ) {
    this.maxIdle = opts.maxIdleMs ?? DEFAULT_OPENCACHE_MAX_MS;
    this.maxEntries = opts.maxCount ?? DEFAULT_OPENCACHE_MAX_COUNT;
    this.armSweeper();
  }

  get maxIdleMs(): number {
    return this.maxIdle;
  }

  /** 0 turns caching off: handles close at their last local close (cached ones that are unused close now). */
  set maxIdleMs(ms: number) {
    if (!Number.isSafeInteger(ms) || ms < 0) throw err('EINVAL', 'opencache_max_ms must be a non-negative integer', 'BAD_PARAM');
    this.maxIdle = ms;
    this.armSweeper();
    this.sweep();
  }

  get maxCount(): number {
    return this.maxEntries;
  }

  set maxCount(n: number) {
    if (!Number.isSafeInteger(n) || n < 0) throw err('EINVAL', 'opencache_max_count must be a non-negative integer', 'BAD_PARAM');
    this.maxEntries = n;
    this.trim();
  }

  /** Cached handles (used or not). */
  get size(): number {
    return this.entries.size;
  }

  /**
   * A read-only open of `fid`: its shared handle when one is current, else `openOnMdt()`,
   * whose handle becomes the shared one when it can (`current` set, caching on).
   * Resolves `shared` when the open must be given back with `release`, else the caller
   * owns the MDT handle and closes it itself.
   */
  async open(fid: Fid, openOnMdt: () => Promise<MdtOpen>): Promise<{ handle: number; inode: Inode; shared?: SharedOpen }> {
    const key = fidKey(fid);
    const hit = this.use(key);
    if (hit) return { handle: hit.handle, inode: hit.inode, shared: hit };
    const inFlight = this.opening.get(key);
    if (inFlight) {
      await inFlight.catch(() => undefined);
      const joined = this.use(key);
      if (joined) return { handle: joined.handle, inode: joined.inode, shared: joined };
    }
    this.stats.misses++;
    const p = openOnMdt();
    this.opening.set(key, p);
    let r: MdtOpen;
    try {
      r = await p;
    } finally {
      if (this.opening.get(key) === p) this.opening.delete(key);
    }
    if (!r.current || this.maxIdle === 0 || this.maxEntries === 0 || this.closed || !r.current()) {
      return { handle: r.handle, inode: r.inode };
    }
    const old = this.entries.get(key);
    if (old) this.retire(old);
    const entry: Entry = {
      key, fid, handle: r.handle, inode: r.inode, current: r.current, users: 1, idleSince: 0, retired: false, lost: false,
    };
    this.entries.set(key, entry);
    this.trim();
    return { handle: r.handle, inode: r.inode, shared: this.newUse(entry) };
  }

  /** A local open of a shared handle ends; the last one of a retired or stale handle closes it on the MDT. */
  async release(s: SharedOpen): Promise<void> {
    const u = s as Use;
    if (u.released) throw err('EBADF', `open handle ${u.handle} of this file is already closed`, 'BAD_HANDLE');
    u.released = true;
    const e = u.entry;
    e.users--;
    if (e.users > 0) return;
    e.idleSince = Date.now();
    if (e.retired || this.closed || this.maxIdle === 0 || !e.current()) {
      this.drop(e);
      await this.closeNow(e);
      return;
    }
    this.trim();
  }

  /** The MDT lost our export and the handles with it: forget them all, closing nothing. */
  forgetAll(): void {
    for (const e of this.entries.values()) {
      e.lost = true;
      e.retired = true;
    }
    this.entries.clear();
  }

  /** Unmount: stop caching. Handles still cached go with the export at disconnect. */
  close(): void {
    this.closed = true;
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
    this.forgetAll();
  }

  private use(key: string): Use | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (!e.current()) {
      // the lock behind the cached inode went: never hand it out again
      this.retire(e);
      return undefined;
    }
    e.users++;
    this.entries.delete(key);
    this.entries.set(key, e);
    this.stats.hits++;
    return this.newUse(e);
  }

  private newUse(entry: Entry): Use {
    return { handle: entry.handle, inode: entry.inode, entry, released: false };
  }

  /** Stops sharing `e`; closed now if unused, else at its last release. */
  private retire(e: Entry): void {
    this.drop(e);
    e.retired = true;
    if (e.users === 0) void this.closeNow(e);
  }

  private drop(e: Entry): void {
    if (this.entries.get(e.key) === e) this.entries.delete(e.key);
  }

  private async closeNow(e: Entry): Promise<void> {
    if (e.lost) return;
    e.lost = true; // closed once
    this.stats.closes++;
    try {
      await this.closeOnMdt(e.fid, e.handle);
    } catch (x) {
      this.log?.debug({ fid: e.key, handle: e.handle, err: (x as Error).message }, 'closing a cached open handle failed');
    }
  }

  /** The least recently used unused handles beyond maxCount close. */
  private trim(): void {
    let excess = this.entries.size - this.maxEntries;
    if (excess <= 0) return;
    // retire() deletes from the Map being iterated, which a Map allows
    for (const e of this.entries.values()) {
      if (excess <= 0) break;
      if (e.users > 0) continue;
      this.retire(e);
      excess--;
    }
  }

  /** Unused handles whose lock went or whose idle time ran out close. */
  private sweep(): void {
    const expired = Date.now() - this.maxIdle;
    for (const e of this.entries.values()) {
      if (e.users === 0 && (e.idleSince <= expired || !e.current())) this.retire(e);
    }
  }

  private armSweeper(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
    if (this.closed || this.maxIdle === 0) return;
    const every = Math.max(MIN_SWEEP_MS, Math.min(MAX_SWEEP_MS, Math.floor(this.maxIdle / 2)));
    this.sweeper = setInterval(() => this.sweep(), every);
    this.sweeper.unref();
  }
}
