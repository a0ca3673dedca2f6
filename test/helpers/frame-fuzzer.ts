/**
 * Hostile-frame fuzzer: opens raw TCP connections to an RPC server and sends random
 * bytes, truncated frames, wrong magic, absurd lengths, headers with wrong field types,
 * unknown opcodes and random mutations of valid frames (seeded, so a failure replays).
 *
 * Each case is followed by one of two things, so every frame is known to have been
 * processed before the next one: a frame-aligned case is followed by a sentinel OBD_PING
 * whose reply (or the server closing the socket) ends the case; anything else is followed
 * by a half-close, and the case ends when the server closes. A closed socket is replaced.
 * When validHeaders holds a CONNECT, every new socket logs in with it first and most
 * requests then carry the returned handle, so fuzzed bodies reach the real handlers.
 */
import { connect, type Socket } from 'node:net';
import { pack } from 'msgpackr';
import { encodeFrame, FrameDecoder } from '../../src/lnet/frame.js';
import { CONNECT_OPCODES, MsgType, Opc } from '../../src/ptlrpc/opcodes.js';
import { FRAME_MAGIC, FRAME_PREFIX_BYTES, type MsgHeader } from '../../src/ptlrpc/types.js';
import { mulberry32 } from './prng.js';

/** The fuzzer's PRNG, for tests that want the same sequences (frame-codec imports it from here). */
export { mulberry32 };

export interface FuzzOptions {
  frames: number;
  seed: number;
  /** frames worth mutating and replaying (e.g. a real CONNECT); defaults cover ping/connect/request/reply */
  validHeaders?: MsgHeader[];
}

/** the longest a single case may take before its socket is dropped */
const CASE_TIMEOUT_MS = 5_000;
const SENTINEL_XID_BASE = 9_000_000_000_000;

type Mode = 'sync' | 'end';

class Session {
  readonly socket: Socket;
  readonly opened: Promise<void>;
  readonly closed: Promise<void>;
  isClosed = false;
  private readonly decoder = new FrameDecoder({ maxHeaderBytes: 1 << 20, maxBulkBytes: 256 << 20 });
  private waiting: { xid: number; done: (header: MsgHeader) => void } | undefined;
  private failure: Error | undefined;
  /** export handle and conn_cnt, when a CONNECT on this socket succeeded */
  login: { h: number; cc: number } | undefined;

  constructor(host: string, port: number) {
    this.socket = connect({ host, port });
    this.socket.setNoDelay(true);
    this.opened = new Promise((resolve, reject) => {
      this.socket.once('connect', () => resolve());
      this.socket.once('error', reject);
    });
    this.closed = new Promise((resolve) => {
      this.socket.on('close', () => {
        this.isClosed = true;
        resolve();
      });
    });
    this.socket.on('error', () => undefined);
    this.socket.on('data', (chunk: Buffer) => {
      try {
        for (const f of this.decoder.push(chunk)) {
          if (this.waiting && f.header.xid === this.waiting.xid) this.waiting.done(f.header);
        }
      } catch (e) {
        this.failure = new Error(`server sent an undecodable frame: ${(e as Error).message}`);
        this.socket.destroy();
      }
    });
  }

  get serverFault(): Error | undefined {
    return this.failure;
  }

  /** Resolves with the reply to xid, or undefined when the socket closes first. */
  replyOrClose(xid: number): Promise<MsgHeader | undefined> {
    const reply = new Promise<MsgHeader>((resolve) => (this.waiting = { xid, done: resolve }));
    return Promise.race([reply, this.closed.then(() => undefined)]).finally(() => (this.waiting = undefined));
  }

  /** Sends a valid CONNECT and remembers the handle it returns, so later cases reach real handlers. */
  async logIn(connect: MsgHeader, xid: number): Promise<void> {
    this.socket.write(Buffer.concat(encodeFrame({ ...connect, xid })));
    let timer: NodeJS.Timeout | undefined;
    const reply = await Promise.race([
      this.replyOrClose(xid),
      new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), CASE_TIMEOUT_MS))),
    ]).finally(() => clearTimeout(timer));
    const body = reply?.t === MsgType.REPLY ? (reply.b as { handle?: unknown; connCnt?: unknown } | undefined) : undefined;
    if (typeof body?.handle === 'number' && typeof body.connCnt === 'number') this.login = { h: body.handle, cc: body.connCnt };
  }
}

function withTimeout(p: Promise<unknown>, ms: number, onTimeout: () => void): Promise<void> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.then(() => undefined),
    new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        onTimeout();
        resolve();
      }, ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** True when bytes are exactly a sequence of whole frames with the right magic. */
function frameAligned(bytes: Buffer): boolean {
  let off = 0;
  for (let n = 0; off < bytes.length && n < 1000; n++) {
    if (bytes.length - off < FRAME_PREFIX_BYTES) return false;
    if (bytes.readUInt32BE(off) !== FRAME_MAGIC) return false;
    const total = FRAME_PREFIX_BYTES + bytes.readUInt32BE(off + 4) + bytes.readUInt32BE(off + 8);
    if (off + total > bytes.length) return false;
    off += total;
  }
  return off === bytes.length;
}

