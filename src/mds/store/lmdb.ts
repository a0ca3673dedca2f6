/**
 * The embedded metadata store: one directory holding an LMDB environment.
 *
 * Transactions run one at a time (an async mutex: the MDS is a single thread
 * but interleaves at every await). A transaction buffers its writes; when its
 * function returns, the writes are applied in one LMDB write transaction.
 *
 * Group commit (the default): once a transaction's function has finished, its
 * writes go into an in-memory overlay that later transactions read through,
 * the mutex is released, and the transaction's promise resolves only when
 * its LMDB commit is durable. Transactions that finish in the same turn of the
 * event loop, or while a commit runs, are applied together in one LMDB
 * transaction, in order, so the disk always holds a prefix of the logical
 * sequence. A transaction that
 * read another's not-yet-durable writes resolves only after them.
 * get/scan outside a transaction see the durable state only.
 *
 * A transaction function must not call transact() itself: it would wait for
 * the lock it holds.
 *
 * If an LMDB commit ever fails, the store fails: that transaction, every
 * queued one and every later call reject with STORE_FAILED, because later
 * transactions may have read the lost writes.
 *
 * Crash safety is LMDB's: commits are synced (fdatasync before the promise
 * resolves), copy-on-write pages never overwrite the last committed state, so
 * a process killed at any moment reopens at its last committed transaction.
 */
import fs from 'node:fs';
import path from 'node:path';
import { open, type RootDatabase } from 'lmdb';
import { err, StriaError } from '../../common/errno.js';
import type { Logger } from '../../common/log.js';
import { decodeValue, encodeValue } from './codec.js';
import { isWellFormedKey } from './key-order.js';
import { Mutex } from './mutex.js';
import { Overlay, inScanRange, mergeScan, upperLayers, type WriteSet } from './overlay.js';
import type { MetadataStore, StoreTxn } from './types.js';

export const LMDB_STORE_FORMAT = 'stria-mdt-lmdb';
export const LMDB_STORE_VERSION = 1;
/** LMDB's own limit is ~1978 bytes; stay well inside it with a clear error. */
export const MAX_KEY_BYTES = 1024;
/** most entries one scan() may return (callers page) */
export const MAX_SCAN_LIMIT = 100_000;

// Keys are UTF-8 strings, which never contain the byte 0xff, so the marker
// can never collide with a caller's key nor fall inside any prefix scan.
export const LMDB_MARKER_KEY: Readonly<Buffer> = Buffer.from([0xff, ...Buffer.from('stria-store')]);
const MARKER_KEY = LMDB_MARKER_KEY as Buffer;
const KEY_END = Buffer.from([0xff]);

export interface LmdbStoreOptions {
  /** release the transaction lock before the commit is durable (default true) */
  groupCommit?: boolean;
  log?: Logger;
}

interface Marker {
  format: string;
  version: number;
  created: string;
}

interface QueuedCommit {
  writes: WriteSet;
  gen: number;
  resolve: () => void;
  reject: (e: Error) => void;
}

export async function openLmdbStore(dir: string, opts: LmdbStoreOptions = {}): Promise<MetadataStore> {
  checkDirectory(dir);
  let db: RootDatabase<Buffer, Buffer>;
  try {
    db = open<Buffer, Buffer>({
      path: dir,
      noSubdir: false,
      keyEncoding: 'binary',
      encoding: 'binary',
      overlappingSync: false,
    });
  } catch (e) {
    throw err('EINVAL', `${dir} is not a usable Stria metadata store: ${(e as Error).message}`, 'STORE_FOREIGN');
  }
  try {
    await checkMarker(db, dir);
  } catch (e) {
    await db.close();
    throw e;
  }
  return new LmdbStore(db, opts.groupCommit ?? true, opts.log);
}

