/**
 * HSM wire bodies between clients, copytools and the coordinator in the MDT (reference §7.3).
 *
 * Client -> MDT:
 *   MDS_HSM_REQUEST     HsmRequestBody | HsmReleaseBody -> HsmRequestReply | { inode }
 *   MDS_HSM_STATE_GET   { fid }                         -> HsmStateReply
 *   MDS_HSM_STATE_SET   HsmStateSetBody                 -> HsmStateReply
 *   MDS_HSM_ACTION      { fid }                         -> HsmActionReply
 * Copytool -> MDT (over its own MDC import: the export is the agent):
 *   MDS_HSM_CT_REGISTER   HsmCtRegisterBody -> {}
 *   MDS_HSM_CT_UNREGISTER {}               -> {}
 *   MDS_HSM_PROGRESS      HsmProgressBody  -> {}
 * MDT -> copytool (server-to-client request on the agent's connection, like a lock AST):
 *   LDLM_SET_INFO { key: 'hsm_actions', hal: HsmActionList } -> {}
 */
import { z } from 'zod';
import { zFid, zSafeUint, zTimestamp, zU32 } from '../common/validate.js';
import type { Fid } from '../common/fid.js';
import type { Raid0Layout } from '../common/layout.js';
import type { Timestamp } from '../common/time.js';
import type { Inode } from '../common/inode.js';
import type { HsmAgentAction, HsmRequestStatus } from './flags.js';

export { parseBody } from '../common/validate.js';

/** most files one request may name (lfs splits longer lists) */
export const HSM_REQUEST_MAX_FIDS = 1024;
/** LDLM_SET_INFO key of an action list pushed to a copytool */
export const HSM_ACTIONS_KEY = 'hsm_actions';

/** archive / restore / remove / cancel of one or more files, queued by the coordinator */
export const HsmRequestBody = z.object({
  action: z.enum(['archive', 'restore', 'remove', 'cancel']),
  /** archive and remove: the archive to use (0 or absent: the MDT's default_archive_id / the file's) */
  archiveId: zU32.optional(),
  fids: z.array(zFid).min(1).max(HSM_REQUEST_MAX_FIDS),
  /** opaque data handed to the copytool (lfs hsm_archive --data) */
  data: z.string().max(4096).optional(),
});
export type HsmRequestBody = z.infer<typeof HsmRequestBody>;

/** one cookie per fid, in order; 0 when there was nothing to do (e.g. restore of a file that is not released) */
export interface HsmRequestReply {
  cookies: number[];
}

/**
 * Synchronous release (reference §7.2): what the releasing client saw of the file, so the
 * MDT keeps the same size and times and refuses when the data moved on since the archive.
 */
export const HsmReleaseBody = z.object({
  action: z.literal('release'),
  fid: zFid,
  dataVersion: z.string().min(1).max(128),
  size: zSafeUint,
  atime: zTimestamp,
  mtime: zTimestamp,
  ctime: zTimestamp,
});
export type HsmReleaseBody = z.infer<typeof HsmReleaseBody>;
export interface HsmReleaseReply {
  inode: Inode;
}

export const HsmFidBody = z.object({ fid: zFid });

export const HsmStateSetBody = z.object({
  fid: zFid,
  /** HS_* bits to set, then bits to clear */
  set: zU32,
  clear: zU32,
  /** with --archive-id: the archive the copy lives in */
  archiveId: zU32.optional(),
  /**
   * Only the objects' times changed (utimes under PW locks on every object): the archive copy
   * still matches, so its recorded data version moves from `from` to `to`. Ignored unless
   * `from` is the recorded version and the file is archived and clean.
   */
  rebase: z.object({ from: z.string().min(1).max(128), to: z.string().min(1).max(128) }).optional(),
});
export type HsmStateSetBody = z.infer<typeof HsmStateSetBody>;

export interface HsmStateReply {
  flags: number;
  archiveId: number;
}

/** lfs hsm_action: the request currently queued or running on a file, if any */
export interface HsmActionReply {
  action: 'NOOP' | HsmAgentAction;
  status?: HsmRequestStatus;
  /** WAITING, RUNNING or DONE (lfs prints it after the action) */
  phase?: 'WAITING' | 'RUNNING' | 'DONE';
  bytesMoved: number;
  extent: { offset: number; length: number };
}

export const HsmCtRegisterBody = z.object({
  /** archive ids this agent serves; empty: every archive */
  archiveIds: z.array(zU32).max(1024),
});

/**
 * Copytool progress on one action. `end` completes it: errval 0 is success, otherwise a
 * positive errno; with `retry` the coordinator queues it again instead of failing it.
 */
export const HsmProgressBody = z.object({
  cookie: zSafeUint,
  fid: zFid,
  phase: z.enum(['begin', 'progress', 'end']),
  /** bytes moved so far */
  bytes: zSafeUint.optional(),
  errval: zU32.optional(),
  retry: z.boolean().optional(),
  /** ARCHIVE end: the data version that was copied, its size and checksum */
  archived: z.object({ dataVersion: z.string().min(1).max(128), size: zSafeUint, checksum: z.string().min(1).max(256) }).optional(),
});
export type HsmProgressBody = z.infer<typeof HsmProgressBody>;

/** What a copytool is told to do with one file (Lustre's hsm_action_item). */
export interface HsmActionItem {
  action: HsmAgentAction;
  fid: Fid;
  cookie: number;
  extent: { offset: number; length: number };
  data?: string;
  /**
   * RESTORE: the fresh objects to write the data into (the MDT installs them as the file's
   * layout when the restore succeeds), the size and checksum recorded at archive time, and
   * the times to give the objects so stat does not change.
   */
  restore?: { layout: Raid0Layout; size: number; checksum?: string; atime: Timestamp; mtime: Timestamp };
}

/** Lustre's hsm_action_list */
export interface HsmActionList {
  version: 1;
  fsname: string;
  archiveId: number;
  flags: number;
  items: HsmActionItem[];
}
