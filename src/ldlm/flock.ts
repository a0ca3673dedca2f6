/**
 * FLOCK resources: the MDS-side table of POSIX record locks (fcntl F_GETLK /
 * F_SETLK / F_SETLKW) of one file, and the cross-file wait graph used to refuse
 * F_SETLKW with EDEADLK (reference §3.2 FLOCK type, lustre/ldlm/ldlm_flock.c;
 * Linux fs/locks.c posix_lock_inode / posix_locks_deadlock).
 * Pure, synchronous state: no timers, no I/O. The caller does the RPC, queues
 * blocked F_SETLKW requests, retries them when locks go, and notifies clients.
 *
 * API:
 *   FLOCK_EOF = Number.MAX_SAFE_INTEGER                   inclusive `end` meaning "to end of file"
 *   type FlockType = 'read' | 'write'
 *   interface FlockLock    { owner: string; pid: number; type: FlockType; start: number; end: number }
 *   interface FlockRequest { owner: string; pid: number; type: FlockType | 'unlock'; start: number; end: number }
 *   type FlockSetResult = { granted: true } | { granted: false; blockers: FlockLock[] }
 *   flockRangesOverlap(a: { start: number; end: number }, b: { start: number; end: number }): boolean
 *   flockLocksConflict(a: FlockLock, b: FlockLock): boolean
 *   class FlockTable {                                     one per file (FID)
 *     test(req: FlockLock): FlockLock | undefined          F_GETLK
 *     set(req: FlockRequest): FlockSetResult               F_SETLK (and each F_SETLKW attempt)
 *     releaseOwner(owner: string): void                    last close of the owner, eviction
 *     releaseOwnersMatching(pred: (owner: string) => boolean): void   all owners of one client
 *     locks(): FlockLock[]                                 sorted by start, then owner
 *     isEmpty(): boolean
 *   }
 *   class FlockWaitGraph {                                 one per MDS, across all files
 *     addWait(waiter: string, holders: readonly string[]): void
 *     removeWait(waiter: string): void
 *     wouldDeadlock(waiter: string, holders: readonly string[]): boolean
 *   }
 *
 * Rules:
 * - An owner is an opaque key built by the caller (client uuid + kernel lock_owner).
 *   Ranges are inclusive; 0 ≤ start ≤ end ≤ FLOCK_EOF, integers, else EINVAL
 *   FLOCK_BAD_RANGE. A malformed owner, pid or type is EINVAL FLOCK_BAD_REQUEST
 *   (F_GETLK takes only 'read' | 'write', as Linux refuses F_UNLCK there).
 * - Locks of one owner never conflict with each other. Locks of different owners
 *   conflict iff their ranges overlap and at least one is 'write'.
 * - `set` is all or nothing: if any lock of another owner conflicts, nothing changes
 *   and `blockers` lists every such lock (in `locks()` order); 'unlock' never conflicts.
 *   Otherwise the request replaces whatever the owner held in [start, end]: the
 *   owner's locks are cut out of that range (splitting a lock that extends past it
 *   on both sides) and, unless unlocking, the new lock is inserted and merged with
 *   the owner's same-type locks it touches or adjoins. Unlocking what one does not
 *   hold is a no-op that succeeds.
 * - An owner's locks are therefore kept canonical: disjoint, and never two adjoining
 *   locks of the same type. A merged lock carries the pid of the request that
 *   merged it (as Linux does); pieces left by a split keep their pid.
 * - `test` returns the first conflicting lock of another owner in `locks()` order.
 * - Returned locks are copies: mutating them does not touch the table.
 * - The wait graph holds one edge set per waiter: `addWait` replaces the waiter's
 *   holders (a re-tried F_SETLKW is re-recorded with its current blockers). The
 *   caller asks `wouldDeadlock` before queueing a blocked F_SETLKW and answers
 *   EDEADLK when it is true: some holder (possibly the waiter itself) waits,
 *   directly or through recorded waits, for the waiter. The traversal visits each
 *   owner at most once. The caller removes the wait when the request is granted,
 *   cancelled, or its owner is evicted.
 * - BSD flock(2) locks are kept by the caller in a SEPARATE FlockTable per file,
 *   as whole-file locks [0, FLOCK_EOF] owned by the open file description ('read' =
 *   LOCK_SH, 'write' = LOCK_EX); on Linux flock and fcntl locks never interact.
 *   `set` converts atomically (a refused upgrade keeps the shared lock), whereas
 *   Linux flock(2) drops the old lock before taking the new one: a caller that
 *   wants that exact behaviour sends 'unlock' first when a conversion is refused.
 */
import { err } from '../common/errno.js';
import { EXTENT_EOF } from './extent.js';

export const FLOCK_EOF = EXTENT_EOF;

export type FlockType = 'read' | 'write';

export interface FlockLock {
  owner: string;
  /** the pid reported back by F_GETLK */
  pid: number;
  type: FlockType;
  start: number;
  /** inclusive; FLOCK_EOF means "to end of file" */
  end: number;
}

export interface FlockRequest {
  owner: string;
  pid: number;
  type: FlockType | 'unlock';
  start: number;
  end: number;
}

export type FlockSetResult = { granted: true } | { granted: false; blockers: FlockLock[] };