/** A store directory is new (absent or empty) or holds an LMDB environment. */
function checkDirectory(dir: string): void {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      return;
    }
    if ((e as NodeJS.ErrnoException).code === 'ENOTDIR') {
      throw err('ENOTDIR', `metadata store path ${dir} is not a directory`, 'STORE_FOREIGN');
    }
    throw e;
  }
  // lost+found: the store may be the root of its own ext4 filesystem
  if (names.some((n) => n !== 'lost+found') && !names.includes('data.mdb')) {
    throw err('EINVAL', `${dir} is not empty and holds no Stria metadata store (refusing to write into it)`, 'STORE_FOREIGN');
  }
  if (names.includes('data.mdb') && !looksLikeLmdb(path.join(dir, 'data.mdb'))) {
    throw err('EINVAL', `${dir}/data.mdb is not an LMDB file`, 'STORE_FOREIGN');
  }
}

// The native binding crashes the process on a file that is not LMDB, so look
// for the meta page's magic (0xBEEFC0DE) in the first page header first.
const LMDB_MAGIC = Buffer.from([0xde, 0xc0, 0xef, 0xbe]);

function looksLikeLmdb(file: string): boolean {
  const fd = fs.openSync(file, 'r');
  try {
    const head = Buffer.alloc(64);
    const n = fs.readSync(fd, head, 0, head.length, 0);
    return n === 0 || head.subarray(0, n).indexOf(LMDB_MAGIC) !== -1;
  } finally {
    fs.closeSync(fd);
  }
}

async function checkMarker(db: RootDatabase<Buffer, Buffer>, dir: string): Promise<void> {
  const raw = db.get(MARKER_KEY);
  if (raw === undefined) {
    let empty = true;
    for (const entry of db.getRange({ limit: 1 })) empty = entry === undefined;
    if (!empty) throw err('EINVAL', `${dir} holds an LMDB database that is not a Stria metadata store`, 'STORE_FOREIGN');
    const marker: Marker = { format: LMDB_STORE_FORMAT, version: LMDB_STORE_VERSION, created: new Date().toISOString() };
    await db.put(MARKER_KEY, encodeValue(marker));
    await db.flushed;
    return;
  }
  let marker: Partial<Marker>;
  try {
    marker = decodeValue<Partial<Marker>>(raw);
  } catch {
    throw err('EINVAL', `${dir}: unreadable store marker`, 'STORE_FOREIGN');
  }
  if (!marker || marker.format !== LMDB_STORE_FORMAT) {
    throw err('EINVAL', `${dir} is not a Stria LMDB metadata store (format ${String(marker?.format)})`, 'STORE_FOREIGN');
  }
  if (typeof marker.version !== 'number' || marker.version > LMDB_STORE_VERSION) {
    throw err('EPROTO', `${dir} has store version ${String(marker.version)}, newer than this Stria supports (${LMDB_STORE_VERSION}); upgrade Stria`, 'STORE_TOO_NEW');
  }
}

function keyBytes(key: string): Buffer {
  if (typeof key !== 'string' || key.length === 0) throw err('EINVAL', 'store keys are non-empty strings', 'BAD_KEY');
  if (!isWellFormedKey(key)) throw err('EINVAL', 'store key is not valid Unicode (unpaired surrogate)', 'BAD_KEY');
  const b = Buffer.from(key, 'utf8');
  if (b.length > MAX_KEY_BYTES) throw err('EINVAL', `store key of ${b.length} bytes exceeds ${MAX_KEY_BYTES}`, 'BAD_KEY');
  return b;
}

function checkScanArgs(prefix: string, after: string | undefined, limit: number): void {
  if (typeof prefix !== 'string' || !isWellFormedKey(prefix)) throw err('EINVAL', 'scan prefix must be a well-formed string', 'BAD_KEY');
  if (after !== undefined && (typeof after !== 'string' || !isWellFormedKey(after))) {
    throw err('EINVAL', 'scan position must be a well-formed string', 'BAD_KEY');
  }
  if (!Number.isInteger(limit) || limit < 0 || limit > MAX_SCAN_LIMIT) {
    throw err('EINVAL', `scan limit must be an integer 0..${MAX_SCAN_LIMIT}`, 'BAD_LIMIT');
  }
}

