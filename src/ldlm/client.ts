/**
 * The client side of one lock namespace (one per MDC / OSC import): the lock cache
 * of reference §3.5.
 *
 * - `lock()` matches a granted cached lock (no RPC) or enqueues one; the caller holds
 *   a user reference until `release()`. Enqueues of one resource are serialised, so
 *   concurrent users of one client share a lock instead of fighting over it.
 * - Unused locks stay cached in an LRU bounded by `lru_size` and `lru_max_age`.
 * - A blocking AST is answered at once; the lock stops matching new users (CBPENDING),
 *   and once its users are done the owner's `revoke` hook drops what the lock
 *   protected (cached pages, attributes, names) before LDLM_CANCEL goes out.
 * - Early lock cancel: `earlyCancel()` drops this client's own unused conflicting locks
 *   and returns their handles for the modifying request to carry.
 * - When the target lost our export (eviction, restart) every lock is dropped at once.
 */
import { err, StriaError, toStriaError } from '../common/errno.js';
import type { Logger } from '../common/log.js';
import { Opc } from '../ptlrpc/opcodes.js';
import type { Import } from '../ptlrpc/import.js';
import type { ReplyPayload } from '../ptlrpc/types.js';
import { EXTENT_EOF, extentsOverlap, type Extent } from './extent.js';
import { LockMode, modesCompatible } from './modes.js';
import { BlockingAst, CompletionAst, GlimpseAst, type EnqueueReply, type EnqueueRequest, type Lvb } from './protocol.js';
import type { ResourceType } from './resource.js';
import { parseBody } from '../common/validate.js';

export type RevokeReason = 'blocking' | 'lru' | 'evicted' | 'early-cancel' | 'unmount';

export interface ClientLock {
  readonly cookie: number;
  handle: number;
  readonly res: string;
  readonly type: ResourceType;
  readonly mode: LockMode;
  extent?: Extent;
  bits?: number;
  /** OST locks: object attributes at grant time */
  lvb?: Lvb;
  /** the largest object size this client itself produced under the lock (its KMS) */
  knownSize?: number;
}

interface LockState extends ClientLock {
  state: 'enqueuing' | 'waiting' | 'granted' | 'revoking' | 'gone';
  users: number;
  cbPending: boolean;
  lastUsed: number;
  granted?: { resolve: () => void; reject: (e: Error) => void };
}

export interface LdlmClientHooks {
  /** drop what `lock` protected; runs before the cancel is sent (for 'evicted' no cancel follows) */
  revoke(lock: ClientLock, why: RevokeReason): Promise<void> | void;
  /** another client asks what this one knows of the lock's object (a glimpse AST) */
  glimpse?(lock: ClientLock): Promise<void>;
}

export interface LdlmClientOptions {
  /** 0 = sized dynamically (Lustre's LRU resize); N = at most N unused locks */
  lruSize?: number;
  /** unused locks older than this are cancelled (lru_max_age, default 600 s) */
  lruMaxAgeMs?: number;
}

export interface LdlmClientStats {
  enqueues: number;
  matches: number;
  waits: number;
  blockingAsts: number;
  completionAsts: number;
  glimpseAsts: number;
  cancels: number;
  lruCancels: number;
  earlyCancels: number;
}

export const DEFAULT_LRU_MAX_AGE_MS = 600_000;
/** with LRU resize on, the most unused locks kept before the oldest go (per namespace; an MDT lock pair per file: a 10,000-file data set stays cached) */
const DYNAMIC_LRU_LIMIT = 32768;
const AGE_SCAN_MS = 10_000;
let nextCookie = 1;

/** Does a held lock of mode `held` serve a request for `want`? */
function modeCovers(held: LockMode, want: LockMode): boolean {
  if (held === want) return true;
  switch (want) {
    case LockMode.PR: return held === LockMode.PW || held === LockMode.EX;
    case LockMode.PW: return held === LockMode.EX;
    case LockMode.CR: return held !== LockMode.NL && held !== LockMode.GROUP;
    case LockMode.NL: return true;
    default: return false;
  }
}

export class LdlmClientNamespace {
  readonly stats: LdlmClientStats = {
    enqueues: 0, matches: 0, waits: 0, blockingAsts: 0, completionAsts: 0, glimpseAsts: 0, cancels: 0, lruCancels: 0, earlyCancels: 0,
  };
  private readonly byCookie = new Map<number, LockState>();
  private readonly byRes = new Map<string, Set<LockState>>();
  /** unused granted locks, least recently used first */
  private readonly lru = new Map<number, LockState>();
  private readonly enqueueChains = new Map<string, Promise<unknown>>();
  private readonly expected = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  private fixedLruSize: number;
  private lruMaxAgeMsValue: number;
  private readonly ageTimer: NodeJS.Timeout;
  private closed = false;