function rawFrame(headerBytes: Buffer, bulk?: Buffer): Buffer {
  const p = Buffer.alloc(FRAME_PREFIX_BYTES);
  p.writeUInt32BE(FRAME_MAGIC, 0);
  p.writeUInt32BE(headerBytes.length, 4);
  p.writeUInt32BE(bulk?.length ?? 0, 8);
  return Buffer.concat(bulk ? [p, headerBytes, bulk] : [p, headerBytes]);
}

class CaseGenerator {
  private readonly rnd: () => number;
  private readonly valid: MsgHeader[];
  private xid = 1;
  /** the current socket's export, used to make requests that pass the handle check */
  login: { h: number; cc: number } | undefined;

  constructor(seed: number, valid: MsgHeader[] | undefined) {
    this.rnd = mulberry32(seed);
    this.valid = valid && valid.length > 0 ? valid : [
      { v: 1, t: MsgType.REQUEST, opc: Opc.OBD_PING, xid: 1 },
      { v: 1, t: MsgType.REQUEST, opc: Opc.OST_CONNECT, xid: 1, b: { target: 'no-such-target', uuid: 'fuzzer' } },
      { v: 1, t: MsgType.REQUEST, opc: Opc.OST_READ, xid: 1, h: 12345, cc: 1, b: { oid: 1, offset: 0, length: 4096 } },
      { v: 1, t: MsgType.REPLY, opc: Opc.LDLM_BL_CALLBACK, xid: 77, st: 0 },
      { v: 1, t: MsgType.ERROR, opc: Opc.LDLM_CP_CALLBACK, xid: 78, st: -5, code: 'EIO', msg: 'x' },
    ];
  }

  private int(n: number): number {
    return Math.floor(this.rnd() * n);
  }

