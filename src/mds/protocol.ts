/** MDS request bodies, validated with zod before any handler touches them. */
import { z } from 'zod';
import { zFid, zSafeUint, zTimestamp, zU32 } from '../common/validate.js';
import { ReintOp } from '../ptlrpc/opcodes.js';

export { parseBody } from '../common/validate.js';

const name = z.string().min(1).max(4096);
const fileType = z.enum(['reg', 'dir', 'lnk', 'chr', 'blk', 'fifo', 'sock']);
const bytes = z.instanceof(Uint8Array);

export const LayoutRequest = z.object({
  stripeSize: zSafeUint.optional(),
  stripeCount: z.number().int().min(-1).max(2000).optional(),
  stripeOffset: z.number().int().min(-1).max(0xffff).optional(),
  pool: z.string().max(15).optional(),
});
export type LayoutRequest = z.infer<typeof LayoutRequest>;

export const MdsConnectData = z.object({ fsname: z.string().min(1).max(8) });
/** An intent: also grant the client a PR inodebits lock on the inode, named by its cookie. */
const LockIntent = z.object({ cookie: zSafeUint }).optional();
export const FidBody = z.object({ fid: zFid, lock: LockIntent });
export const LookupBody = z.object({ parent: zFid, name, lock: LockIntent });
/** Early lock cancel: handles of the sender's own locks that a modifying request would revoke. */
export const EarlyCancels = z.object({ cancels: z.array(zSafeUint).max(64).optional() });
/** `modified`: data was written through this handle (the archive copy, if any, is stale now) */
export const CloseBody = z.object({ fid: zFid, handle: zSafeUint, modified: z.boolean().optional() });
export const ReadpageBody = z.object({ fid: zFid, cookie: zSafeUint, limit: z.number().int().min(1).max(10000) });
export const GetxattrBody = z.union([
  z.object({ fid: zFid, name: z.string().min(1).max(4096) }),
  z.object({ fid: zFid, list: z.literal(true) }),
]);
export const SetInfoBody = z.object({ key: z.literal('dir_default'), fid: zFid, template: LayoutRequest.nullable() });

export const CreateReint = z.object({
  op: z.literal(ReintOp.CREATE),
  parent: zFid,
  name,
  fid: zFid,
  type: fileType,
  mode: zU32,
  uid: zU32,
  gid: zU32,
  rdev: zU32.optional(),
  target: z.string().min(1).max(4095).optional(),
  layout: LayoutRequest.optional(),
  open: z.boolean().optional(),
});
export const OpenReint = z.object({ op: z.literal(ReintOp.OPEN), fid: zFid, flags: zU32 });
export const LinkReint = z.object({ op: z.literal(ReintOp.LINK), fid: zFid, parent: zFid, name });
export const UnlinkReint = z.object({ op: z.literal(ReintOp.UNLINK), parent: zFid, name, dir: z.boolean() });
export const RenameReint = z.object({
  op: z.literal(ReintOp.RENAME),
  srcParent: zFid,
  srcName: name,
  dstParent: zFid,
  dstName: name,
  noReplace: z.boolean().optional(),
  exchange: z.boolean().optional(),
});
export const SetattrReint = z.object({
  op: z.literal(ReintOp.SETATTR),
  fid: zFid,
  attrs: z.object({
    mode: zU32.optional(),
    uid: zU32.optional(),
    gid: zU32.optional(),
    size: zSafeUint.optional(),
    atime: zTimestamp.optional(),
    mtime: zTimestamp.optional(),
    ctime: zTimestamp.optional(),
  }),
});
export const SetxattrReint = z.object({
  op: z.literal(ReintOp.SETXATTR),
  fid: zFid,
  name: z.string().min(1).max(4096),
  /** absent: remove the attribute */
  value: bytes.optional(),
  create: z.boolean().optional(),
  replace: z.boolean().optional(),
});

export const ReintBody = z.discriminatedUnion('op', [CreateReint, OpenReint, LinkReint, UnlinkReint, RenameReint, SetattrReint, SetxattrReint]);
export type ReintBody = z.infer<typeof ReintBody>;

export interface MdsConnectReply {
  fsname: string;
  index: number;
  root: { seq: number; oid: number; ver: number };
  fsDefault: { stripeSize: number; stripeCount: number };
}

export type { StatFs as MdtStatfs } from '../common/statfs.js';
