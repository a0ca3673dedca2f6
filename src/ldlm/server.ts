/**
 * The server side of one lock namespace (one MDT or one OST): resources, client
 * and server-local locks, and the AST traffic of reference §3.3 and §3.8.
 *
 * - A client enqueue is granted at once when nothing conflicts; otherwise it waits,
 *   every holder of a conflicting lock gets a blocking AST, and the waiter gets a
 *   completion AST once granted (or, for intent enqueues served by the MDT, the
 *   handler awaits the grant and answers the request itself).
 * - A holder that has not cancelled within the callback timeout, or that cannot be
 *   reached, is evicted: all its locks go, waiters proceed.
 * - Server-local locks (MDT updates, OST destroys) revoke client locks the same way
 *   but never wait for one another (resource.ts).
 * - Glimpse enqueues never wait: when a writer holds a conflicting lock, its holder
 *   is asked for the size it knows and the merged attributes are returned without a lock.
 */
import { err, StriaError, toStriaError } from '../common/errno.js';
import type { Logger } from '../common/log.js';
import { Opc } from '../ptlrpc/opcodes.js';
import type { ServerExport } from '../ptlrpc/types.js';
import { EXTENT_EOF, type Extent } from './extent.js';
import { ibitsNames } from './inodebits.js';
import { LockMode, lockModeName } from './modes.js';
import { LdlmFlag, LockIntent, type EnqueueReply, type EnqueueRequest, type GlimpseReply, type Lvb } from './protocol.js';
import { LdlmResource, type ExtentLock, type IbitsLock, type ResourceType } from './resource.js';

export interface LdlmServerOptions {
  /** namespace name as lctl shows it, e.g. "filter-testfs-OST0000_UUID" */
  name: string;
  /** how long a holder has to cancel after a blocking AST (ldlm_timeout) */
  callbackTimeoutMs: number;
  log: Logger;
  /** drop a client that does not answer; its locks are released through dropExport */
  evict(exp: ServerExport, reason: string): void;
  /** OST: the object's attributes, sent with grants and glimpses */
  lvb?(res: string): Promise<Lvb | undefined>;
}

export interface LdlmServerStats {
  enqueues: number;
  grants: number;
  waits: number;
  cancels: number;
  blockingAsts: number;
  completionAsts: number;
  glimpseAsts: number;
  earlyCancels: number;
  evictions: number;
}

interface ServerLock {
  handle: number;
  res: string;
  type: ResourceType;
  mode: LockMode;
  /** undefined: a server-local lock */
  exp: ServerExport | undefined;
  cookie: number;
  extent?: Extent;
  bits?: number;
  granted: boolean;
  blockingSent: boolean;
  callbackTimer?: NodeJS.Timeout;
  /** set while someone on the server awaits the grant (local locks, MDT intents) */
  onGrant?: { resolve: () => void; reject: (e: Error) => void };
}

export interface LocalLock {
  release(): void;
}

const LOCAL_OWNER = '\u0000server';

export class LdlmServer {
  readonly stats: LdlmServerStats = {
    enqueues: 0, grants: 0, waits: 0, cancels: 0, blockingAsts: 0, completionAsts: 0, glimpseAsts: 0, earlyCancels: 0, evictions: 0,
  };
  private readonly resources = new Map<string, LdlmResource<ResourceType>>();
  private readonly locks = new Map<number, ServerLock>();
  private readonly byExport = new Map<ServerExport, Set<number>>();
  private nextHandle = 1;

  constructor(private readonly opts: LdlmServerOptions) {}

  get name(): string {
    return this.opts.name;
  }

  get lockCount(): number {
    return this.locks.size;
  }

  get resourceCount(): number {
    return this.resources.size;
  }

  get callbackTimeoutMs(): number {
    return this.opts.callbackTimeoutMs;
  }

