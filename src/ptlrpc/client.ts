/**
 * RpcClient: one per client process (uuid). Owns the xid sequence and one connection per
 * server host:port, shared by every Import to targets on that server, and serves the
 * callbacks (lock ASTs) servers send back over those connections.
 */
import { performance } from 'node:perf_hooks';
import { err, StriaError, toStriaError } from '../common/errno.js';
import type { Logger } from '../common/log.js';
import { FrameConnection, formatPeer } from '../lnet/connection.js';
import { DEFAULT_MAX_BULK_BYTES, DEFAULT_MAX_HEADER_BYTES, type FrameLimits } from '../lnet/frame.js';
import { formatNid, type Nid } from '../lnet/nid.js';
import { RpcChannel } from './channel.js';
import { bulkChecksumMatches } from './checksum.js';
import { Import, type ImportHost } from './import.js';
import { checksumError, errorFromReply, errorHeader, outcomeFrame, replyHeader, requestHeader, runHandler } from './message.js';
import { MsgType, Opc, opcodeName } from './opcodes.js';
import { PROTOCOL_VERSION, type ImportOptions, type MsgHeader, type ReplyPayload } from './types.js';

export interface CallbackContext {
  opc: number;
  /** name of the target whose export sent the callback ('' if unknown) */
  target: string;
  /** opcode-specific body: validate before use */
  body: unknown;
  bulk: Buffer | undefined;
}

export type CallbackHandler = (ctx: CallbackContext) => Promise<ReplyPayload | void> | ReplyPayload | void;

export interface RpcClientOptions {
  uuid: string;
  maxHeaderBytes?: number;
  maxBulkBytes?: number;
}

/** callbacks from one server served at once */
const CALLBACK_CREDITS = 32;

interface ClientLink {
  readonly key: string;
  readonly channel: RpcChannel;
  /** imports attached to this connection, with their export handle */
  readonly imports: Map<Import, number>;
  readonly closed: Promise<void>;
}

export class RpcClient {
  readonly uuid: string;
  private readonly limits: FrameLimits;
  private readonly log: Logger;
  private xid: number;
  private readonly callbacks = new Map<number, CallbackHandler>();
  private readonly links = new Map<string, ClientLink>();
  private readonly linkOf = new Map<RpcChannel, ClientLink>();
  private readonly opening = new Map<string, Promise<ClientLink>>();
  private readonly imports = new Set<Import>();
  private closed = false;
  private readonly host: ImportHost;

  constructor(opts: RpcClientOptions, log: Logger) {
    if (typeof opts.uuid !== 'string' || opts.uuid.length === 0) throw err('EINVAL', 'RpcClient needs a uuid', 'BAD_UUID');
    this.uuid = opts.uuid;
    this.limits = {
      maxHeaderBytes: opts.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES,
      maxBulkBytes: opts.maxBulkBytes ?? DEFAULT_MAX_BULK_BYTES,
    };
    this.log = log;
    // Like Lustre, start xids from the clock so a restarted client never reuses one the
    // server may still hold a saved reply for.
    this.xid = Date.now() * 1024;
    this.host = {
      uuid: this.uuid,
      nextXid: () => ++this.xid,
      channelTo: (nid, timeoutMs) => this.channelTo(nid, timeoutMs),
      attach: (ch, imp, handle) => this.attach(ch, imp, handle),
      detach: (ch, imp) => this.linkOf.get(ch)?.imports.delete(imp),
      importClosed: (imp) => this.importClosed(imp),
    };
  }

  /** Serves server->client requests with this opcode (e.g. LDLM_BL_CALLBACK). */
  onCallback(opc: number, handler: CallbackHandler): void {
    this.callbacks.set(opc, handler);
  }

  /**
   * One import per target: the server keys exports by (target, client uuid), so two live
   * imports of one target would keep taking the export from each other.
   */
  import(opts: ImportOptions): Import {
    if (this.closed) throw err('ESHUTDOWN', 'RpcClient is closed', 'CLIENT_CLOSED');
    for (const other of this.imports) {
      if (other.target === opts.target && other.state !== 'CLOSED') {
        throw err('EEXIST', `client ${this.uuid} already has an import of ${opts.target}`, 'IMPORT_EXISTS');
      }
    }
    const imp = new Import(this.host, opts, this.log);
    this.imports.add(imp);
    return imp;
  }

  /**
   * OBD_PING a server node by NID, outside any import (`lctl ping`). Uses the shared
   * connection to that host:port, opening it if needed.
   */
  async ping(nid: Nid, timeoutMs = 10_000): Promise<void> {
    const ch = await this.channelTo(nid, timeoutMs);
    const header = requestHeader(Opc.OBD_PING, this.host.nextXid(), undefined, {}, { timeoutMs });
    let reply;
    try {
      reply = await ch.call(header, undefined, timeoutMs, `OBD_PING to ${formatNid(nid)}`);
    } finally {
      const link = this.linkOf.get(ch);
      if (link && link.imports.size === 0 && ch.awaitingReplies === 0 && !this.anyImportMayUse(link)) ch.close();
    }
    if (reply.header.t === MsgType.ERROR) throw errorFromReply(reply.header);
  }

