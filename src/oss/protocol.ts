/**
 * Bodies of the OST requests and replies. The OST validates every request body
 * with these schemas before touching anything; clients may validate replies.
 */
import { z } from 'zod';
import { StriaError, err } from '../common/errno.js';
import { parseBody, zSafeUint, zTimestamp, zU32 } from '../common/validate.js';
import { MAX_IO_BYTES, MAX_OBJECT_BYTES, MAX_PRECREATE, MAX_WRITE_SEGMENTS } from './limits.js';
import type { ObjAttr, StatFs } from '../common/statfs.js';

export { MAX_IO_BYTES, MAX_OBJECT_BYTES, MAX_PRECREATE, MAX_WRITE_SEGMENTS } from './limits.js';

const seq = zSafeUint;
const oid = zU32;
const offset = zSafeUint;
const fsname = z.string().regex(/^[A-Za-z0-9_-]{1,8}$/, 'filesystem name: 1-8 of [A-Za-z0-9_-]');

/** OST_CONNECT connect data. */
export const OstConnectData = z.object({ fsname });
export type OstConnectData = z.infer<typeof OstConnectData>;
/** `grant`: bytes of space this export holds (a new export: its initial grant). */
export const OstConnectReply = z.object({ index: z.number().int().min(0).max(0xffff), fsname, uuid: z.string(), grant: zSafeUint.optional() });
export type OstConnectReply = z.infer<typeof OstConnectReply>;

/** OST_CREATE: precreate `count` objects; orphan cleanup first when `deleteOrphansAbove` is set. */
export const OstCreateRequest = z.object({
  seq,
  count: z.number().int().min(1).max(MAX_PRECREATE),
  /** the MDT's last used oid: precreated objects above it are destroyed */
  deleteOrphansAbove: oid.optional(),
});
export type OstCreateRequest = z.infer<typeof OstCreateRequest>;
export const OstCreateReply = z.object({ seq, first: oid, last: oid, orphansDeleted: zSafeUint.optional() });
export type OstCreateReply = z.infer<typeof OstCreateReply>;

/** OST_READ: reply body { n } and n bytes of bulk. */
export const OstReadRequest = z
  .object({ seq, oid, offset, length: z.number().int().min(0).max(MAX_IO_BYTES) })
  .refine((b) => b.offset <= MAX_OBJECT_BYTES - b.length, { path: ['length'], message: 'offset + length is beyond 2^53' });
export type OstReadRequest = z.infer<typeof OstReadRequest>;

/**
 * OST_WRITE: the data is the request bulk. `grantUsed`: bytes of it the client counted
 * against its grant; `grantWant`: the grant the client would like to hold after the reply.
 */
export const OstWriteRequest = z.object({
  seq,
  oid,
  offset,
  /**
   * Lustre's niobufs: several [offset, length] ranges of the object in one RPC, in
   * increasing order and apart; the bulk is their bytes one after the other, and `offset`
   * is the first one's. Without it the bulk goes to `offset` whole.
   */
  segs: z.array(z.tuple([offset, z.number().int().min(1).max(MAX_IO_BYTES)])).min(1).max(MAX_WRITE_SEGMENTS).optional(),
  sync: z.boolean().optional(),
  /** when the client wrote the bytes, for a write-back cache's late flush (Lustre's obdo mtime) */
  mtime: zTimestamp.optional(),
  grantUsed: z.number().int().min(0).max(MAX_IO_BYTES).optional(),
  grantWant: zSafeUint.optional(),
});
export type OstWriteRequest = z.infer<typeof OstWriteRequest>;

/** Reply of OST_READ: bytes read (the bulk length). */
export const OstIoReply = z.object({ n: zSafeUint });
export type OstIoReply = z.infer<typeof OstIoReply>;

/** Object data version (see ObjectVersions): changes whenever the data or size does. */
export const zObjVersion = z.string().min(1).max(64);

/**
 * Reply of OST_WRITE: bytes written, the object's data version once they landed, and
 * the bytes of grant added to the client's (0 when there is no space to give).
 */
export const OstWriteReply = z.object({ n: zSafeUint, ver: zObjVersion, grant: zSafeUint });
export type OstWriteReply = z.infer<typeof OstWriteReply>;

/** OST_GETATTR and OST_DESTROY. */
export const OstObjectRequest = z.object({ seq, oid });
export type OstObjectRequest = z.infer<typeof OstObjectRequest>;

export const OstSetattrRequest = z.object({ seq, oid, atime: zTimestamp.optional(), mtime: zTimestamp.optional() });
export type OstSetattrRequest = z.infer<typeof OstSetattrRequest>;

/** OST_PUNCH: truncate or extend the object to `size`. */
export const OstPunchRequest = z.object({ seq, oid, size: z.number().int().min(0).max(MAX_OBJECT_BYTES) });
export type OstPunchRequest = z.infer<typeof OstPunchRequest>;

export const OstStatfsRequest = z.object({});
export type OstStatfsRequest = z.infer<typeof OstStatfsRequest>;

/** OST_SYNC: one object, one sequence, or (empty body) the whole OST. */
export const OstSyncRequest = z
  .object({ seq: seq.optional(), oid: oid.optional() })
  .refine((b) => b.oid === undefined || b.seq !== undefined, { path: ['seq'], message: 'required when oid is given' });
export type OstSyncRequest = z.infer<typeof OstSyncRequest>;

/** Reply of OST_DESTROY and OST_SYNC. */
export const OstEmptyReply = z.object({});

/** Reply of OST_GETATTR, OST_SETATTR, OST_PUNCH. */
export const ObjAttrReply = z.object({ size: zSafeUint, blocks: zSafeUint, atime: zTimestamp, mtime: zTimestamp, ctime: zTimestamp, ver: zObjVersion.optional() });
export type ObjAttrReply = ObjAttr;

export const StatFsReply = z.object({ bsize: zSafeUint, blocks: zSafeUint, bfree: zSafeUint, bavail: zSafeUint, files: zSafeUint, ffree: zSafeUint });
export type StatFsReply = StatFs;

/** Validates an untrusted body; failures are EINVAL BAD_REQUEST naming the operation and the field. */
export function parseRequest<T>(schema: z.ZodType<T>, body: unknown, op: string): T {
  try {
    return parseBody(schema, body);
  } catch (e) {
    if (e instanceof StriaError) throw err('EINVAL', `${op}: ${e.message}`, e.code);
    throw e;
  }
}