  constructor(
    readonly name: string,
    private readonly imp: Import,
    private readonly hooks: LdlmClientHooks,
    private readonly log: Logger,
    opts: LdlmClientOptions = {},
  ) {
    this.fixedLruSize = opts.lruSize ?? 0;
    this.lruMaxAgeMsValue = opts.lruMaxAgeMs ?? DEFAULT_LRU_MAX_AGE_MS;
    this.ageTimer = setInterval(() => this.trimLru(), AGE_SCAN_MS);
    this.ageTimer.unref();
    imp.on('new-export', () => this.dropAll('evicted'));
  }

  // ---- tunables (lctl ldlm.namespaces.*) ----

  get lockCount(): number {
    let n = 0;
    for (const l of this.byCookie.values()) if (l.state === 'granted' || l.state === 'revoking') n++;
    return n;
  }

  get unusedCount(): number {
    return this.lru.size;
  }

  get resourceCount(): number {
    return this.byRes.size;
  }

  /** lru_size as lctl shows it: the fixed size, or the current unused count with LRU resize on */
  get lruSize(): number {
    return this.fixedLruSize > 0 ? this.fixedLruSize : this.lru.size;
  }

  get lruResize(): boolean {
    return this.fixedLruSize === 0;
  }

  /** lctl set_param lru_size: N fixes it, 0 turns resize back on, 'clear' drops all unused locks */
  setLruSize(v: number | 'clear'): void {
    if (v === 'clear') {
      this.cancelUnused(() => true, 'lru');
      return;
    }
    if (!Number.isSafeInteger(v) || v < 0) throw err('EINVAL', 'lru_size must be a non-negative integer or "clear"', 'BAD_PARAM');
    this.fixedLruSize = v;
    this.trimLru();
  }

  get lruMaxAgeMs(): number {
    return this.lruMaxAgeMsValue;
  }

  setLruMaxAgeMs(ms: number): void {
    if (!Number.isSafeInteger(ms) || ms <= 0) throw err('EINVAL', 'lru_max_age must be a positive duration', 'BAD_PARAM');
    this.lruMaxAgeMsValue = ms;
    this.trimLru();
  }

  // ---- using locks ----

  /** A granted cached lock that serves the request, with a user reference taken; no RPC. */
  match(res: string, mode: LockMode, policy: { extent?: Extent; bits?: number } = {}): ClientLock | undefined {
    const set = this.byRes.get(res);
    if (!set) return undefined;
    for (const l of set) {
      if (l.state !== 'granted' || l.cbPending || !modeCovers(l.mode, mode)) continue;
      if (policy.extent && (!l.extent || l.extent.start > policy.extent.start || l.extent.end < policy.extent.end)) continue;
      if (policy.bits !== undefined && ((l.bits ?? 0) & policy.bits) !== policy.bits) continue;
      this.use(l);
      this.stats.matches++;
      return l;
    }
    return undefined;
  }

  /** A user reference on this very lock, if it is still granted and not being called back. */
  reuse(lock: ClientLock): boolean {
    const l = lock as LockState;
    if (l.state !== 'granted' || l.cbPending || this.byCookie.get(l.cookie) !== l) return false;
    this.use(l);
    this.stats.matches++;
    return true;
  }

  /** Match or enqueue (waiting for the grant); the caller must release() the lock. */
  async lock(res: string, type: ResourceType, mode: LockMode, policy: { extent?: Extent; bits?: number }): Promise<ClientLock> {
    const hit = this.match(res, mode, policy);
    if (hit) return hit;
    return this.serialised(res, async () => {
      const again = this.match(res, mode, policy);
      if (again) return again;
      const { lock } = await this.enqueue(res, type, mode, policy);
      if (!lock) throw err('EIO', `lock enqueue on ${res} was refused`, 'LDLM_REFUSED');
      return lock;
    });
  }

