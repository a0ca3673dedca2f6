/**
 * The HSM coordinator of one MDT (reference §7.3, Lustre's mdt_coordinator.c and
 * mdt_hsm_cdt_*.c): a persistent queue of archive / restore / remove actions, the
 * copytool agents registered for archive ids, and dispatch of at most max_requests
 * actions at a time to them.
 *
 * Life of an action: WAITING (queued, in the store) -> STARTED (pushed to an agent as an
 * hsm_action_list over LDLM_SET_INFO) -> SUCCEED | FAILED | CANCELED, or back to WAITING
 * when its agent goes away or asks for a retry. Finished actions stay listed in
 * hsm.actions for grace_delay, then their records are purged.
 *
 * Everything the coordinator decides is kept in memory and written through to the store
 * (ActionStore) in the order it was decided; a restart loads the records back and turns
 * STARTED into WAITING (the agents' work is lost with their connections).
 *
 * What a request may do follows mdt_hsm_cdt_client.c: a FID with a WAITING or STARTED
 * action already gets that action's cookie (one restore for many readers); an action the
 * file does not need (archive of an archived clean file, restore of a file that is not
 * released, remove of a file never archived) is answered with cookie 0; an action the
 * file's state forbids is refused. Unlike Lustre, one bad FID refuses the whole request
 * before anything is queued.
 */
import { err, Errno, toStriaError, type ErrnoName } from '../common/errno.js';
import { fidEquals, fidKey, fidToString, type Fid } from '../common/fid.js';
import type { Inode } from '../common/inode.js';
import type { OstObject, Raid0Layout } from '../common/layout.js';
import type { Logger } from '../common/log.js';
import { parseBody } from '../common/validate.js';
import { Opc } from '../ptlrpc/opcodes.js';
import type { ServerExport } from '../ptlrpc/types.js';
import type { MetadataStore } from '../mds/store/types.js';
import { CLF_HSM_EVENT } from '../mds/changelog-types.js';
import { ActionStore, WRITE_BATCH, type ActionRecord, type QueuedAction } from './action-store.js';
import { HS, isReleased, type HsmRequestStatus } from './flags.js';
import {
  HSM_ACTIONS_KEY, HsmProgressBody, HsmRequestBody,
  type HsmActionItem, type HsmActionList, type HsmActionReply, type HsmRequestReply,
} from './protocol.js';

export interface CoordinatorHost {
  readonly fsname: string;
  getInode(fid: Fid): Promise<Inode | undefined>;
  /** fresh objects for restoring `inode`: same stripe count/size/offset/pool as its released stub */
  allocateRestoreLayout(inode: Inode): Promise<Raid0Layout>;
  destroyObjects(objects: OstObject[]): void;
  /** ARCHIVE succeeded and was not dirtied meanwhile: record it on the inode */
  completeArchive(fid: Fid, archiveId: number, result: { dataVersion: string; size: number; checksum: string }): Promise<void>;
  /**
   * RESTORE succeeded: install `layout` as the file's layout (under EX locks), clear
   * RELEASED. `dataVersion`: the restored objects' data version when the copytool reported
   * it (in `archived` of its end), to become archVer so the file can be released again.
   */
  completeRestore(fid: Fid, layout: Raid0Layout, dataVersion?: string): Promise<void>;
  /** REMOVE succeeded: clear EXISTS|ARCHIVED|DIRTY when the inode still exists */
  completeRemove(fid: Fid): Promise<void>;
  /** an HSM event happened (for the changelog): event is CLF_HSM_EVENT.* from src/mds/changelog-types.ts */
  hsmEvent(fid: Fid, event: number, errval: number): void;
}

export interface CoordinatorOptions {
  store: MetadataStore;
  host: CoordinatorHost;
  log: Logger;
  maxRequests?: number; // default 3
  activeRequestTimeoutMs?: number; // default 3600 s
  graceDelayMs?: number; // default 60 s: finished actions stay visible in hsm.actions this long
  loopPeriodMs?: number; // default 10 s; new requests/agents/free slots dispatch at once anyway
  defaultArchiveId?: number; // default 1
  /** an agent whose connection stays down this long loses its STARTED actions (default 2 x loopPeriod, floor 1 s) */
  agentLostMs?: number;
  /** wall clock in ms (default Date.now); the loop's timer still runs on real time */
  clock?: () => number;
}

export type HsmControl = 'enabled' | 'disabled' | 'shutdown' | 'purge';
export const HSM_CONTROLS: readonly HsmControl[] = ['enabled', 'disabled', 'shutdown', 'purge'];

export interface HsmTunables {
  maxRequests: number;
  activeRequestTimeoutMs: number;
  graceDelayMs: number;
  loopPeriodMs: number;
  defaultArchiveId: number;
}
export type HsmTunableName = keyof HsmTunables;

export const HSM_DEFAULTS: Readonly<HsmTunables> = Object.freeze({
  maxRequests: 3,
  activeRequestTimeoutMs: 3600_000,
  graceDelayMs: 60_000,
  loopPeriodMs: 10_000,
  defaultArchiveId: 1,
});

/** extent length meaning "to the end of the file" (Lustre's (u64)-1), as EXTENT_EOF in ldlm */
export const HSM_EXTENT_TO_EOF = Number.MAX_SAFE_INTEGER;
const WHOLE_FILE = { offset: 0, length: HSM_EXTENT_TO_EOF } as const;

/** An agent as hsm.agents shows it. */
export interface AgentView {
  uuid: string;
  /** empty: every archive */
  archiveIds: number[];
  current: number;
  ok: number;
  errors: number;
  connected: boolean;
}

/** An action as hsm.actions / hsm.active_requests show it (a copy). */
export type ActionView = Readonly<ActionRecord>;

