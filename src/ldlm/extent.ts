/**
 * EXTENT lock policy data: byte ranges, overlap, conflicts, and the grant-time
 * growth policy `ldlm_extent_policy` (reference §3.4, lustre/ldlm/ldlm_extent.c).
 *
 * API:
 *   EXTENT_EOF = Number.MAX_SAFE_INTEGER   the inclusive end meaning "to end of file" (Lustre's ~0)
 *   LDLM_PAGE_SIZE = 4096, LDLM_MAX_GROWN_EXTENT = 32 MiB − 1
 *   interface Extent { start: number; end: number }             inclusive on both ends
 *   interface ExtentLockDesc { mode: LockMode; extent: Extent; gid?: number }   gid only for GROUP
 *   interface ExtentWaiterDesc extends ExtentLockDesc { owner: string }
 *   interface ExtentGrowthRequest extends ExtentWaiterDesc { noExpansion?: boolean; local?: boolean }
 *   assertExtent(e: Extent): void                                 throws EINVAL unless 0 ≤ start ≤ end ≤ EOF, integers
 *   extentsOverlap(a: Extent, b: Extent): boolean
 *   extentLocksConflict(a: ExtentLockDesc, b: ExtentLockDesc): boolean
 *   growExtent(req, granted: readonly ExtentLockDesc[], waiting: readonly ExtentWaiterDesc[]): Extent
 *
 * `growExtent` is called only for a request that is about to be granted, so no
 * granted lock in `granted` conflicts with it. `granted` holds the granted
 * extents (after their own growth); `waiting` holds the waiting locks' requested
 * extents, in queue order, and must not include the request itself.
 */
import { err } from '../common/errno.js';
import { LockMode, modesCompatible } from './modes.js';

export const EXTENT_EOF = Number.MAX_SAFE_INTEGER;
export const LDLM_PAGE_SIZE = 4096;
export const LDLM_MAX_GROWN_EXTENT = 32 * 1024 * 1024 - 1;

/** Above this many conflicting waiters a lock is "high traffic": no downward growth. */
const WAITERS_BEFORE_NO_DOWNWARD_GROWTH = 4;
/** Above this many conflicting locks, PW/CW growth is capped at LDLM_MAX_GROWN_EXTENT. */
const CONFLICTS_BEFORE_GROWTH_CAP = 32;

export interface Extent {
  start: number;
  end: number;
}

export interface ExtentLockDesc {
  mode: LockMode;
  extent: Extent;
  /** group id; meaningful only for GROUP locks */
  gid?: number;
}

export interface ExtentWaiterDesc extends ExtentLockDesc {
  owner: string;
}

export interface ExtentGrowthRequest extends ExtentWaiterDesc {
  /** lockahead (LDLM_FL_NO_EXPANSION): grant exactly what was asked */
  noExpansion?: boolean;
  /** a server-local lock (no export): never grown */
  local?: boolean;
}

export function assertExtent(e: Extent): void {
  const ok =
    Number.isSafeInteger(e.start) && Number.isSafeInteger(e.end) && e.start >= 0 && e.start <= e.end && e.end <= EXTENT_EOF;
  if (!ok) throw err('EINVAL', `invalid extent [${e.start}, ${e.end}]`, 'LDLM_BAD_EXTENT');
}

export function extentsOverlap(a: Extent, b: Extent): boolean {
  return a.start <= b.end && b.start <= a.end;
}

/**
 * Modes must conflict and ranges intersect — except that a GROUP lock covers the
 * whole object whatever its range, and two GROUP locks coexist only with the same gid.
 */
export function extentLocksConflict(a: ExtentLockDesc, b: ExtentLockDesc): boolean {
  if (a.mode === LockMode.GROUP && b.mode === LockMode.GROUP) return a.gid !== b.gid;
  if (modesCompatible(a.mode, b.mode)) return false;
  if (a.mode === LockMode.GROUP || b.mode === LockMode.GROUP) return true;
  return extentsOverlap(a.extent, b.extent);
}

