/**
 * A server-side LDLM resource: its granted and waiting queues and the grant
 * decisions of reference §3.3 (lustre/ldlm/ldlm_{plain,extent,inodebits}.c).
 * Pure state: no timers, no RPC. The caller sends the blocking ASTs for the
 * `conflicts` it is given and completion ASTs for the locks reported `granted`.
 *
 * API:
 *   type ResourceType = 'plain' | 'extent' | 'ibits'
 *   interface PlainLock  { id: number; owner: string; mode: LockMode }
 *   interface ExtentLock { id; owner; mode; extent: Extent; gid?: number }   gid for GROUP
 *   interface IbitsLock  { id; owner; mode; bits: number }
 *   type LockOf<T extends ResourceType>                 the lock shape of a resource type
 *   interface EnqueueOptions { blockNoWait?: boolean; noExpansion?: boolean; local?: boolean }
 *   type EnqueueStatus = 'granted' | 'waiting' | 'refused'
 *   interface EnqueueResult<L> { status: EnqueueStatus; lock: L; conflicts: L[] }
 *   interface CancelResult<L>  { cancelled: L | undefined; granted: L[] }
 *   class LdlmResource<T extends ResourceType> {
 *     constructor(type: T)
 *     enqueue(lock: LockOf<T>, opts?: EnqueueOptions): EnqueueResult<LockOf<T>>
 *     cancel(id: number): CancelResult<LockOf<T>>
 *     cancelOwner(owner: string): { cancelled: LockOf<T>[]; granted: LockOf<T>[] }   eviction
 *     find(id: number): { state: 'granted' | 'waiting'; lock: LockOf<T> } | undefined
 *     grantedLocks(): LockOf<T>[]
 *     waitingLocks(): LockOf<T>[]
 *     blockersOf(id: number): LockOf<T>[]   granted locks a waiter is blocked by (blocking AST targets)
 *     isEmpty: boolean
 *   }
 *
 * Rules:
 * - A new lock is granted at once iff it conflicts with no granted and no waiting
 *   lock; otherwise it waits at the tail (`blockNoWait`: refused, nothing queued,
 *   no ASTs). Locks enqueued with `local` never conflict with one another. `conflicts` lists the granted locks it conflicts with — the holders
 *   to send blocking ASTs to.
 * - After a cancel the waiting queue is scanned in FIFO order: a waiter is granted
 *   iff it conflicts with no granted lock and no waiter ahead of it, so a later
 *   request never overtakes an earlier one it conflicts with, while compatible
 *   waiters are granted together.
 * - Extent locks grow on grant (extent.ts `growExtent`); returned ExtentLocks carry
 *   the granted extent once granted and the requested extent while waiting.
 * - GROUP (extent resources): conflicts with every non-NL lock over the whole object;
 *   a GROUP request whose gid already holds a granted GROUP lock is granted at once,
 *   even past waiters; a waiting GROUP request queues right behind a waiting GROUP lock
 *   of its gid, else ahead of the first non-GROUP waiter, so a gid's locks are granted
 *   together. GROUP locks are released only by their holders, so they are never
 *   listed as `conflicts` (Lustre sends them no blocking AST).
 */
import { err } from '../common/errno.js';
import { assertExtent, type Extent, extentLocksConflict, growExtent } from './extent.js';
import { assertIbits, ibitsLocksConflict } from './inodebits.js';
import { isLockMode, LockMode, modesCompatible } from './modes.js';

export type ResourceType = 'plain' | 'extent' | 'ibits';

export interface PlainLock {
  id: number;
  /** client uuid */
  owner: string;
  mode: LockMode;
}

export interface ExtentLock extends PlainLock {
  extent: Extent;
  gid?: number;
}

export interface IbitsLock extends PlainLock {
  bits: number;
}

export type LockOf<T extends ResourceType> = T extends 'extent' ? ExtentLock : T extends 'ibits' ? IbitsLock : PlainLock;

export interface EnqueueOptions {
  /** LDLM_FL_BLOCK_NOWAIT: refuse instead of queueing */
  blockNoWait?: boolean;
  /** LDLM_FL_NO_EXPANSION (lockahead): grant the requested extent only */
  noExpansion?: boolean;
  /** a lock taken by the server itself: never grown */
  local?: boolean;
}

export type EnqueueStatus = 'granted' | 'waiting' | 'refused';

export interface EnqueueResult<L> {
  status: EnqueueStatus;
  lock: L;
  conflicts: L[];
}

export interface CancelResult<L> {
  cancelled: L | undefined;
  granted: L[];
}

