/**
 * One framed TCP connection, used in both directions: whoever owns it sends frames and
 * gets every decoded frame back through onFrame. A malformed frame closes the connection.
 */
import type { BulkSource } from './bulk-pool.js';
import { connect as netConnect, type Socket } from 'node:net';
import { err, toStriaError, StriaError } from '../common/errno.js';
import type { Logger } from '../common/log.js';
import type { MsgHeader } from '../ptlrpc/types.js';
import { encodeFrame, frameSizes, FrameDecoder, type DecodedFrame, type FrameLimits } from './frame.js';

export interface FrameConnectionHandlers {
  onFrame(header: MsgHeader, bulk: Buffer | undefined): void;
  /** called once; reason is set when we closed it because of an error */
  onClose(reason: Error | undefined): void;
}

export function formatPeer(address: string | undefined, port: number | undefined): string {
  const addr = address ?? '?';
  return `${addr.includes(':') ? `[${addr}]` : addr}:${port ?? 0}`;
}

export class FrameConnection {
  readonly peer: string;
  readonly limits: FrameLimits;
  private readonly socket: Socket;
  private readonly decoder: FrameDecoder;
  private readonly log: Logger;
  private handlers: FrameConnectionHandlers | undefined;
  private closing = false;
  private closeReason: Error | undefined;
  private paused = false;
  private socketClosed = false;
  private closeNotified = false;
  /** the socket reads into the decoder's buffers (net's `onread`) instead of emitting 'data' */
  private readonly readInto: boolean;