  /**
   * One LDLM_ENQUEUE. Returns the lock (with a user reference) when granted, or only
   * the reply for an aborted glimpse. This client's own unused conflicting locks on the
   * resource travel as early cancels.
   */
  async enqueue(
    res: string, type: ResourceType, mode: LockMode, policy: { extent?: Extent; bits?: number },
    opts: { intent?: EnqueueRequest['intent']; flags?: number } = {},
  ): Promise<{ lock: ClientLock | undefined; reply: EnqueueReply }> {
    this.checkOpen();
    const cancels = opts.intent ? [] : await this.earlyCancel(res, type, mode, policy);
    const l = this.newLock(res, type, mode, policy);
    const body: EnqueueRequest = { res, type, mode, cookie: l.cookie, extent: policy.extent, bits: policy.bits, cancels, intent: opts.intent, flags: opts.flags };
    this.stats.enqueues++;
    let reply: EnqueueReply;
    try {
      reply = (await this.imp.request(Opc.LDLM_ENQUEUE, stripUndefined(body))).body as EnqueueReply;
    } catch (e) {
      this.forget(l);
      throw e;
    }
    if (reply.status === 'aborted') {
      this.forget(l);
      return { lock: undefined, reply };
    }
    l.handle = reply.handle;
    // A completion AST may have overtaken this reply: its grown extent wins over the request.
    if (l.state === 'enqueuing') {
      if (reply.extent) l.extent = reply.extent;
      if (reply.lvb) l.lvb = reply.lvb;
    }
    if (reply.status === 'waiting' && l.state === 'enqueuing') {
      l.state = 'waiting';
      this.stats.waits++;
      await new Promise<void>((resolve, reject) => {
        l.granted = { resolve, reject };
      });
    } else if (l.state === 'enqueuing') {
      this.markGranted(l);
    }
    return { lock: l, reply };
  }

  /**
   * An intent request (MDT getattr/lookup) may be granted a lock inside its reply. The
   * lock is registered before the request goes out, so a blocking AST that overtakes
   * the reply finds it; `res` may be unknown until the reply (lookup by name).
   */
  prepareIntent(res: string, type: ResourceType, mode: LockMode, bits: number): ClientLock {
    this.checkOpen();
    return this.newLock(res, type, mode, { bits });
  }

  /** The intent's reply: the lock granted with it (user reference held), or undefined. */
  completeIntent(lock: ClientLock, granted: { handle: number; mode: LockMode; bits?: number } | undefined, res = lock.res): ClientLock | undefined {
    const l = lock as LockState;
    if (!granted || l.state !== 'enqueuing') {
      this.forget(l);
      return undefined;
    }
    if (res !== l.res) {
      this.forget(l);
      (l as { res: string }).res = res;
      l.state = 'enqueuing';
      this.byCookie.set(l.cookie, l);
      let set = this.byRes.get(res);
      if (!set) this.byRes.set(res, (set = new Set()));
      set.add(l);
    }
    l.handle = granted.handle;
    if (granted.bits !== undefined) l.bits = granted.bits;
    this.markGranted(l);
    return l;
  }

  /** The intent request failed: no lock came of it. */
  abortIntent(lock: ClientLock): void {
    this.forget(lock as LockState);
  }

  /** True while the lock is granted and not being called back: what it protects may be cached. */
  isValid(lock: ClientLock): boolean {
    const l = lock as LockState;
    return l.state === 'granted' && !l.cbPending;
  }

  /**
   * A completion AST expected for `cookie` outside the lock cache (flock waits). Register
   * before sending the request: the AST may overtake its reply.
   */
  expectCompletion(cookie: number): { done: Promise<void>; cancel(): void } {
    let resolve!: () => void;
    let reject!: (e: Error) => void;
    const done = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    this.expected.set(cookie, { resolve, reject });
    return { done, cancel: () => this.expected.delete(cookie) };
  }

  /** A fresh cookie (flock requests). */
  newCookie(): number {
    return nextCookie++;
  }

  /** Drops a user reference; a lock called back meanwhile is revoked once unused. */
  release(lock: ClientLock): void {
    const l = lock as LockState;
    if (l.users <= 0) return;
    l.users--;
    l.lastUsed = Date.now();
    if (l.users > 0) return;
    if (l.cbPending) {
      void this.revokeAndCancel(l, 'blocking');
      return;
    }
    if (l.state === 'granted') {
      this.lru.delete(l.cookie);
      this.lru.set(l.cookie, l);
      this.trimLru();
    }
  }

  /** Every lock, granted and unused, on a resource whose mode/policy conflicts with the given one. */
  async earlyCancel(res: string, type: ResourceType, mode: LockMode, policy: { extent?: Extent; bits?: number }): Promise<number[]> {
    const set = this.byRes.get(res);
    if (!set) return [];
    const victims = [...set].filter((l) => l.state === 'granted' && l.users === 0 && conflicts(l, type, mode, policy));
    if (victims.length === 0) return [];
    this.stats.earlyCancels += victims.length;
    await Promise.all(victims.map((l) => this.revokeLocally(l, 'early-cancel')));
    return victims.map((l) => l.handle);
  }

