/**
 * Client side of one OST (Lustre's OSC): object I/O split into RPCs of at most
 * `maxRpcBytes`, all issued at once; the import's credits bound how many are
 * in flight (max_rpcs_in_flight).
 */
import { err } from '../common/errno.js';
import type { Timestamp } from '../common/time.js';
import type { ObjAttr, StatFs } from '../common/statfs.js';
import { Opc } from '../ptlrpc/opcodes.js';
import type { Import } from '../ptlrpc/import.js';

export type { ObjAttr, StatFs as OstStatfs } from '../common/statfs.js';

export interface OscOptions {
  maxRpcBytes: number;
  checksums: boolean;
}

export class OstClient {
  readonly stats = { readRpcs: 0, writeRpcs: 0, readBytes: 0, writeBytes: 0 };

  constructor(
    readonly index: number,
    readonly imp: Import,
    private readonly opts: OscOptions,
  ) {}

  /**
   * Reads object bytes [offset, offset+length) into `dest` (scattered by the
   * caller's mapping) and returns how many bytes the object really had: a short
   * count means the object ends inside the range.
   */
  async read(seq: number, oid: number, offset: number, length: number, sink: (objOffset: number, data: Buffer) => void): Promise<number> {
    const rpcs: Array<Promise<number>> = [];
    for (let o = offset; o < offset + length; o += this.opts.maxRpcBytes) {
      const len = Math.min(this.opts.maxRpcBytes, offset + length - o);
      rpcs.push(
        this.imp.request(Opc.OST_READ, { seq, oid, offset: o, length: len }, { checksum: this.opts.checksums }).then((r) => {
          const data = r.bulk ?? Buffer.alloc(0);
          this.stats.readRpcs++;
          this.stats.readBytes += data.length;
          if (data.length > 0) sink(o, data);
          return data.length < len ? o + data.length : -1;
        }),
      );
    }
    const ends = await Promise.all(rpcs);
    const shortAt = ends.filter((e) => e >= 0);
    return shortAt.length === 0 ? length : Math.min(...shortAt) - offset;
  }

  /** Writes `parts` (object-contiguous, in order) starting at object offset `offset`. */
  async write(seq: number, oid: number, offset: number, parts: Buffer[], sync = false): Promise<void> {
    const rpcs: Array<Promise<unknown>> = [];
    let rpcStart = offset;
    let rpcParts: Buffer[] = [];
    let rpcLen = 0;
    const flush = () => {
      if (rpcLen === 0) return;
      const start = rpcStart;
      const bulk = rpcParts;
      const len = rpcLen;
      rpcs.push(
        this.imp.request(Opc.OST_WRITE, { seq, oid, offset: start, sync }, { bulk, checksum: this.opts.checksums }).then(() => {
          this.stats.writeRpcs++;
          this.stats.writeBytes += len;
        }),
      );
      rpcStart += len;
      rpcParts = [];
      rpcLen = 0;
    };
    for (let part of parts) {
      while (part.length > 0) {
        const room = this.opts.maxRpcBytes - rpcLen;
        const piece = part.length <= room ? part : part.subarray(0, room);
        rpcParts.push(piece);
        rpcLen += piece.length;
        part = part.subarray(piece.length);
        if (rpcLen === this.opts.maxRpcBytes) flush();
      }
    }
    flush();
    await Promise.all(rpcs);
  }

  /** osc.*.checksums: crc32c on every bulk transfer */
  get checksums(): boolean {
    return this.opts.checksums;
  }

  set checksums(on: boolean) {
    this.opts.checksums = on;
  }

  /** osc.*.max_pages_per_rpc, in bytes: I/O is split into RPCs of at most this size */
  get maxRpcBytes(): number {
    return this.opts.maxRpcBytes;
  }

  set maxRpcBytes(n: number) {
    if (!Number.isSafeInteger(n) || n < 4096 || n % 4096 !== 0) {
      throw err('ERANGE', `RPC size must be a positive multiple of 4096 bytes, not ${n}`, 'BAD_RPC_SIZE');
    }
    this.opts.maxRpcBytes = n;
  }

  async getattr(seq: number, oid: number): Promise<ObjAttr> {
    return (await this.imp.request(Opc.OST_GETATTR, { seq, oid })).body as ObjAttr;
  }

  async punch(seq: number, oid: number, size: number): Promise<ObjAttr> {
    return (await this.imp.request(Opc.OST_PUNCH, { seq, oid, size })).body as ObjAttr;
  }

  async setattr(seq: number, oid: number, attrs: { atime?: Timestamp; mtime?: Timestamp }): Promise<ObjAttr> {
    return (await this.imp.request(Opc.OST_SETATTR, { seq, oid, ...attrs })).body as ObjAttr;
  }

  async sync(seq: number, oid: number): Promise<void> {
    await this.imp.request(Opc.OST_SYNC, { seq, oid });
  }

  async statfs(): Promise<StatFs> {
    return (await this.imp.request(Opc.OST_STATFS, {}, { timeoutMs: 10_000 })).body as StatFs;
  }
}
