/**
 * Client side of one OST (Lustre's OSC): object I/O split into RPCs of at most
 * `maxRpcBytes`, all issued at once; the import's credits bound how many are
 * in flight (max_rpcs_in_flight).
 *
 * It also keeps this client's space grant on the OST (reference §5): learned at
 * connect, spent locally by the write-back cache (tryConsumeGrant) for data it
 * holds dirty, reported back to the OST as `grantUsed` when that data is written,
 * and topped up by write replies toward `grantTarget`. A new export (the OST
 * evicted us or restarted) starts over with what that connect gives, and a new
 * grant generation: grant spent under an older one no longer counts on the OST.
 */
import { err } from '../common/errno.js';
import type { Timestamp } from '../common/time.js';
import type { ObjAttr, StatFs } from '../common/statfs.js';
import { Opc } from '../ptlrpc/opcodes.js';
import type { Import } from '../ptlrpc/import.js';
import { GRANT_PAGE_BYTES } from '../oss/grant.js';
import { MAX_IO_BYTES, MAX_WRITE_SEGMENTS } from '../oss/limits.js';

export type { ObjAttr, StatFs as OstStatfs } from '../common/statfs.js';

export interface OscOptions {
  maxRpcBytes: number;
  checksums: boolean;
}

export interface OscWriteOptions {
  /**
   * bytes of this write taken from the grant (tryConsumeGrant): the OST's record of our
   * grant shrinks by them. Spread over the write's RPCs, at most a page-rounded RPC each,
   * the rest with the last.
   */
  grantUsed?: number;
  /** grantGeneration when grantUsed was taken: from an older generation it is not reported */
  grantGeneration?: number;
  /** when the bytes were written (a write-back flush): the OST keeps it as the object's mtime */
  mtime?: Timestamp;
}

export interface OscWriteResult {
  /** the object's data version after this write (from the reply that saw the most recent one) */
  ver?: string;
}

export class OstClient {
  readonly stats = { readRpcs: 0, writeRpcs: 0, readBytes: 0, writeBytes: 0 };
  private grantBytes = 0;
  private grantGen = 0;
  /** the connect whose grant was adopted (none before the first connect) */
  private grantAdopted = false;
  private explicitGrantTarget: number | undefined;

  constructor(
    readonly index: number,
    readonly imp: Import,
    private readonly opts: OscOptions,
  ) {
    // The first connect's grant is read once FULL; a new export (evicted, OST restarted)
    // replaces it. A reconnect to the same export keeps what we hold: the OST kept it too.
    imp.on('state', (st: string) => {
      if (st === 'FULL' && !this.grantAdopted) this.adoptConnectGrant();
    });
    imp.on('new-export', () => this.adoptConnectGrant());
    if (imp.state === 'FULL') this.adoptConnectGrant();
  }

  /** osc.*.cur_grant_bytes: space the OST holds for this client's dirty data, not yet spent */
  get curGrantBytes(): number {
    return this.grantBytes;
  }

  /** Changes whenever the grant starts over (new export): grant spent before no longer counts. */
  get grantGeneration(): number {
    return this.grantGen;
  }

  /**
   * Grant this client asks write replies to top it up to: by default two full windows of
   * RPCs (maxRpcBytes × requests in flight × 2), so a cache can fill the next window
   * while one is being written.
   */
  get grantTarget(): number {
    return this.explicitGrantTarget ?? 2 * this.opts.maxRpcBytes * this.imp.credits;
  }

  /** undefined goes back to the default */
  set grantTarget(bytes: number | undefined) {
    if (bytes !== undefined && (!Number.isSafeInteger(bytes) || bytes < 0)) {
      throw err('ERANGE', `grant target must be a non-negative integer of bytes, not ${bytes}`, 'BAD_GRANT_TARGET');
    }
    this.explicitGrantTarget = bytes;
  }

  /**
   * Takes `bytes` (rounded up to whole 4 KiB pages) from the grant for data about to be
   * held dirty; false (nothing taken) when the grant is short: write that data synchronously.
   */
  tryConsumeGrant(bytes: number): boolean {
    const need = grantPages(bytes);
    if (need > this.grantBytes) return false;
    this.grantBytes -= need;
    return true;
  }

  /**
   * Gives back grant taken for dirty data that was dropped unwritten (same `bytes` as
   * taken). Taken under an older `generation`, it is gone with that export: ignored.
   */
  returnGrant(bytes: number, generation?: number): void {
    if (generation !== undefined && generation !== this.grantGen) return;
    this.grantBytes += grantPages(bytes);
  }

  /** Starts over with the grant of the current connection (its connect reply). */
  private adoptConnectGrant(): void {
    const data = this.imp.connectData as { grant?: unknown } | undefined;
    const g = data?.grant;
    this.grantBytes = typeof g === 'number' && Number.isSafeInteger(g) && g >= 0 ? g : 0;
    this.grantGen++;
    this.grantAdopted = true;
  }

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