export function growExtent(
  req: ExtentGrowthRequest,
  granted: readonly ExtentLockDesc[],
  waiting: readonly ExtentWaiterDesc[],
): Extent {
  const want = req.extent;
  assertExtent(want);
  if (req.local) return { ...want };
  if (want.start === 0 && want.end === EXTENT_EOF) return { ...want };
  if (req.noExpansion) return fixup(req, { ...want }, 0);
  const afterGranted = growAgainstGranted(req, granted);
  return growAgainstWaiting(req, afterGranted, waiting);
}

function growAgainstGranted(req: ExtentGrowthRequest, granted: readonly ExtentLockDesc[]): Extent {
  const want = req.extent;
  let start = 0;
  let end = EXTENT_EOF;
  let conflicting = 0;
  for (const lock of granted) {
    if (modesCompatible(lock.mode, req.mode)) continue;
    conflicting++;
    start = want.start;
    if (lock.extent.start > want.end) end = Math.min(end, lock.extent.start - 1);
  }
  return fixup(req, { start, end }, conflicting);
}

function growAgainstWaiting(req: ExtentGrowthRequest, grown: Extent, waiting: readonly ExtentWaiterDesc[]): Extent {
  const want = req.extent;
  const ex = { ...grown };
  let conflicting = 0;
  for (const lock of waiting) {
    if (ex.start === want.start && ex.end === want.end) return ex;
    // Compatible waiters of other clients do not matter; a client's own overlapping
    // locks are avoided because they are slow to cancel.
    if (modesCompatible(lock.mode, req.mode) && lock.owner !== req.owner) continue;
    conflicting++;
    if (conflicting > WAITERS_BEFORE_NO_DOWNWARD_GROWTH) ex.start = want.start;
    if (!extentsOverlap(lock.extent, ex)) continue;
    // Overlapping requests will ping-pong whatever we grant: do not let them limit growth.
    if (extentsOverlap(lock.extent, want)) continue;
    if (lock.extent.start < want.start && ex.start !== want.start) {
      ex.start = lock.extent.end >= want.start ? want.start : Math.min(lock.extent.end + 1, want.start);
    }
    if (lock.extent.end > want.end) {
      ex.end = Math.max(lock.extent.start - 1, want.end);
    }
  }
  return fixup(req, ex, conflicting);
}

/** Caps heavily contended write locks and aligns the grant, only ever shrinking toward the request. */
function fixup(req: ExtentGrowthRequest, ex: Extent, conflicting: number): Extent {
  const want = req.extent;
  if (conflicting > CONFLICTS_BEFORE_GROWTH_CAP && (req.mode === LockMode.PW || req.mode === LockMode.CW)) {
    if (want.end < want.start + LDLM_MAX_GROWN_EXTENT) ex.end = Math.min(want.start + LDLM_MAX_GROWN_EXTENT, ex.end);
  }
  if (ex.start === 0 && ex.end === EXTENT_EOF) return ex;
  const align = requestAlignment(want);
  const alignedStart = Math.ceil(ex.start / align) * align;
  const alignedEnd = Math.floor((ex.end + 1) / align) * align - 1;
  // Lustre asserts the aligned grant still covers the request (clients send page-aligned
  // requests); for an unaligned request we keep the request's own edge instead.
  return { start: Math.min(alignedStart, want.start), end: Math.max(alignedEnd, want.end) };
}

/** The request's own alignment (lowest set bit of start | end+1), never below a page. */
function requestAlignment(want: Extent): number {
  const endPlusOne = want.end === EXTENT_EOF ? 0 : want.end + 1; // ~0 + 1 wraps to 0 in Lustre
  const lowStart = lowestSetBit(want.start);
  const lowEnd = lowestSetBit(endPlusOne);
  const low = Math.min(lowStart, lowEnd);
  return low >= LDLM_PAGE_SIZE && Number.isFinite(low) ? low : LDLM_PAGE_SIZE;
}

function lowestSetBit(x: number): number {
  if (x === 0) return Infinity;
  let bit = 1;
  for (let i = 0; i < 53 && x % (bit * 2) === 0; i++) bit *= 2;
  return bit;
}