  /** Cancels unused locks that match `pred` (lru_size=clear, unmount). */
  cancelUnused(pred: (l: ClientLock) => boolean, why: RevokeReason): Promise<void> {
    const victims = [...this.lru.values()].filter((l) => pred(l));
    return this.cancelBatch(victims, why);
  }

  /**
   * Cancels the unused locks on `res` now, in one LDLM_CANCEL: for locks this client knows
   * the server is about to call back (the objects of a file it is unlinking).
   */
  cancelResource(res: string, why: RevokeReason): Promise<void> {
    const set = this.byRes.get(res);
    return set ? this.cancelBatch([...set], why) : Promise.resolve();
  }

  /** Locks held on a resource (tests, lctl). */
  locksOn(res: string): ClientLock[] {
    return [...(this.byRes.get(res) ?? [])].filter((l) => l.state === 'granted');
  }

  // ---- callbacks from the server ----

  onBlockingAst(body: unknown): ReplyPayload {
    const b = parseBody(BlockingAst, body);
    this.stats.blockingAsts++;
    const l = this.byCookie.get(b.cookie);
    if (!l || l.state === 'gone' || (l.handle !== 0 && l.handle !== b.handle)) {
      // Already gone here (early cancel in flight, or dropped): make sure the server knows.
      void this.sendCancel([b.handle]);
      return { body: {} };
    }
    if (l.handle === 0) l.handle = b.handle;
    l.cbPending = true;
    this.lru.delete(l.cookie);
    if (l.state === 'granted' && l.users === 0) void this.revokeAndCancel(l, 'blocking');
    return { body: {} };
  }

  onCompletionAst(body: unknown): ReplyPayload {
    const b = parseBody(CompletionAst, body);
    this.stats.completionAsts++;
    const waiter = this.expected.get(b.cookie);
    if (waiter) {
      this.expected.delete(b.cookie);
      waiter.resolve();
      return { body: {} };
    }
    const l = this.byCookie.get(b.cookie);
    if (!l || (l.state !== 'waiting' && l.state !== 'enqueuing')) return { body: {} };
    l.handle = b.handle;
    if (b.extent) l.extent = b.extent;
    if (b.lvb) l.lvb = b.lvb;
    this.markGranted(l);
    return { body: {} };
  }

  async onGlimpseAst(body: unknown): Promise<ReplyPayload> {
    const b = parseBody(GlimpseAst, body);
    this.stats.glimpseAsts++;
    const l = this.byCookie.get(b.cookie);
    if (l && this.hooks.glimpse) {
      // cached writes under the lock reach the server first, so what it reads next is current
      try {
        await this.hooks.glimpse(l);
      } catch (e) {
        this.log.warn({ ns: this.name, res: l.res, err: (e as Error).message }, 'flush for a glimpse failed');
      }
    }
    return { body: l?.knownSize !== undefined ? { size: l.knownSize } : {} };
  }

  /** Unmount: give every lock back. */
  async close(): Promise<void> {
    if (this.closed) return;
    clearInterval(this.ageTimer);
    const granted = [...this.byCookie.values()].filter((l) => l.state === 'granted' && l.users === 0);
    await this.cancelBatch(granted, 'unmount').catch(() => undefined);
    this.closed = true;
  }

  // ---- internals ----

  private newLock(res: string, type: ResourceType, mode: LockMode, policy: { extent?: Extent; bits?: number }, cookie = nextCookie++): LockState {
    const l: LockState = {
      cookie, handle: 0, res, type, mode,
      extent: policy.extent ? { ...policy.extent } : undefined,
      bits: policy.bits,
      state: 'enqueuing', users: 1, cbPending: false, lastUsed: Date.now(),
    };
    this.byCookie.set(l.cookie, l);
    let set = this.byRes.get(res);
    if (!set) this.byRes.set(res, (set = new Set()));
    set.add(l);
    return l;
  }

  private markGranted(l: LockState): void {
    l.state = 'granted';
    const g = l.granted;
    l.granted = undefined;
    g?.resolve();
  }

  private use(l: LockState): void {
    l.users++;
    l.lastUsed = Date.now();
    this.lru.delete(l.cookie);
  }

