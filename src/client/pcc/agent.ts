/**
 * The HSM agent of a PCC mount (reference §6: "RW-PCC is an HSM backend"): the mount's own
 * client registers with the MDT's coordinator for the rwid of every read-write backend, so
 * the coordinator hands it the ARCHIVE that attaches a file and the RESTORE that brings the
 * data of an attached file back to the OSTs when another client (or `lfs pcc detach`) needs
 * it. The copying is the host's (PccManager); this part speaks the protocol: begin,
 * progress while the copy runs, end, as the copytool does (src/hsm/copytool.ts).
 */
import type { Logger } from '../../common/log.js';
import { err, toStriaError, type StriaError } from '../../common/errno.js';
import { fidToString } from '../../common/fid.js';
import type { StriaClient } from '../client.js';
import type { HsmActionItem, HsmActionList, HsmProgressBody } from '../../hsm/protocol.js';

export interface Copied {
  dataVersion: string;
  size: number;
  checksum: string;
}

export interface AgentTask {
  item: HsmActionItem;
  archiveId: number;
  signal: AbortSignal;
  /** bytes moved so far, for progress reports */
  bytes: number;
}

export interface PccAgentHost {
  archive(task: AgentTask): Promise<Copied>;
  restore(task: AgentTask): Promise<Copied>;
  remove(task: AgentTask): Promise<void>;
  /** after the coordinator took the end report: `failure` unless the action succeeded there */
  ended(task: AgentTask, failure: StriaError | undefined): Promise<void>;
}

const PROGRESS_INTERVAL_MS = 1_000;
const REREGISTER_RETRY_MS = 2_000;

export class PccAgent {
  private archiveIds: number[] = [];
  private readonly running = new Map<number, AbortController>();
  private closed = false;
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly client: StriaClient,
    private readonly host: PccAgentHost,
    private readonly log: Logger,
  ) {
    client.onHsmActions((hal) => this.receive(hal));
    // Not from inside the event: the import is not ready for requests yet (see copytool.ts).
    client.onMdtReconnect(() => setImmediate(() => void this.register()));
  }

  /** Serves these archive ids (none: not an agent at all; an empty list would mean "every archive"). */
  async serve(ids: number[]): Promise<void> {
    this.archiveIds = [...new Set(ids)].sort((a, b) => a - b);
    await this.register(true);
  }

  private async register(throwing = false): Promise<void> {
    if (this.closed) return;
    clearTimeout(this.retryTimer);
    try {
      if (this.archiveIds.length > 0) await this.client.hsm.register(this.archiveIds.slice());
      else await this.client.hsm.unregister();
    } catch (e) {
      const se = toStriaError(e);
      if (throwing) throw se;
      this.log.warn({ err: se.message, archiveIds: this.archiveIds }, 'pcc: agent registration failed, retrying');
      this.retryTimer = setTimeout(() => void this.register(), REREGISTER_RETRY_MS);
      this.retryTimer.unref();
    }
  }

  private receive(hal: HsmActionList): void {
    if (!hal || !Array.isArray(hal.items)) throw err('EINVAL', 'malformed action list', 'BAD_HAL');
    if (this.closed) throw err('ESHUTDOWN', 'the PCC agent is stopping', 'CT_STOPPING');
    for (const item of hal.items) {
      if (item.action === 'CANCEL') {
        this.running.get(item.cookie)?.abort();
        continue;
      }
      if (this.running.has(item.cookie)) continue;
      const abort = new AbortController();
      this.running.set(item.cookie, abort);
      const task: AgentTask = { item, archiveId: hal.archiveId, signal: abort.signal, bytes: 0 };
      void this.run(task).finally(() => this.running.delete(item.cookie));
    }
  }

  private async run(task: AgentTask): Promise<void> {
    const { item } = task;
    const fid = fidToString(item.fid);
    try {
      await this.client.hsm.progress({ cookie: item.cookie, fid: item.fid, phase: 'begin' });
    } catch (e) {
      this.log.warn({ action: item.action, fid, err: toStriaError(e).message }, 'pcc: hsm action refused at begin');
      return;
    }
    let reporting: Promise<void> | undefined;
    const ticker = setInterval(() => {
      reporting ??= this.report(task, { phase: 'progress', bytes: task.bytes }).then(() => undefined).finally(() => (reporting = undefined));
    }, PROGRESS_INTERVAL_MS);
    ticker.unref();
    let failure: StriaError | undefined;
    let archived: Copied | undefined;
    try {
      if (item.action === 'ARCHIVE') archived = await this.host.archive(task);
      else if (item.action === 'RESTORE') archived = await this.host.restore(task);
      else if (item.action === 'REMOVE') await this.host.remove(task);
      else throw err('EINVAL', `unexpected action ${item.action}`, 'BAD_ACTION');
    } catch (e) {
      failure = task.signal.aborted ? err('ECANCELED', 'canceled by request', 'CANCELED') : toStriaError(e);
      if (failure.errno <= 0) failure = err('EIO', failure.message, 'PCC_AGENT_ERROR');
    } finally {
      clearInterval(ticker);
    }
    await reporting;
    const end: Omit<HsmProgressBody, 'cookie' | 'fid'> = failure
      ? { phase: 'end', errval: failure.errno }
      : { phase: 'end', bytes: task.bytes, ...(archived ? { archived } : {}) };
    const accepted = await this.report(task, end);
    if (!failure && !accepted) failure = err('EIO', `the coordinator refused the end of ${item.action} on ${fid}`, 'HSM_END_REFUSED');
    this.log.info({ action: item.action, fid, cookie: item.cookie, bytes: task.bytes, ...(failure ? { err: failure.message } : {}) }, 'pcc: hsm action end');
    await this.host.ended(task, failure).catch((e: unknown) => {
      this.log.warn({ action: item.action, fid, err: toStriaError(e).message }, 'pcc: completing an hsm action failed');
    });
  }

  private async report(task: AgentTask, body: Omit<HsmProgressBody, 'cookie' | 'fid'>): Promise<boolean> {
    try {
      await this.client.hsm.progress({ cookie: task.item.cookie, fid: task.item.fid, ...body });
      return true;
    } catch (e) {
      this.log.warn({ cookie: task.item.cookie, phase: body.phase, err: toStriaError(e).message }, 'pcc: hsm progress report failed');
      return false;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    for (const a of this.running.values()) a.abort();
    if (this.archiveIds.length > 0) await this.client.hsm.unregister().catch(() => undefined);
  }
}