interface Agent {
  uuid: string;
  exp: ServerExport;
  archiveIds: number[];
  ok: number;
  errors: number;
  /**
   * a push to it failed on the connection with this conn count: not used until it
   * registers again or its export reconnects (a copytool reconnecting to the same export,
   * as after an MDS restart, does not always register again)
   */
  failedConnCnt?: number;
  /** clock time its connection was first seen down, while it stays down */
  downSince?: number;
}

interface Live {
  rec: ActionRecord;
  /** the agent export it is STARTED on */
  exp?: ServerExport;
  /** bumped at every dispatch, so work of an older dispatch is recognised as stale */
  attempt: number;
  /** an open for write or truncate happened while it was STARTED (ARCHIVE) */
  dirtied: boolean;
  /** clock time of the dispatch or the last progress report */
  lastUpdate: number;
  /** WAITING after a retry: not dispatched again before this clock time */
  holdUntil?: number;
  /**
   * the MDT is completing it (installing a restored layout...): cancel, timeout and
   * requeue leave it alone, so nothing is destroyed under the completion
   */
  completing?: boolean;
}

interface Ended {
  live: Live;
  /** for the changelog: 0 for success */
  errval: number;
  /** a SUCCEED restore whose target objects may not be the file's layout */
  checkTarget: boolean;
}

type Plan =
  | { kind: 'existing'; cookie: number }
  | { kind: 'none' }
  | { kind: 'new'; action: QueuedAction; fid: Fid; archiveId: number };

const EVENT_OF: Record<QueuedAction, number> = {
  ARCHIVE: CLF_HSM_EVENT.ARCHIVE,
  RESTORE: CLF_HSM_EVENT.RESTORE,
  REMOVE: CLF_HSM_EVENT.REMOVE,
};

/** finished records purged per loop pass at most (the rest wait for the next pass) */
const PURGE_PER_PASS = 20 * WRITE_BATCH;
/** bound on the settled() wait loop */
const SETTLE_ROUNDS = 1000;

export class Coordinator {
  readonly tunables: HsmTunables;

  private readonly store: ActionStore;
  private readonly host: CoordinatorHost;
  private readonly log: Logger;
  private readonly clock: () => number;
  private readonly agentLostOpt: number | undefined;
  private readonly tun: HsmTunables;

  private state: Exclude<HsmControl, 'purge'> = 'enabled';
  private running = false;
  private starting: Promise<void> | undefined;
  /** bumped at every start(), so work begun before a stop() never touches the reloaded queue */
  private epoch = 0;
  private timer: NodeJS.Timeout | undefined;
  private nextCookie = 1;

  /** every record, in cookie order */
  private readonly actions = new Map<number, Live>();
  /** fid key -> cookie of its WAITING or STARTED action */
  private readonly byFid = new Map<string, number>();
  /** archive id -> cookies of dispatchable WAITING actions, oldest first */
  private readonly waiting = new Map<number, Set<number>>();
  /** WAITING actions held back after a retry */
  private readonly held = new Set<number>();
  private readonly started = new Set<number>();
  /** finished cookies, in the order they finished */
  private readonly finished = new Set<number>();
  private readonly agents = new Map<string, Agent>();
  private rr = 0;

  private dispatchQueued = false;
  /** loop passes run one after the other */
  private passChain: Promise<void> = Promise.resolve();
  private passesQueued = 0;
  /** work stop() waits for */
  private readonly work = new Set<Promise<unknown>>();
  /** pushes to agents in flight (stop() does not wait for their replies) */
  private readonly pushes = new Set<Promise<unknown>>();

  constructor(opts: CoordinatorOptions) {
    this.store = new ActionStore(opts.store);
    this.host = opts.host;
    this.log = opts.log;
    this.clock = opts.clock ?? Date.now;
    this.tun = { ...HSM_DEFAULTS };
    for (const name of Object.keys(HSM_DEFAULTS) as HsmTunableName[]) {
      const v = opts[name];
      if (v !== undefined) this.tun[name] = checkTunable(name, v);
    }
    if (opts.agentLostMs !== undefined) checkPositive('agentLostMs', opts.agentLostMs);
    this.agentLostOpt = opts.agentLostMs;
    const tunables = {} as HsmTunables;
    for (const name of Object.keys(HSM_DEFAULTS) as HsmTunableName[]) {
      Object.defineProperty(tunables, name, {
        enumerable: true,
        get: () => this.tun[name],
        set: (v: number) => this.setTunable(name, v),
      });
    }
    this.tunables = tunables;
  }

  // ---- lifecycle --------------------------------------------------------------------

  /** Loads the persisted queue (STARTED -> WAITING) and starts the loop. */
  start(): Promise<void> {
    if (this.running) return Promise.resolve();
    this.starting ??= this.load().finally(() => {
      this.starting = undefined;
    });
    return this.starting;
  }

  private async load(): Promise<void> {
    const loaded = await this.store.load();
    for (const key of loaded.unreadable) this.log.warn({ key }, 'hsm: unreadable action record ignored');
    this.actions.clear();
    this.byFid.clear();
    this.waiting.clear();
    this.held.clear();
    this.started.clear();
    this.finished.clear();
    this.nextCookie = loaded.nextCookie;
    const requeued: ActionRecord[] = [];
    const done: Live[] = [];
    const now = this.clock();
    for (const rec of loaded.records) {
      const live: Live = { rec, attempt: 0, dirtied: false, lastUpdate: now };
      this.actions.set(rec.cookie, live);
      if (rec.status === 'STARTED') {
        rec.status = 'WAITING';
        rec.changed = now;
        delete rec.agent;
        requeued.push(rec);
        this.logState(rec, 'requeued after restart');
      }
      if (rec.status === 'WAITING') {
        this.byFid.set(fidKey(rec.fid), rec.cookie);
        this.waitingSet(rec.archiveId).add(rec.cookie);
      } else {
        done.push(live);
      }
    }
    done.sort((a, b) => a.rec.changed - b.rec.changed);
    for (const l of done) this.finished.add(l.rec.cookie);
    if (requeued.length > 0) await this.store.write(requeued);
    this.epoch++;
    this.running = true;
    this.armTimer();
    this.log.info({ actions: this.actions.size, waiting: this.byFid.size, requeued: requeued.length }, 'hsm: coordinator started');
    this.kick();
  }

