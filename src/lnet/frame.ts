/**
 * Frame codec: u32 magic | u32 headerLen | u32 bulkLen | MessagePack header | raw bulk.
 * The decoder treats its input as hostile: lengths are checked against limits before
 * anything is allocated, and the header is type-checked field by field.
 */
import { PLAIN_BULKS, type BulkSource } from './bulk-pool.js';
import { Packr, Unpackr } from 'msgpackr';
import { err, StriaError } from '../common/errno.js';
import { MsgType } from '../ptlrpc/opcodes.js';
import { FRAME_MAGIC, FRAME_PREFIX_BYTES, type MsgHeader } from '../ptlrpc/types.js';

export interface FrameLimits {
  maxHeaderBytes: number;
  maxBulkBytes: number;
}

export const DEFAULT_MAX_HEADER_BYTES = 64 * 1024;
export const DEFAULT_MAX_BULK_BYTES = 65 * 1024 * 1024;
const U32_MAX = 0xffffffff;

export interface DecodedFrame {
  header: MsgHeader;
  bulk: Buffer | undefined;
}

const packr = new Packr({ useRecords: false });
// Records stay off so one peer's inline structure definitions cannot shape how the next frame decodes.
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });

/** Returns [prefix+header, ...bulk]; the bulk buffers are passed through, never copied. */
export function encodeFrame(header: MsgHeader, bulk?: Buffer | Buffer[]): Buffer[] {
  const parts = bulk === undefined ? [] : Array.isArray(bulk) ? bulk.filter((b) => b.length > 0) : bulk.length > 0 ? [bulk] : [];
  let bulkLen = 0;
  for (const b of parts) bulkLen += b.length;
  if (bulkLen > U32_MAX) throw err('E2BIG', `bulk of ${bulkLen} bytes does not fit in a frame`, 'FRAME_TOO_LARGE');
  const packed = packr.pack(withoutUndefined(header));
  if (packed.length > U32_MAX) throw err('E2BIG', `header of ${packed.length} bytes does not fit in a frame`, 'FRAME_TOO_LARGE');
  const first = Buffer.allocUnsafe(FRAME_PREFIX_BYTES + packed.length);
  first.writeUInt32BE(FRAME_MAGIC, 0);
  first.writeUInt32BE(packed.length, 4);
  first.writeUInt32BE(bulkLen, 8);
  packed.copy(first, FRAME_PREFIX_BYTES);
  return [first, ...parts];
}

/** Header and bulk sizes of an encoded frame, to check them against the peer's limits before sending. */
export function frameSizes(frame: readonly Buffer[]): { headerBytes: number; bulkBytes: number } {
  const first = frame[0]!;
  return { headerBytes: first.readUInt32BE(4), bulkBytes: first.readUInt32BE(8) };
}

function withoutUndefined(header: MsgHeader): MsgHeader {
  const h = header as unknown as Record<string, unknown>;
  for (const k in h) {
    if (h[k] === undefined) {
      const clean: Record<string, unknown> = {};
      for (const key in h) if (h[key] !== undefined) clean[key] = h[key];
      return clean as unknown as MsgHeader;
    }
  }
  return header;
}

type Phase = 'prefix' | 'header' | 'bulk';

const BULK_ALLOC_FRACTION = 4;

/** Bytes of each staging buffer of the read-into mode; a new one is taken below STAGING_MIN_ROOM. */
const STAGING_BYTES = 64 * 1024;
const STAGING_MIN_ROOM = 4 * 1024;
const EMPTY = Buffer.alloc(0);
/**
 * Read-into mode: a bulk at least this large is read straight into its own buffer (smaller
 * ones arrive with their header in one read and are cheaper to take from the staging buffer).
 */
export const DIRECT_BULK_MIN_BYTES = 64 * 1024;
/**
 * Read-into mode: a direct bulk up to this size is allocated as soon as its header is decoded.
 * The allocation is address space only until the peer's bytes land in it; larger bulks keep
 * the quarter rule below.
 */