class LmdbStore implements MetadataStore {
  readonly kind = 'lmdb';
  private readonly lock = new Mutex();
  private readonly overlay = new Overlay();
  private queue: QueuedCommit[] = [];
  private committing = false;
  private gen = 0;
  /** resolves when the newest enqueued transaction is durable */
  private newestDurable: Promise<void> = Promise.resolve();
  private failure: StriaError | undefined;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly db: RootDatabase<Buffer, Buffer>,
    private readonly groupCommit: boolean,
    private readonly log: Logger | undefined,
  ) {}

  async get<T = unknown>(key: string): Promise<T | undefined> {
    this.usable();
    const raw = this.db.get(keyBytes(key));
    return raw === undefined ? undefined : decodeValue<T>(raw);
  }

  async scan<T = unknown>(prefix: string, after: string | undefined, limit: number): Promise<Array<[string, T]>> {
    this.usable();
    return this.scanLayers<T>(prefix, after, limit, undefined).rows;
  }

  async transact<T>(fn: (tx: StoreTxn) => Promise<T>): Promise<T> {
    this.usable();
    const release = await this.lock.acquire();
    let released = false;
    const unlock = (): void => {
      if (!released) {
        released = true;
        release();
      }
    };
    try {
      // only a failure stops it now: close() waits for transactions called before it
      if (this.failure) throw this.failure;
      const tx = new BufferedTxn(this);
      let result: T;
      try {
        result = await fn(tx);
      } finally {
        tx.finish();
      }
      if (tx.writes.size === 0) {
        unlock();
        // what it read may still be in flight: answer only once that is durable
        if (tx.sawPending) {
          await this.newestDurable;
          if (this.failure) throw this.failure;
        }
        return result;
      }
      const durable = this.enqueue(tx.writes);
      if (this.groupCommit) unlock();
      await durable;
      return result;
    } finally {
      unlock();
    }
  }

  async close(): Promise<void> {
    if (!this.closing) {
      this.closing = (async () => {
        const release = await this.lock.acquire();
        try {
          await this.newestDurable.catch(() => undefined);
          await this.db.close();
        } finally {
          release();
        }
      })();
    }
    return this.closing;
  }

  // --- reads through the layers ---

  /** A transaction's read below its own writes: the overlay, then LMDB. */
  readPendingOrDurable(key: string): { raw: Buffer | undefined; pending: boolean } {
    const kb = keyBytes(key);
    const o = this.overlay.get(key);
    if (o !== undefined) return { raw: o ?? undefined, pending: true };
    return { raw: this.db.get(kb), pending: false };
  }

  /** With `writes` (inside a transaction) the overlay and those writes lie over LMDB. */
  scanLayers<T>(
    prefix: string,
    after: string | undefined,
    limit: number,
    writes: WriteSet | undefined,
  ): { rows: Array<[string, T]>; pending: boolean } {
    checkScanArgs(prefix, after, limit);
    if (limit === 0) return { rows: [], pending: false };
    const layers: Array<Array<[string, Buffer | null]>> = [];
    if (writes) {
      layers.push([...this.overlay.inRange(prefix, after)]);
      const own: Array<[string, Buffer | null]> = [];
      for (const [k, v] of writes) if (inScanRange(k, prefix, after)) own.push([k, v]);
      layers.push(own);
    }
    const upper = upperLayers(layers);
    const merged = mergeScan(this.baseRange(prefix, after), upper, limit);
    return { rows: merged.map(([k, v]) => [k, decodeValue<T>(v)]), pending: (layers[0]?.length ?? 0) > 0 };
  }

  private *baseRange(prefix: string, after: string | undefined): Iterable<[string, Buffer]> {
    const p = Buffer.from(prefix, 'utf8');
    const end = Buffer.concat([p, KEY_END]);
    let start = p;
    let exclusiveStart = false;
    if (after !== undefined) {
      const a = Buffer.from(after, 'utf8');
      if (Buffer.compare(a, end) >= 0) return;
      if (Buffer.compare(a, p) >= 0) {
        start = a;
        exclusiveStart = true;
      }
    }
    // snapshot:false: the range is consumed synchronously, before any commit could land
    for (const { key, value } of this.db.getRange({ start, end, exclusiveStart, snapshot: false })) {
      yield [key.toString('utf8'), value];
    }
  }

  // --- commits ---

  private enqueue(writes: WriteSet): Promise<void> {
    const gen = ++this.gen;
    this.overlay.add(writes, gen);
    const durable = new Promise<void>((resolve, reject) => this.queue.push({ writes, gen, resolve, reject }));
    this.newestDurable = durable.catch(() => undefined);
    this.pump();
    return durable;
  }

  /**
   * Commits the queue on the next turn of the event loop, so every transaction that
   * finished in this turn joins the batch, as one synchronous LMDB write transaction. The
   * commit (two fdatasyncs, ~0.1 ms each on an SSD) holds this thread while it runs: that
   * costs the MDS less than handing the batch to lmdb's writer thread and waiting for it to
   * come back (creates and unlinks 15-28 % faster, bench/RESULTS.md). Transactions that
   * finish meanwhile form the next batch.
   */
  private pump(): void {
    if (this.committing || this.queue.length === 0 || this.failure) return;
    this.committing = true;
    setImmediate(() => this.commitQueued());
  }

  private commitQueued(): void {
    const batch = this.queue;
    this.queue = [];
    if (batch.length === 0 || this.failure) {
      this.committing = false;
      return;
    }
    const lastGen = batch[batch.length - 1]!.gen;
    const db = this.db;
    try {
      // one LMDB transaction: if anything in it throws, none of the batch lands
      db.transactionSync(() => {
        for (const c of batch) {
          for (const [key, value] of c.writes) {
            const kb = Buffer.from(key, 'utf8');
            if (value === null) db.remove(kb);
            else db.put(kb, value);
          }
        }
      });
    } catch (e) {
      this.committing = false;
      this.fail(e, batch);
      return;
    }
    // LMDB now shows these writes, durably: the overlay no longer needs them
    for (const c of batch) this.overlay.retire(c.writes, lastGen);
    this.committing = false;
    for (const c of batch) c.resolve();
    this.pump();
  }

  private fail(cause: unknown, batch: QueuedCommit[]): void {
    const message = cause instanceof Error ? cause.message : String(cause);
    if (!this.failure) {
      this.failure = err('EIO', `metadata store commit failed (${message}); the store refuses further use until the MDS restarts`, 'STORE_FAILED');
      this.log?.error({ err: cause }, 'LMDB commit failed: metadata store is now unusable');
    }
    const pending = [...batch, ...this.queue];
    this.queue = [];
    this.overlay.clear();
    for (const c of pending) c.reject(this.failure);
  }

  private usable(): void {
    if (this.failure) throw this.failure;
    if (this.closing) throw err('ESHUTDOWN', 'metadata store is closed', 'STORE_CLOSED');
  }
}

