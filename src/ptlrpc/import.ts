/**
 * Import: the client side of one target (Lustre's import). Connects with the target's
 * CONNECT opcode, bounds requests in flight by credits, times requests out, pings, and
 * on connection loss reconnects (round-robin over the NIDs, backing off) and resends the
 * unanswered requests with MSG_RESENT under their original xid.
 */
import { EventEmitter } from 'node:events';
import { err, StriaError, toStriaError } from '../common/errno.js';
import type { Logger } from '../common/log.js';
import { formatNid, type Nid } from '../lnet/nid.js';
import type { RpcChannel } from './channel.js';
import { bulkChecksum } from './checksum.js';
import { checkRequestArgs, errorFromReply, isPlainObject, normalizeBulk, requestHeader, toReplyMessage, type Frame } from './message.js';
import { CONNECT_OPCODES, MsgType, MsgFlag, Opc, opcodeName } from './opcodes.js';
import type { ImportOptions, ImportState, ReplyMessage, RequestOptions } from './types.js';

export const DEFAULT_IMPORT_TIMEOUT_MS = 30_000;
export const DEFAULT_IMPORT_CREDITS = 8;
export const DEFAULT_PING_INTERVAL_MS = 25_000;
export const DEFAULT_RECOVERY_WAIT_MS = 300_000;
/** Lustre's OSC_MAX_RIF_MAX: the largest max_rpcs_in_flight */
export const MAX_IMPORT_CREDITS = 512;
const BACKOFF_START_MS = 100;
const BACKOFF_MAX_MS = 5_000;

const DISCONNECT_OF: ReadonlyMap<number, number> = new Map([
  [Opc.OST_CONNECT, Opc.OST_DISCONNECT],
  [Opc.MDS_CONNECT, Opc.MDS_DISCONNECT],
  [Opc.MGS_CONNECT, Opc.MGS_DISCONNECT],
]);

/** What an Import needs from the RpcClient that owns it. */
export interface ImportHost {
  readonly uuid: string;
  nextXid(): number;
  /** the shared connection to that NID's host:port, opened if needed */
  channelTo(nid: Nid, timeoutMs: number): Promise<RpcChannel>;
  /** route callbacks carrying `handle` on this channel to the import; report the channel's loss to it */
  attach(ch: RpcChannel, imp: Import, handle: number): void;
  detach(ch: RpcChannel, imp: Import): void;
  importClosed(imp: Import): void;
}

/**
 * One request as observers see it; the same object is passed to every event of that
 * request ('rpc-queued', 'rpc-sent', 'rpc-done'), so observers can key on it.
 */
export interface RpcEventInfo {
  readonly opc: number;
  /** the request body as the caller gave it */
  readonly body: unknown;
  /** bytes of request bulk */
  readonly bulkBytes: number;
}

/** How a request ended, for 'rpc-done' observers. */
export interface RpcOutcome {
  ok: boolean;
  /** microseconds from the last send to the reply; undefined when it never got a reply */
  waitUsec: number | undefined;
  /** bytes of reply bulk */
  replyBulkBytes: number;
  /** it was sent at least once */
  sent: boolean;
}

/** Connection details, as `lctl get_param *.import` shows them. */
export interface ImportConnectionInfo {
  nids: readonly Nid[];
  current: Nid | undefined;
  /** conn_cnt of the current connection (the target counts connections) */
  connCnt: number;
  /** successful (re)connections so far */
  generation: number;
  /** requests that timed out */
  timeouts: number;
  /** Date.now() of the last request sent or reply received */
  lastActivity: number;
}

interface PendingRequest {
  readonly info: RpcEventInfo;
  readonly opc: number;
  readonly body: unknown;
  readonly opts: RequestOptions;
  readonly bulk: Buffer[] | undefined;
  readonly ck: number | undefined;
  readonly timeoutMs: number;
  readonly resolve: (r: ReplyMessage) => void;
  readonly reject: (e: StriaError) => void;
  xid: number; // 0 until first sent
  sends: number;
  channel: RpcChannel | undefined; // where it is in flight
  generation: number;
  sendTimer: NodeJS.Timeout | undefined;
  waitTimer: NodeJS.Timeout | undefined;
  settled: boolean;
  /** process.hrtime of the latest send, and of the reply (0n until one came) */
  sentAt: bigint;
  repliedAt: bigint;
}