  /** Stops the loop and waits for work under way; the queue stays in the store. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    for (let i = 0; i < SETTLE_ROUNDS && this.work.size > 0; i++) await Promise.allSettled([...this.work]);
    await this.store.flushed();
    this.log.info({ actions: this.actions.size }, 'hsm: coordinator stopped');
  }

  /** Resolves once no dispatch, loop pass, write or push is under way (tests, orderly shutdown). */
  async settled(): Promise<void> {
    for (let i = 0; i < SETTLE_ROUNDS; i++) {
      if (this.work.size === 0 && this.pushes.size === 0 && !this.dispatchQueued) break;
      await Promise.allSettled([...this.work, ...this.pushes]);
      if (this.dispatchQueued) await new Promise<void>((r) => setImmediate(r));
    }
    await this.store.flushed();
  }

  // ---- control and tunables -----------------------------------------------------------

  get control(): HsmControl {
    return this.state;
  }

  set control(value: HsmControl) {
    const p = this.setControl(value);
    p.catch((e: unknown) => this.log.error({ err: toStriaError(e).message }, 'hsm: control change failed'));
  }

  /**
   * hsm_control: 'enabled' dispatches, 'disabled' queues without dispatching, 'shutdown'
   * refuses new requests and stops dispatching, 'purge' cancels every action and leaves
   * the coordinator enabled. Resolves when a purge is durable.
   */
  setControl(value: string): Promise<void> {
    if (!(HSM_CONTROLS as readonly string[]).includes(value)) {
      throw err('EINVAL', `hsm_control: '${value}' is not one of ${HSM_CONTROLS.join(', ')}`, 'BAD_VALUE');
    }
    const v = value as HsmControl;
    this.log.info({ control: v }, 'hsm: control');
    if (v !== 'purge') {
      this.state = v;
      if (v === 'enabled') this.kick();
      return Promise.resolve();
    }
    const active = [...this.byFid.values()].map((c) => this.actions.get(c)!);
    const cancels = this.cancelMany(active, 'purge');
    this.state = 'enabled';
    return cancels.then(() => this.kick());
  }

  setTunable(name: HsmTunableName, value: number): void {
    if (!(name in HSM_DEFAULTS)) throw err('EINVAL', `unknown HSM tunable ${String(name)}`, 'BAD_VALUE');
    this.tun[name] = checkTunable(name, value);
    if (name === 'loopPeriodMs' && this.running) this.armTimer();
    if (name === 'maxRequests') this.kick();
  }

  get agentLostMs(): number {
    return this.agentLostOpt ?? Math.max(2 * this.tun.loopPeriodMs, 1000);
  }

  // ---- requests -----------------------------------------------------------------------

  /** MDS_HSM_REQUEST archive / restore / remove / cancel: one cookie per fid (0: nothing to do). */
  async request(exp: ServerExport | undefined, cred: { uid: number; gid: number }, body: HsmRequestBody): Promise<HsmRequestReply> {
    const b = parseBody(HsmRequestBody, body);
    if (!this.running || this.state === 'shutdown') {
      throw err('EAGAIN', 'the HSM coordinator is not running (hsm_control=shutdown)', 'HSM_SHUTDOWN');
    }
    // {user,group,other}_request_mask are RESTORE only: anything else needs root
    if (cred.uid !== 0 && b.action !== 'restore') {
      throw err('EPERM', `hsm ${b.action}: only root may ${b.action}; users may only restore`, 'HSM_NOT_PERMITTED');
    }
    if (b.action === 'cancel') return this.cancelRequest(b.fids, exp);
    const action: QueuedAction = b.action === 'archive' ? 'ARCHIVE' : b.action === 'restore' ? 'RESTORE' : 'REMOVE';
    const plans: Plan[] = [];
    for (const fid of b.fids) plans.push(await this.plan(action, fid, b.archiveId ?? 0));
    return this.commit(plans, b, cred, exp);
  }

  /** What one FID of a request needs; throws when the file's state forbids the action. */
  private async plan(action: QueuedAction, fid: Fid, archiveId: number): Promise<Plan> {
    const active = this.byFid.get(fidKey(fid));
    if (active !== undefined) return { kind: 'existing', cookie: active };
    const inode = await this.host.getInode(fid);
    const where = fidToString(fid);
    if (!inode) {
      // the policy engine removes the copies of deleted files by FID
      if (action === 'REMOVE') {
        if (archiveId === 0) throw err('EINVAL', `hsm remove ${where}: no such file; give the archive id`, 'HSM_NEED_ARCHIVE_ID');
        return { kind: 'new', action, fid, archiveId };
      }
      throw err('ENOENT', `hsm ${action.toLowerCase()} ${where}: no such file`);
    }
    const flags = inode.hsm?.flags ?? 0;
    const fileArchive = inode.hsm?.archiveId ?? 0;
    const chosen = archiveId !== 0 ? archiveId : fileArchive !== 0 ? fileArchive : this.tun.defaultArchiveId;
    switch (action) {
      case 'ARCHIVE': {
        if (inode.type !== 'reg') throw err('EINVAL', `hsm archive ${where}: not a regular file`, 'NOT_REGULAR');
        // an archived clean file (released ones included) needs nothing
        if (!(flags & HS.DIRTY) && flags & HS.ARCHIVED) return { kind: 'none' };
        if (flags & HS.NOARCHIVE) throw err('EPERM', `hsm archive ${where}: the file is flagged never_archive`, 'HSM_NOARCHIVE');
        if (flags & HS.EXISTS && archiveId !== 0 && archiveId !== fileArchive) {
          throw err('EPERM', `hsm archive ${where}: its copy is in archive ${fileArchive}, not ${archiveId}`, 'HSM_OTHER_ARCHIVE');
        }
        return { kind: 'new', action, fid, archiveId: chosen };
      }
      case 'RESTORE': {
        if (!(flags & (HS.RELEASED | HS.DIRTY))) return { kind: 'none' };
        if (flags & HS.DIRTY || !(flags & HS.ARCHIVED) || flags & HS.LOST) {
          throw err('EPERM', `hsm restore ${where}: no current archive copy to restore from`, 'HSM_NO_COPY');
        }
        return { kind: 'new', action, fid, archiveId: chosen };
      }
      case 'REMOVE': {
        if (!(flags & (HS.ARCHIVED | HS.EXISTS))) return { kind: 'none' };
        if (flags & HS.RELEASED) throw err('EBUSY', `hsm remove ${where}: released, the archive holds its only copy`, 'HSM_RELEASED');
        return { kind: 'new', action, fid, archiveId: chosen };
      }
    }
  }