  /** `decoder`: given when the socket was created with `onread` feeding it (see connect()). */
  /** `bulks`: where an accepted socket's decoder assembles request bulks (see FrameDecoder). */
  constructor(socket: Socket, limits: FrameLimits, log: Logger, decoder?: FrameDecoder, bulks?: BulkSource) {
    this.socket = socket;
    this.limits = { maxHeaderBytes: limits.maxHeaderBytes, maxBulkBytes: limits.maxBulkBytes };
    this.readInto = decoder !== undefined;
    this.decoder = decoder ?? new FrameDecoder(this.limits, bulks);
    this.log = log;
    this.peer = formatPeer(socket.remoteAddress, socket.remotePort);
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 30_000);
    socket.on('error', (e: Error) => {
      this.closeReason ??= e;
      this.log.debug({ peer: this.peer, err: e.message }, 'socket error');
    });
    socket.on('close', () => {
      this.closing = true;
      this.socketClosed = true;
      this.notifyClose();
    });
  }

  /**
   * Opens a TCP connection; the caller must call start() before frames flow. The socket reads
   * straight into the decoder's buffers (net's `onread`), so a large bulk (an OST_READ reply)
   * lands in its own buffer: no 64 KiB allocation per read and no copy to join them.
   * (Accepted sockets cannot be given `onread`: servers use 'data' events.)
   */
  static connect(host: string, port: number, limits: FrameLimits, log: Logger, timeoutMs: number): Promise<FrameConnection> {
    return new Promise((resolve, reject) => {
      const decoder = new FrameDecoder(limits);
      let conn: FrameConnection | undefined;
      const socket = netConnect({
        host,
        port,
        onread: { buffer: () => decoder.readBuffer(), callback: (n: number) => (conn ? conn.onFilled(n) : false) },
      });
      // No reading before start(): frames would have nowhere to go.
      socket.pause();
      const fail = (e: StriaError): void => {
        socket.destroy();
        reject(e);
      };
      const timer = setTimeout(
        () => fail(err('ETIMEDOUT', `connect to ${formatPeer(host, port)} timed out after ${timeoutMs} ms`, 'CONNECT_TIMEOUT')),
        timeoutMs,
      );
      const onError = (e: Error): void => {
        clearTimeout(timer);
        const se = toStriaError(e);
        fail(new StriaError(se.errno, `connect to ${formatPeer(host, port)}: ${e.message}`, se.code));
      };
      socket.once('error', onError);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.off('error', onError);
        conn = new FrameConnection(socket, limits, log, decoder);
        resolve(conn);
      });
    });
  }

  get isOpen(): boolean {
    return !this.closing && !this.socket.destroyed;
  }

  /** Starts delivering frames; the socket buffers whatever arrives before. */
  start(handlers: FrameConnectionHandlers): void {
    if (this.handlers) throw new Error('FrameConnection already started');
    this.handlers = handlers;
    if (this.readInto) {
      if (!this.paused) this.socket.resume();
    } else {
      this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    }
    this.socket.on('end', () => {
      if (this.decoder.pendingBytes > 0) {
        this.log.debug({ peer: this.peer, bytes: this.decoder.pendingBytes }, 'peer closed in the middle of a frame');
      }
    });
    if (this.socketClosed) queueMicrotask(() => this.notifyClose());
  }

  private notifyClose(): void {
    const handlers = this.handlers;
    if (!handlers || this.closeNotified) return;
    this.closeNotified = true;
    try {
      handlers.onClose(this.closeReason);
    } catch (e) {
      this.log.error({ peer: this.peer, err: e }, 'connection close handler failed');
    }
  }

  /**
   * Sends one frame: the header and each bulk buffer are written back to back under cork,
   * so the bulk is neither copied nor encoded. Returns false when the connection is closed.
   * `onSent` (only when true was returned) runs once the socket is done with every buffer.
   * Throws E2BIG when the frame exceeds the limits (a peer with the same limits would drop us).
   */
  send(header: MsgHeader, bulk?: Buffer | Buffer[], onSent?: () => void): boolean {
    const frame = encodeFrame(header, bulk);
    const { headerBytes, bulkBytes } = frameSizes(frame);
    if (headerBytes > this.limits.maxHeaderBytes) {
      throw err('E2BIG', `message header of ${headerBytes} bytes exceeds the limit of ${this.limits.maxHeaderBytes}`, 'FRAME_TOO_LARGE');
    }
    if (bulkBytes > this.limits.maxBulkBytes) {
      throw err('E2BIG', `bulk of ${bulkBytes} bytes exceeds the limit of ${this.limits.maxBulkBytes}`, 'FRAME_TOO_LARGE');
    }
    if (!this.isOpen || !this.socket.writable) return false;
    const socket = this.socket;
    socket.cork();
    const last = frame.length - 1;
    // Writes complete in order: the last one's callback means every buffer was taken (or dropped).
    for (let i = 0; i < last; i++) socket.write(frame[i]!);
    if (onSent) socket.write(frame[last]!, () => onSent());
    else socket.write(frame[last]!);
    socket.uncork();
    return true;
  }

  /** Stops reading the socket (TCP backpressure reaches the peer). */
  pauseReading(): void {
    if (this.paused || !this.isOpen) return;
    this.paused = true;
    this.socket.pause();
  }

  resumeReading(): void {
    if (!this.paused) return;
    this.paused = false;
    if (this.isOpen) this.socket.resume();
  }

  get readingPaused(): boolean {
    return this.paused;
  }

  close(reason?: Error): void {
    if (this.closing) return;
    this.closing = true;
    this.closeReason ??= reason;
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    if (this.closing) return;
    let frames;
    try {
      frames = this.decoder.push(chunk);
    } catch (e) {
      this.malformed(e);
      return;
    }
    this.deliver(frames);
  }

  /** onread callback: `n` bytes landed in the decoder's buffer; false stops reading. */
  private onFilled(n: number): boolean {
    if (this.closing) return false;
    let frames;
    try {
      frames = this.decoder.filled(n);
    } catch (e) {
      this.malformed(e);
      return false;
    }
    this.deliver(frames);
    return !this.closing;
  }

  private malformed(e: unknown): void {
    const se = toStriaError(e);
    this.log.warn({ peer: this.peer, code: se.code, err: se.message }, 'closing connection after a malformed frame');
    this.close(se);
  }

  private deliver(frames: DecodedFrame[]): void {
    for (const f of frames) {
      if (this.closing) return;
      try {
        this.handlers!.onFrame(f.header, f.bulk);
      } catch (e) {
        this.log.error({ peer: this.peer, err: e }, 'frame handler failed');
      }
    }
  }
}