interface ConnectWaiter {
  resolve: (data: unknown) => void;
  reject: (e: StriaError) => void;
  timer: NodeJS.Timeout;
}

type ConnectOutcome =
  | { ok: true; ch: RpcChannel; handle: number; connCnt: number; data: unknown; evicted: boolean }
  | { ok: false; refused: boolean; error: StriaError };

export class Import extends EventEmitter {
  readonly target: string;
  private readonly host: ImportHost;
  private readonly log: Logger;
  private readonly nids: Nid[];
  private readonly connectOpc: number;
  private readonly connectBody: unknown;
  private readonly timeoutMs: number;
  private maxInFlight: number;
  private readonly pingIntervalMs: number;
  private readonly recoveryWaitMs: number;

  private _state: ImportState = 'NEW';
  private channel: RpcChannel | undefined;
  private handle = 0;
  private connCnt = 0;
  private generation = 0;
  private _connectData: unknown;
  private everConnected = false;
  private connecting = false;
  private nidIndex = 0;
  private currentNid: Nid | undefined;
  private lastConnectError: StriaError | undefined;
  private connectWaiters: ConnectWaiter[] = [];
  private queue: PendingRequest[] = [];
  private resendList: PendingRequest[] = [];
  private readonly inFlight = new Map<number, PendingRequest>();
  private backoff: { timer: NodeJS.Timeout; wake: () => void } | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private probing = false;
  private lastActivity = 0;
  private maxCommitted = 0;
  private counters = { sent: 0, resent: 0, reconnects: 0, timeouts: 0, evictions: 0 };

  constructor(host: ImportHost, opts: ImportOptions, log: Logger) {
    super();
    if (!Array.isArray(opts.nids) || opts.nids.length === 0) throw err('EINVAL', `import of ${opts.target}: no NIDs given`, 'BAD_IMPORT');
    if (typeof opts.target !== 'string' || opts.target.length === 0) throw err('EINVAL', 'import: target name missing', 'BAD_IMPORT');
    if (!CONNECT_OPCODES.has(opts.connectOpc)) {
      throw err('EINVAL', `import of ${opts.target}: ${opcodeName(opts.connectOpc)} is not a CONNECT opcode`, 'BAD_IMPORT');
    }
    this.host = host;
    this.log = log;
    this.target = opts.target;
    this.nids = [...opts.nids];
    this.connectOpc = opts.connectOpc;
    this.connectBody = { target: opts.target, uuid: host.uuid, data: opts.connectData };
    this.timeoutMs = positive(opts.timeoutMs, DEFAULT_IMPORT_TIMEOUT_MS);
    this.maxInFlight = Math.max(1, Math.floor(positive(opts.credits, DEFAULT_IMPORT_CREDITS)));
    this.pingIntervalMs = opts.pingIntervalMs === 0 ? 0 : positive(opts.pingIntervalMs, DEFAULT_PING_INTERVAL_MS);
    this.recoveryWaitMs = positive(opts.recoveryWaitMs, DEFAULT_RECOVERY_WAIT_MS);
  }

  get state(): ImportState {
    return this._state;
  }

  /** what the target's onConnect returned at the last (re)connect */
  get connectData(): unknown {
    return this._connectData;
  }

  /** the NID of the current (or last) connection */
  get nid(): Nid | undefined {
    return this.currentNid;
  }

  /** highest last_committed any reply carried */
  get lastCommitted(): number {
    return this.maxCommitted;
  }

  /** uuid of the client this import belongs to */
  get clientUuid(): string {
    return this.host.uuid;
  }

  /** requests in flight at once (Lustre's max_rpcs_in_flight) */
  get credits(): number {
    return this.maxInFlight;
  }

  /**
   * Changes how many requests may be in flight at once (lctl set_param
   * osc.*.max_rpcs_in_flight). Raising it sends queued requests at once; lowering it
   * lets the requests already in flight finish.
   */
  setCredits(n: number): void {
    if (!Number.isInteger(n) || n < 1 || n > MAX_IMPORT_CREDITS) {
      throw err('ERANGE', `requests in flight must be an integer in 1..${MAX_IMPORT_CREDITS}, not ${n}`, 'BAD_CREDITS');
    }
    this.maxInFlight = n;
    this.pump();
  }