  /**
   * LDLM_ENQUEUE from a client. With `wait`, resolves only once the lock is granted
   * (the caller then runs its intent under it); otherwise a waiting lock is answered
   * 'waiting' and completed later by a completion AST.
   */
  async enqueue(exp: ServerExport, req: EnqueueRequest, wait = false): Promise<EnqueueReply> {
    this.stats.enqueues++;
    if (req.cancels?.length) {
      this.stats.earlyCancels += req.cancels.length;
      this.cancel(exp, req.cancels);
    }
    const type = req.type;
    if (type === 'extent' && !req.extent) throw err('EINVAL', 'bad request: an extent lock needs an extent', 'BAD_REQUEST');
    if (type === 'ibits' && !req.bits) throw err('EINVAL', 'bad request: an inodebits lock needs bits', 'BAD_REQUEST');
    if (req.intent === LockIntent.GLIMPSE) return this.glimpseEnqueue(exp, req);

    const lock = this.newLock(req.res, type, req.mode, exp, req.cookie, { extent: req.extent, bits: req.bits });
    const grantedPromise = wait ? this.grantPromise(lock) : undefined;
    const status = this.place(lock, req.gid, {
      blockNoWait: ((req.flags ?? 0) & LdlmFlag.BLOCK_NOWAIT) !== 0,
      noExpansion: ((req.flags ?? 0) & LdlmFlag.NO_EXPANSION) !== 0,
    });
    if (status === 'refused') {
      return { status: 'aborted', handle: 0, mode: req.mode };
    }
    if (grantedPromise) await grantedPromise;
    return this.replyFor(lock);
  }

  /** LDLM_CANCEL: locks of this export only; unknown handles are ignored (already gone). */
  cancel(exp: ServerExport | undefined, handles: readonly number[]): void {
    for (const h of handles) {
      const lock = this.locks.get(h);
      if (!lock || lock.exp !== exp) continue;
      this.stats.cancels++;
      lock.onGrant?.reject(err('ECANCELED', 'the lock was cancelled while waiting', 'LDLM_CANCELLED'));
      lock.onGrant = undefined;
      this.remove(lock);
    }
  }

