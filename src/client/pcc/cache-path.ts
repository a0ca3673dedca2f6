/**
 * Where a file's PCC copy lives under the backend's directory: lhsmtool_posix's "V1" layout
 * (reference §7.5), which Lustre's PCC uses too:
 *   <oid & 0xffff>/<oid >> 16 & 0xffff>/<seq & 0xffff>/<seq >> 16 & 0xffff>/<seq >> 32 & 0xffff>/<seq >> 48>/<0xSEQ:0xOID:0xVER>
 * each directory four hex digits. Derived from the FID only: a rename keeps the copy.
 */
import type { Fid } from '../../common/fid.js';

function hex4(n: bigint): string {
  return (n & 0xffffn).toString(16).padStart(4, '0');
}

/** The copy's path relative to the backend root, with a leading '/' (as `lfs pcc state` prints it). */
export function pccCachePath(fid: Fid): string {
  const seq = BigInt(fid.seq);
  const oid = BigInt(fid.oid);
  const dirs = [hex4(oid), hex4(oid >> 16n), hex4(seq), hex4(seq >> 16n), hex4(seq >> 32n), hex4(seq >> 48n)];
  return `/${dirs.join('/')}/0x${fid.seq.toString(16)}:0x${fid.oid.toString(16)}:0x${fid.ver.toString(16)}`;
}