  /** Queues the planned actions together: nothing is awaited between checks and queueing. */
  private async commit(plans: Plan[], b: HsmRequestBody, cred: { uid: number }, exp: ServerExport | undefined): Promise<HsmRequestReply> {
    if (!this.running || this.state === 'shutdown') {
      throw err('EAGAIN', 'the HSM coordinator is not running (hsm_control=shutdown)', 'HSM_SHUTDOWN');
    }
    const now = this.clock();
    const created: Live[] = [];
    const cookies: number[] = [];
    for (const p of plans) {
      if (p.kind === 'none') {
        cookies.push(0);
        continue;
      }
      if (p.kind === 'existing') {
        cookies.push(p.cookie);
        continue;
      }
      // another request may have queued this FID while we looked at inodes
      const active = this.byFid.get(fidKey(p.fid));
      if (active !== undefined) {
        cookies.push(active);
        continue;
      }
      const rec: ActionRecord = {
        cookie: this.nextCookie++,
        action: p.action,
        fid: { seq: p.fid.seq, oid: p.fid.oid, ver: p.fid.ver },
        archiveId: p.archiveId,
        flags: 0,
        extent: { ...WHOLE_FILE },
        status: 'WAITING',
        created: now,
        changed: now,
        uid: cred.uid,
        bytesMoved: 0,
      };
      if (b.data !== undefined) rec.data = b.data;
      const live: Live = { rec, attempt: 0, dirtied: false, lastUpdate: now };
      this.actions.set(rec.cookie, live);
      this.byFid.set(fidKey(rec.fid), rec.cookie);
      created.push(live);
      cookies.push(rec.cookie);
    }
    if (created.length === 0) return { cookies };
    try {
      await this.store.write(created.map((l) => l.rec), [], this.nextCookie);
    } catch (e) {
      for (const l of created) {
        this.actions.delete(l.rec.cookie);
        if (this.byFid.get(fidKey(l.rec.fid)) === l.rec.cookie) this.byFid.delete(fidKey(l.rec.fid));
      }
      throw e;
    }
    for (const l of created) {
      this.logState(l.rec, 'queued', { client: exp?.clientUuid });
      // a cancel may have come while the records were being written
      if (l.rec.status === 'WAITING') this.waitingSet(l.rec.archiveId).add(l.rec.cookie);
    }
    this.kick();
    return { cookies };
  }

  private async cancelRequest(fids: Fid[], exp: ServerExport | undefined): Promise<HsmRequestReply> {
    const cookies: number[] = [];
    const lives: Live[] = [];
    for (const fid of fids) {
      const cookie = this.byFid.get(fidKey(fid));
      cookies.push(cookie ?? 0);
      const live = cookie === undefined ? undefined : this.actions.get(cookie);
      if (live && !lives.includes(live)) lives.push(live);
    }
    await this.cancelMany(lives, `cancel request${exp ? ` from ${exp.clientUuid}` : ''}`);
    return { cookies };
  }

  // ---- what clients see ---------------------------------------------------------------

  /** MDS_HSM_ACTION: the WAITING or STARTED action on `fid`. */
  action(fid: Fid): HsmActionReply {
    const cookie = this.byFid.get(fidKey(fid));
    const live = cookie === undefined ? undefined : this.actions.get(cookie);
    if (!live) return { action: 'NOOP', bytesMoved: 0, extent: { offset: 0, length: 0 } };
    const r = live.rec;
    if (r.status === 'STARTED') {
      return { action: r.action, status: r.status, phase: 'RUNNING', bytesMoved: r.bytesMoved, extent: { offset: r.extent.offset, length: r.bytesMoved } };
    }
    return { action: r.action, status: r.status, phase: 'WAITING', bytesMoved: r.bytesMoved, extent: { ...r.extent } };
  }

  hasActive(fid: Fid): boolean {
    return this.byFid.has(fidKey(fid));
  }

  /** Every action record, finished ones included until purged, in cookie order. */
  listActions(): ActionView[] {
    return [...this.actions.values()].map((l) => structuredClone(l.rec));
  }

  /** The STARTED actions, in cookie order. */
  listActive(): ActionView[] {
    return [...this.started].sort((a, b) => a - b).map((c) => structuredClone(this.actions.get(c)!.rec));
  }

  listAgents(): AgentView[] {
    return [...this.agents.values()].map((a) => ({
      uuid: a.uuid,
      archiveIds: [...a.archiveIds],
      current: this.startedOn(a.exp).length,
      ok: a.ok,
      errors: a.errors,
      connected: a.exp.connected,
    }));
  }

