/**
 * The coordinator's persistent action queue (Lustre keeps it in the hsm_actions llog):
 * one record per action in the MDT's MetadataStore, so WAITING and STARTED actions
 * survive an MDS restart, plus the last cookie handed out.
 *
 *   h:next                      number        the next cookie to hand out
 *   h:a:<cookie, 16 hex>        ActionRecord  one action, any status
 *
 * Fixed-width hex keys scan in cookie order, which is the order requests arrived in.
 * Writes go through one chain, so they reach the store in the order the coordinator
 * made the changes, whatever the backend does with concurrent transactions.
 */
import type { Fid } from '../common/fid.js';
import { isValidFid } from '../common/fid.js';
import type { Raid0Layout } from '../common/layout.js';
import type { MetadataStore } from '../mds/store/types.js';
import type { HsmRequestStatus } from './flags.js';

export const ACTION_KEY_PREFIX = 'h:a:';
export const NEXT_COOKIE_KEY = 'h:next';

/** actions the coordinator queues (CANCEL is a request, not a queued action) */
export type QueuedAction = 'ARCHIVE' | 'RESTORE' | 'REMOVE';

export interface ActionRecord {
  cookie: number;
  action: QueuedAction;
  fid: Fid;
  archiveId: number;
  /** request flags (hal_flags), always 0 for now */
  flags: number;
  extent: { offset: number; length: number };
  /** opaque data for the copytool (lfs hsm_archive --data) */
  data?: string;
  status: HsmRequestStatus;
  /** ms since the epoch: when the request was made, when its status last changed */
  created: number;
  changed: number;
  /** requester, for the logs */
  uid: number;
  /** client UUID of the agent it is STARTED on */
  agent?: string;
  bytesMoved: number;
  /** positive errno of a FAILED or CANCELED action */
  errval?: number;
  /**
   * RESTORE: the fresh objects allocated at dispatch, kept across requeues and restarts
   * so they are reused, installed on success or destroyed on failure, never leaked
   */
  restoreLayout?: Raid0Layout;
}

const PAGE = 1000;
/** upper bound on pages read at load: far above any real queue */
const MAX_PAGES = 100_000;
/** records written per transaction when many change at once */
export const WRITE_BATCH = 1000;

export function actionKey(cookie: number): string {
  return ACTION_KEY_PREFIX + cookie.toString(16).padStart(16, '0');
}

const STATUSES: ReadonlySet<string> = new Set(['WAITING', 'STARTED', 'SUCCEED', 'FAILED', 'CANCELED']);
const ACTIONS: ReadonlySet<string> = new Set(['ARCHIVE', 'RESTORE', 'REMOVE']);

function isActionRecord(v: unknown): v is ActionRecord {
  if (!v || typeof v !== 'object') return false;
  const r = v as Record<string, unknown>;
  return (
    Number.isSafeInteger(r.cookie) && (r.cookie as number) > 0 &&
    typeof r.action === 'string' && ACTIONS.has(r.action) &&
    typeof r.status === 'string' && STATUSES.has(r.status) &&
    isValidFid(r.fid) && Number.isInteger(r.archiveId) &&
    !!r.extent && typeof r.extent === 'object' &&
    typeof r.created === 'number' && typeof r.changed === 'number'
  );
}

/** A copy without undefined fields, frozen in time: what the store gets. */
function snapshot(rec: ActionRecord): ActionRecord {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(rec)) if (v !== undefined) out[k] = v;
  return structuredClone(out) as unknown as ActionRecord;
}

export interface LoadedQueue {
  records: ActionRecord[];
  /** keys that did not hold a readable record */
  unreadable: string[];
  nextCookie: number;
}

export class ActionStore {
  private chain: Promise<void> = Promise.resolve();

  constructor(private readonly store: MetadataStore) {}

  /** Every record in cookie order, and the next cookie (never one already used). */
  async load(): Promise<LoadedQueue> {
    const records: ActionRecord[] = [];
    const unreadable: string[] = [];
    let after: string | undefined;
    for (let page = 0; page < MAX_PAGES; page++) {
      const rows = await this.store.scan<unknown>(ACTION_KEY_PREFIX, after, PAGE);
      for (const [key, value] of rows) {
        if (isActionRecord(value)) records.push(value);
        else unreadable.push(key);
      }
      if (rows.length < PAGE) break;
      after = rows[rows.length - 1]![0];
    }
    const stored = await this.store.get<number>(NEXT_COOKIE_KEY);
    const highest = records.reduce((m, r) => Math.max(m, r.cookie), 0);
    const nextCookie = Math.max(Number.isSafeInteger(stored) ? (stored as number) : 1, highest + 1, 1);
    return { records, unreadable, nextCookie };
  }

  /**
   * Writes `put` (as they are now) and deletes the `del` cookies, in batches, after every
   * write asked for before; resolves when durable.
   */
  write(put: ActionRecord[], del: number[] = [], nextCookie?: number): Promise<void> {
    const puts = put.map(snapshot);
    const dels = [...del];
    const run = async () => {
      let first = true;
      for (let i = 0; first || i < puts.length || i < dels.length; i += WRITE_BATCH) {
        const p = puts.slice(i, i + WRITE_BATCH);
        const d = dels.slice(i, i + WRITE_BATCH);
        const withCounter = first && nextCookie !== undefined;
        first = false;
        if (p.length === 0 && d.length === 0 && !withCounter) break;
        await this.store.transact(async (tx) => {
          if (withCounter) tx.put(NEXT_COOKIE_KEY, nextCookie);
          for (const r of p) tx.put(actionKey(r.cookie), r);
          for (const c of d) tx.del(actionKey(c));
        });
      }
    };
    const result = this.chain.then(run);
    // a failed write must not stop later ones from being attempted (and failing on their own)
    this.chain = result.catch(() => undefined);
    return result;
  }

  /** Resolves once every write asked for so far has finished (either way). */
  flushed(): Promise<void> {
    return this.chain;
  }
}