  get connection(): ImportConnectionInfo {
    return {
      nids: this.nids,
      current: this.currentNid,
      connCnt: this.connCnt,
      generation: this.generation,
      timeouts: this.counters.timeouts,
      lastActivity: this.lastActivity,
    };
  }

  get stats(): { sent: number; inFlight: number; queued: number; resent: number; reconnects: number; evictions: number } {
    return {
      evictions: this.counters.evictions,
      sent: this.counters.sent,
      inFlight: this.inFlight.size,
      queued: this.queue.length + this.resendList.length,
      resent: this.counters.resent,
      reconnects: this.counters.reconnects,
    };
  }

  /**
   * Connects (or waits for the connection in progress) and returns the connect data.
   * Rejects at once when the target refuses; retries unreachable NIDs until recoveryWaitMs.
   */
  connect(): Promise<unknown> {
    if (this._state === 'CLOSED') return Promise.reject(this.closedError());
    if (this._state === 'FULL') return Promise.resolve(this._connectData);
    return new Promise<unknown>((resolve, reject) => {
      const waiter: ConnectWaiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          this.connectWaiters = this.connectWaiters.filter((w) => w !== waiter);
          const last = this.lastConnectError ? `: ${this.lastConnectError.message}` : '';
          reject(err('ETIMEDOUT', `could not connect to ${this.target} within ${this.recoveryWaitMs} ms${last}`, 'RECOVERY_TIMEOUT'));
        }, this.recoveryWaitMs),
      };
      this.connectWaiters.push(waiter);
      this.ensureConnecting();
    });
  }

  request(opc: number, body: unknown, opts: RequestOptions = {}): Promise<ReplyMessage> {
    if (this._state === 'CLOSED') return Promise.reject(this.closedError());
    try {
      checkRequestArgs(opc, opts);
    } catch (e) {
      return Promise.reject(e);
    }
    const bulk = normalizeBulk(opts.bulk);
    const timeoutMs = positive(opts.timeoutMs, this.timeoutMs);
    return new Promise<ReplyMessage>((resolve, reject) => {
      const req: PendingRequest = {
        info: { opc, body, bulkBytes: bulk ? bulk.reduce((n, b) => n + b.length, 0) : 0 },
        opc,
        body,
        opts,
        bulk,
        ck: opts.checksum && bulk ? bulkChecksum(bulk) : undefined,
        timeoutMs,
        resolve,
        reject,
        xid: 0,
        sends: 0,
        channel: undefined,
        generation: 0,
        sendTimer: undefined,
        waitTimer: undefined,
        settled: false,
        sentAt: 0n,
        repliedAt: 0n,
      };
      this.queue.push(req);
      this.notify('rpc-queued', req.info);
      if (this._state === 'FULL' && opts.urgent && this.channel?.isOpen) {
        // Lock cancels go at once: the requests holding every credit may be waiting for them.
        this.queue = this.queue.filter((r) => r !== req);
        this.transmit(req, this.channel);
      } else if (this._state === 'FULL') {
        this.pump();
      } else {
        this.armWait(req);
        this.ensureConnecting();
      }
    });
  }

  /** OBD_PING the target; rejects when it is not connected or does not answer. */
  async ping(): Promise<void> {
    if (this._state === 'CLOSED') throw this.closedError();
    if (this._state === 'NEW') await this.connect();
    const ch = this.channel;
    if (this._state !== 'FULL' || !ch) {
      throw err('ENOTCONN', `${this.target} is not connected (import state ${this._state})`, 'NOT_CONNECTED');
    }
    await this.probe(ch);
  }

  /** Stops timers, fails pending requests with ESHUTDOWN, and sends DISCONNECT best-effort. */
  async close(): Promise<void> {
    if (this._state === 'CLOSED') return;
    const wasFull = this._state === 'FULL';
    const ch = this.channel;
    this.setState('CLOSED');
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = undefined;
    this.backoff?.wake();
    for (const w of this.connectWaiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(this.closedError());
    }
    for (const req of [...this.inFlight.values()]) req.channel?.cancel(req.xid);
    const pending = [...this.inFlight.values(), ...this.resendList, ...this.queue];
    this.inFlight.clear();
    this.resendList = [];
    this.queue = [];
    for (const req of pending) this.settle(req, this.closedError());
    if (wasFull && ch?.isOpen) {
      const header = requestHeader(DISCONNECT_OF.get(this.connectOpc)!, this.host.nextXid(), undefined, {}, {
        h: this.handle,
        cc: this.connCnt,
        timeoutMs: Math.min(1_000, this.timeoutMs),
      });
      await ch.call(header, undefined, Math.min(1_000, this.timeoutMs), `DISCONNECT from ${this.target}`).catch(() => undefined);
    }
    if (ch) this.host.detach(ch, this);
    this.channel = undefined;
    this.host.importClosed(this);
  }

  /** @internal the RpcClient reports that a channel this import is attached to closed */
  channelLost(ch: RpcChannel, reason: Error | undefined): void {
    if (ch !== this.channel) return;
    this.host.detach(ch, this);
    this.channel = undefined;
    if (this._state !== 'FULL') return;
    this.setState('DISCONN');
    const nid = this.currentNid ? formatNid(this.currentNid) : ch.peer;
    this.log.warn(
      { target: this.target, nid, reason: reason?.message },
      `Connection to ${this.target} (at ${nid}) was lost; in progress operations using this service will wait for recovery to complete`,
    );
    this.armWaitAll();
    this.ensureConnecting();
  }

  // ---- sending ----

  private pump(): void {
    const ch = this.channel;
    while (this._state === 'FULL' && ch && ch === this.channel && ch.isOpen && this.inFlight.size < this.maxInFlight) {
      const req = this.resendList.shift() ?? this.queue.shift();
      if (!req) break;
      this.transmit(req, ch);
    }
  }

  private transmit(req: PendingRequest, ch: RpcChannel): void {
    this.disarmWait(req);
    if (req.xid === 0) req.xid = this.host.nextXid();
    const resend = req.sends > 0;
    const header = requestHeader(req.opc, req.xid, req.body, req.opts, {
      h: this.handle,
      cc: this.connCnt,
      fl: resend ? MsgFlag.RESENT : 0,
      timeoutMs: req.timeoutMs,
      ck: req.ck,
    });
    req.channel = ch;
    req.generation = this.generation;
    this.inFlight.set(req.xid, req);
    let sent: boolean;
    try {
      sent = ch.sendRequest(header, req.bulk, (e, reply) => this.onSendDone(req, ch, e, reply));
    } catch (e) {
      this.inFlight.delete(req.xid);
      req.channel = undefined;
      this.settle(req, toStriaError(e));
      return;
    }
    if (!sent) {
      // the channel closed under us: its close handling reconnects; keep the request for then
      this.inFlight.delete(req.xid);
      req.channel = undefined;
      this.requeue(req);
      return;
    }
    req.sends++;
    req.sentAt = process.hrtime.bigint();
    this.counters.sent++;
    if (resend) this.counters.resent++;
    this.lastActivity = Date.now();
    this.notify('rpc-sent', req.info, this.inFlight.size);
    req.sendTimer = setTimeout(() => this.onRequestTimeout(req, ch), req.timeoutMs);
  }

  private onSendDone(req: PendingRequest, ch: RpcChannel, e: StriaError | undefined, reply: Frame | undefined): void {
    if (req.settled || req.channel !== ch || this.inFlight.get(req.xid) !== req) return;
    this.inFlight.delete(req.xid);
    clearTimeout(req.sendTimer);
    req.channel = undefined;
    this.lastActivity = Date.now();
    if (e || !reply) {
      this.requeue(req);
      this.channelLost(ch, e);
      return;
    }
    const h = reply.header;
    if (h.t === MsgType.ERROR && h.code === 'NOT_CONNECTED') {
      // the target does not know our export (restarted, or evicted us): reconnect, then resend
      this.requeue(req);
      if (req.generation === this.generation) this.exportLost(ch);
      else this.pump();
      return;
    }
    if (h.lc !== undefined && h.lc > this.maxCommitted) this.maxCommitted = h.lc;
    req.repliedAt = process.hrtime.bigint();
    try {
      this.settle(req, undefined, toReplyMessage(reply, `${opcodeName(req.opc)} to ${this.target}`));
    } catch (error) {
      this.settle(req, toStriaError(error));
    }
    this.pump();
  }

  private onRequestTimeout(req: PendingRequest, ch: RpcChannel): void {
    if (req.settled || this.inFlight.get(req.xid) !== req) return;
    this.inFlight.delete(req.xid);
    ch.cancel(req.xid);
    req.channel = undefined;
    const nid = this.currentNid ? formatNid(this.currentNid) : ch.peer;
    this.counters.timeouts++;
    this.log.warn({ target: this.target, nid, opc: req.opc, xid: req.xid, timeoutMs: req.timeoutMs }, 'request timed out');
    this.settle(
      req,
      err('ETIMEDOUT', `${opcodeName(req.opc)} to ${this.target} (at ${nid}) timed out after ${req.timeoutMs} ms (xid ${req.xid})`, 'RPC_TIMEOUT'),
    );
    this.pump();
    if (ch === this.channel && !this.probing) this.probe(ch).catch(() => undefined);
  }

  /** Puts an unanswered request back, in xid order, to be resent after (re)connection. */
  private requeue(req: PendingRequest): void {
    if (req.settled) return;
    let i = this.resendList.length;
    while (i > 0 && this.resendList[i - 1]!.xid > req.xid) i--;
    this.resendList.splice(i, 0, req);
    if (this._state !== 'FULL') this.armWait(req);
    else this.pump();
  }

  private settle(req: PendingRequest, error: StriaError | undefined, reply?: ReplyMessage): void {
    if (req.settled) return;
    req.settled = true;
    clearTimeout(req.sendTimer);
    clearTimeout(req.waitTimer);
    if (this.listenerCount('rpc-done') > 0) {
      this.notify('rpc-done', req.info, {
        ok: error === undefined,
        waitUsec: req.repliedAt > 0n ? Number((req.repliedAt - req.sentAt) / 1000n) : undefined,
        replyBulkBytes: reply?.bulk?.length ?? 0,
        sent: req.sends > 0,
      } satisfies RpcOutcome);
    }
    if (error) req.reject(error);
    else req.resolve(reply!);
  }

  // ---- waiting for a connection ----

  private armWait(req: PendingRequest): void {
    if (req.waitTimer || req.settled) return;
    req.waitTimer = setTimeout(() => {
      req.waitTimer = undefined;
      if (req.settled || this.inFlight.get(req.xid) === req) return;
      this.queue = this.queue.filter((r) => r !== req);
      this.resendList = this.resendList.filter((r) => r !== req);
      const last = this.lastConnectError ? ` (last error: ${this.lastConnectError.message})` : '';
      this.settle(
        req,
        err('ETIMEDOUT', `${opcodeName(req.opc)} to ${this.target}: no connection to the target within ${this.recoveryWaitMs} ms${last}`, 'RECOVERY_TIMEOUT'),
      );
    }, this.recoveryWaitMs);
  }

  private disarmWait(req: PendingRequest): void {
    clearTimeout(req.waitTimer);
    req.waitTimer = undefined;
  }

  private armWaitAll(): void {
    for (const r of this.resendList) this.armWait(r);
    for (const r of this.queue) this.armWait(r);
  }

  // ---- connection management ----

  /** The target lost our export while the connection stayed up: reconnect over it. */
  private exportLost(ch: RpcChannel): void {
    if (this._state !== 'FULL' || ch !== this.channel) return;
    this.host.detach(ch, this);
    this.channel = undefined;
    this.setState('DISCONN');
    this.log.warn({ target: this.target, nid: ch.peer }, `${this.target} no longer knows this client; reconnecting`);
    this.armWaitAll();
    this.ensureConnecting();
  }

  private ensureConnecting(): void {
    if (this.connecting || this._state === 'CLOSED' || this._state === 'FULL') return;
    this.connecting = true;
    this.connectLoop().catch((e: unknown) => {
      this.connecting = false;
      this.log.error({ err: e, target: this.target }, 'connect loop failed');
    });
  }

  private hasWaiters(): boolean {
    return this.connectWaiters.length > 0 || this.queue.length > 0 || this.resendList.length > 0 || this.inFlight.size > 0;
  }

  /** Runs while `connecting`; clears it before anything that may start a new loop. */
  private async connectLoop(): Promise<void> {
    try {
      await this.connectAttempts();
    } finally {
      this.connecting = false;
    }
  }

  private async connectAttempts(): Promise<void> {
    this.setState('CONNECTING');
    let delay = BACKOFF_START_MS;
    // Bounded by close(), by a refusal before the first connection, and (never connected)
    // by every waiter giving up after recoveryWaitMs.
    for (let attempt = 0; this._state === 'CONNECTING'; attempt++) {
      if (attempt > 0) {
        await this.sleep(delay);
        delay = Math.min(delay * 2, BACKOFF_MAX_MS);
        if (this._state !== 'CONNECTING') return;
      }
      if (!this.everConnected && !this.hasWaiters()) {
        this.connecting = false;
        this.setState('DISCONN');
        return;
      }
      const nid = this.nids[this.nidIndex % this.nids.length]!;
      const outcome = await this.tryConnect(nid);
      if (this._state !== 'CONNECTING') {
        if (outcome.ok) this.host.importClosed(this);
        return;
      }
      if (outcome.ok) {
        this.connecting = false;
        this.connected(nid, outcome);
        return;
      }
      this.lastConnectError = outcome.error;
      this.nidIndex++;
      if (outcome.refused && !this.everConnected) {
        this.log.warn({ target: this.target, nid: formatNid(nid), err: outcome.error.message }, 'connection refused by the target');
        this.connecting = false;
        this.setState('DISCONN');
        this.failWaiters(outcome.error);
        return;
      }
      this.log[attempt === 0 ? 'info' : 'debug'](
        { target: this.target, nid: formatNid(nid), err: outcome.error.message, retryInMs: delay },
        'connect attempt failed',
      );
    }
  }

  private async tryConnect(nid: Nid): Promise<ConnectOutcome> {
    const timeoutMs = Math.max(1_000, Math.min(this.timeoutMs, 10_000));
    let ch: RpcChannel;
    try {
      ch = await this.host.channelTo(nid, timeoutMs);
    } catch (e) {
      return { ok: false, refused: false, error: toStriaError(e) };
    }
    // The handle we had tells the target who we were: it answers `evicted` if it evicted us.
    const connectBody = this.everConnected ? { ...(this.connectBody as object), prevHandle: this.handle } : this.connectBody;
    const header = requestHeader(this.connectOpc, this.host.nextXid(), connectBody, {}, { timeoutMs });
    let reply: Frame;
    try {
      reply = await ch.call(header, undefined, timeoutMs, `${opcodeName(this.connectOpc)} to ${this.target}`);
    } catch (e) {
      const se = toStriaError(e);
      // no answer to CONNECT: the connection is dead (a peer that holds the socket but
      // says nothing); drop it so the next attempt opens a fresh one
      if (se.code === 'RPC_TIMEOUT') ch.close(se);
      return { ok: false, refused: false, error: se };
    }
    if (reply.header.t === MsgType.ERROR) return { ok: false, refused: true, error: errorFromReply(reply.header) };
    const body = reply.header.b;
    if (
      !isPlainObject(body) ||
      typeof body.handle !== 'number' ||
      !Number.isSafeInteger(body.handle) ||
      typeof body.connCnt !== 'number' ||
      !Number.isSafeInteger(body.connCnt)
    ) {
      return { ok: false, refused: true, error: err('EPROTO', `${this.target} sent a malformed CONNECT reply`, 'BAD_CONNECT_REPLY') };
    }
    if (!ch.isOpen) return { ok: false, refused: false, error: err('ENOTCONN', `connection to ${ch.peer} lost during CONNECT`, 'CONNECTION_LOST') };
    if (reply.header.lc !== undefined && reply.header.lc > this.maxCommitted) this.maxCommitted = reply.header.lc;
    return { ok: true, ch, handle: body.handle, connCnt: body.connCnt, data: body.data, evicted: body.evicted === true };
  }

  private connected(nid: Nid, o: Extract<ConnectOutcome, { ok: true }>): void {
    const reconnect = this.everConnected;
    const newExport = reconnect && o.handle !== this.handle;
    this.channel = o.ch;
    this.handle = o.handle;
    this.connCnt = o.connCnt;
    this._connectData = o.data;
    this.generation++;
    this.everConnected = true;
    this.currentNid = nid;
    this.lastConnectError = undefined;
    this.lastActivity = Date.now();
    this.host.attach(o.ch, this, o.handle);
    if (reconnect) {
      this.counters.reconnects++;
      this.log.info({ target: this.target, nid: formatNid(nid), connCnt: o.connCnt }, `Connection restored to ${this.target} (at ${formatNid(nid)})`);
    }
    if (o.evicted) this.evicted(nid);
    for (const r of this.resendList) this.disarmWait(r);
    for (const r of this.queue) this.disarmWait(r);
    this.setState('FULL');
    // The target lost our export (evicted, or restarted): every lock we held there is gone.
    // Announced once FULL, so a listener's requests (a copytool registering again) queue
    // on this connection instead of starting a second connect; pump() sends them below.
    if (newExport) this.notify('new-export', { evicted: o.evicted });
    for (const w of this.connectWaiters.splice(0)) {
      clearTimeout(w.timer);
      w.resolve(o.data);
    }
    this.startPinging();
    this.pump();
  }

  /** Reference §3.8: in-progress operations fail with EIO; the import then works again. */
  private evicted(nid: Nid): void {
    this.counters.evictions++;
    this.log.error(
      { target: this.target, nid: formatNid(nid) },
      `This client was evicted by ${this.target}; in progress operations using this service will fail.`,
    );
    const failed = [...this.resendList, ...this.queue];
    this.resendList = [];
    this.queue = [];
    for (const r of failed) this.settle(r, err('EIO', `${opcodeName(r.opc)} to ${this.target} failed: this client was evicted`, 'EVICTED'));
  }

  private failWaiters(e: StriaError): void {
    for (const w of this.connectWaiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(e);
    }
    const waiting = [...this.resendList, ...this.queue];
    this.resendList = [];
    this.queue = [];
    for (const r of waiting) this.settle(r, e);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.backoff = undefined;
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.backoff = { timer, wake };
    });
  }

  // ---- pings ----

  private startPinging(): void {
    if (this.pingIntervalMs === 0 || this.pingTimer) return;
    this.pingTimer = setInterval(() => {
      const ch = this.channel;
      if (this._state !== 'FULL' || !ch || this.probing || Date.now() - this.lastActivity < this.pingIntervalMs) return;
      this.probe(ch).catch(() => undefined);
    }, this.pingIntervalMs);
    this.pingTimer.unref();
  }

  /**
   * OBD_PING over ch. A ping that gets no answer means the connection is dead: drop it
   * (every import on it reconnects). NOT_CONNECTED means our export is gone: reconnect.
   */
  private async probe(ch: RpcChannel): Promise<void> {
    const timeoutMs = Math.max(1_000, Math.min(this.timeoutMs, 10_000));
    const header = requestHeader(Opc.OBD_PING, this.host.nextXid(), undefined, {}, { h: this.handle, cc: this.connCnt, timeoutMs });
    const generation = this.generation;
    this.probing = true;
    let reply: Frame;
    try {
      reply = await ch.call(header, undefined, timeoutMs, `OBD_PING to ${this.target}`);
    } catch (e) {
      const se = toStriaError(e);
      if (se.code === 'RPC_TIMEOUT' && ch === this.channel) {
        this.log.warn({ target: this.target, nid: ch.peer }, 'ping got no answer: dropping the connection');
        ch.close(se);
      }
      throw se;
    } finally {
      this.probing = false;
    }
    this.lastActivity = Date.now();
    if (reply.header.t === MsgType.ERROR) {
      const e = errorFromReply(reply.header);
      if (e.code === 'NOT_CONNECTED' && generation === this.generation) this.exportLost(ch);
      throw e;
    }
  }

  // ---- misc ----

  private setState(s: ImportState): void {
    if (this._state === s) return;
    this._state = s;
    try {
      this.emit('state', s);
    } catch (e) {
      this.log.error({ err: e, target: this.target }, "an import 'state' listener threw");
    }
  }

  /** Emits an observer event; an observer that throws must not break the request path. */
  private notify(event: 'rpc-queued' | 'rpc-sent' | 'rpc-done' | 'new-export', ...args: unknown[]): void {
    if (this.listenerCount(event) === 0) return;
    try {
      this.emit(event, ...args);
    } catch (e) {
      this.log.error({ err: e, target: this.target, event }, 'an import observer threw');
    }
  }

  private closedError(): StriaError {
    return err('ESHUTDOWN', `import of ${this.target} is closed`, 'IMPORT_CLOSED');
  }
}

function positive(v: number | undefined, dflt: number): number {
  return typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : dflt;
}