  // ---- agents -------------------------------------------------------------------------

  /** MDS_HSM_CT_REGISTER over the copytool's own export; an empty list serves every archive. */
  registerAgent(exp: ServerExport, archiveIds: number[]): void {
    const ids = [...new Set(archiveIds)];
    const old = this.agents.get(exp.clientUuid);
    if (old && old.exp !== exp) this.requeueOf(old.exp, 'agent registered again on a new export');
    this.agents.set(exp.clientUuid, {
      uuid: exp.clientUuid,
      exp,
      archiveIds: ids,
      ok: old?.ok ?? 0,
      errors: old?.errors ?? 0,
    });
    this.log.info({ agent: exp.clientUuid, archiveIds: ids.length > 0 ? ids : 'ANY' }, 'hsm: agent registered');
    this.kick();
  }

  /** MDS_HSM_CT_UNREGISTER: its STARTED actions go back to WAITING. */
  unregisterAgent(exp: ServerExport): void {
    const a = this.agents.get(exp.clientUuid);
    if (a && a.exp === exp) this.agents.delete(exp.clientUuid);
    this.requeueOf(exp, 'agent unregistered');
    this.log.info({ agent: exp.clientUuid }, 'hsm: agent unregistered');
    this.kick();
  }

  /** The export is gone for good (disconnect/eviction): forget the agent, requeue its STARTED actions. */
  dropExport(exp: ServerExport): void {
    const a = this.agents.get(exp.clientUuid);
    if (a && a.exp === exp) {
      this.agents.delete(exp.clientUuid);
      this.log.info({ agent: exp.clientUuid }, 'hsm: agent export dropped');
    }
    this.requeueOf(exp, 'agent export dropped');
    this.kick();
  }

  /** An open for write or a truncate of `fid`: a running ARCHIVE of it is refused at completion. */
  noteWrite(fid: Fid): void {
    const cookie = this.byFid.get(fidKey(fid));
    const live = cookie === undefined ? undefined : this.actions.get(cookie);
    if (live && live.rec.action === 'ARCHIVE' && live.rec.status === 'STARTED' && !live.dirtied) {
      live.dirtied = true;
      this.log.info({ fid: fidToString(fid), cookie: live.rec.cookie }, 'hsm: file written during its archive');
    }
  }

  // ---- progress from copytools ---------------------------------------------------------

  /** MDS_HSM_PROGRESS from the agent the action is STARTED on. */
  async progress(exp: ServerExport, body: HsmProgressBody): Promise<void> {
    const b = parseBody(HsmProgressBody, body);
    if (!this.running) throw err('EAGAIN', 'the HSM coordinator is not running', 'HSM_SHUTDOWN');
    const live = this.actions.get(b.cookie);
    if (!live) throw err('ESTALE', `hsm progress: no action with cookie ${hex(b.cookie)}`, 'HSM_NO_ACTION');
    const rec = live.rec;
    if (!fidEquals(rec.fid, b.fid)) {
      throw err('EINVAL', `hsm progress: cookie ${hex(b.cookie)} is for ${fidToString(rec.fid)}, not ${fidToString(b.fid)}`, 'HSM_WRONG_FID');
    }
    // a copytool finishing an action that was canceled under it: nothing to do
    if (rec.status === 'CANCELED') return;
    if (rec.status !== 'STARTED') {
      throw err('ESTALE', `hsm progress: action ${hex(b.cookie)} is ${rec.status}, not STARTED`, 'HSM_NOT_STARTED');
    }
    if (live.exp !== exp) {
      throw err('EPERM', `hsm progress: action ${hex(b.cookie)} runs on ${rec.agent ?? 'another agent'}, not ${exp.clientUuid}`, 'HSM_NOT_YOUR_ACTION');
    }
    live.lastUpdate = this.clock();
    if (b.bytes !== undefined) rec.bytesMoved = b.bytes;
    if (b.phase !== 'end') return;
    await this.track(this.end(live, exp, b));
  }

  private async end(live: Live, exp: ServerExport, b: HsmProgressBody): Promise<void> {
    const rec = live.rec;
    const attempt = live.attempt;
    const errval = b.errval ?? 0;
    if (errval !== 0) {
      if (b.retry) {
        this.transition(live, 'WAITING', { note: `agent asked for a retry (errno ${errval})`, hold: true });
        await this.store.write([rec]);
        return;
      }
      await this.finish(live, 'FAILED', errval, `agent reported ${errnoLabel(errval)}`, { byAgent: true });
      return;
    }
    if (rec.action === 'ARCHIVE') {
      if (live.dirtied) {
        await this.finish(live, 'FAILED', Errno.ECANCELED, 'ARCHIVE_DIRTIED: the file was written during the archive', { byAgent: true });
        return;
      }
      if (!b.archived) {
        await this.finish(live, 'FAILED', Errno.EINVAL, 'archive end without the archived version', { byAgent: true });
        throw err('EINVAL', `hsm progress: ARCHIVE ${hex(rec.cookie)} ended without 'archived'`, 'HSM_NO_ARCHIVED');
      }
    }
    let failure: { errval: number; note: string } | undefined;
    live.completing = true;
    try {
      if (rec.action === 'ARCHIVE') await this.host.completeArchive(rec.fid, rec.archiveId, b.archived!);
      else if (rec.action === 'RESTORE') {
        if (!rec.restoreLayout) throw err('EPROTO', 'restore action without a target layout', 'HSM_NO_TARGET');
        await this.host.completeRestore(rec.fid, rec.restoreLayout, b.archived?.dataVersion);
      } else await this.host.completeRemove(rec.fid);
    } catch (e) {
      const se = toStriaError(e);
      failure = { errval: se.errno, note: `completion failed: ${se.code}: ${se.message}` };
    } finally {
      live.completing = false;
    }
    // nothing else ends an action while it completes; this only guards that promise
    if (!(rec.status === 'STARTED' && live.attempt === attempt && live.exp === exp)) return;
    if (failure) await this.finish(live, 'FAILED', failure.errval, failure.note, { byAgent: true });
    else await this.finish(live, 'SUCCEED', 0, 'done', { byAgent: true });
  }