export function flockRangesOverlap(a: { start: number; end: number }, b: { start: number; end: number }): boolean {
  return a.start <= b.end && b.start <= a.end;
}

export function flockLocksConflict(a: FlockLock, b: FlockLock): boolean {
  if (a.owner === b.owner) return false;
  if (a.type === 'read' && b.type === 'read') return false;
  return flockRangesOverlap(a, b);
}

export class FlockTable {
  /** owner → that owner's locks, disjoint and sorted by start */
  private readonly byOwner = new Map<string, FlockLock[]>();

  test(req: FlockLock): FlockLock | undefined {
    const probe = validated(req, false) as FlockLock;
    const first = this.sorted().find((held) => flockLocksConflict(probe, held));
    return first && { ...first };
  }

  set(req: FlockRequest): FlockSetResult {
    const r = validated(req, true);
    if (r.type !== 'unlock') {
      const wanted = r as FlockLock;
      const blockers = this.sorted().filter((held) => flockLocksConflict(wanted, held));
      if (blockers.length > 0) return { granted: false, blockers: blockers.map((l) => ({ ...l })) };
    }
    const kept = cutOut(this.byOwner.get(r.owner) ?? [], r.start, r.end);
    const next = r.type === 'unlock' ? kept : insertMerged(kept, r as FlockLock);
    if (next.length === 0) this.byOwner.delete(r.owner);
    else this.byOwner.set(r.owner, next);
    return { granted: true };
  }

  releaseOwner(owner: string): void {
    this.byOwner.delete(owner);
  }

  releaseOwnersMatching(pred: (owner: string) => boolean): void {
    for (const owner of [...this.byOwner.keys()]) if (pred(owner)) this.byOwner.delete(owner);
  }

  locks(): FlockLock[] {
    return this.sorted().map((l) => ({ ...l }));
  }

  isEmpty(): boolean {
    return this.byOwner.size === 0;
  }

  private sorted(): FlockLock[] {
    const all: FlockLock[] = [];
    for (const owned of this.byOwner.values()) all.push(...owned);
    // Plain code-unit order, not localeCompare: lctl output must not depend on the locale.
    return all.sort((a, b) => a.start - b.start || (a.owner < b.owner ? -1 : a.owner > b.owner ? 1 : 0));
  }
}

/** The owner's locks with [start, end] removed; a lock spanning the range splits in two. */
function cutOut(owned: readonly FlockLock[], start: number, end: number): FlockLock[] {
  const out: FlockLock[] = [];
  for (const l of owned) {
    if (!flockRangesOverlap(l, { start, end })) {
      out.push(l);
      continue;
    }
    if (l.start < start) out.push({ ...l, end: start - 1 });
    if (l.end > end) out.push({ ...l, start: end + 1 });
  }
  return out;
}

/**
 * Inserts `lock` into an owner's locks that no longer overlap it, absorbing the
 * same-type neighbours that adjoin it. Only direct neighbours can adjoin: the
 * owner's other locks were canonical before the cut.
 */
function insertMerged(owned: readonly FlockLock[], lock: FlockLock): FlockLock[] {
  const merged: FlockLock = { ...lock };
  const out: FlockLock[] = [];
  for (const l of owned) {
    const adjoins = l.end + 1 === merged.start || merged.end + 1 === l.start;
    if (l.type === merged.type && adjoins) {
      merged.start = Math.min(merged.start, l.start);
      merged.end = Math.max(merged.end, l.end);
    } else {
      out.push(l);
    }
  }
  out.push(merged);
  return out.sort((a, b) => a.start - b.start);
}

function validated(req: FlockRequest, unlockAllowed: boolean): FlockRequest {
  const typeOk = req.type === 'read' || req.type === 'write' || (unlockAllowed && req.type === 'unlock');
  if (typeof req.owner !== 'string' || !Number.isSafeInteger(req.pid) || !typeOk) {
    throw err('EINVAL', `invalid flock request: owner ${String(req.owner)}, pid ${req.pid}, type ${String(req.type)}`, 'FLOCK_BAD_REQUEST');
  }
  const rangeOk =
    Number.isSafeInteger(req.start) && Number.isSafeInteger(req.end) && req.start >= 0 && req.start <= req.end && req.end <= FLOCK_EOF;
  if (!rangeOk) throw err('EINVAL', `invalid flock range [${req.start}, ${req.end}]`, 'FLOCK_BAD_RANGE');
  return { owner: req.owner, pid: req.pid, type: req.type, start: req.start, end: req.end };
}

export class FlockWaitGraph {
  /** waiter → the owners whose locks block its queued F_SETLKW */
  private readonly waits = new Map<string, ReadonlySet<string>>();

  addWait(waiter: string, holders: readonly string[]): void {
    this.waits.set(waiter, new Set(holders));
  }

  removeWait(waiter: string): void {
    this.waits.delete(waiter);
  }

  wouldDeadlock(waiter: string, holders: readonly string[]): boolean {
    const visited = new Set<string>();
    const frontier = [...holders];
    while (frontier.length > 0) {
      const owner = frontier.pop()!;
      if (owner === waiter) return true;
      if (visited.has(owner)) continue;
      visited.add(owner);
      for (const next of this.waits.get(owner) ?? []) if (!visited.has(next)) frontier.push(next);
    }
    return false;
  }
}
