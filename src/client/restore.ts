/**
 * Implicit HSM restore (reference §7.3 "Implicit restore"): I/O that finds a file's layout
 * released asks the coordinator for a RESTORE and waits until the MDT shows a layout with
 * objects again. Every access to one file from this client shares one request and one wait.
 */
import { err, StriaError, toStriaError } from '../common/errno.js';
import { fidKey, fidToString, type Fid } from '../common/fid.js';
import type { Inode } from '../common/inode.js';
import type { HsmActionReply, HsmRequestReply } from '../hsm/protocol.js';
import type { Cred } from './mdc.js';

/** What a restore needs from the client: the MDT's HSM calls and a fresh inode. */
export interface RestoreCalls {
  /** MDS_HSM_REQUEST {action: 'restore', fids: [fid]} with the caller's credentials */
  requestRestore(fid: Fid, cred: Cred | undefined): Promise<HsmRequestReply>;
  /** MDS_HSM_ACTION: what the coordinator is doing with the file */
  action(fid: Fid): Promise<HsmActionReply>;
  /** the MDT's inode, not cached */
  getattr(fid: Fid): Promise<Inode>;
}

export interface RestoreOptions {
  /** how long one access waits for the data to come back (default 1 h) */
  timeoutMs?: number;
  /** first pause between checks; it doubles up to maxDelayMs */
  minDelayMs?: number;
  maxDelayMs?: number;
}

export const DEFAULT_RESTORE_TIMEOUT_MS = 3_600_000;
const MIN_DELAY_MS = 20;
const MAX_DELAY_MS = 1_000;

/** A regular file whose data lives only in the archive. */
export function isReleasedInode(inode: Inode): boolean {
  return inode.type === 'reg' && inode.layout?.pattern === 'released';
}

export class RestoreWaiter {
  private readonly waits = new Map<string, Promise<Inode>>();
  private readonly closing = new AbortController();

  constructor(
    private readonly calls: RestoreCalls,
    private readonly opts: RestoreOptions = {},
  ) {}

  /**
   * Resolves with the file's inode once its layout is no longer released. Rejects with EIO
   * (RESTORE_FAILED) when the coordinator has nothing left to do for the file and it is
   * still released, ETIMEDOUT (RESTORE_TIMEOUT) after the restore timeout, or the MDT's
   * error when the request itself is refused. `cred` is the first caller's.
   */
  restore(fid: Fid, cred?: Cred): Promise<Inode> {
    const key = fidKey(fid);
    let w = this.waits.get(key);
    if (!w) {
      w = this.run(fid, cred).finally(() => this.waits.delete(key));
      this.waits.set(key, w);
    }
    return w;
  }

  /** Waits in progress end with ESHUTDOWN (the client is unmounting). */
  close(): void {
    this.closing.abort();
  }

  private async run(fid: Fid, cred: Cred | undefined): Promise<Inode> {
    const shown = fidToString(fid);
    const timeoutMs = this.opts.timeoutMs ?? DEFAULT_RESTORE_TIMEOUT_MS;
    const deadline = Date.now() + timeoutMs;
    let inode = await this.calls.getattr(fid);
    // Restored meanwhile (by another access, another client or lfs hsm_restore): nothing to ask for.
    if (!isReleasedInode(inode)) return inode;
    try {
      await this.calls.requestRestore(fid, cred);
    } catch (e) {
      const se = toStriaError(e);
      throw new StriaError(se.errno, `cannot restore ${shown}: ${se.message}`, se.code);
    }
    let delay = this.opts.minDelayMs ?? MIN_DELAY_MS;
    const maxDelay = this.opts.maxDelayMs ?? MAX_DELAY_MS;
    for (;;) {
      // The action first, then the layout: an action gone before a layout still released
      // means the restore ended without installing one.
      const action = await this.calls.action(fid);
      inode = await this.calls.getattr(fid);
      if (!isReleasedInode(inode)) return inode;
      if (!restorePending(action)) {
        throw err('EIO', `restore of ${shown} failed: the coordinator has no restore for it and it is still released`, 'RESTORE_FAILED');
      }
      const left = deadline - Date.now();
      if (left <= 0) throw err('ETIMEDOUT', `restore of ${shown} did not complete in ${Math.round(timeoutMs / 1000)} s`, 'RESTORE_TIMEOUT');
      await this.sleep(Math.min(delay, left));
      delay = Math.min(delay * 2, maxDelay);
    }
  }

  private sleep(ms: number): Promise<void> {
    const signal = this.closing.signal;
    if (signal.aborted) return Promise.reject(err('ESHUTDOWN', 'the client is unmounting', 'CLIENT_CLOSED'));
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        clearTimeout(timer);
        reject(err('ESHUTDOWN', 'the client is unmounting', 'CLIENT_CLOSED'));
      };
      const timer = setTimeout(() => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }
}

/** A RESTORE still queued or running on the file. */
export function restorePending(a: HsmActionReply): boolean {
  if (a.action !== 'RESTORE') return false;
  if (a.status === 'SUCCEED' || a.status === 'FAILED' || a.status === 'CANCELED') return false;
  return a.phase !== 'DONE';
}
