/**
 * IBITS lock policy data for MDT inode locks (reference §3.6, lustre_idl.h MDS_INODELOCK_*).
 *
 * API:
 *   InodeBit                               LOOKUP=0x01 UPDATE=0x02 OPEN=0x04 LAYOUT=0x08 PERM=0x10 XATTR=0x20 DOM=0x40
 *   INODELOCK_FULL = 0x7f                  every bit (unlink)
 *   interface IbitsLockDesc { mode: LockMode; bits: number }
 *   assertIbits(bits: number): void        throws EINVAL unless a non-empty subset of FULL
 *   bitsOverlap(a: number, b: number): boolean
 *   ibitsLocksConflict(a: IbitsLockDesc, b: IbitsLockDesc): boolean
 *   ibitsNames(bits: number): string[]     e.g. ['LOOKUP', 'UPDATE'], for logs and errors
 */
import { err } from '../common/errno.js';
import { type LockMode, modesCompatible } from './modes.js';

export const InodeBit = {
  LOOKUP: 0x01,
  UPDATE: 0x02,
  OPEN: 0x04,
  LAYOUT: 0x08,
  PERM: 0x10,
  XATTR: 0x20,
  DOM: 0x40,
} as const;

export type InodeBitName = keyof typeof InodeBit;

export const INODELOCK_FULL = 0x7f;

export interface IbitsLockDesc {
  mode: LockMode;
  bits: number;
}

export function assertIbits(bits: number): void {
  if (!Number.isInteger(bits) || bits <= 0 || (bits & ~INODELOCK_FULL) !== 0) {
    throw err('EINVAL', `invalid inodebits 0x${Number.isInteger(bits) ? bits.toString(16) : String(bits)}`, 'LDLM_BAD_IBITS');
  }
}

export function bitsOverlap(a: number, b: number): boolean {
  return (a & b) !== 0;
}

export function ibitsLocksConflict(a: IbitsLockDesc, b: IbitsLockDesc): boolean {
  return !modesCompatible(a.mode, b.mode) && bitsOverlap(a.bits, b.bits);
}

export function ibitsNames(bits: number): string[] {
  return (Object.entries(InodeBit) as [InodeBitName, number][]).filter(([, v]) => (bits & v) !== 0).map(([n]) => n);
}
