/**
 * Space grants of one OST (Lustre's tgt_grant.c, reference §5): space reserved for
 * each client's write-back cache, so data it cached against its grant can always be
 * written later without ENOSPC.
 *
 * Accounting: each export holds a number of bytes (whole 4 KiB pages); tot_granted is
 * their sum. What may still be granted is the filesystem's free space, minus a reserve
 * kept for the filesystem's own allocations (indirect blocks, directories) that granted
 * writes also cause, minus tot_granted. A write reports how much of it was counted
 * against the grant (that space is now really used, so the grant shrinks by it) and
 * how much grant the client wants to hold; the reply adds what is free to give.
 *
 * statfs reports the granted space as unavailable (availableBlocks), as Lustre's does.
 */
import type { StatFs } from '../common/statfs.js';
import type { ServerExport } from '../ptlrpc/types.js';
import { MAX_IO_BYTES } from './limits.js';

export const GRANT_PAGE_BYTES = 4096;
/**
 * Initial grant at connect: enough for 16 RPCs of 4 MiB (two full windows of the
 * default 8 RPCs in flight) so a client starts caching at once, but at most a quarter
 * of what is left, so a handful of new clients cannot take all the space of a small OST.
 */
export const INITIAL_GRANT_MAX_BYTES = 64 * 1024 * 1024;
export const INITIAL_GRANT_SHARE = 4;
/** Per reply at most two of the largest RPCs (Lustre's chunk = 2 × brw_size)... */
export const REPLY_GRANT_MAX_BYTES = 2 * MAX_IO_BYTES;
/** ...and at most 1/8 of what is left, so the last free space is shared among the clients still asking. */
export const REPLY_GRANT_SHARE = 8;
/** Space never granted: max(1% of the filesystem, 4 MiB). */
export const RESERVE_PERCENT = 1;
export const RESERVE_MIN_BYTES = 4 * 1024 * 1024;
/** statfs is a syscall through the thread pool: write replies reuse one this recent. */
export const STATFS_CACHE_MS = 1000;

interface SpaceSample {
  at: number;
  totalBytes: number;
  /** free bytes for unprivileged writers (bavail), lowered by the bytes written since the sample */
  freeBytes: number;
}

export interface GrantOptions {
  /** clock for the statfs cache (tests) */
  now?: () => number;
}

export class OstGrants {
  private readonly held = new Map<ServerExport, number>();
  private total = 0;
  private sample: SpaceSample | undefined;
  private pending: Promise<SpaceSample> | undefined;
  private readonly now: () => number;

  constructor(
    private readonly statfs: () => Promise<StatFs>,
    opts: GrantOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
  }

  /** obdfilter.*.tot_granted: bytes granted to all exports */
  get totGranted(): number {
    return this.total;
  }

  /** Bytes the export holds. */
  grantOf(exp: ServerExport): number {
    return this.held.get(exp) ?? 0;
  }

  /**
   * Grant for a connecting export: a new export gets the initial grant; a reconnect to
   * an export that still exists keeps (and is told) what it holds.
   */
  async connect(exp: ServerExport): Promise<number> {
    const have = this.held.get(exp);
    if (have !== undefined) return have;
    // A connect does not fail for want of a statfs: that client just starts without grant.
    const avail = await this.available().catch(() => 0);
    const have2 = this.held.get(exp); // another connect of the same export may have run meanwhile
    if (have2 !== undefined) return have2;
    const give = pagesDown(Math.min(INITIAL_GRANT_MAX_BYTES, Math.floor(avail / INITIAL_GRANT_SHARE)));
    this.held.set(exp, give);
    this.total += give;
    return give;
  }

  /**
   * Accounts one write of `written` bytes: `used` of them the client had counted against
   * its grant (the grant shrinks by that, never below 0); then tops the grant up toward
   * `want`. Returns the bytes added to the export's grant.
   */
  async write(exp: ServerExport, written: number, used: number, want: number): Promise<number> {
    // The space just written is used now, whatever the cached statfs says (whole pages: the
    // filesystem allocates no less).
    if (this.sample) this.sample.freeBytes = Math.max(0, this.sample.freeBytes - pagesUp(written));
    const have = this.held.get(exp);
    if (have === undefined) return 0; // the export is gone (evicted meanwhile)
    const consumed = Math.min(Math.max(0, used), have);
    this.held.set(exp, have - consumed);
    this.total -= consumed;
    if (want <= have - consumed) return 0;
    let sample: SpaceSample;
    try {
      sample = await this.space();
    } catch {
      return 0; // the data is written; without a statfs there is just no more grant this time
    }
    const now = this.held.get(exp);
    if (now === undefined || want <= now) return 0;
    const left = this.leftIn(sample);
    let added = pagesDown(Math.min(want - now, REPLY_GRANT_MAX_BYTES, Math.floor(left / REPLY_GRANT_SHARE)));
    // Below 8 pages left the 1/8 share rounds to nothing: the rest goes whole, page by page.
    if (added === 0) added = pagesDown(Math.min(want - now, left));
    this.held.set(exp, now + added);
    this.total += added;
    return added;
  }

  /** statfs's available blocks with the granted space taken off: it is promised to the clients' caches. */
  availableBlocks(st: StatFs): number {
    return Math.max(0, st.bavail - Math.ceil(this.total / st.bsize));
  }

  /** The export is gone (disconnect, eviction): its grant is free again. */
  release(exp: ServerExport): void {
    const have = this.held.get(exp);
    if (have === undefined) return;
    this.held.delete(exp);
    this.total -= have;
  }

  /** Bytes that may still be granted. */
  async available(): Promise<number> {
    return this.leftIn(await this.space());
  }

  /** Bytes never granted on this filesystem. */
  static reserveFor(totalBytes: number): number {
    return Math.max(Math.ceil((totalBytes * RESERVE_PERCENT) / 100), RESERVE_MIN_BYTES);
  }

  private leftIn(s: SpaceSample): number {
    return Math.max(0, s.freeBytes - OstGrants.reserveFor(s.totalBytes) - this.total);
  }

  private async space(): Promise<SpaceSample> {
    const s = this.sample;
    if (s && this.now() - s.at < STATFS_CACHE_MS) return s;
    // Concurrent writes share one statfs.
    this.pending ??= this.statfs()
      .then((st) => (this.sample = { at: this.now(), totalBytes: st.blocks * st.bsize, freeBytes: st.bavail * st.bsize }))
      .finally(() => (this.pending = undefined));
    return this.pending;
  }
}

function pagesUp(bytes: number): number {
  return bytes <= 0 ? 0 : Math.ceil(bytes / GRANT_PAGE_BYTES) * GRANT_PAGE_BYTES;
}

function pagesDown(bytes: number): number {
  return bytes <= 0 ? 0 : Math.floor(bytes / GRANT_PAGE_BYTES) * GRANT_PAGE_BYTES;
}