export const DIRECT_BULK_EAGER_MAX_BYTES = 8 * 1024 * 1024;

/**
 * Streaming decoder, fed in one of two ways:
 * - push(chunk): a bulk that lies entirely inside one pushed chunk comes back as a subarray
 *   of it; otherwise exactly bulkLen bytes are allocated once (when a quarter of them has
 *   arrived) and the chunks are copied in.
 * - read-into (readBuffer()/filled(), for net.Socket's `onread`): the socket reads straight
 *   into buffers the decoder hands out. Headers and small bulks land in staging buffers
 *   (never reused, so what is handed out of them stays valid); a large bulk is read
 *   directly into its own buffer, with neither a per-read allocation nor a copy.
 * After a protocol error the decoder stays failed: the connection must be closed.
 */
export class FrameDecoder {
  private readonly limits: FrameLimits;
  private chunks: Buffer[] = [];
  private offset = 0; // into chunks[0]
  private buffered = 0;
  private phase: Phase = 'prefix';
  private headerLen = 0;
  private bulkLen = 0;
  private header: MsgHeader | undefined;
  private bulkBuf: Buffer | undefined;
  private bulkFilled = 0;
  private failure: StriaError | undefined;
  /** read-into mode: bulks are allocated early so the socket can fill them directly */
  private readInto = false;
  private staging: Buffer | undefined;
  private stagingUsed = 0;
  /** the buffer the last readBuffer() handed out, and whether it is the bulk's own */
  private lent: Buffer | undefined;
  private lentDirect = false;

  /** `bulks`: where a bulk that spans chunks is assembled (a server recycles OST_WRITE data through it) */
  constructor(limits: { maxHeaderBytes: number; maxBulkBytes: number }, private readonly bulks: BulkSource = PLAIN_BULKS) {
    this.limits = { maxHeaderBytes: limits.maxHeaderBytes, maxBulkBytes: limits.maxBulkBytes };
  }

  /** bytes received but not yet part of a returned frame */
  get pendingBytes(): number {
    return this.buffered + this.bulkFilled;
  }

  push(chunk: Buffer): DecodedFrame[] {
    if (this.failure) throw this.failure;
    const out: DecodedFrame[] = [];
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    try {
      for (;;) {
        if (this.phase === 'prefix') {
          if (!this.readPrefix()) break;
        } else if (this.phase === 'header') {
          if (!this.readHeader(out)) break;
        } else if (!this.readBulk(out)) {
          break;
        }
      }
    } catch (e) {
      this.failure = e instanceof StriaError ? e : err('EPROTO', `undecodable frame: ${(e as Error).message}`, 'BAD_HEADER');
      this.chunks = [];
      this.buffered = 0;
      this.bulkBuf = undefined;
      throw this.failure;
    }
    return out;
  }

  /**
   * Read-into mode: where the next socket read should land. The buffer stays the decoder's;
   * call filled() with the number of bytes read into it before asking for another.
   */
  readBuffer(): Buffer {
    this.readInto = true;
    this.lentDirect = this.bulkBuf !== undefined && this.buffered === 0;
    if (this.lentDirect) {
      this.lent = this.bulkBuf!.subarray(this.bulkFilled, this.bulkLen);
    } else {
      if (this.staging === undefined || this.staging.length - this.stagingUsed < STAGING_MIN_ROOM) {
        this.staging = Buffer.allocUnsafe(STAGING_BYTES);
        this.stagingUsed = 0;
      }
      this.lent = this.staging.subarray(this.stagingUsed);
    }
    return this.lent;
  }

  /** Read-into mode: `n` bytes were read into the buffer readBuffer() returned last. */
  filled(n: number): DecodedFrame[] {
    if (this.failure) throw this.failure;
    const lent = this.lent;
    this.lent = undefined;
    if (lent === undefined || !Number.isInteger(n) || n < 0 || n > lent.length) {
      throw err('EINVAL', `filled(${n}) does not match the buffer lent (${lent?.length ?? 'none'})`, 'BAD_READ');
    }
    if (this.lentDirect) {
      this.bulkFilled += n;
      return this.push(EMPTY);
    }
    const chunk = this.staging!.subarray(this.stagingUsed, this.stagingUsed + n);
    this.stagingUsed += n;
    return this.push(chunk);
  }