  /** Takes a server-local lock, revoking conflicting client locks first. */
  async lockLocal(res: string, type: ResourceType, mode: LockMode, policy: { extent?: Extent; bits?: number }): Promise<LocalLock> {
    const lock = this.newLock(res, type, mode, undefined, 0, policy);
    const granted = this.grantPromise(lock);
    this.place(lock, undefined, { local: true });
    await granted;
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.remove(lock);
      },
    };
  }

  /** The client is gone (disconnect or eviction): drop its locks so waiters proceed. */
  dropExport(exp: ServerExport): void {
    const handles = this.byExport.get(exp);
    if (!handles) return;
    this.byExport.delete(exp);
    for (const h of [...handles]) {
      const lock = this.locks.get(h);
      if (!lock) continue;
      if (lock.onGrant) lock.onGrant.reject(err('ENOTCONN', 'the client disconnected while waiting for a lock', 'NOT_CONNECTED'));
      lock.onGrant = undefined;
      this.remove(lock);
    }
  }

  /** Locks held by one client, for lctl and tests. */
  locksOf(exp: ServerExport): number {
    return this.byExport.get(exp)?.size ?? 0;
  }

  /** Stops every callback timer (daemon shutdown). */
  close(): void {
    for (const lock of this.locks.values()) clearTimeout(lock.callbackTimer);
  }

  // ---- internals ----

  private newLock(res: string, type: ResourceType, mode: LockMode, exp: ServerExport | undefined, cookie: number, policy: { extent?: Extent; bits?: number }): ServerLock {
    const lock: ServerLock = {
      handle: this.nextHandle++, res, type, mode, exp, cookie,
      extent: policy.extent ? { ...policy.extent } : undefined,
      bits: policy.bits,
      granted: false,
      blockingSent: false,
    };
    return lock;
  }

  private grantPromise(lock: ServerLock): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      lock.onGrant = { resolve, reject };
    });
  }

  private resource(res: string, type: ResourceType): LdlmResource<ResourceType> {
    let r = this.resources.get(res);
    if (!r) {
      r = new LdlmResource(type);
      this.resources.set(res, r);
    } else if (r.type !== type) {
      throw err('EINVAL', `resource ${res} holds ${r.type} locks, not ${type}`, 'LDLM_TYPE_MISMATCH');
    }
    return r;
  }

  private place(lock: ServerLock, gid: number | undefined, opts: { blockNoWait?: boolean; noExpansion?: boolean; local?: boolean }): 'granted' | 'waiting' | 'refused' {
    const r = this.resource(lock.res, lock.type);
    const result = r.enqueue(
      { id: lock.handle, owner: lock.exp?.clientUuid ?? LOCAL_OWNER, mode: lock.mode, extent: lock.extent, bits: lock.bits, gid } as ExtentLock & IbitsLock,
      opts,
    );
    if (result.status === 'refused') {
      if (r.isEmpty) this.resources.delete(lock.res);
      return 'refused';
    }
    this.locks.set(lock.handle, lock);
    if (lock.exp) {
      let set = this.byExport.get(lock.exp);
      if (!set) this.byExport.set(lock.exp, (set = new Set()));
      set.add(lock.handle);
    }
    if (result.status === 'granted') {
      this.markGranted(lock, (result.lock as ExtentLock).extent, false);
      return 'granted';
    }
    this.stats.waits++;
    for (const c of result.conflicts) this.sendBlocking(this.locks.get(c.id));
    return 'waiting';
  }

  private markGranted(lock: ServerLock, extent: Extent | undefined, late: boolean): void {
    lock.granted = true;
    if (extent) lock.extent = { ...extent };
    this.stats.grants++;
    if (lock.onGrant) {
      const g = lock.onGrant;
      lock.onGrant = undefined;
      g.resolve();
      return;
    }
    if (late && lock.exp) void this.sendCompletion(lock);
  }

  private remove(lock: ServerLock): void {
    clearTimeout(lock.callbackTimer);
    this.locks.delete(lock.handle);
    if (lock.exp) this.byExport.get(lock.exp)?.delete(lock.handle);
    const r = this.resources.get(lock.res);
    if (!r) return;
    const { granted } = r.cancel(lock.handle);
    for (const g of granted) {
      const l = this.locks.get(g.id);
      if (l) this.markGranted(l, (g as ExtentLock).extent, true);
    }
    // Waiters now blocked by newly granted locks need those holders called back.
    for (const w of r.waitingLocks()) for (const b of r.blockersOf(w.id)) this.sendBlocking(this.locks.get(b.id));
    if (r.isEmpty) this.resources.delete(lock.res);
  }

  private sendBlocking(lock: ServerLock | undefined): void {
    if (!lock || lock.blockingSent || !lock.exp) return;
    lock.blockingSent = true;
    this.stats.blockingAsts++;
    const exp = lock.exp;
    const timeoutMs = this.opts.callbackTimeoutMs;
    lock.callbackTimer = setTimeout(() => {
      if (!this.locks.has(lock.handle)) return;
      this.evict(exp, `lock callback timer expired after ${Math.round(timeoutMs / 1000)}s`, lock);
    }, timeoutMs);
    lock.callbackTimer.unref();
    exp.request(Opc.LDLM_BL_CALLBACK, { handle: lock.handle, cookie: lock.cookie }, { timeoutMs }).catch((e: unknown) => {
      if (!this.locks.has(lock.handle)) return;
      this.evict(exp, `blocking AST failed: ${toStriaError(e).message}`, lock);
    });
  }

  private async sendCompletion(lock: ServerLock): Promise<void> {
    const exp = lock.exp!;
    this.stats.completionAsts++;
    try {
      const lvb = lock.type === 'extent' && this.opts.lvb ? await this.opts.lvb(lock.res) : undefined;
      if (!this.locks.has(lock.handle)) return;
      await exp.request(Opc.LDLM_CP_CALLBACK, { handle: lock.handle, cookie: lock.cookie, extent: lock.extent, lvb }, { timeoutMs: this.opts.callbackTimeoutMs });
    } catch (e) {
      if (!this.locks.has(lock.handle)) return;
      this.evict(exp, `completion AST failed: ${toStriaError(e).message}`, lock);
    }
  }

  private evict(exp: ServerExport, why: string, lock: ServerLock): void {
    this.stats.evictions++;
    const what = lock.type === 'ibits' ? `${lockModeName(lock.mode)}/${ibitsNames(lock.bits ?? 0).join('|')}` : `${lockModeName(lock.mode)}`;
    this.opts.log.error(
      { ns: this.opts.name, client: exp.clientUuid, peer: exp.peer, res: lock.res, lock: lock.handle, mode: what, extent: lock.extent },
      `${why}: evicting client ${exp.clientUuid} at ${exp.peer} ns: ${this.opts.name} lock: ${lock.handle}/${what} res: ${lock.res}`,
    );
    // dropExport runs through the target's onDisconnect; make sure the locks go even if it does not.
    this.opts.evict(exp, why);
    this.dropExport(exp);
  }

  private async glimpseEnqueue(exp: ServerExport, req: EnqueueRequest): Promise<EnqueueReply> {
    const lock = this.newLock(req.res, req.type, req.mode, exp, req.cookie, { extent: req.extent ?? { start: 0, end: EXTENT_EOF } });
    if (this.place(lock, undefined, { blockNoWait: true }) === 'granted') return this.replyFor(lock);
    const stored = this.opts.lvb ? await this.opts.lvb(req.res) : undefined;
    const lvb = stored ? { ...stored } : undefined;
    // Ask the writer holding the highest conflicting lock what size it knows.
    const r = this.resources.get(req.res);
    const writers = (r?.grantedLocks() ?? [])
      .map((g) => this.locks.get(g.id))
      .filter((l): l is ServerLock => l !== undefined && l.exp !== undefined && l.exp !== exp && (l.mode === LockMode.PW || l.mode === LockMode.GROUP))
      .sort((a, b) => (b.extent?.end ?? 0) - (a.extent?.end ?? 0));
    const target = writers[0];
    if (target && lvb) {
      this.stats.glimpseAsts++;
      try {
        const reply = await target.exp!.request(Opc.LDLM_GL_CALLBACK, { handle: target.handle, cookie: target.cookie }, { timeoutMs: this.opts.callbackTimeoutMs });
        const size = (reply.body as GlimpseReply | undefined)?.size;
        // the holder wrote out what it had cached before answering: read the attributes again
        const fresh = this.opts.lvb ? await this.opts.lvb(req.res) : undefined;
        if (fresh) Object.assign(lvb, fresh, { size: Math.max(fresh.size, lvb.size) });
        if (typeof size === 'number' && Number.isSafeInteger(size) && size > lvb.size) lvb.size = size;
      } catch (e) {
        // The holder may have just cancelled; the server's own attributes stand.
        const se = e instanceof StriaError ? e : toStriaError(e);
        this.opts.log.debug({ ns: this.opts.name, res: req.res, err: se.message }, 'glimpse AST failed');
      }
    }
    return { status: 'aborted', handle: 0, mode: req.mode, lvb };
  }

  private async replyFor(lock: ServerLock): Promise<EnqueueReply> {
    const reply: EnqueueReply = { status: lock.granted ? 'granted' : 'waiting', handle: lock.handle, mode: lock.mode };
    if (lock.extent) reply.extent = { ...lock.extent };
    if (lock.bits !== undefined) reply.bits = lock.bits;
    if (lock.granted && lock.type === 'extent' && this.opts.lvb) reply.lvb = await this.opts.lvb(lock.res);
    return reply;
  }
}
