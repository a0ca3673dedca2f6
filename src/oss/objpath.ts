/**
 * Where an OST object lives on disk, as ldiskfs lays it out (reference §1):
 * `O/<seq>/d<objid % 32>/<objid>`. The legacy MDT0 sequence 0 and the IDIF
 * sequences (0x1_0000_0000..0x1_ffff_ffff) share sequence directory `0` with
 * decimal names; normal sequences use their hex number, and hex object names.
 */
import { err } from '../common/errno.js';
import { FID_SEQ_NORMAL } from '../common/fid.js';
import { ostName } from '../common/targets.js';

const IDIF_FIRST = 0x100000000;
const IDIF_LAST = 0x1ffffffff;
const SUBDIRS = 32;

/** Objects of one sequence directory share one LAST_ID. */
export interface ObjectGroup {
  /** relative to the target directory, e.g. "O/0" or "O/200000400" */
  readonly dir: string;
  /** true for sequence 0 and IDIF: names are decimal object ids */
  readonly legacy: boolean;
}

export interface ObjectLocation {
  readonly group: ObjectGroup;
  /** relative to the target directory, e.g. "O/0/d5" */
  readonly subdir: string;
  /** relative to the target directory, e.g. "O/0/d5/37" */
  readonly path: string;
  /** the id the file is named by (for IDIF: the 48-bit legacy object id) */
  readonly objid: number;
}

export function isIdifSeq(seq: number): boolean {
  return seq >= IDIF_FIRST && seq <= IDIF_LAST;
}

/** OST index encoded in an IDIF sequence: seq = 1<<32 | ost_idx<<16 | objid>>32. */
export function idifOstIndex(seq: number): number {
  return Math.floor((seq - IDIF_FIRST) / 0x10000);
}

/**
 * The sequence directory of `seq` on OST `ostIndex`; throws EINVAL for
 * sequences an OST never stores (reserved ranges, another OST's IDIF).
 */
export function objectGroup(seq: number, ostIndex: number, fsname: string): ObjectGroup {
  if (!Number.isSafeInteger(seq) || seq < 0) throw err('EINVAL', `invalid sequence ${seq}`, 'BAD_SEQUENCE');
  if (seq === 0) return { dir: 'O/0', legacy: true };
  if (isIdifSeq(seq)) {
    const owner = idifOstIndex(seq);
    if (owner !== ostIndex) {
      // Both OSTs would name their objects O/0/d*/<objid>: accepting it would alias them.
      throw err(
        'EINVAL',
        `sequence 0x${seq.toString(16)} is IDIF of ${ostName(fsname, owner)}, this is ${ostName(fsname, ostIndex)}`,
        'WRONG_SEQUENCE',
      );
    }
    return { dir: 'O/0', legacy: true };
  }
  if (seq >= FID_SEQ_NORMAL) return { dir: `O/${seq.toString(16)}`, legacy: false };
  throw err('EINVAL', `sequence 0x${seq.toString(16)} is reserved and holds no OST objects`, 'BAD_SEQUENCE');
}

export function objectLocation(seq: number, oid: number, ostIndex: number, fsname: string): ObjectLocation {
  const group = objectGroup(seq, ostIndex, fsname);
  if (!Number.isInteger(oid) || oid < 0 || oid > 0xffffffff) throw err('EINVAL', `invalid object id ${oid}`, 'BAD_OBJECT_ID');
  // IDIF keeps bits 32..47 of the legacy object id in the low 16 bits of the sequence.
  const objid = isIdifSeq(seq) ? (seq % 0x10000) * 0x100000000 + oid : oid;
  const subdir = `${group.dir}/d${objid % SUBDIRS}`;
  const name = group.legacy ? objid.toString(10) : objid.toString(16);
  return { group, subdir, path: `${subdir}/${name}`, objid };
}

/** Relative paths of the 32 hash directories of a group. */
export function groupSubdirs(group: ObjectGroup): string[] {
  return Array.from({ length: SUBDIRS }, (_, i) => `${group.dir}/d${i}`);
}

export function describeObject(seq: number, oid: number): string {
  return `0x${seq.toString(16)}:0x${oid.toString(16)}`;
}
