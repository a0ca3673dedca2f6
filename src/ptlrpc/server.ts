/**
 * RpcServer: accepts connections, routes requests to the targets it serves (MGS, MDTs,
 * OSTs), keeps one export per (target, client uuid), and answers resent requests from
 * the export's reply cache. Callbacks to clients go back over the client's connection.
 */
import { randomInt } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { err, StriaError, toStriaError } from '../common/errno.js';
import type { Logger } from '../common/log.js';
import { FrameConnection, formatPeer } from '../lnet/connection.js';
import { DEFAULT_MAX_BULK_BYTES, DEFAULT_MAX_HEADER_BYTES, type FrameLimits } from '../lnet/frame.js';
import { BulkPool } from '../lnet/bulk-pool.js';
import { RpcChannel } from './channel.js';
import { bulkChecksum, bulkChecksumMatches } from './checksum.js';
import { RpcExport, type ServerLink } from './export.js';
import {
  checkRequestArgs,
  checksumError,
  errorHeader,
  isPlainObject,
  normalizeBulk,
  outcomeFrame,
  replyHeader,
  requestHeader,
  runHandler,
  toReplyMessage,
  validTransno,
  type HandlerOutcome,
} from './message.js';
import { CONNECT_OPCODES, DISCONNECT_OPCODES, MsgFlag, Opc, opcodeName } from './opcodes.js';
import {
  PROTOCOL_VERSION,
  type MsgHeader,
  type ReplyMessage,
  type RequestContext,
  type RequestOptions,
  type RpcServerOptions,
  type ServerExport,
  type TargetService,
} from './types.js';

export const DEFAULT_SERVER_CREDITS = 16;
export const DEFAULT_REPLY_CACHE_SIZE = 64;
/** default deadline of a server->client request (lock callbacks) */
export const DEFAULT_CALLBACK_TIMEOUT_MS = 30_000;
const MAX_NAME_LENGTH = 256;
/**
 * Requests whose bulk nothing refers to once their handler has finished: OST_WRITE's data is
 * on disk (or the write failed) by then, so its buffer goes back to requestBulks.
 */
const RECYCLED_REQUEST_BULKS: ReadonlySet<number> = new Set([Opc.OST_WRITE]);
const MAX_EVICTED_REMEMBERED = 4096;

class Link implements ServerLink {
  readonly peer: string;
  readonly exports = new Set<RpcExport>();
  channel!: RpcChannel;

  constructor(peer: string) {
    this.peer = peer;
  }
}

export class RpcServer {
  /** buffers for large reply bulks (OST_READ), given back here once their reply is sent */
  readonly replyBulks = new BulkPool();
  /** buffers request bulks are assembled in; only OST_WRITE's come back (RECYCLED_REQUEST_BULKS) */
  readonly requestBulks = new BulkPool({ maxIdleBytes: 32 * 1024 * 1024 });
  private readonly opts: RpcServerOptions;
  private readonly limits: FrameLimits;
  private readonly credits: number;
  private readonly replyCacheSize: number;
  private readonly log: Logger;
  private readonly targets = new Map<string, TargetService>();
  private readonly exportsByKey = new Map<string, RpcExport>();
  private readonly exportsByHandle = new Map<number, RpcExport>();
  private readonly links = new Set<Link>();
  /** highest transno replied per target: every reply's last_committed */
  private readonly lastTransno = new Map<string, number>();
  private server: Server | undefined;
  private boundPort = 0;
  private nextHandle = randomInt(1, 2 ** 40);
  /** handles of evicted exports, so a client reconnecting with one learns it was evicted */
  private readonly evictedHandles = new Set<number>();
  private nextXid = 1;
  private closing: Promise<void> | undefined;

  constructor(opts: RpcServerOptions, log: Logger) {
    this.opts = opts;
    this.limits = {
      maxHeaderBytes: opts.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES,
      maxBulkBytes: opts.maxBulkBytes ?? DEFAULT_MAX_BULK_BYTES,
    };
    this.credits = opts.credits ?? DEFAULT_SERVER_CREDITS;
    this.replyCacheSize = opts.replyCacheSize ?? DEFAULT_REPLY_CACHE_SIZE;
    this.log = log;
  }

  addTarget(t: TargetService): void {
    if (this.targets.has(t.name)) throw err('EEXIST', `target ${t.name} is already served here`, 'TARGET_EXISTS');
    this.targets.set(t.name, t);
  }