  private readPrefix(): boolean {
    if (this.buffered < 4) return false;
    const prefix = this.peek(Math.min(this.buffered, FRAME_PREFIX_BYTES));
    const magic = prefix.readUInt32BE(0);
    if (magic !== FRAME_MAGIC) {
      throw err('EPROTO', `bad frame magic 0x${magic.toString(16).padStart(8, '0')}`, 'BAD_MAGIC');
    }
    if (prefix.length < FRAME_PREFIX_BYTES) return false;
    const headerLen = prefix.readUInt32BE(4);
    const bulkLen = prefix.readUInt32BE(8);
    if (headerLen > this.limits.maxHeaderBytes) {
      throw err('EPROTO', `frame header of ${headerLen} bytes exceeds the limit of ${this.limits.maxHeaderBytes}`, 'FRAME_TOO_LARGE');
    }
    if (bulkLen > this.limits.maxBulkBytes) {
      throw err('EPROTO', `frame bulk of ${bulkLen} bytes exceeds the limit of ${this.limits.maxBulkBytes}`, 'FRAME_TOO_LARGE');
    }
    if (headerLen === 0) throw err('EPROTO', 'frame has an empty header', 'BAD_HEADER');
    this.consume(FRAME_PREFIX_BYTES);
    this.headerLen = headerLen;
    this.bulkLen = bulkLen;
    this.phase = 'header';
    return true;
  }

  private readHeader(out: DecodedFrame[]): boolean {
    if (this.buffered < this.headerLen) return false;
    const bytes = this.peek(this.headerLen);
    let decoded: unknown;
    try {
      decoded = unpackr.unpack(bytes);
    } catch (e) {
      throw err('EPROTO', `frame header is not valid MessagePack: ${(e as Error).message}`, 'BAD_HEADER');
    }
    this.consume(this.headerLen);
    const header = validateHeader(decoded);
    if (this.bulkLen === 0) {
      out.push({ header, bulk: undefined });
      this.phase = 'prefix';
    } else {
      this.header = header;
      this.phase = 'bulk';
    }
    return true;
  }

  private readBulk(out: DecodedFrame[]): boolean {
    if (this.bulkBuf === undefined) {
      const direct = this.readInto && this.bulkLen >= DIRECT_BULK_MIN_BYTES && this.bulkLen <= DIRECT_BULK_EAGER_MAX_BYTES;
      if (this.buffered === 0 && !direct) return false;
      const first = this.chunks[0];
      if (first !== undefined && first.length - this.offset >= this.bulkLen) {
        const bulk = first.subarray(this.offset, this.offset + this.bulkLen);
        this.consume(this.bulkLen);
        this.emitBulk(out, bulk);
        return true;
      }
      // A peer must send a quarter of what it announced before we allocate all of it,
      // so a few header bytes cannot make us hold maxBulkBytes per connection.
      if (!direct && this.buffered < this.bulkLen && this.buffered < this.bulkLen / BULK_ALLOC_FRACTION) return false;
      this.bulkBuf = direct ? Buffer.allocUnsafe(this.bulkLen) : this.bulks.take(this.bulkLen);
      this.bulkFilled = 0;
    }
    while (this.bulkFilled < this.bulkLen && this.buffered > 0) {
      const c = this.chunks[0]!;
      const n = Math.min(c.length - this.offset, this.bulkLen - this.bulkFilled);
      c.copy(this.bulkBuf, this.bulkFilled, this.offset, this.offset + n);
      this.bulkFilled += n;
      this.consume(n);
    }
    if (this.bulkFilled < this.bulkLen) return false;
    const bulk = this.bulkBuf;
    this.bulkBuf = undefined;
    this.bulkFilled = 0;
    this.emitBulk(out, bulk);
    return true;
  }

