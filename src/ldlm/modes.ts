/**
 * LDLM lock modes and Lustre's compatibility matrix (reference §3.1).
 *
 * API:
 *   LockMode                         numeric mode values, as on the wire (EX=1 … GROUP=64)
 *   type LockModeName                'EX' | 'PW' | 'PR' | 'CW' | 'CR' | 'NL' | 'GROUP'
 *   ALL_LOCK_MODES: readonly LockMode[]
 *   isLockMode(v: unknown): v is LockMode
 *   lockModeName(mode: LockMode): LockModeName
 *   modesCompatible(a: LockMode, b: LockMode): boolean
 *
 * GROUP vs GROUP is "compatible" at the mode level; whether two group locks may
 * coexist additionally depends on their group ids, which is the extent layer's
 * business (see extent.ts `extentLocksConflict`).
 */
import { err } from '../common/errno.js';

export const LockMode = {
  EX: 1,
  PW: 2,
  PR: 4,
  CW: 8,
  CR: 16,
  NL: 32,
  GROUP: 64,
} as const;

export type LockModeName = keyof typeof LockMode;
export type LockMode = (typeof LockMode)[LockModeName];

export const ALL_LOCK_MODES: readonly LockMode[] = Object.values(LockMode);

// Lustre encodes compatibility as one bitmask per mode (lustre_dlm.h LCK_COMPAT_*).
const COMPAT: Readonly<Record<LockMode, number>> = {
  [LockMode.EX]: LockMode.NL,
  [LockMode.PW]: LockMode.NL | LockMode.CR,
  [LockMode.PR]: LockMode.NL | LockMode.CR | LockMode.PR,
  [LockMode.CW]: LockMode.NL | LockMode.CR | LockMode.CW,
  [LockMode.CR]: LockMode.NL | LockMode.CR | LockMode.CW | LockMode.PR | LockMode.PW,
  [LockMode.NL]: LockMode.NL | LockMode.CR | LockMode.CW | LockMode.PR | LockMode.PW | LockMode.EX | LockMode.GROUP,
  [LockMode.GROUP]: LockMode.NL | LockMode.GROUP,
};

const NAMES = new Map<number, LockModeName>(
  (Object.entries(LockMode) as [LockModeName, LockMode][]).map(([name, value]) => [value, name]),
);

export function isLockMode(v: unknown): v is LockMode {
  return typeof v === 'number' && NAMES.has(v);
}

export function lockModeName(mode: LockMode): LockModeName {
  const name = NAMES.get(mode);
  if (name === undefined) throw err('EINVAL', `not an LDLM lock mode: ${String(mode)}`, 'LDLM_BAD_MODE');
  return name;
}

export function modesCompatible(a: LockMode, b: LockMode): boolean {
  const mask = COMPAT[a];
  if (mask === undefined || !isLockMode(b)) throw err('EINVAL', `not an LDLM lock mode: ${String(mask === undefined ? a : b)}`, 'LDLM_BAD_MODE');
  return (mask & b) !== 0;
}