  /** Starts listening on the NID's address and port (0 = an ephemeral port, see `port`). */
  listen(): Promise<void> {
    if (this.server) return Promise.reject(err('EBUSY', 'RpcServer.listen() called twice', 'ALREADY_LISTENING'));
    if (this.closing) return Promise.reject(err('ESHUTDOWN', 'RpcServer is closed', 'SERVER_CLOSED'));
    const { addr, port } = this.opts.nid;
    const server = createServer((socket) => this.accept(socket));
    this.server = server;
    return new Promise<void>((resolve, reject) => {
      const onError = (e: NodeJS.ErrnoException): void => {
        this.server = undefined;
        const where = formatPeer(addr, port);
        if (e.code === 'EADDRINUSE') reject(err('EBUSY', `address ${where} is already in use`, 'ADDRESS_IN_USE'));
        else if (e.code === 'EACCES') reject(err('EACCES', `no permission to listen on ${where}`, 'ADDRESS_NOT_PERMITTED'));
        else if (e.code === 'EADDRNOTAVAIL') reject(err('EINVAL', `address ${where} is not available on this host`, 'ADDRESS_NOT_AVAILABLE'));
        else {
          const se = toStriaError(e);
          reject(new StriaError(se.errno, `cannot listen on ${where}: ${e.message}`, se.code));
        }
      };
      server.once('error', onError);
      server.listen(port, addr, () => {
        server.off('error', onError);
        server.on('error', (e) => this.log.error({ err: e }, 'listener error'));
        const a = server.address();
        this.boundPort = typeof a === 'object' && a !== null ? a.port : port;
        this.log.info({ addr, port: this.boundPort, targets: [...this.targets.keys()] }, 'rpc server listening');
        resolve();
      });
    });
  }

  /** The port actually listened on (after listen()). */
  get port(): number {
    return this.boundPort;
  }

  exports(target?: string): ServerExport[] {
    const all = [...this.exportsByKey.values()];
    return target === undefined ? all : all.filter((e) => e.target === target);
  }

  /**
   * Evicts a client from a target (reference §3.8): its export and everything the
   * target keeps for it go (onDisconnect), and its connection is closed so the client
   * notices at once; its reconnect is told it was evicted.
   */
  evict(exp: ServerExport, reason: string): void {
    const e = this.exportsByHandle.get(exp.handle);
    if (!e || e !== exp) return;
    this.log.warn({ target: e.target, client: e.clientUuid, peer: e.peer, reason }, `evicting client ${e.clientUuid} at ${e.peer} from ${e.target}: ${reason}`);
    this.evictedHandles.add(e.handle);
    if (this.evictedHandles.size > MAX_EVICTED_REMEMBERED) this.evictedHandles.delete(this.evictedHandles.values().next().value!);
    const link = e.link;
    this.dropExport(e, true);
    link?.channel.close(err('ENOTCONN', `client evicted: ${reason}`, 'EVICTED'));
  }

