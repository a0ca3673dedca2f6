/**
 * The store HSM copies go to (S3 or a POSIX directory), behind one interface the copytool
 * uses. One object per archived file, under a key derived from its FID (archive-key.ts),
 * with the sha256 of its data stored beside it. Data streams through in bounded chunks:
 * no backend ever holds a whole file.
 */
import { createHash, type Hash } from 'node:crypto';
import { err, StriaError } from '../common/errno.js';

/** Receives restored data in order; the next chunk waits until it resolves. */
export type ChunkSink = (chunk: Buffer, offset: number) => Promise<void>;

export interface PutOptions {
  /** aborts the transfer (the key then holds what it held before, or nothing) */
  signal?: AbortSignal;
}

export interface GetOptions {
  /** the checksum the caller recorded at archive time: a different one fails the get */
  expectedChecksum?: string;
  signal?: AbortSignal;
  /** the size of the chunks handed to the sink (the last one may be shorter); default 4 MiB */
  chunkSize?: number;
}

/** What is stored under a key. `checksum` is undefined when none was recorded with the data. */
export interface ArchivedObject {
  size: number;
  checksum: string | undefined;
}

export interface ObjectDigest {
  size: number;
  /** "sha256:<hex>" of the data, as stored with it */
  checksum: string;
}

export interface ArchiveBackend {
  /**
   * Stores `size` bytes from `data` (chunks in order) under `key`, replacing what was there
   * only once all of it is stored, and records its checksum with it. A source that yields
   * more or fewer bytes than `size` fails with EIO SIZE_MISMATCH.
   */
  put(key: string, data: AsyncIterable<Buffer>, size: number, opts?: PutOptions): Promise<ObjectDigest>;
  /**
   * Streams the object under `key` into `sink` and verifies it against the checksum stored
   * with it and `expectedChecksum` when given: a mismatch fails with EIO BAD_CHECKSUM
   * (the sink has then seen bad data: the caller must discard it). Missing key: ENOENT
   * NO_ARCHIVE_OBJECT.
   */
  get(key: string, sink: ChunkSink, opts?: GetOptions): Promise<ObjectDigest>;
  /** size and recorded checksum, or undefined when nothing is stored under `key` */
  head(key: string): Promise<ArchivedObject | undefined>;
  /** deletes the object and its checksum; nothing there is not an error */
  remove(key: string): Promise<void>;
  /** one line for logs: where the archive is */
  describe(): string;
  close(): Promise<void>;
}

export const DEFAULT_CHUNK_SIZE = 4 << 20;
const CHECKSUM_RE = /^sha256:[0-9a-f]{64}$/;

export function isChecksum(s: string): boolean {
  return CHECKSUM_RE.test(s);
}

/** sha256 and byte count of a stream of chunks, as "sha256:<hex>". */
export class StreamDigest {
  private readonly hash: Hash = createHash('sha256');
  bytes = 0;

  update(chunk: Buffer): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
  }

  digest(): string {
    return `sha256:${this.hash.digest('hex')}`;
  }
}

export function canceled(what: string): StriaError {
  return err('ECANCELED', `${what}: canceled`, 'CANCELED');
}

export function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw canceled(what);
}

export function sizeMismatch(key: string, expected: number, got: number): StriaError {
  return err('EIO', `archive ${key}: expected ${expected} bytes, the data had ${got}${got > expected ? ' or more' : ''}`, 'SIZE_MISMATCH');
}

export function badChecksum(key: string, detail: string): StriaError {
  return err('EIO', `archive ${key}: checksum mismatch: ${detail}`, 'BAD_CHECKSUM');
}

export function noObject(key: string, where: string): StriaError {
  return err('ENOENT', `archive ${key}: no such object in ${where}`, 'NO_ARCHIVE_OBJECT');
}

/**
 * Passes `source` through, feeding `digest`, and fails as soon as it yields more than
 * `size` bytes, or at its end when it yielded fewer: before the consumer sees the end, so
 * an upload never completes with the wrong data.
 */