  /**
   * Writes `parts` (object-contiguous, in order) starting at object offset `offset`.
   * Every RPC asks for the grant to be topped up to grantTarget; what the replies add
   * goes to curGrantBytes. When it fails, grant in opts.grantUsed may or may not have
   * been reported: keep it spent, and report it again when retrying the same data.
   */
  async write(seq: number, oid: number, offset: number, parts: Buffer[], sync = false, opts: OscWriteOptions = {}): Promise<OscWriteResult> {
    const rpcs: Array<Promise<unknown>> = [];
    let rpcStart = offset;
    let rpcParts: Buffer[] = [];
    let rpcLen = 0;
    const gen = this.grantGen;
    const total = parts.reduce((a, p) => a + p.length, 0);
    let usedLeft = this.grantUsedNow(opts, gen);
    let written = 0;
    let ver: string | undefined;
    const flush = () => {
      if (rpcLen === 0) return;
      const start = rpcStart;
      const bulk = rpcParts;
      const len = rpcLen;
      written += len;
      const last = written === total;
      const used = Math.min(usedLeft, last ? MAX_IO_BYTES : grantPages(len));
      usedLeft -= used;
      rpcs.push(
        this.writeRpc({ seq, oid, offset: start, sync, grantUsed: used }, bulk, len, gen, opts).then((v) => {
          if (v !== undefined) ver = newerVersion(ver, v);
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
    return ver === undefined ? {} : { ver };
  }

  /**
   * One OST_WRITE of several ranges of an object (Lustre's niobufs): `segments` in increasing
   * offset order and apart, together at most maxRpcBytes and MAX_WRITE_SEGMENTS ranges.
   * Scattered dirty bytes (random writes) then leave in RPC-sized writes, not one per range.
   */
  async writeSegments(seq: number, oid: number, segments: ReadonlyArray<{ offset: number; data: Buffer }>, opts: OscWriteOptions = {}): Promise<OscWriteResult> {
    if (segments.length === 1) return this.write(seq, oid, segments[0]!.offset, [segments[0]!.data], false, opts);
    const gen = this.grantGen;
    const len = segments.reduce((n, s) => n + s.data.length, 0);
    if (segments.length > MAX_WRITE_SEGMENTS || len > this.opts.maxRpcBytes) {
      throw err('EINVAL', `a write of ${segments.length} ranges and ${len} bytes does not fit one RPC`, 'BAD_REQUEST');
    }
    const body = {
      seq, oid, offset: segments[0]!.offset, segs: segments.map((s) => [s.offset, s.data.length]),
      grantUsed: Math.min(this.grantUsedNow(opts, gen), MAX_IO_BYTES),
    };
    const ver = await this.writeRpc(body, segments.map((s) => s.data), len, gen, opts);
    return ver === undefined ? {} : { ver };
  }

  /** Grant the caller took for this write, if taken in the current generation (else the OST forgot it). */
  private grantUsedNow(opts: OscWriteOptions, gen: number): number {
    return opts.grantUsed !== undefined && (opts.grantGeneration === undefined || opts.grantGeneration === gen) ? Math.max(0, Math.floor(opts.grantUsed)) : 0;
  }

  /** One OST_WRITE: sends it, counts it, adds the grant its reply gives; resolves with the data version. */
  private async writeRpc(body: Record<string, unknown>, bulk: Buffer[], len: number, gen: number, opts: OscWriteOptions): Promise<string | undefined> {
    const full = { ...body, grantWant: this.grantTarget, ...(opts.mtime ? { mtime: opts.mtime } : {}) };
    const r = await this.imp.request(Opc.OST_WRITE, full, { bulk, checksum: this.opts.checksums });
    this.stats.writeRpcs++;
    this.stats.writeBytes += len;
    const b = r.body as { grant?: unknown; ver?: unknown } | undefined;
    // Given by the export of this generation only: a reply that crossed a new export may come from the old one.
    if (typeof b?.grant === 'number' && Number.isSafeInteger(b.grant) && b.grant > 0 && gen === this.grantGen) this.grantBytes += b.grant;
    return typeof b?.ver === 'string' ? b.ver : undefined;
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

function grantPages(bytes: number): number {
  return bytes <= 0 ? 0 : Math.ceil(bytes / GRANT_PAGE_BYTES) * GRANT_PAGE_BYTES;
}

/**
 * Of two versions of one object, the later: within one OST start (`epoch.n`) the higher n;
 * across starts (the OST restarted during the write) the one that arrived last.
 */
function newerVersion(a: string | undefined, b: string): string {
  if (a === undefined) return b;
  const [ea, na] = a.split('.');
  const [eb, nb] = b.split('.');
  if (ea === eb && na !== undefined && nb !== undefined) return Number(nb) > Number(na) ? b : a;
  return b;
}
