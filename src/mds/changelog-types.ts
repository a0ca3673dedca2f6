/**
 * MDT changelog record types and shapes (reference §8.5). The MDT appends a record for
 * every namespace change; consumers (the HSM policy engine, lfs changelog) read them in
 * order and clear what they have processed.
 */
import type { Fid } from '../common/fid.js';
import type { Timestamp } from '../common/time.js';

export const CL = {
  MARK: 0,
  CREAT: 1,
  MKDIR: 2,
  HLINK: 3,
  SLINK: 4,
  MKNOD: 5,
  UNLNK: 6,
  RMDIR: 7,
  RENME: 8,
  RNMTO: 9,
  OPEN: 10,
  CLOSE: 11,
  LYOUT: 12,
  TRUNC: 13,
  SATTR: 14,
  XATTR: 15,
  HSM: 16,
  MTIME: 17,
  CTIME: 18,
  ATIME: 19,
} as const;

/** UNLNK flags: the last link went (CLF_UNLINK_LAST) and an archive copy exists (CLF_UNLINK_HSM_EXISTS) */
export const CLF_UNLINK_LAST = 0x1;
export const CLF_UNLINK_HSM_EXISTS = 0x2;

/** HSM record flags: error (7 bits), event (3 bits), then DIRTY (reference §7.5) */
export const CLF_HSM_EVENT = { ARCHIVE: 0, RESTORE: 1, CANCEL: 2, RELEASE: 3, REMOVE: 4, STATE: 5 } as const;
export function hsmRecordFlags(event: number, errval = 0, dirty = false): number {
  return (errval & 0x7f) | ((event & 0x7) << 7) | (dirty ? 1 << 10 : 0);
}

/** What the MDT hands to the changelog; index and time are added on append. */
export interface ChangelogInput {
  type: number;
  /** target: the file the record is about */
  tfid: Fid;
  /** parent directory and name, for namespace records */
  pfid?: Fid;
  name?: string;
  flags?: number;
  uid?: number;
  gid?: number;
  /** renames: the source */
  sfid?: Fid;
  spfid?: Fid;
  sname?: string;
  jobid?: string;
  nid?: string;
}

export interface ChangelogRecord extends ChangelogInput {
  index: number;
  time: Timestamp;
}

/** The part of the changelog the MDT's request handlers call. */
export interface ChangelogSink {
  /** appends when at least one user is registered and the type is in the mask; never throws to the caller's operation */
  append(rec: ChangelogInput): Promise<void>;
}
