/** Lustre File IDentifiers: [seq:oid:ver], printed as [0x%x:0x%x:0x%x]. */
import { err } from './errno.js';

export interface Fid {
  seq: number;
  oid: number;
  ver: number;
}

export const FID_SEQ_ROOT = 0x200000007;
export const FID_SEQ_NORMAL = 0x200000400; // first sequence handed to clients
export const ROOT_FID: Fid = Object.freeze({ seq: FID_SEQ_ROOT, oid: 1, ver: 0 });
/** oids a client may allocate from one granted sequence (LUSTRE_METADATA_SEQ_MAX_WIDTH) */
export const FID_SEQ_WIDTH = 0x20000;
/** objects per OST data sequence before rolling over */
export const OST_SEQ_MAX_OID = 0x1ffffff;

export function fidToString(f: Fid): string {
  return `[0x${f.seq.toString(16)}:0x${f.oid.toString(16)}:0x${f.ver.toString(16)}]`;
}

/** Key form used in stores and maps: "seq:oid:ver" in hex, sortable enough and compact. */
export function fidKey(f: Fid): string {
  return `${f.seq.toString(16)}:${f.oid.toString(16)}:${f.ver.toString(16)}`;
}

export function fidFromKey(key: string): Fid {
  const p = key.split(':');
  if (p.length !== 3) throw err('EINVAL', `bad FID key ${key}`);
  return { seq: parseInt(p[0]!, 16), oid: parseInt(p[1]!, 16), ver: parseInt(p[2]!, 16) };
}

const FID_RE = /^\[?(0x[0-9a-fA-F]+|\d+):(0x[0-9a-fA-F]+|\d+):(0x[0-9a-fA-F]+|\d+)\]?$/;

/** Parses "[0x200000400:0x1:0x0]" (brackets optional, as lfs fid2path accepts). */
export function parseFid(text: string): Fid {
  const m = FID_RE.exec(text.trim());
  if (!m) throw err('EINVAL', `invalid FID '${text}'`);
  const fid = { seq: Number(m[1]), oid: Number(m[2]), ver: Number(m[3]) };
  if (!isValidFid(fid)) throw err('EINVAL', `invalid FID '${text}'`);
  return fid;
}

export function isValidFid(f: unknown): f is Fid {
  if (!f || typeof f !== 'object') return false;
  const x = f as Record<string, unknown>;
  return (
    Number.isSafeInteger(x.seq) && (x.seq as number) >= 0 &&
    Number.isInteger(x.oid) && (x.oid as number) >= 0 && (x.oid as number) <= 0xffffffff &&
    Number.isInteger(x.ver) && (x.ver as number) >= 0 && (x.ver as number) <= 0xffffffff
  );
}

export function fidEquals(a: Fid, b: Fid): boolean {
  return a.seq === b.seq && a.oid === b.oid && a.ver === b.ver;
}

/** IDIF sequence of OST objects created by MDT0 on OST `ostIdx` (reference §1). */
export function idifSeq(ostIdx: number): number {
  return 0x100000000 + ostIdx * 0x10000;
}

/**
 * Inode number of a FID on 64-bit hosts, as Lustre's fid_flatten(): stable
 * across clients and restarts, so ls -i and find -inum agree everywhere.
 */
export function fidToIno(f: Fid): bigint {
  const seq = BigInt(f.seq);
  const ino = ((seq << 24n) + (seq >> 24n) * 0xffffffn + BigInt(f.oid)) & 0xffffffffffffffffn;
  return ino === 0n ? BigInt(f.oid) : ino;
}
