/**
 * RPC over one framed connection, both directions at once: requests we sent wait for
 * their reply by xid; requests we receive go to a dispatcher, at most `credits` at a
 * time, and reading pauses beyond that so the peer feels TCP backpressure.
 */
import { err, StriaError } from '../common/errno.js';
import type { Logger } from '../common/log.js';
import type { FrameConnection } from '../lnet/connection.js';
import type { Frame } from './message.js';
import { MsgType, Opc } from './opcodes.js';
import type { MsgHeader } from './types.js';

/** Handles one incoming request; must send its reply through the channel. */
export type RequestDispatcher = (header: MsgHeader, bulk: Buffer | undefined) => Promise<void> | void;

/** Called once: with the reply, or with an error when the connection is lost first. */
export type ReplyCallback = (error: StriaError | undefined, reply: Frame | undefined) => void;

export interface RpcChannelOptions {
  /** incoming requests served at once */
  credits: number;
  dispatch: RequestDispatcher;
  log: Logger;
}

export class RpcChannel {
  readonly peer: string;
  private readonly conn: FrameConnection;
  private readonly credits: number;
  private readonly dispatch: RequestDispatcher;
  private readonly log: Logger;
  private readonly pending = new Map<number, ReplyCallback>();
  private readonly closeListeners: Array<(reason: Error | undefined) => void> = [];
  private backlog: Frame[] = [];
  private active = 0;
  private closed = false;

  constructor(conn: FrameConnection, opts: RpcChannelOptions) {
    this.conn = conn;
    this.peer = conn.peer;
    this.credits = Math.max(1, opts.credits);
    this.dispatch = opts.dispatch;
    this.log = opts.log;
    conn.start({ onFrame: (h, b) => this.onFrame(h, b), onClose: (r) => this.onClosed(r) });
  }

  get isOpen(): boolean {
    return !this.closed && this.conn.isOpen;
  }

  /** requests we sent that still wait for a reply */
  get awaitingReplies(): number {
    return this.pending.size;
  }

  /** incoming requests being served */
  get serving(): number {
    return this.active;
  }

  onClose(listener: (reason: Error | undefined) => void): void {
    this.closeListeners.push(listener);
  }

  /**
   * Sends a request and registers its reply callback. Returns false (callback dropped)
   * when the connection is already closed; throws when the frame cannot be encoded.
   */
  sendRequest(header: MsgHeader, bulk: Buffer | Buffer[] | undefined, onReply: ReplyCallback): boolean {
    if (!this.isOpen) return false;
    if (this.pending.has(header.xid)) throw err('EEXIST', `xid ${header.xid} is already in flight to ${this.peer}`, 'DUPLICATE_XID');
    this.pending.set(header.xid, onReply);
    let sent: boolean;
    try {
      sent = this.conn.send(header, bulk);
    } catch (e) {
      this.pending.delete(header.xid);
      throw e;
    }
    if (!sent) this.pending.delete(header.xid);
    else this.updateReading();
    return sent;
  }

  /** Forgets a request (its reply, if it comes, is dropped). */
  cancel(xid: number): void {
    this.pending.delete(xid);
    this.updateReading();
  }

  /** Request with a deadline; rejects with ETIMEDOUT (RPC_TIMEOUT) or ENOTCONN. */
  call(header: MsgHeader, bulk: Buffer | Buffer[] | undefined, timeoutMs: number, what: string): Promise<Frame> {
    return new Promise<Frame>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const sent = this.sendRequest(header, bulk, (e, reply) => {
        clearTimeout(timer);
        if (e) reject(e);
        else resolve(reply!);
      });
      if (!sent) {
        reject(err('ENOTCONN', `${what}: connection to ${this.peer} is closed`, 'NOT_CONNECTED'));
        return;
      }
      timer = setTimeout(() => {
        this.cancel(header.xid);
        reject(err('ETIMEDOUT', `${what} timed out after ${timeoutMs} ms`, 'RPC_TIMEOUT'));
      }, timeoutMs);
    });
  }

  /**
   * Sends a reply (or any frame); false when the connection is closed. `onSent` runs once the
   * socket no longer needs the bulk buffers (written, or dropped with the connection); only
   * when this returned true.
   */
  send(header: MsgHeader, bulk?: Buffer | Buffer[], onSent?: () => void): boolean {
    return this.conn.send(header, bulk, onSent);
  }

  close(reason?: Error): void {
    this.conn.close(reason);
  }

  private onFrame(header: MsgHeader, bulk: Buffer | undefined): void {
    if (header.t !== MsgType.REQUEST) {
      const cb = this.pending.get(header.xid);
      if (!cb) {
        this.log.debug({ peer: this.peer, xid: header.xid, opc: header.opc }, 'reply to no pending request (late or bogus), dropped');
        return;
      }
      this.pending.delete(header.xid);
      this.updateReading();
      cb(undefined, { header, bulk });
      return;
    }
    // Pings and lock cancels are served at once: they must work when every credit is taken,
    // and requests holding the credits may be waiting for exactly these cancels.
    if (header.opc === Opc.OBD_PING || header.opc === Opc.LDLM_CANCEL) {
      this.run({ header, bulk }, false);
    } else if (this.active < this.credits && this.backlog.length === 0) {
      this.run({ header, bulk }, true);
    } else {
      this.backlog.push({ header, bulk });
    }
    this.updateReading();
  }

  private run(frame: Frame, counted: boolean): void {
    if (counted) this.active++;
    let result: Promise<void> | void;
    try {
      result = this.dispatch(frame.header, frame.bulk);
    } catch (e) {
      this.log.error({ peer: this.peer, err: e, opc: frame.header.opc }, 'request dispatcher failed');
      result = undefined;
    }
    if (!counted) {
      if (result) result.catch((e: unknown) => this.log.error({ peer: this.peer, err: e }, 'request dispatcher failed'));
      return;
    }
    Promise.resolve(result)
      .catch((e: unknown) => this.log.error({ peer: this.peer, err: e, opc: frame.header.opc }, 'request dispatcher failed'))
      .finally(() => {
        this.active--;
        this.drain();
      });
  }

  private drain(): void {
    while (!this.closed && this.active < this.credits && this.backlog.length > 0) {
      this.run(this.backlog.shift()!, true);
    }
    this.updateReading();
  }

  /**
   * Pause reading once the backlog holds 4 × credits requests, not as soon as every credit
   * is taken: handlers may be waiting for a lock cancel or a callback reply that is queued
   * behind them on this very connection, and must be able to read it.
   */
  private updateReading(): void {
    if (this.closed) return;
    if (this.backlog.length >= this.credits * 4) this.conn.pauseReading();
    else this.conn.resumeReading();
  }

  private onClosed(reason: Error | undefined): void {
    if (this.closed) return;
    this.closed = true;
    this.backlog = [];
    for (const l of this.closeListeners) {
      try {
        l(reason);
      } catch (e) {
        this.log.error({ peer: this.peer, err: e }, 'channel close listener failed');
      }
    }
    const pending = [...this.pending.values()];
    this.pending.clear();
    const lost = err('ENOTCONN', `connection to ${this.peer} lost${reason ? `: ${reason.message}` : ''}`, 'CONNECTION_LOST');
    for (const cb of pending) {
      try {
        cb(lost, undefined);
      } catch (e) {
        this.log.error({ peer: this.peer, err: e }, 'reply callback failed');
      }
    }
  }
}
