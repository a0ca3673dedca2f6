/**
 * HSM states, actions and their names exactly as Lustre's lustre_user.h and lfs print them
 * (reference §7.1, §7.4).
 */
import type { HsmAttrs } from '../common/inode.js';

/** hsm_states bits */
export const HS = {
  NONE: 0,
  EXISTS: 0x1,
  DIRTY: 0x2,
  RELEASED: 0x4,
  ARCHIVED: 0x8,
  NORELEASE: 0x10,
  NOARCHIVE: 0x20,
  LOST: 0x40,
} as const;

export const HS_ALL = 0x7f;
/** the only flags an ordinary user may set or clear (reference §7.1) */
export const HS_USER_MASK = HS.NORELEASE | HS.NOARCHIVE | HS.DIRTY;

/** in lfs hsm_state's word order */
const STATE_NAMES: Array<[number, string]> = [
  [HS.RELEASED, 'released'],
  [HS.EXISTS, 'exists'],
  [HS.DIRTY, 'dirty'],
  [HS.ARCHIVED, 'archived'],
  [HS.NORELEASE, 'never_release'],
  [HS.NOARCHIVE, 'never_archive'],
  [HS.LOST, 'lost_from_hsm'],
];

/** User actions (HUA_*), as sent in MDS_HSM_REQUEST. */
export const HUA = { NOOP: 1, ARCHIVE: 10, RESTORE: 11, RELEASE: 12, REMOVE: 13, CANCEL: 14 } as const;
/** Copytool actions (HSMA_*), as sent to agents. */
export const HSMA = { NONE: 10, ARCHIVE: 20, RESTORE: 21, REMOVE: 22, CANCEL: 23 } as const;
/** Progress phases (lfs hsm_action's view of a running request). */
export const HPS = { WAITING: 1, RUNNING: 2, DONE: 3 } as const;

export type HsmUserAction = 'archive' | 'restore' | 'release' | 'remove' | 'cancel';
/** what a copytool is asked to do */
export type HsmAgentAction = 'ARCHIVE' | 'RESTORE' | 'REMOVE' | 'CANCEL';
/** coordinator request states (lustre_idl.h cdt_agent_req_status) */
export type HsmRequestStatus = 'WAITING' | 'STARTED' | 'SUCCEED' | 'FAILED' | 'CANCELED';

export const HSM_EXTENT_EOF = 0xffffffffffffffffn;

export function hsmFlags(a: HsmAttrs | undefined): number {
  return a?.flags ?? 0;
}

/** "(0x0000000d) released exists archived, archive_id:1" (without the "path: " prefix) */
export function formatHsmState(a: HsmAttrs | undefined): string {
  const flags = hsmFlags(a);
  const words = STATE_NAMES.filter(([bit]) => (flags & bit) !== 0).map(([, name]) => name);
  let s = `(0x${flags.toString(16).padStart(8, '0')})`;
  if (words.length > 0) s += ` ${words.join(' ')}`;
  if (a && a.archiveId !== 0) s += `, archive_id:${a.archiveId}`;
  return s;
}

/** lfs hsm_set / hsm_clear option names to bits */
export const HSM_FLAG_OPTIONS: Record<string, number> = {
  norelease: HS.NORELEASE,
  noarchive: HS.NOARCHIVE,
  dirty: HS.DIRTY,
  exists: HS.EXISTS,
  archived: HS.ARCHIVED,
  lost: HS.LOST,
};

/** A file whose data lives only in the archive. */
export function isReleased(a: HsmAttrs | undefined): boolean {
  return (hsmFlags(a) & HS.RELEASED) !== 0;
}