  private bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }

  private pick<T>(list: readonly T[]): T {
    return list[this.int(list.length)]!;
  }

  /** A valid CONNECT among the templates, to log in each new socket with. */
  get connectTemplate(): MsgHeader | undefined {
    return this.valid.find((h) => h.t === MsgType.REQUEST && CONNECT_OPCODES.has(h.opc));
  }

  nextXid(): number {
    return this.xid++;
  }

  private validHeader(): MsgHeader {
    const h = structuredClone(this.pick(this.valid));
    if (h.t === MsgType.REQUEST) h.xid = this.xid++;
    if (h.h !== undefined && this.login && this.rnd() < 0.8) {
      h.h = this.login.h;
      h.cc = this.login.cc;
    }
    return h;
  }

  private validFrame(): Buffer {
    const bulk = this.rnd() < 0.3 ? this.bytes(this.int(2000)) : undefined;
    const h = this.validHeader();
    if (h.t === MsgType.REQUEST && !CONNECT_OPCODES.has(h.opc) && this.rnd() < 0.3) h.b = this.hostileBody();
    return Buffer.concat(encodeFrame(h, bulk));
  }

  private hostileBody(): unknown {
    return this.pick<unknown>([
      undefined,
      null,
      42,
      'body',
      [1, 2, 3],
      { key: 5, value: null },
      { key: 'k'.repeat(this.int(5000)), value: 'v' },
      { key: 'k', value: { nested: [1, { deeper: true }] } },
      JSON.parse('{"__proto__": {"polluted": true}, "key": "k", "value": "v"}'),
      { constructor: 'x', toString: 1, key: 'k' },
      Buffer.from('raw'),
      new Date(0),
    ]);
  }

  private wrongValue(): unknown {
    return this.pick([
      'str',
      -1,
      1.25,
      2 ** 60,
      -(2 ** 40),
      true,
      null,
      [1, 2],
      { nested: 1 },
      Buffer.from('bin'),
      '',
      Number.MAX_VALUE,
    ]);
  }

  next(): { bytes: Buffer; mode: Mode } {
    const kind = this.int(10);
    let bytes: Buffer;
    switch (kind) {
      case 0: // random bytes, sometimes starting with the right magic
        bytes = this.bytes(1 + this.int(300));
        if (this.rnd() < 0.3 && bytes.length >= 4) bytes.writeUInt32BE(FRAME_MAGIC, 0);
        break;
      case 1: {
        // a valid frame cut short
        const f = this.validFrame();
        bytes = f.subarray(0, this.int(f.length));
        break;
      }
      case 2: {
        // wrong magic
        const f = this.validFrame();
        f.writeUInt32BE(this.pick([0, 0xd30bd00b, FRAME_MAGIC ^ (1 << this.int(32)), this.int(2 ** 32)]) >>> 0, 0);
        bytes = f;
        break;
      }
      case 3: {
        // absurd lengths
        const p = Buffer.alloc(FRAME_PREFIX_BYTES);
        p.writeUInt32BE(FRAME_MAGIC, 0);
        p.writeUInt32BE(this.pick([0, 0xffffffff, 0x7fffffff, 1 << 20, 65537, this.int(2 ** 32)]) >>> 0, 4);
        p.writeUInt32BE(this.pick([0xffffffff, 0x80000000, 200 << 20, this.int(2 ** 32)]) >>> 0, 8);
        bytes = Buffer.concat([p, this.bytes(this.int(64))]);
        break;
      }
      case 4: {
        // a header field with the wrong type
        const h = this.validHeader() as unknown as Record<string, unknown>;
        const fields = ['v', 't', 'opc', 'xid', 'h', 'st', 'code', 'msg', 'fl', 'cc', 'tn', 'lc', 'to', 'svc', 'job', 'uid', 'gid', 'ck', 'ckr'];
        for (let i = 1 + this.int(3); i > 0; i--) h[this.pick(fields)] = this.wrongValue();
        if (this.rnd() < 0.2) delete h[this.pick(['v', 't', 'opc', 'xid'])];
        bytes = rawFrame(pack(h));
        break;
      }
      case 5: {
        // unknown opcodes (well-formed): an error reply is expected, the connection stays
        const h = this.validHeader();
        h.t = MsgType.REQUEST;
        h.xid = this.xid++;
        h.opc = this.pick([1000 + this.int(100_000), 0xffffffff, 0, 399, 401, this.int(1000)]);
        if (this.login && this.rnd() < 0.5) {
          h.h = this.login.h;
          h.cc = this.login.cc;
        } else if (this.rnd() < 0.5) {
          h.h = this.int(2 ** 40);
        }
        bytes = Buffer.concat(encodeFrame(h, this.rnd() < 0.3 ? this.bytes(this.int(500)) : undefined));
        break;
      }
      case 6: {
        // random mutations of a valid frame
        let f = this.validFrame();
        for (let i = 1 + this.int(4); i > 0; i--) {
          const op = this.int(4);
          const at = this.int(f.length);
          if (op === 0) f[at] = this.int(256);
          else if (op === 1) f = Buffer.concat([f.subarray(0, at), this.bytes(1 + this.int(8)), f.subarray(at)]);
          else if (op === 2) f = Buffer.concat([f.subarray(0, at), f.subarray(Math.min(f.length, at + 1 + this.int(8)))]);
          else if (f.length > 12) f[FRAME_PREFIX_BYTES + this.int(f.length - FRAME_PREFIX_BYTES)] ^= 1 << this.int(8);
        }
        bytes = f;
        break;
      }
      case 7: // non-map or broken MessagePack headers
        bytes = rawFrame(
          this.pick([
            pack([1, 2, 3]),
            pack('header'),
            pack(12345),
            pack(null),
            Buffer.from([0xc1]),
            Buffer.from('dd7fffffff', 'hex'),
            Buffer.from('c7ff00', 'hex'),
            Buffer.from('d47000', 'hex'),
            this.bytes(1 + this.int(100)),
            Buffer.concat([pack({ v: 1, t: 4711, opc: 400, xid: 1 }), Buffer.from([0])]),
          ]),
        );
        break;
      case 8: {
        // several well-formed frames pipelined (with hostile bodies for the real handlers)
        const parts: Buffer[] = [];
        for (let i = 1 + this.int(6); i > 0; i--) parts.push(this.validFrame());
        bytes = Buffer.concat(parts);
        break;
      }
      default:
        bytes = this.validFrame();
    }
    return { bytes, mode: frameAligned(bytes) ? 'sync' : 'end' };
  }
}

/**
 * Sends `frames` hostile cases to host:port and returns how many were sent and how many
 * connections it took. Throws if the server sends a frame that does not decode.
 */
export async function fuzzServer(host: string, port: number, opts: FuzzOptions): Promise<{ sent: number; connections: number }> {
  const gen = new CaseGenerator(opts.seed, opts.validHeaders);
  let session: Session | undefined;
  let sent = 0;
  let connections = 0;
  let sentinel = SENTINEL_XID_BASE;
  try {
    for (let i = 0; i < opts.frames; i++) {
      if (!session || session.isClosed) {
        session = new Session(host, port);
        connections++;
        await session.opened;
        const connect = gen.connectTemplate;
        if (connect) await session.logIn(connect, gen.nextXid());
        gen.login = session.login;
      }
      const s = session;
      const { bytes, mode } = gen.next();
      s.socket.write(bytes);
      sent++;
      if (mode === 'sync') {
        const xid = sentinel++;
        s.socket.write(Buffer.concat(encodeFrame({ v: 1, t: MsgType.REQUEST, opc: Opc.OBD_PING, xid })));
        await withTimeout(s.replyOrClose(xid), CASE_TIMEOUT_MS, () => s.socket.destroy());
      } else {
        s.socket.end();
        await withTimeout(s.closed, CASE_TIMEOUT_MS, () => s.socket.destroy());
      }
      if (s.serverFault) throw s.serverFault;
    }
  } finally {
    session?.socket.destroy();
    if (session) await session.closed;
  }
  return { sent, connections };
}