  // ---- the loop ------------------------------------------------------------------------

  /** One pass of the coordinator loop (after any pass under way): purge, agent and timeout checks, dispatch. */
  async tick(): Promise<void> {
    if (!this.running) return;
    this.passesQueued++;
    const run = this.passChain.then(() => (this.running ? this.pass() : undefined));
    this.passChain = run.catch(() => undefined);
    try {
      await this.track(run);
    } finally {
      this.passesQueued--;
    }
  }

  private async pass(): Promise<void> {
    const now = this.clock();
    for (const c of [...this.held]) {
      const live = this.actions.get(c);
      if (!live || live.rec.status !== 'WAITING') this.held.delete(c);
      else if ((live.holdUntil ?? 0) <= now) {
        this.held.delete(c);
        live.holdUntil = undefined;
        this.waitingSet(live.rec.archiveId).add(c);
      }
    }
    for (const a of this.agents.values()) {
      if (a.exp.connected) {
        a.downSince = undefined;
        continue;
      }
      a.downSince ??= now;
      if (now - a.downSince >= this.agentLostMs && this.startedOn(a.exp).length > 0) {
        this.requeueOf(a.exp, `agent connection down for ${now - a.downSince} ms`);
      }
    }
    const jobs: Array<Promise<void>> = [];
    for (const c of [...this.started]) {
      const live = this.actions.get(c)!;
      if (live.completing || now - live.lastUpdate < this.tun.activeRequestTimeoutMs) continue;
      if (live.exp) this.sendCancel(live.exp, live.rec);
      jobs.push(this.finish(live, 'FAILED', Errno.ETIMEDOUT, `no progress for ${now - live.lastUpdate} ms (active_request_timeout)`, { byAgent: true }));
    }
    await Promise.all(jobs);
    await this.purge(now);
    this.dispatch();
  }

  private async purge(now: number): Promise<void> {
    const gone: number[] = [];
    for (const c of this.finished) {
      if (gone.length >= PURGE_PER_PASS) break;
      const live = this.actions.get(c);
      if (live && now - live.rec.changed < this.tun.graceDelayMs) break;
      gone.push(c);
    }
    if (gone.length === 0) return;
    for (const c of gone) {
      this.finished.delete(c);
      this.actions.delete(c);
    }
    await this.store.write([], gone);
  }

  /** Asks for a dispatch soon (coalesced). */
  private kick(): void {
    if (!this.running || this.dispatchQueued) return;
    this.dispatchQueued = true;
    void this.track(
      Promise.resolve().then(() => {
        this.dispatchQueued = false;
        this.dispatch();
      }),
    );
  }

  /**
   * Starts WAITING actions, oldest first, while slots are free and an agent serves their
   * archive. Picking and marking STARTED happen with no await between, so concurrent
   * calls never start one action twice.
   */
  private dispatch(): void {
    if (!this.running || this.state !== 'enabled') return;
    const blocked = new Set<number>();
    for (let guard = 0; guard < this.tun.maxRequests + 1 && this.started.size < this.tun.maxRequests; guard++) {
      let best: { cookie: number; agent: Agent } | undefined;
      for (const [archiveId, set] of this.waiting) {
        if (blocked.has(archiveId)) continue;
        const head = set.values().next();
        if (head.done) continue;
        if (best && best.cookie < head.value) continue;
        const agent = this.pickAgent(archiveId, false);
        if (!agent) {
          blocked.add(archiveId);
          continue;
        }
        best = { cookie: head.value, agent };
      }
      if (!best) return;
      const live = this.actions.get(best.cookie)!;
      const agent = this.pickAgent(live.rec.archiveId, true)!;
      this.transition(live, 'STARTED', { agent, note: `dispatched to ${agent.uuid}` });
      void this.track(
        this.launch(live, agent, live.attempt).catch((e: unknown) =>
          this.log.error({ cookie: live.rec.cookie, err: toStriaError(e).message }, 'hsm: dispatch failed'),
        ),
      );
    }
  }

  /** Round robin over connected, usable agents serving `archiveId`. */
  private pickAgent(archiveId: number, advance: boolean): Agent | undefined {
    const list = [...this.agents.values()];
    for (let i = 0; i < list.length; i++) {
      const idx = (this.rr + i) % list.length;
      const a = list[idx]!;
      if (!a.exp.connected || a.failedConnCnt === a.exp.connCnt) continue;
      if (a.archiveIds.length > 0 && !a.archiveIds.includes(archiveId)) continue;
      if (advance) this.rr = idx + 1;
      return a;
    }
    return undefined;
  }