type AnyLock = PlainLock & { extent?: Extent; gid?: number; bits?: number };

interface Entry {
  /** as requested; for extent locks `lock.extent` is the requested extent */
  lock: AnyLock;
  opts: EnqueueOptions;
  /** the granted extent, set at grant time */
  grantedExtent?: Extent;
}

export class LdlmResource<T extends ResourceType> {
  private readonly granted: Entry[] = [];
  private readonly waiting: Entry[] = [];

  constructor(readonly type: T) {}

  enqueue(lock: LockOf<T>, opts: EnqueueOptions = {}): EnqueueResult<LockOf<T>> {
    const entry: Entry = { lock: this.validated(lock as AnyLock), opts: { ...opts } };
    if (this.find(entry.lock.id)) throw err('EEXIST', `lock ${entry.lock.id} is already on this resource`, 'LDLM_DUP_LOCK');

    if (this.joinsGrantedGroup(entry)) {
      this.grant(entry);
      return { status: 'granted', lock: this.view(entry), conflicts: [] };
    }
    const conflicts = this.granted.filter((g) => this.conflict(entry, g));
    const blockedByWaiter = this.waiting.some((w) => this.conflict(entry, w));
    if (conflicts.length === 0 && !blockedByWaiter) {
      this.grant(entry);
      return { status: 'granted', lock: this.view(entry), conflicts: [] };
    }
    if (opts.blockNoWait) return { status: 'refused', lock: this.view(entry), conflicts: [] };
    this.waiting.splice(this.queuePosition(entry), 0, entry);
    return {
      status: 'waiting',
      lock: this.view(entry),
      conflicts: conflicts.filter((g) => g.lock.mode !== LockMode.GROUP).map((g) => this.view(g)),
    };
  }

  cancel(id: number): CancelResult<LockOf<T>> {
    const removed = this.remove((e) => e.lock.id === id);
    if (removed.length === 0) return { cancelled: undefined, granted: [] };
    return { cancelled: removed[0], granted: this.reprocess() };
  }

  cancelOwner(owner: string): { cancelled: LockOf<T>[]; granted: LockOf<T>[] } {
    const cancelled = this.remove((e) => e.lock.owner === owner);
    return { cancelled, granted: cancelled.length > 0 ? this.reprocess() : [] };
  }

  find(id: number): { state: 'granted' | 'waiting'; lock: LockOf<T> } | undefined {
    const g = this.granted.find((e) => e.lock.id === id);
    if (g) return { state: 'granted', lock: this.view(g) };
    const w = this.waiting.find((e) => e.lock.id === id);
    if (w) return { state: 'waiting', lock: this.view(w) };
    return undefined;
  }

  /** The granted locks a waiting lock is blocked by: the holders that need a blocking AST. */
  blockersOf(id: number): LockOf<T>[] {
    const w = this.waiting.find((e) => e.lock.id === id);
    if (!w) return [];
    return this.granted.filter((g) => g.lock.mode !== LockMode.GROUP && this.conflict(w, g)).map((g) => this.view(g));
  }

  get isEmpty(): boolean {
    return this.granted.length === 0 && this.waiting.length === 0;
  }

  grantedLocks(): LockOf<T>[] {
    return this.granted.map((e) => this.view(e));
  }

  waitingLocks(): LockOf<T>[] {
    return this.waiting.map((e) => this.view(e));
  }

  private remove(match: (e: Entry) => boolean): LockOf<T>[] {
    const removed: LockOf<T>[] = [];
    for (const queue of [this.granted, this.waiting]) {
      for (let i = queue.length - 1; i >= 0; i--) {
        const e = queue[i]!;
        if (!match(e)) continue;
        removed.unshift(this.view(e));
        queue.splice(i, 1);
      }
    }
    return removed;
  }

  private reprocess(): LockOf<T>[] {
    const queue = this.waiting.splice(0);
    const newlyGranted: LockOf<T>[] = [];
    const stillWaiting: Entry[] = [];
    for (let i = 0; i < queue.length; i++) {
      const entry = queue[i]!;
      const grantable =
        this.joinsGrantedGroup(entry) ||
        (!this.granted.some((g) => this.conflict(entry, g)) && !stillWaiting.some((w) => this.conflict(entry, w)));
      if (!grantable) {
        stillWaiting.push(entry);
        continue;
      }
      // Growth must respect every lock still queued, ahead of this one and behind it.
      this.grant(entry, stillWaiting.concat(queue.slice(i + 1)));
      newlyGranted.push(this.view(entry));
    }
    this.waiting.push(...stillWaiting);
    return newlyGranted;
  }