  /** Closes every import (DISCONNECT best-effort) and every connection. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.imports].map((i) => i.close()));
    const links = [...this.links.values()];
    for (const l of links) l.channel.close();
    await Promise.all(links.map((l) => l.closed));
  }

  private async channelTo(nid: Nid, timeoutMs: number): Promise<RpcChannel> {
    if (this.closed) throw err('ESHUTDOWN', 'RpcClient is closed', 'CLIENT_CLOSED');
    const key = formatPeer(nid.addr, nid.port);
    const existing = this.links.get(key);
    if (existing && existing.channel.isOpen) return existing.channel;
    let opening = this.opening.get(key);
    if (!opening) {
      opening = this.open(nid, key, timeoutMs).finally(() => this.opening.delete(key));
      this.opening.set(key, opening);
    }
    return (await opening).channel;
  }

  private async open(nid: Nid, key: string, timeoutMs: number): Promise<ClientLink> {
    const conn = await FrameConnection.connect(nid.addr, nid.port, this.limits, this.log, timeoutMs);
    if (this.closed) {
      conn.close();
      throw err('ESHUTDOWN', 'RpcClient is closed', 'CLIENT_CLOSED');
    }
    let link!: ClientLink;
    const channel = new RpcChannel(conn, {
      credits: CALLBACK_CREDITS,
      dispatch: (h, b) => this.serveCallback(link, h, b),
      log: this.log,
    });
    let markClosed!: () => void;
    link = { key, channel, imports: new Map(), closed: new Promise<void>((r) => (markClosed = r)) };
    channel.onClose((reason) => {
      markClosed();
      this.linkClosed(link, reason);
    });
    this.links.set(key, link);
    this.linkOf.set(channel, link);
    this.log.debug({ peer: key }, 'connected');
    return link;
  }

  private linkClosed(link: ClientLink, reason: Error | undefined): void {
    if (this.links.get(link.key) === link) this.links.delete(link.key);
    this.linkOf.delete(link.channel);
    for (const imp of [...link.imports.keys()]) imp.channelLost(link.channel, reason);
    link.imports.clear();
  }

  private attach(ch: RpcChannel, imp: Import, handle: number): void {
    const link = this.linkOf.get(ch);
    if (!link) {
      // closed between the CONNECT reply and now: let the import notice and reconnect
      queueMicrotask(() => imp.channelLost(ch, undefined));
      return;
    }
    link.imports.set(imp, handle);
  }

  /** Drops connections nobody uses any more. */
  private importClosed(imp: Import): void {
    this.imports.delete(imp);
    for (const link of [...this.links.values()]) {
      link.imports.delete(imp);
      if (link.imports.size === 0 && link.channel.awaitingReplies === 0 && !this.anyImportMayUse(link)) link.channel.close();
    }
  }

  /** An import that is (re)connecting may be about to use this connection again. */
  private anyImportMayUse(link: ClientLink): boolean {
    for (const imp of this.imports) {
      if (imp.state === 'CONNECTING' || imp.state === 'DISCONN') {
        const nid = imp.nid;
        if (nid === undefined || formatPeer(nid.addr, nid.port) === link.key) return true;
      }
    }
    return false;
  }

  private async serveCallback(link: ClientLink, h: MsgHeader, bulk: Buffer | undefined): Promise<void> {
    const started = performance.now();
    const extra = (): { svcMs: number } => ({ svcMs: Math.round(performance.now() - started) });
    const replyError = (e: StriaError): void => {
      link.channel.send(errorHeader(h, e, extra()));
    };
    if (h.v !== PROTOCOL_VERSION) {
      replyError(err('EPROTO', `unsupported protocol version ${h.v}`, 'BAD_VERSION'));
      return;
    }
    if (h.opc === Opc.OBD_PING) {
      link.channel.send(replyHeader(h, undefined, undefined, extra()));
      return;
    }
    let target = '';
    for (const [imp, handle] of link.imports) if (handle === h.h) target = imp.target;
    const what = `${opcodeName(h.opc)} callback from ${target || link.key}`;
    if (!bulkChecksumMatches(h, bulk)) {
      this.log.warn({ peer: link.key, opc: h.opc, xid: h.xid }, 'callback bulk checksum mismatch');
      replyError(checksumError(what));
      return;
    }
    const handler = this.callbacks.get(h.opc);
    if (!handler) {
      replyError(err('EOPNOTSUPP', `client ${this.uuid} has no handler for ${opcodeName(h.opc)}`, 'UNKNOWN_OPCODE'));
      return;
    }
    const outcome = await runHandler(handler, { opc: h.opc, target, body: h.b, bulk }, this.log, what);
    const frame = outcomeFrame(h, outcome, extra());
    try {
      link.channel.send(frame.header, frame.bulk);
    } catch (e) {
      const se = toStriaError(e);
      this.log.error({ err: se.message, opc: h.opc }, 'callback reply could not be sent');
      replyError(new StriaError(se.errno, `reply could not be sent: ${se.message}`, se.code));
    }
  }
}