  private forget(l: LockState): void {
    l.state = 'gone';
    this.byCookie.delete(l.cookie);
    this.lru.delete(l.cookie);
    const set = this.byRes.get(l.res);
    if (set) {
      set.delete(l);
      if (set.size === 0) this.byRes.delete(l.res);
    }
  }

  private async revokeLocally(l: LockState, why: RevokeReason): Promise<void> {
    l.state = 'revoking';
    this.lru.delete(l.cookie);
    try {
      await this.hooks.revoke(l, why);
    } catch (e) {
      this.log.warn({ ns: this.name, res: l.res, err: toStriaError(e).message }, 'dropping cached state of a lock failed');
    }
    this.forget(l);
  }

  private async revokeAndCancel(l: LockState, why: RevokeReason): Promise<void> {
    if (l.state !== 'granted') return;
    await this.revokeLocally(l, why);
    await this.sendCancel([l.handle]);
  }

  private async cancelBatch(victims: LockState[], why: RevokeReason): Promise<void> {
    const live = victims.filter((l) => l.state === 'granted' && l.users === 0);
    if (live.length === 0) return;
    if (why === 'lru') this.stats.lruCancels += live.length;
    await Promise.all(live.map((l) => this.revokeLocally(l, why)));
    await this.sendCancel(live.map((l) => l.handle));
  }

  private async sendCancel(handles: number[]): Promise<void> {
    const valid = handles.filter((h) => h > 0);
    if (valid.length === 0) return;
    this.stats.cancels += valid.length;
    try {
      await this.imp.request(Opc.LDLM_CANCEL, { handles: valid }, { urgent: true });
    } catch (e) {
      // An evicted or closed import has lost the locks anyway.
      const se = e instanceof StriaError ? e : toStriaError(e);
      this.log.debug({ ns: this.name, err: se.message }, 'LDLM_CANCEL failed');
    }
  }

  private trimLru(): void {
    if (this.closed) return;
    const limit = this.fixedLruSize > 0 ? this.fixedLruSize : DYNAMIC_LRU_LIMIT;
    const oldest = Date.now() - this.lruMaxAgeMsValue;
    const victims: LockState[] = [];
    let excess = this.lru.size - limit;
    for (const l of this.lru.values()) {
      if (excess > 0) {
        victims.push(l);
        excess--;
      } else if (l.lastUsed < oldest) {
        victims.push(l);
      } else {
        break;
      }
    }
    if (victims.length > 0) void this.cancelBatch(victims, 'lru');
  }

  /** The server no longer has our locks: forget them all, dropping what they protected. */
  private dropAll(why: RevokeReason): void {
    for (const [cookie, w] of [...this.expected]) {
      this.expected.delete(cookie);
      w.reject(err('EIO', `lock wait lost: ${this.imp.target} lost this client's export`, 'EVICTED'));
    }
    const all = [...this.byCookie.values()];
    for (const l of all) {
      if (l.state === 'waiting' || l.state === 'enqueuing') {
        l.granted?.reject(err('EIO', `lock on ${l.res} lost: ${this.imp.target} lost this client's export`, 'EVICTED'));
        l.granted = undefined;
        this.forget(l);
        continue;
      }
      if (l.state !== 'granted') continue;
      void this.revokeLocally(l, why);
    }
    if (all.length > 0) this.log.warn({ ns: this.name, locks: all.length }, 'all locks of this namespace dropped');
  }

  private serialised<T>(res: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.enqueueChains.get(res) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.enqueueChains.set(res, tail);
    void tail.then(() => {
      if (this.enqueueChains.get(res) === tail) this.enqueueChains.delete(res);
    });
    return run;
  }

  private checkOpen(): void {
    if (this.closed) throw err('ESHUTDOWN', `lock namespace ${this.name} is closed`, 'NAMESPACE_CLOSED');
  }
}

function conflicts(l: LockState, type: ResourceType, mode: LockMode, policy: { extent?: Extent; bits?: number }): boolean {
  if (modesCompatible(l.mode, mode)) return false;
  if (type === 'extent') return extentsOverlap(l.extent ?? { start: 0, end: EXTENT_EOF }, policy.extent ?? { start: 0, end: EXTENT_EOF });
  if (type === 'ibits') return ((l.bits ?? 0) & (policy.bits ?? 0)) !== 0;
  return true;
}

function stripUndefined<T extends object>(o: T): T {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) {
    if (v === undefined) continue;
    if (Array.isArray(v) && v.length === 0) continue;
    out[k] = v;
  }
  return out as T;
}
