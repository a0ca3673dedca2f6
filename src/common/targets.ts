/** Target names as Lustre prints them: testfs-MDT0000, testfs-OST000a. */
import { err } from './errno.js';

export type TargetKind = 'mdt' | 'ost';

function hex4(index: number): string {
  return index.toString(16).padStart(4, '0');
}

export function ostName(fsname: string, index: number): string {
  return `${fsname}-OST${hex4(index)}`;
}

export function mdtName(fsname: string, index: number): string {
  return `${fsname}-MDT${hex4(index)}`;
}

export function targetName(fsname: string, kind: TargetKind, index: number): string {
  return kind === 'mdt' ? mdtName(fsname, index) : ostName(fsname, index);
}

export const MGS_TARGET = 'MGS';

/** Lustre filesystem names: 1-8 characters, letters, digits, '_' and '-'. */
export function validateFsname(name: string): void {
  if (!/^[A-Za-z0-9_-]{1,8}$/.test(name)) {
    throw err('EINVAL', `filesystem name '${name}' must be 1-8 characters of [A-Za-z0-9_-]`, 'BAD_FSNAME');
  }
}

export function validateTargetIndex(index: number): void {
  if (!Number.isInteger(index) || index < 0 || index > 0xffff) {
    throw err('EINVAL', `target index ${index} must be an integer in 0..65535`, 'BAD_INDEX');
  }
}