  private grant(entry: Entry, waitingForGrowth: readonly Entry[] = this.waiting): void {
    if (this.type === 'extent') {
      const others = waitingForGrowth.filter((w) => w !== entry);
      entry.grantedExtent = growExtent(
        { ...(entry.lock as Required<Pick<AnyLock, 'extent'>> & AnyLock), ...entry.opts },
        this.granted.map((g) => ({ mode: g.lock.mode, extent: g.grantedExtent!, gid: g.lock.gid })),
        others.map((w) => ({ mode: w.lock.mode, owner: w.lock.owner, extent: w.lock.extent!, gid: w.lock.gid })),
      );
    }
    this.granted.push(entry);
  }

  private joinsGrantedGroup(entry: Entry): boolean {
    if (this.type !== 'extent' || entry.lock.mode !== LockMode.GROUP) return false;
    return this.granted.some((g) => g.lock.mode === LockMode.GROUP && g.lock.gid === entry.lock.gid);
  }

  private queuePosition(entry: Entry): number {
    if (this.type !== 'extent' || entry.lock.mode !== LockMode.GROUP) return this.waiting.length;
    for (let i = 0; i < this.waiting.length; i++) {
      const w = this.waiting[i]!.lock;
      if (w.mode !== LockMode.GROUP) return i;
      if (w.gid === entry.lock.gid) {
        let j = i + 1;
        while (j < this.waiting.length && this.waiting[j]!.lock.mode === LockMode.GROUP && this.waiting[j]!.lock.gid === entry.lock.gid) j++;
        return j;
      }
    }
    return this.waiting.length;
  }

  /**
   * `other` is judged by its granted extent when granted, else by its request.
   * Server-local locks never conflict with each other: they exist to revoke client
   * caches, and the server orders its own updates itself, so no local deadlock can arise.
   */
  private conflict(entry: Entry, other: Entry): boolean {
    if (entry.opts.local && other.opts.local) return false;
    switch (this.type) {
      case 'extent':
        return extentLocksConflict(
          { mode: entry.lock.mode, extent: entry.lock.extent!, gid: entry.lock.gid },
          { mode: other.lock.mode, extent: other.grantedExtent ?? other.lock.extent!, gid: other.lock.gid },
        );
      case 'ibits':
        return ibitsLocksConflict({ mode: entry.lock.mode, bits: entry.lock.bits! }, { mode: other.lock.mode, bits: other.lock.bits! });
      default:
        return !modesCompatible(entry.lock.mode, other.lock.mode);
    }
  }

  private view(entry: Entry): LockOf<T> {
    const copy: AnyLock = { ...entry.lock };
    if (entry.lock.extent) copy.extent = { ...(entry.grantedExtent ?? entry.lock.extent) };
    return copy as LockOf<T>;
  }

  private validated(lock: AnyLock): AnyLock {
    if (!Number.isSafeInteger(lock.id)) throw err('EINVAL', `invalid lock id ${String(lock.id)}`, 'LDLM_BAD_LOCK');
    if (typeof lock.owner !== 'string' || lock.owner === '') throw err('EINVAL', `lock ${lock.id} has no owner`, 'LDLM_BAD_LOCK');
    if (!isLockMode(lock.mode)) throw err('EINVAL', `lock ${lock.id}: invalid mode ${String(lock.mode)}`, 'LDLM_BAD_MODE');
    if (this.type !== 'extent' && lock.mode === LockMode.GROUP) {
      throw err('EINVAL', `lock ${lock.id}: GROUP locks exist only on extent resources`, 'LDLM_BAD_MODE');
    }
    const copy: AnyLock = { id: lock.id, owner: lock.owner, mode: lock.mode };
    if (this.type === 'extent') {
      if (!lock.extent) throw err('EINVAL', `lock ${lock.id}: extent resource needs an extent`, 'LDLM_BAD_EXTENT');
      assertExtent(lock.extent);
      copy.extent = { start: lock.extent.start, end: lock.extent.end };
      if (lock.mode === LockMode.GROUP) {
        if (!Number.isSafeInteger(lock.gid)) throw err('EINVAL', `lock ${lock.id}: GROUP lock needs a gid`, 'LDLM_BAD_GID');
        copy.gid = lock.gid;
      }
    } else if (this.type === 'ibits') {
      assertIbits(lock.bits as number);
      copy.bits = lock.bits;
    }
    return copy;
  }
}