  /** Prepares a STARTED action (restore target objects), makes it durable, pushes it. */
  private async launch(live: Live, agent: Agent, attempt: number): Promise<void> {
    const rec = live.rec;
    const epoch = this.epoch;
    const current = () => this.running && this.epoch === epoch && rec.status === 'STARTED' && live.attempt === attempt;
    const item: HsmActionItem = { action: rec.action, fid: { ...rec.fid }, cookie: rec.cookie, extent: { ...rec.extent } };
    if (rec.data !== undefined) item.data = rec.data;
    try {
      if (rec.action !== 'REMOVE') {
        const inode = await this.host.getInode(rec.fid);
        if (!current()) return;
        if (!inode) {
          await this.finish(live, 'FAILED', Errno.ENOENT, 'the file is gone');
          return;
        }
        if (rec.action === 'RESTORE') {
          if (!isReleased(inode.hsm)) {
            // restored already (e.g. completed just before an MDS restart)
            await this.finish(live, 'SUCCEED', 0, 'the file is not released any more', { checkTarget: true });
            return;
          }
          if (!rec.restoreLayout) {
            const layout = await this.host.allocateRestoreLayout(inode);
            if (!current()) {
              this.destroy(layout.objects);
              return;
            }
            rec.restoreLayout = layout;
          }
          item.restore = {
            layout: structuredClone(rec.restoreLayout),
            size: inode.hsm?.archSize ?? inode.size,
            atime: inode.atime,
            mtime: inode.mtime,
          };
          if (inode.hsm?.archChecksum !== undefined) item.restore.checksum = inode.hsm.archChecksum;
        }
      }
      // durable (with the restore target) before the agent hears of it
      await this.store.write([rec]);
    } catch (e) {
      if (!current()) return;
      const se = toStriaError(e);
      await this.finish(live, 'FAILED', se.errno, `dispatch failed: ${se.code}: ${se.message}`);
      return;
    }
    if (!current()) return;
    const hal: HsmActionList = { version: 1, fsname: this.host.fsname, archiveId: rec.archiveId, flags: rec.flags, items: [item] };
    const connCnt = agent.exp.connCnt;
    const push = agent.exp.request(Opc.LDLM_SET_INFO, { key: HSM_ACTIONS_KEY, hal }).then(
      () => undefined,
      (e: unknown) => {
        const se = toStriaError(e);
        if (this.agents.get(agent.uuid) === agent) agent.failedConnCnt = connCnt;
        this.log.warn(
          { agent: agent.uuid, cookie: rec.cookie, connCnt, err: `${se.code}: ${se.message}` },
          'hsm: push to agent failed; not using it until it registers again or reconnects',
        );
        if (!current()) return;
        this.transition(live, 'WAITING', { note: `push to ${agent.uuid} failed` });
        return this.track(this.store.write([rec])).then(
          () => this.kick(),
          (we: unknown) => this.log.error({ cookie: rec.cookie, err: toStriaError(we).message }, 'hsm: cannot write a requeued action'),
        );
      },
    );
    this.pushes.add(push);
    const forget = () => this.pushes.delete(push);
    push.then(forget, forget);
  }

  // ---- state changes -------------------------------------------------------------------

  private transition(live: Live, status: HsmRequestStatus, o: { agent?: Agent; errval?: number; note?: string; hold?: boolean }): void {
    const rec = live.rec;
    const prev = rec.status;
    const now = this.clock();
    if (prev === 'WAITING') {
      this.waiting.get(rec.archiveId)?.delete(rec.cookie);
      this.held.delete(rec.cookie);
      live.holdUntil = undefined;
    }
    if (prev === 'STARTED') this.started.delete(rec.cookie);
    rec.status = status;
    rec.changed = now;
    switch (status) {
      case 'WAITING':
        delete rec.agent;
        live.exp = undefined;
        if (o.hold) {
          live.holdUntil = now + this.tun.loopPeriodMs;
          this.held.add(rec.cookie);
        } else {
          // it was STARTED, so it had waited its turn already: front of the queue
          const s = this.waiting.get(rec.archiveId);
          this.waiting.set(rec.archiveId, new Set([rec.cookie, ...(s ?? [])]));
        }
        break;
      case 'STARTED':
        rec.agent = o.agent!.uuid;
        rec.bytesMoved = 0;
        delete rec.errval;
        live.exp = o.agent!.exp;
        live.attempt++;
        live.dirtied = false;
        live.lastUpdate = now;
        this.started.add(rec.cookie);
        break;
      default:
        live.exp = undefined;
        if (o.errval) rec.errval = o.errval;
        if (this.byFid.get(fidKey(rec.fid)) === rec.cookie) this.byFid.delete(fidKey(rec.fid));
        this.finished.add(rec.cookie);
    }
    this.logState(rec, o.note ?? '', { from: prev });
  }

  /**
   * Ends an action: state, agent counters, restore target objects, changelog event, store.
   * Synchronous up to its first await, so the state change is seen at once.
   */
  private async finish(
    live: Live,
    status: 'SUCCEED' | 'FAILED',
    errval: number,
    note: string,
    o: { byAgent?: boolean; checkTarget?: boolean } = {},
  ): Promise<void> {
    const rec = live.rec;
    const agent = rec.agent ? this.agents.get(rec.agent) : undefined;
    if (o.byAgent && agent && agent.exp === live.exp) {
      if (status === 'SUCCEED') agent.ok++;
      else agent.errors++;
    }
    this.transition(live, status, { errval, note });
    await this.afterEnds([{ live, errval: status === 'SUCCEED' ? 0 : errval, checkTarget: o.checkTarget === true }]);
  }

  /**
   * CANCELED at once (all of them before the first await); the agents of STARTED ones
   * are told to stop.
   */
  private cancelMany(lives: Live[], why: string): Promise<void> {
    const ends: Ended[] = [];
    for (const live of lives) {
      const rec = live.rec;
      if (rec.status !== 'WAITING' && rec.status !== 'STARTED') continue;
      if (live.completing) {
        this.log.info({ fid: fidToString(rec.fid), cookie: rec.cookie }, 'hsm: not canceled, the MDT is completing it');
        continue;
      }
      const exp = rec.status === 'STARTED' ? live.exp : undefined;
      this.transition(live, 'CANCELED', { errval: Errno.ECANCELED, note: why });
      if (exp) this.sendCancel(exp, rec);
      ends.push({ live, errval: Errno.ECANCELED, checkTarget: false });
    }
    return this.afterEnds(ends);
  }