export async function* digested(source: AsyncIterable<Buffer>, digest: StreamDigest, size: number, key: string, signal?: AbortSignal): AsyncGenerator<Buffer> {
  for await (const chunk of source) {
    throwIfAborted(signal, `archive ${key}`);
    if (chunk.length === 0) continue;
    if (digest.bytes + chunk.length > size) throw sizeMismatch(key, size, digest.bytes + chunk.length);
    digest.update(chunk);
    yield chunk;
  }
  if (digest.bytes !== size) throw sizeMismatch(key, size, digest.bytes);
}

/** Checks a stored checksum against the one the caller expects, before any data moves. */
export function checkExpected(key: string, stored: string | undefined, expected: string | undefined): void {
  if (stored !== undefined && !isChecksum(stored)) throw badChecksum(key, `the stored checksum '${stored.slice(0, 80)}' is not sha256:<hex>`);
  if (stored !== undefined && expected !== undefined && stored !== expected) {
    throw badChecksum(key, `stored ${stored}, expected ${expected}`);
  }
}

/** After the last byte: the data must have the stored size and both checksums. */
export function checkDigest(key: string, digest: StreamDigest, size: number, stored: string | undefined, expected: string | undefined): ObjectDigest {
  if (digest.bytes !== size) throw sizeMismatch(key, size, digest.bytes);
  const actual = digest.digest();
  if (stored !== undefined && actual !== stored) throw badChecksum(key, `the data is ${actual}, stored ${stored}`);
  if (expected !== undefined && actual !== expected) throw badChecksum(key, `the data is ${actual}, expected ${expected}`);
  return { size, checksum: actual };
}

/**
 * Regroups a stream of arbitrary pieces into chunks of `chunkSize` bytes for a sink
 * (restores write whole RPC-sized chunks rather than the network's small reads).
 */
export class Rechunker {
  private buf: Buffer | undefined;
  private fill = 0;
  private offset = 0;

  constructor(
    private readonly sink: ChunkSink,
    private readonly chunkSize: number,
  ) {}

  async push(piece: Buffer): Promise<void> {
    let at = 0;
    while (at < piece.length) {
      if (this.fill === 0 && piece.length - at >= this.chunkSize) {
        // a whole chunk in place: no copy
        const chunk = piece.subarray(at, at + this.chunkSize);
        at += this.chunkSize;
        await this.deliver(chunk);
        continue;
      }
      this.buf ??= Buffer.allocUnsafe(this.chunkSize);
      const n = piece.copy(this.buf, this.fill, at, Math.min(piece.length, at + this.chunkSize - this.fill));
      this.fill += n;
      at += n;
      if (this.fill === this.chunkSize) await this.flush();
    }
  }

  async flush(): Promise<void> {
    if (this.fill === 0 || !this.buf) return;
    const chunk = this.buf.subarray(0, this.fill);
    // the sink may keep the chunk: the next one gets a buffer of its own
    this.buf = undefined;
    this.fill = 0;
    await this.deliver(chunk);
  }

  private async deliver(chunk: Buffer): Promise<void> {
    const off = this.offset;
    this.offset += chunk.length;
    await this.sink(chunk, off);
  }
}

/** Where a backend keeps an object's checksum when it cannot keep it in the object itself. */
export const CHECKSUM_SUFFIX = '.sha256';

/**
 * Keys are relative paths of non-empty components; none may end like the checksum
 * records stored beside the objects.
 */
export function validateKey(key: string): void {
  const parts = key.split('/');
  const bad =
    key.length === 0 || key.length > 1024 || key.includes('\0') || key.endsWith(CHECKSUM_SUFFIX) ||
    parts.some((p) => p.length === 0 || p === '.' || p === '..');
  if (bad) throw err('EINVAL', `invalid archive key '${key.slice(0, 200)}'`, 'BAD_ARCHIVE_KEY');
}

/** The sink chunk size a get uses. */
export function chunkSizeOf(opts: GetOptions): number {
  const n = opts.chunkSize ?? DEFAULT_CHUNK_SIZE;
  if (!Number.isSafeInteger(n) || n <= 0 || n > 1 << 30) throw err('EINVAL', `bad chunk size ${n}`, 'BAD_CHUNK_SIZE');
  return n;
}
