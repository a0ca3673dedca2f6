/**
 * LDLM messages (reference §3.2/§3.3), as MessagePack bodies.
 *
 * Client -> server:
 *   LDLM_ENQUEUE  EnqueueRequest  -> EnqueueReply
 *   LDLM_CANCEL   CancelRequest   -> {}
 * Server -> client (over the client's own connection):
 *   LDLM_BL_CALLBACK  BlockingAst    -> {}          "give this lock back"
 *   LDLM_CP_CALLBACK  CompletionAst  -> {}          "your waiting lock is granted"
 *   LDLM_GL_CALLBACK  GlimpseAst     -> GlimpseReply "what size do you know?"
 *
 * A lock is named by the server's handle; `cookie` is the client's own handle for
 * it, echoed in every callback so the client finds its lock without a table lookup
 * race. Resources are strings: a FID key on an MDT, "seq:oid" on an OST.
 */
import { z } from 'zod';
import { zSafeUint, zTimestamp, zU32 } from '../common/validate.js';
import type { ObjAttr } from '../common/statfs.js';
import { EXTENT_EOF, type Extent } from './extent.js';
import { INODELOCK_FULL } from './inodebits.js';
import { LockMode } from './modes.js';

/** LDLM_FL_* bits that travel in requests */
export const LdlmFlag = {
  /** refuse instead of queueing (LDLM_FL_BLOCK_NOWAIT) */
  BLOCK_NOWAIT: 0x1,
  /** grant the requested extent only (LDLM_FL_NO_EXPANSION) */
  NO_EXPANSION: 0x2,
} as const;

const zMode = z.union([
  z.literal(LockMode.EX), z.literal(LockMode.PW), z.literal(LockMode.PR), z.literal(LockMode.CW),
  z.literal(LockMode.CR), z.literal(LockMode.NL), z.literal(LockMode.GROUP),
]);
const zExtent = z.object({ start: zSafeUint, end: zSafeUint }).refine((e) => e.start <= e.end && e.end <= EXTENT_EOF, 'extent start must not exceed end');
const zResource = z.string().min(1).max(128);
const zHandles = z.array(zSafeUint).max(1024);

export const LockIntent = { GLIMPSE: 'glimpse' } as const;

export const EnqueueRequest = z.object({
  res: zResource,
  type: z.enum(['extent', 'ibits', 'plain']),
  mode: zMode,
  extent: zExtent.optional(),
  bits: z.number().int().min(1).max(INODELOCK_FULL).optional(),
  gid: zU32.optional(),
  flags: zU32.optional(),
  cookie: zSafeUint,
  /** early lock cancel: server handles of this client's locks to drop first */
  cancels: zHandles.optional(),
  intent: z.literal(LockIntent.GLIMPSE).optional(),
});
export type EnqueueRequest = z.infer<typeof EnqueueRequest>;

export type EnqueueStatus = 'granted' | 'waiting' | 'aborted';

/** OST lock value block: the object's attributes when the reply was made. */
export type Lvb = ObjAttr;

export interface EnqueueReply {
  status: EnqueueStatus;
  /** server handle; 0 when nothing was queued (aborted glimpse) */
  handle: number;
  mode: LockMode;
  /** the granted extent (granted) or the requested one (waiting) */
  extent?: Extent;
  bits?: number;
  lvb?: Lvb;
}

export const CancelRequest = z.object({ handles: zHandles });
export type CancelRequest = z.infer<typeof CancelRequest>;

export const BlockingAst = z.object({ handle: zSafeUint, cookie: zSafeUint });
export type BlockingAst = z.infer<typeof BlockingAst>;

export const CompletionAst = z.object({
  handle: zSafeUint,
  cookie: zSafeUint,
  extent: zExtent.optional(),
  lvb: z.object({ size: zSafeUint, blocks: zSafeUint, atime: zTimestamp, mtime: zTimestamp, ctime: zTimestamp, ver: z.string().max(64).optional() }).optional(),
});
export type CompletionAst = z.infer<typeof CompletionAst>;

export const GlimpseAst = z.object({ handle: zSafeUint, cookie: zSafeUint });
export type GlimpseAst = z.infer<typeof GlimpseAst>;

/** The size the holder knows for the object (its KMS); absent when it knows nothing newer. */
export const GlimpseReply = z.object({ size: zSafeUint.optional() });
export type GlimpseReply = z.infer<typeof GlimpseReply>;

/** Resource name of an OST object in the OST's namespace. */
export function objectResource(seq: number, oid: number): string {
  return `${seq}:${oid}`;
}