/** A transaction's view: its own writes over the store's layers. */
class BufferedTxn implements StoreTxn {
  readonly writes: WriteSet = new Map();
  /** read something another transaction wrote that is not durable yet */
  sawPending = false;
  private done = false;

  constructor(private readonly store: LmdbStore) {}

  async get<T = unknown>(key: string): Promise<T | undefined> {
    this.open();
    const own = this.writes.get(key);
    if (own !== undefined) return own === null ? undefined : decodeValue<T>(own);
    const { raw, pending } = this.store.readPendingOrDurable(key);
    if (pending) this.sawPending = true;
    return raw === undefined ? undefined : decodeValue<T>(raw);
  }

  put(key: string, value: unknown): void {
    this.open();
    keyBytes(key);
    if (value === undefined) throw err('EINVAL', `store value for ${key} is undefined (use del)`, 'BAD_VALUE');
    this.writes.set(key, encodeValue(value));
  }

  del(key: string): void {
    this.open();
    keyBytes(key);
    this.writes.set(key, null);
  }

  async scan<T = unknown>(prefix: string, after: string | undefined, limit: number): Promise<Array<[string, T]>> {
    this.open();
    const { rows, pending } = this.store.scanLayers<T>(prefix, after, limit, this.writes);
    if (pending) this.sawPending = true;
    return rows;
  }

  finish(): void {
    this.done = true;
  }

  private open(): void {
    if (this.done) throw err('EINVAL', 'store transaction used after its function returned', 'TXN_FINISHED');
  }
}