  /** Closes the listener and every connection; resolves when all are gone. */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      for (const link of this.links) link.channel.close(err('ESHUTDOWN', 'server shutting down', 'SERVER_CLOSED'));
      const server = this.server;
      if (!server || !server.listening) {
        resolve();
        return;
      }
      server.close(() => resolve());
    });
    return this.closing;
  }

  private accept(socket: Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    const conn = new FrameConnection(socket, this.limits, this.log, undefined, this.requestBulks);
    const link = new Link(conn.peer);
    link.channel = new RpcChannel(conn, {
      credits: this.credits,
      dispatch: (h, b) => this.dispatch(link, h, b),
      log: this.log,
    });
    link.channel.onClose(() => this.linkClosed(link));
    this.links.add(link);
    this.log.debug({ peer: link.peer }, 'connection accepted');
  }

  private linkClosed(link: Link): void {
    this.links.delete(link);
    for (const exp of [...link.exports]) if (exp.link === link) exp.unbind();
    this.log.debug({ peer: link.peer }, 'connection closed');
  }

  private async dispatch(link: Link, h: MsgHeader, bulk: Buffer | undefined): Promise<void> {
    const started = performance.now();
    if (h.v !== PROTOCOL_VERSION) {
      this.replyError(link, h, err('EPROTO', `unsupported protocol version ${h.v} (this server speaks ${PROTOCOL_VERSION})`, 'BAD_VERSION'), started);
      return;
    }
    if (h.opc === Opc.OBD_PING) {
      this.answerPing(link, h, started);
      return;
    }
    if (CONNECT_OPCODES.has(h.opc)) {
      await this.handleConnect(link, h, started);
      return;
    }
    const exp = this.exportOf(link, h);
    if (!exp) {
      this.replyError(link, h, notConnected(h), started);
      return;
    }
    if (DISCONNECT_OPCODES.has(h.opc)) {
      this.dropExport(exp, true);
      this.sendFrame(link, replyHeader(h, undefined, undefined, this.replyExtra(exp.target, started)), undefined);
      return;
    }
    const what = `${opcodeName(h.opc)} on ${exp.target}`;
    if (!bulkChecksumMatches(h, bulk)) {
      this.log.warn({ peer: link.peer, client: exp.clientUuid, opc: h.opc, xid: h.xid }, 'request bulk checksum mismatch');
      this.replyError(link, h, checksumError(what), started, exp.target);
      return;
    }
    if ((h.fl ?? 0) & MsgFlag.RESENT) {
      const saved = await exp.replies.lookup(h.xid);
      if (saved) {
        this.log.debug({ client: exp.clientUuid, xid: h.xid, opc: h.opc }, 'resent request answered from the reply cache');
        this.sendOutcome(link, h, saved, started, exp.target);
        return;
      }
    }
    const target = this.targets.get(exp.target);
    const handler = target?.handlers.get(h.opc);
    if (!handler) {
      this.replyError(link, h, err('EOPNOTSUPP', `${exp.target} does not support opcode ${opcodeName(h.opc)}`, 'UNKNOWN_OPCODE'), started, exp.target);
      return;
    }
    const ctx: RequestContext = {
      opc: h.opc,
      xid: h.xid,
      flags: h.fl ?? 0,
      body: h.b,
      bulk,
      uid: h.uid ?? 0,
      gid: h.gid ?? 0,
      jobid: h.job ?? '',
      export: exp,
    };
    const finish = exp.replies.begin(h.xid);
    let outcome: HandlerOutcome;
    let kept = false;
    try {
      outcome = await runHandler(handler, ctx, this.log, what);
      const tn = outcome.ok ? validTransno(outcome.payload?.transno) : undefined;
      if (tn !== undefined && tn > (this.lastTransno.get(exp.target) ?? 0)) this.lastTransno.set(exp.target, tn);
      kept = exp.replies.save(h.xid, outcome);
    } finally {
      finish();
    }
    // A reply the cache did not keep is referenced by nothing once sent: pooled bulk goes back.
    this.sendOutcome(link, h, outcome, started, exp.target, !kept);
    if (bulk && RECYCLED_REQUEST_BULKS.has(h.opc)) this.requestBulks.give(bulk);
  }

  /** The export a request's handle names, if it is bound to this connection and generation. */
  private exportOf(link: Link, h: MsgHeader): RpcExport | undefined {
    if (h.h === undefined) return undefined;
    const exp = this.exportsByHandle.get(h.h);
    if (!exp || exp.link !== link) return undefined;
    if (h.cc !== undefined && h.cc < exp.connCnt) return undefined;
    return exp;
  }

  private answerPing(link: Link, h: MsgHeader, started: number): void {
    let target: string | undefined;
    if (h.h !== undefined) {
      const exp = this.exportOf(link, h);
      if (!exp) {
        this.replyError(link, h, notConnected(h), started);
        return;
      }
      target = exp.target;
    }
    this.sendFrame(link, replyHeader(h, undefined, undefined, this.replyExtra(target, started)), undefined);
  }

  private async handleConnect(link: Link, h: MsgHeader, started: number): Promise<void> {
    const body = h.b;
    if (
      !isPlainObject(body) ||
      typeof body.target !== 'string' ||
      typeof body.uuid !== 'string' ||
      body.uuid.length === 0 ||
      body.uuid.length > MAX_NAME_LENGTH ||
      body.target.length > MAX_NAME_LENGTH
    ) {
      this.replyError(link, h, err('EINVAL', `${opcodeName(h.opc)} body must be { target: string, uuid: string, data?: unknown }`, 'BAD_CONNECT'), started);
      return;
    }
    const name = body.target;
    const uuid = body.uuid;
    const target = this.targets.get(name);
    if (!target) {
      this.replyError(link, h, err('ENODEV', `no target '${name}' on ${formatPeer(this.opts.nid.addr, this.port)}`, 'NO_SUCH_TARGET'), started);
      return;
    }
    const key = `${name}\u0000${uuid}`;
    let exp = this.exportsByKey.get(key);
    const isNew = exp === undefined;
    if (!exp) {
      exp = new RpcExport(
        { target: name, clientUuid: uuid, handle: this.nextHandle++, peer: link.peer, replyCacheSize: this.replyCacheSize },
        (e, opc, b, o) => this.callback(e, opc, b, o),
      );
      this.exportsByKey.set(key, exp);
      this.exportsByHandle.set(exp.handle, exp);
    }
    exp.connCnt += 1;
    exp.bind(link);
    let data: unknown;
    try {
      data = target.onConnect ? await target.onConnect(exp, body.data) : undefined;
    } catch (e) {
      if (isNew) this.dropExport(exp, false);
      else if (exp.link === link) exp.unbind();
      const se = e instanceof StriaError ? e : err('EIO', `${name} refused the connection: ${toStriaError(e).message}`, 'EIO');
      if (!(e instanceof StriaError)) this.log.error({ err: e, target: name, client: uuid }, 'onConnect failed');
      this.replyError(link, h, se, started, name);
      return;
    }
    this.log.debug({ target: name, client: uuid, peer: link.peer, connCnt: exp.connCnt, reconnect: !isNew }, 'client connected');
    const prev = typeof body.prevHandle === 'number' ? body.prevHandle : undefined;
    const evicted = isNew && prev !== undefined && this.evictedHandles.delete(prev);
    const reply = evicted ? { handle: exp.handle, connCnt: exp.connCnt, data, evicted } : { handle: exp.handle, connCnt: exp.connCnt, data };
    this.sendFrame(link, replyHeader(h, reply, undefined, this.replyExtra(name, started)), undefined);
  }

  private dropExport(exp: RpcExport, notify: boolean): void {
    const key = `${exp.target}\u0000${exp.clientUuid}`;
    if (this.exportsByKey.get(key) === exp) this.exportsByKey.delete(key);
    this.exportsByHandle.delete(exp.handle);
    exp.unbind();
    if (!notify) return;
    try {
      this.targets.get(exp.target)?.onDisconnect?.(exp);
    } catch (e) {
      this.log.error({ err: e, target: exp.target, client: exp.clientUuid }, 'onDisconnect failed');
    }
  }

  private async callback(exp: RpcExport, opc: number, body: unknown, opts: RequestOptions): Promise<ReplyMessage> {
    const what = `${opcodeName(opc)} to client ${exp.clientUuid} of ${exp.target}`;
    checkRequestArgs(opc, opts);
    const link = exp.link;
    if (!link || !link.channel.isOpen) throw err('ENOTCONN', `${what}: the client is not connected`, 'NOT_CONNECTED');
    const bulk = normalizeBulk(opts.bulk);
    const timeoutMs = opts.timeoutMs ?? DEFAULT_CALLBACK_TIMEOUT_MS;
    const ck = opts.checksum && bulk ? bulkChecksum(bulk) : undefined;
    const header = requestHeader(opc, this.nextXid++, body, opts, { h: exp.handle, cc: exp.connCnt, timeoutMs, ck });
    const frame = await link.channel.call(header, bulk, timeoutMs, what);
    return toReplyMessage(frame, what);
  }

  private replyExtra(target: string | undefined, started: number): { lc?: number; svcMs: number } {
    const svcMs = Math.round(performance.now() - started);
    return target === undefined ? { svcMs } : { lc: this.lastTransno.get(target) ?? 0, svcMs };
  }

  private replyError(link: Link, h: MsgHeader, e: StriaError, started: number, target?: string): void {
    this.sendFrame(link, errorHeader(h, e, this.replyExtra(target, started)), undefined);
  }

  private sendOutcome(link: Link, h: MsgHeader, outcome: HandlerOutcome, started: number, target: string, recycle = false): void {
    const frame = outcomeFrame(h, outcome, this.replyExtra(target, started));
    this.sendFrame(link, frame.header, frame.bulk, h, target, started, recycle ? frame.bulk : undefined);
  }

  /** `recycle`: bulk buffers to give back to replyBulks once the socket is done with them. */
  private sendFrame(link: Link, header: MsgHeader, bulk: Buffer[] | undefined, req?: MsgHeader, target?: string, started = 0, recycle?: Buffer[]): void {
    const giveBack = recycle && recycle.some((b) => this.replyBulks.owns(b)) ? () => recycle.forEach((b) => this.replyBulks.give(b)) : undefined;
    try {
      if (!link.channel.send(header, bulk, giveBack)) giveBack?.();
    } catch (e) {
      giveBack?.();
      // the reply could not be encoded (too large, unpackable body): say so instead
      const se = toStriaError(e);
      this.log.error({ err: se.message, opc: header.opc, xid: header.xid }, 'reply could not be sent');
      if (req) this.replyError(link, req, new StriaError(se.errno, `reply could not be sent: ${se.message}`, se.code), started, target);
    }
  }
}

function notConnected(h: MsgHeader): StriaError {
  return err(
    'ENOTCONN',
    h.h === undefined ? `${opcodeName(h.opc)} sent before CONNECT` : `no connection for export handle ${h.h} on this connection`,
    'NOT_CONNECTED',
  );
}
