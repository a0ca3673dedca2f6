/**
 * The `lustre.lov` extended attribute: lov_user_md v1/v3 as Lustre's tools
 * read and write it (reference §2.3), little-endian.
 *
 *   0  lmm_magic u32          V1 0x0BD10BD0, V3 0x0BD30BD0 (V3 adds a pool)
 *   4  lmm_pattern u32        RAID0 0x1, F_RELEASED 0x80000000
 *   8  lmm_oi: f_seq u64, f_oid u32, f_ver u32    the file's FID (0 for templates)
 *  24  lmm_stripe_size u32
 *  28  lmm_stripe_count u16   0xffff = -1 (all OSTs)
 *  30  lmm_stripe_offset u16  templates: 0xffff = -1; files: lmm_layout_gen
 *  32  v3 only: lmm_pool_name[16], NUL-padded
 *  32 or 48: objects, 24 bytes each: f_seq u64, f_oid u32, f_ver u32, l_ost_gen u32, l_ost_idx u32
 */
import { err } from '../common/errno.js';
import type { Fid } from '../common/fid.js';
import {
  LOV_PATTERN_F_RELEASED,
  LOV_PATTERN_RAID0,
  LOV_USER_MAGIC_V1,
  LOV_USER_MAGIC_V3,
  patternBits,
  type LayoutTemplate,
  type Raid0Layout,
} from '../common/layout.js';
import { normalizeTemplate } from './layout-policy.js';

export const LOV_MD_V1_SIZE = 32;
export const LOV_MD_V3_SIZE = 48;
export const LOV_OBJECT_SIZE = 24;
export const LOV_MAXPOOLNAME = 15;
const U16_ANY = 0xffff;

export function encodeLovEA(layout: Raid0Layout, fileFid: Fid): Buffer {
  const objects = layout.pattern === 'released' ? [] : layout.objects;
  const buf = header(layout.pool, objects.length);
  buf.writeUInt32LE(patternBits(layout) >>> 0, 4); // the released flag is bit 31: JS "|" made it negative
  writeFid(buf, 8, fileFid.seq, fileFid.oid, fileFid.ver);
  buf.writeUInt32LE(layout.stripeSize, 24);
  buf.writeUInt16LE(layout.stripeCount & 0xffff, 28);
  buf.writeUInt16LE(layout.layoutGen & 0xffff, 30);
  let at = layout.pool !== undefined ? LOV_MD_V3_SIZE : LOV_MD_V1_SIZE;
  for (const o of objects) {
    writeFid(buf, at, o.seq, o.oid, 0);
    buf.writeUInt32LE(0, at + 16); // l_ost_gen
    buf.writeUInt32LE(o.ostIdx, at + 20);
    at += LOV_OBJECT_SIZE;
  }
  return buf;
}

/** A directory's default layout, as `lfs getstripe -d` reads it. */
export function encodeLovTemplate(tpl: LayoutTemplate): Buffer {
  const buf = header(tpl.pool, 0);
  buf.writeUInt32LE(LOV_PATTERN_RAID0, 4);
  buf.writeUInt32LE(tpl.stripeSize ?? 0, 24);
  buf.writeUInt16LE(tpl.stripeCount === undefined ? 0 : tpl.stripeCount & 0xffff, 28);
  buf.writeUInt16LE(tpl.stripeOffset === undefined || tpl.stripeOffset < 0 ? U16_ANY : tpl.stripeOffset, 30);
  return buf;
}

/**
 * Reads an untrusted lov_user_md v1/v3 (as `lfs setstripe` sends it) into a
 * validated template. Objects that may follow are ignored: a template only
 * says how to stripe.
 */
export function decodeLovUser(buf: Buffer | Uint8Array): { template: LayoutTemplate } {
  if (!(buf instanceof Uint8Array)) throw err('EINVAL', 'lov_user_md must be bytes', 'BAD_LOV_MD');
  const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.length < LOV_MD_V1_SIZE) throw err('EINVAL', `lov_user_md of ${b.length} bytes is too short`, 'BAD_LOV_MD');
  const magic = b.readUInt32LE(0);
  if (magic !== LOV_USER_MAGIC_V1 && magic !== LOV_USER_MAGIC_V3) {
    throw err('EINVAL', `unsupported lov_user_md magic 0x${magic.toString(16)}`, 'BAD_LOV_MAGIC');
  }
  if (magic === LOV_USER_MAGIC_V3 && b.length < LOV_MD_V3_SIZE) throw err('EINVAL', `lov_user_md_v3 of ${b.length} bytes is too short`, 'BAD_LOV_MD');
  const pattern = b.readUInt32LE(4);
  if (pattern !== 0 && pattern !== LOV_PATTERN_RAID0) {
    throw err('EINVAL', `unsupported layout pattern 0x${pattern.toString(16)}${pattern & LOV_PATTERN_F_RELEASED ? ' (released)' : ''}`, 'BAD_LOV_PATTERN');
  }
  const size = b.readUInt32LE(24);
  const count = b.readUInt16LE(28);
  const offset = b.readUInt16LE(30);
  const raw: Record<string, unknown> = {
    stripeSize: size,
    stripeCount: count === U16_ANY ? -1 : count,
    stripeOffset: offset === U16_ANY ? -1 : offset,
  };
  if (magic === LOV_USER_MAGIC_V3) {
    const field = b.subarray(LOV_MD_V1_SIZE, LOV_MD_V3_SIZE);
    const nul = field.indexOf(0);
    if (nul === -1) throw err('EINVAL', 'pool name is not NUL-terminated', 'BAD_POOL_NAME');
    if (nul > 0) raw.pool = field.subarray(0, nul).toString('latin1');
  }
  return { template: normalizeTemplate(raw) };
}

function header(pool: string | undefined, objectCount: number): Buffer {
  const v3 = pool !== undefined;
  const buf = Buffer.alloc((v3 ? LOV_MD_V3_SIZE : LOV_MD_V1_SIZE) + objectCount * LOV_OBJECT_SIZE);
  buf.writeUInt32LE(v3 ? LOV_USER_MAGIC_V3 : LOV_USER_MAGIC_V1, 0);
  if (v3) {
    const name = Buffer.from(pool, 'latin1');
    if (name.length > LOV_MAXPOOLNAME) throw err('EINVAL', `pool name '${pool}' is longer than ${LOV_MAXPOOLNAME}`, 'BAD_POOL_NAME');
    name.copy(buf, LOV_MD_V1_SIZE);
  }
  return buf;
}

function writeFid(buf: Buffer, at: number, seq: number, oid: number, ver: number): void {
  buf.writeBigUInt64LE(BigInt(seq), at);
  buf.writeUInt32LE(oid, at + 8);
  buf.writeUInt32LE(ver, at + 12);
}