  /**
   * What follows the end of actions: their restore target objects go (those the file does
   * not use), a changelog event each, their records written (in batches).
   */
  private async afterEnds(ends: Ended[]): Promise<void> {
    if (ends.length === 0) return;
    const doomed: OstObject[] = [];
    for (const { live, checkTarget } of ends) {
      const rec = live.rec;
      const target = rec.action === 'RESTORE' && (rec.status !== 'SUCCEED' || checkTarget) ? rec.restoreLayout : undefined;
      if (!target) continue;
      doomed.push(...(await this.unusedObjects(rec.fid, target)));
      delete rec.restoreLayout;
    }
    for (const { live, errval } of ends) {
      try {
        this.host.hsmEvent(live.rec.fid, EVENT_OF[live.rec.action], errval);
      } catch (e) {
        this.log.warn({ fid: fidToString(live.rec.fid), err: toStriaError(e).message }, 'hsm: changelog event failed');
      }
    }
    try {
      // the records forget their targets before the objects go: a crash between leaks, never reuses
      await this.store.write(ends.map((e) => e.live.rec));
    } finally {
      if (doomed.length > 0) this.destroy(doomed);
      this.kick();
    }
  }

  private destroy(objects: OstObject[]): void {
    try {
      this.host.destroyObjects(objects);
    } catch (e) {
      this.log.warn({ objects: objects.length, err: toStriaError(e).message }, 'hsm: cannot destroy restore target objects');
    }
  }

  /** The target objects the file does not use (a restore that completed keeps them). */
  private async unusedObjects(fid: Fid, target: Raid0Layout): Promise<OstObject[]> {
    let inode: Inode | undefined;
    try {
      inode = await this.host.getInode(fid);
    } catch (e) {
      this.log.warn({ fid: fidToString(fid), err: toStriaError(e).message }, 'hsm: cannot read the inode; keeping the restore target objects');
      return [];
    }
    const inUse = new Set((inode?.layout?.objects ?? []).map(objKey));
    return target.objects.filter((o) => !inUse.has(objKey(o)));
  }

  private sendCancel(exp: ServerExport, rec: ActionRecord): void {
    const hal: HsmActionList = {
      version: 1,
      fsname: this.host.fsname,
      archiveId: rec.archiveId,
      flags: rec.flags,
      items: [{ action: 'CANCEL', fid: { ...rec.fid }, cookie: rec.cookie, extent: { ...rec.extent } }],
    };
    const push = exp.request(Opc.LDLM_SET_INFO, { key: HSM_ACTIONS_KEY, hal }).then(
      () => undefined,
      (e: unknown) => this.log.warn({ agent: exp.clientUuid, cookie: rec.cookie, err: toStriaError(e).message }, 'hsm: cancel push to agent failed'),
    );
    this.pushes.add(push);
    const forget = () => this.pushes.delete(push);
    push.then(forget, forget);
  }

  /** STARTED actions on `exp` back to WAITING (restores keep their target objects). */
  private requeueOf(exp: ServerExport, why: string): void {
    const lives = this.startedOn(exp)
      .filter((l) => !l.completing)
      .sort((a, b) => b.rec.cookie - a.rec.cookie);
    if (lives.length === 0) return;
    // newest first, so the oldest ends at the front of the queue
    for (const l of lives) this.transition(l, 'WAITING', { note: why });
    void this.track(this.store.write(lives.map((l) => l.rec))).catch((e: unknown) =>
      this.log.error({ err: toStriaError(e).message }, 'hsm: cannot write requeued actions'),
    );
  }

  private startedOn(exp: ServerExport): Live[] {
    const out: Live[] = [];
    for (const c of this.started) {
      const l = this.actions.get(c)!;
      if (l.exp === exp) out.push(l);
    }
    return out;
  }

  private waitingSet(archiveId: number): Set<number> {
    let s = this.waiting.get(archiveId);
    if (!s) {
      s = new Set();
      this.waiting.set(archiveId, s);
    }
    return s;
  }

  private armTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = setInterval(() => {
      // a slow pass is not piled up behind
      if (this.passesQueued > 0) return;
      this.tick().catch((e: unknown) => this.log.error({ err: toStriaError(e).message }, 'hsm: coordinator loop failed'));
    }, this.tun.loopPeriodMs);
    this.timer.unref();
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.work.add(p);
    const drop = () => this.work.delete(p);
    p.then(drop, drop);
    return p;
  }

  private logState(rec: ActionRecord, note: string, extra: Record<string, unknown> = {}): void {
    this.log.info(
      {
        fid: fidToString(rec.fid),
        cookie: rec.cookie,
        action: rec.action,
        status: rec.status,
        archiveId: rec.archiveId,
        ...(rec.agent ? { agent: rec.agent } : {}),
        ...(rec.errval ? { errval: rec.errval } : {}),
        ...extra,
      },
      `hsm action ${rec.action} ${hex(rec.cookie)} ${rec.status}${note ? `: ${note}` : ''}`,
    );
  }
}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

function objKey(o: OstObject): string {
  return `${o.ostIdx}:${o.seq}:${o.oid}`;
}

function errnoLabel(errval: number): string {
  const name = (Object.entries(Errno) as Array<[ErrnoName, number]>).find(([, v]) => v === errval)?.[0];
  return name ?? `errno ${errval}`;
}

function checkPositive(what: string, v: number): number {
  if (!Number.isSafeInteger(v) || v <= 0) throw err('EINVAL', `${what} must be a positive integer, not ${v}`, 'BAD_VALUE');
  return v;
}

function checkTunable(name: HsmTunableName, v: number): number {
  checkPositive(name, v);
  if (name === 'defaultArchiveId' && v > 0xffffffff) throw err('ERANGE', `defaultArchiveId ${v} is above 2^32-1`, 'BAD_VALUE');
  return v;
}
