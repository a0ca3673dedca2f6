/**
 * Where a file's archive copy lives, derived from its FID and never from its path (a
 * rename must not orphan the copy): Lustre's lhsmtool_posix "V2" layout,
 * `<(oid ^ seq) & 0xffff as 4 hex digits>/<[0xSEQ:0xOID:0xVER]>`, which spreads copies
 * over 65536 directories (or S3 key prefixes). Backends put it under their own root or
 * bucket prefix.
 */
import { fidToString, parseFid, type Fid } from '../common/fid.js';

/** The key of a FID's archive copy, relative to the archive's root. */
export function archiveKey(fid: Fid): string {
  // Only the low 16 bits matter, so XOR those (seq is wider than JS's 32-bit bitwise ops).
  const spread = ((fid.oid & 0xffff) ^ (fid.seq % 0x10000)) & 0xffff;
  return `${spread.toString(16).padStart(4, '0')}/${fidToString(fid)}`;
}

/** The FID an archive key was derived from, or undefined when the key is not one of ours. */
export function archiveKeyFid(key: string): Fid | undefined {
  const parts = key.split('/');
  if (parts.length < 2) return undefined;
  const [spread, last] = parts.slice(-2) as [string, string];
  if (!/^\[0x[0-9a-f]+:0x[0-9a-f]+:0x[0-9a-f]+\]$/.test(last)) return undefined;
  let fid: Fid;
  try {
    fid = parseFid(last);
  } catch {
    return undefined;
  }
  return archiveKey(fid) === `${spread}/${last}` ? fid : undefined;
}

/** `prefix/key`, or `key` when there is no prefix. */
export function withPrefix(prefix: string, key: string): string {
  return prefix.length > 0 ? `${prefix}/${key}` : key;
}
