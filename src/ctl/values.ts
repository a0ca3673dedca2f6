/**
 * Parsing of values written with `lctl set_param`, as the kernel parses them:
 * kstrtouint (decimal, 0x hex, 0 octal), kstrtobool (1/0, y/n, on/off), sizes
 * with units. A malformed value is EINVAL, one out of range ERANGE, so lctl
 * reports "Invalid argument" or "Numerical result out of range" like Lustre.
 */
import { err } from '../common/errno.js';

/** kstrtouint(value, 0): a trailing newline is allowed. */
export function parseUint(value: string, what: string): number {
  const v = value.replace(/\n$/, '');
  let n: number;
  if (/^0x[0-9a-f]+$/i.test(v)) n = Number.parseInt(v.slice(2), 16);
  else if (/^0[0-7]+$/.test(v)) n = Number.parseInt(v.slice(1), 8);
  else if (/^\d+$/.test(v)) n = Number(v);
  else throw err('EINVAL', `${what}: '${value}' is not a non-negative integer`, 'BAD_VALUE');
  if (!Number.isSafeInteger(n) || n > 0xffffffff) throw err('ERANGE', `${what}: ${value} is too large`, 'BAD_VALUE');
  return n;
}

export function checkRange(n: number, min: number, max: number, what: string): number {
  if (n < min || n > max) throw err('ERANGE', `${what} must be between ${min} and ${max}, not ${n}`, 'BAD_VALUE');
  return n;
}

/** kstrtobool: 1/y/Y/on enable, 0/n/N/off disable. */
export function parseBool(value: string, what: string): boolean {
  const v = value.replace(/\n$/, '');
  if (/^(1|y|yes|on|true)$/i.test(v)) return true;
  if (/^(0|n|no|off|false)$/i.test(v)) return false;
  throw err('EINVAL', `${what}: '${value}' is not a boolean (1/0, y/n, on/off)`, 'BAD_VALUE');
}

const UNIT: Record<string, number> = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 };

/**
 * A number with an optional binary unit suffix (K, M, G, T; "M" and "MiB" alike);
 * a bare number is taken in `bareUnit` bytes.
 */
export function parseSizeValue(value: string, what: string, bareUnit = 1): { bytes: number; hadUnit: boolean } {
  const m = /^(\d+)\s*([kmgt]?)(i?b)?$/i.exec(value.replace(/\n$/, '').trim());
  if (!m) throw err('EINVAL', `${what}: '${value}' is not a size (examples: 1024, 4M, 64K)`, 'BAD_VALUE');
  const unit = m[2]!.toLowerCase();
  const hadUnit = unit !== '' || m[3] !== undefined;
  const bytes = Number(m[1]) * (hadUnit ? UNIT[unit]! : bareUnit);
  if (!Number.isSafeInteger(bytes)) throw err('ERANGE', `${what}: ${value} is too large`, 'BAD_VALUE');
  return { bytes, hadUnit };
}