  private emitBulk(out: DecodedFrame[], bulk: Buffer): void {
    out.push({ header: this.header!, bulk });
    this.header = undefined;
    this.phase = 'prefix';
  }

  /** n contiguous bytes from the front (a subarray when they lie in one chunk). */
  private peek(n: number): Buffer {
    const first = this.chunks[0]!;
    if (first.length - this.offset >= n) return first.subarray(this.offset, this.offset + n);
    const buf = Buffer.allocUnsafe(n);
    let filled = 0;
    let off = this.offset;
    for (const c of this.chunks) {
      const take = Math.min(c.length - off, n - filled);
      c.copy(buf, filled, off, off + take);
      filled += take;
      off = 0;
      if (filled === n) break;
    }
    return buf;
  }

  private consume(n: number): void {
    this.buffered -= n;
    while (n > 0) {
      const c = this.chunks[0]!;
      const left = c.length - this.offset;
      if (n < left) {
        this.offset += n;
        return;
      }
      n -= left;
      this.chunks.shift();
      this.offset = 0;
    }
  }
}

const MSG_TYPES: ReadonlySet<number> = new Set([MsgType.REQUEST, MsgType.ERROR, MsgType.REPLY]);

type FieldCheck = (v: unknown) => boolean;
const isUint = (max: number): FieldCheck => (v) => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= max;
const isSafeUint: FieldCheck = (v) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isNonNegFinite: FieldCheck = (v) => typeof v === 'number' && Number.isFinite(v) && v >= 0;
const isString: FieldCheck = (v) => typeof v === 'string';

const OPTIONAL_FIELDS: ReadonlyArray<readonly [keyof MsgHeader, FieldCheck, string]> = [
  ['h', isSafeUint, 'a non-negative integer'],
  ['st', (v) => typeof v === 'number' && Number.isInteger(v) && v <= 0 && v >= -U32_MAX, 'zero or a negative errno'],
  ['code', isString, 'a string'],
  ['msg', isString, 'a string'],
  ['fl', isUint(U32_MAX), 'a u32'],
  ['cc', isSafeUint, 'a non-negative integer'],
  ['tn', isSafeUint, 'a non-negative integer'],
  ['lc', isSafeUint, 'a non-negative integer'],
  ['to', isNonNegFinite, 'a non-negative number'],
  ['svc', isNonNegFinite, 'a non-negative number'],
  ['job', isString, 'a string'],
  ['uid', isUint(U32_MAX), 'a u32'],
  ['gid', isUint(U32_MAX), 'a u32'],
  ['ck', isUint(U32_MAX), 'a u32'],
  ['ckr', (v) => typeof v === 'boolean', 'a boolean'],
];

/** Checks every MsgHeader field's type and returns a clean header (unknown keys dropped). */
export function validateHeader(x: unknown): MsgHeader {
  if (typeof x !== 'object' || x === null || Object.getPrototypeOf(x) !== Object.prototype) {
    throw err('EPROTO', 'frame header is not a MessagePack map', 'BAD_HEADER');
  }
  const raw = x as Record<string, unknown>;
  const bad = (field: string, want: string): StriaError =>
    err('EPROTO', `frame header field '${field}' must be ${want}`, 'BAD_HEADER');
  if (!isUint(U32_MAX)(raw.v)) throw bad('v', 'a u32');
  if (typeof raw.t !== 'number' || !MSG_TYPES.has(raw.t)) throw bad('t', 'a message type (4711, 4712, 4713)');
  if (!isUint(U32_MAX)(raw.opc)) throw bad('opc', 'a u32');
  if (!isSafeUint(raw.xid)) throw bad('xid', 'a non-negative integer');
  const header: Record<string, unknown> = { v: raw.v, t: raw.t, opc: raw.opc, xid: raw.xid };
  for (const [field, check, want] of OPTIONAL_FIELDS) {
    const value = raw[field];
    if (value === undefined) continue;
    if (!check(value)) throw bad(field, want);
    header[field] = value;
  }
  if (raw.b !== undefined) header.b = raw.b;
  return header as unknown as MsgHeader;
}
