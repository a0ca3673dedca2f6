/**
 * The client's local-disk block read cache (JuiceFS's --cache-dir / --cache-size /
 * --free-space-ratio): checksummed block files spread over one or more local dirs,
 * written behind the caller, evicted by segmented LRU within a byte budget and each
 * filesystem's free-space floor, rebuilt from disk after a restart, and degrading to
 * "no cache" rather than failing when a cache disk does.
 */
import { mkdir, open, readFile, rename, stat, statfs, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { err } from '../../common/errno.js';
import { silentLogger, type Logger } from '../../common/log.js';
import {
  BLOCKS_SUBDIR,
  MAX_KEY_BYTES,
  TEMP_MARKER,
  blockRelPath,
  decodeBlock,
  encodeBlockHeader,
  keyHash,
} from './ssd-block-file.js';
import { loadDir, writeIndexFile, type IndexRecord } from './ssd-index.js';
import { acquireDirLock, releaseDirLock } from './ssd-lock.js';
import { SegmentedLru } from './ssd-policy.js';

export interface SsdCacheOptions {
  /** one or more local directories (created if missing); blocks spread over them */
  dirs: string[];
  /** --cache-size, total over all dirs */
  maxBytes: number;
  /** --free-space-ratio 0..0.9: keep at least this fraction of each dir's filesystem free */
  freeSpaceRatio: number;
  log?: Logger;
  /** puts are dropped while queued + in-flight data exceeds this (default 64 MiB) */
  maxQueueBytes?: number;
}

export interface SsdCacheStats {
  cachedBytes: number;
  maxBytes: number;
  blocks: number;
  errors: number;
  writesDropped: number;
  dirs: string[];
  enabled: boolean;
}

const MiB = 1024 * 1024;
const DEFAULT_MAX_QUEUE_BYTES = 64 * MiB;
const WRITE_CONCURRENCY = 4;
/** consecutive I/O errors after which a dir is given up */
const MAX_DIR_FAILURES = 3;
/** re-read a filesystem's free space after this much was written to it */
const STATFS_EVERY_BYTES = 32 * MiB;
/** a dir found below its free-space floor is retried no sooner than this */
const FULL_RECHECK_MS = 1_000;
/** share of maxBytes the protected (read more than once) segment may hold */
const PROTECTED_SHARE = 0.8;
/** header + key, rounded generously, for free-space estimates */
const BLOCK_OVERHEAD_BYTES = 1024;

interface Entry {
  size: number;
  dir: number;
  /** last access, ms since epoch: persisted so a restart keeps the LRU order */
  at: number;
}

interface DirState {
  path: string;
  enabled: boolean;
  /** we hold its lock file (and must remove it at close) */
  locked: boolean;
  failures: number;
  bsize: number;
  totalBytes: number;
  /** free bytes: the last statfs, adjusted for what we wrote and removed since */
  availBytes: number;
  writtenSinceStatfs: number;
  lastStatfsAt: number;
  /** below the free-space floor with nothing of ours left to evict there */
  full: boolean;
  madeDirs: Set<string>;
}

interface WriteJob {
  data: Buffer;
  cancelled: boolean;
}

/** dirs open in this process: opening one twice is a programming error */
const openDirs = new Set<string>();

function splitKey(key: string): { objectId: string; version: string } {
  const first = key.indexOf('/');
  if (first < 0) return { objectId: key, version: '' };
  const last = key.lastIndexOf('/');
  return { objectId: key.slice(0, first), version: last > first ? key.slice(first + 1, last) : '' };
}

function errCode(e: unknown): string {
  return (e as NodeJS.ErrnoException)?.code ?? String(e);
}

export class SsdCache {
  private readonly lru: SegmentedLru<Entry>;
  /** objectId → version → keys, for dropObject and cachedBytesOf without scanning the index */
  private readonly objects = new Map<string, Map<string, Set<string>>>();
  private readonly queue = new Map<string, WriteJob>();
  private readonly inflight = new Map<string, WriteJob>();
  private readonly pendingUnlinks = new Map<string, Promise<void>>();
  private idleWaiters: Array<() => void> = [];
  private queuedBytes = 0;
  private reservedBytes = 0;
  private activeWrites = 0;
  private errorCount = 0;
  private dropped = 0;
  private closed = false;
  private tmpSeq = 0;
  private enabledFlag = true;

  private constructor(
    private readonly dirStates: DirState[],
    private readonly maxBytes: number,
    private readonly freeSpaceRatio: number,
    private readonly maxQueueBytes: number,
    private readonly log: Logger,
  ) {
    this.lru = new SegmentedLru<Entry>(maxBytes, PROTECTED_SHARE);
  }

  /** Opens the dirs (creating them), takes their locks and loads what survives from before. */
  static async open(opts: SsdCacheOptions): Promise<SsdCache> {
    if (!Array.isArray(opts.dirs) || opts.dirs.length === 0) throw err('EINVAL', 'ssd cache: no dirs');
    if (!(opts.maxBytes > 0)) throw err('EINVAL', `ssd cache: maxBytes ${opts.maxBytes} must be > 0`);
    if (!(opts.freeSpaceRatio >= 0 && opts.freeSpaceRatio <= 0.9)) {
      throw err('EINVAL', `ssd cache: freeSpaceRatio ${opts.freeSpaceRatio} must be within 0..0.9`);
    }
    const paths = opts.dirs.map((d) => resolve(d));
    if (new Set(paths).size !== paths.length) throw err('EINVAL', 'ssd cache: a dir is listed twice');
    for (const p of paths) {
      if (openDirs.has(p)) throw err('EBUSY', `ssd cache dir ${p} is already open in this process`, 'SSD_CACHE_LOCKED');
    }
    // claimed before the first await so a concurrent second open fails too
    for (const p of paths) openDirs.add(p);
    const log = opts.log ?? silentLogger();
    const states: DirState[] = paths.map((path) => ({
      path, enabled: true, locked: false, failures: 0, bsize: 4096, totalBytes: 0, availBytes: 0,
      writtenSinceStatfs: 0, lastStatfsAt: 0, full: false, madeDirs: new Set(),
    }));
    try {
      for (const d of states) {
        try {
          await mkdir(d.path, { recursive: true });
          await acquireDirLock(d.path);
          d.locked = true;
          await mkdir(join(d.path, BLOCKS_SUBDIR), { recursive: true });
        } catch (e) {
          if ((e as { code?: string }).code === 'SSD_CACHE_LOCKED') throw e;
          d.enabled = false;
          log.warn({ dir: d.path, code: errCode(e), err: String(e) }, 'ssd cache dir unusable at open; disabled');
        }
      }
    } catch (e) {
      for (const d of states) if (d.locked) await releaseDirLock(d.path);
      for (const p of paths) openDirs.delete(p);
      throw e;
    }
    const cache = new SsdCache(states, opts.maxBytes, opts.freeSpaceRatio, opts.maxQueueBytes ?? DEFAULT_MAX_QUEUE_BYTES, log);
    await cache.load();
    return cache;
  }

  get enabled(): boolean {
    return this.enabledFlag && !this.closed;
  }

  /** Cached on disk, or queued to be. */
  has(key: string): boolean {
    const writing = this.inflight.get(key);
    return this.lru.has(key) || this.queue.has(key) || (writing !== undefined && !writing.cancelled);
  }

  /**
   * The block's data, verified against its checksum; undefined on a miss. A block still
   * waiting to be written is served from its queued copy. Never throws.
   */
  async get(key: string): Promise<Buffer | undefined> {
    try {
      if (!this.enabled) return undefined;
      const pending = this.queue.get(key) ?? this.inflight.get(key);
      if (pending && !pending.cancelled) return Buffer.from(pending.data);
      const entry = this.lru.touch(key);
      if (!entry) return undefined;
      entry.at = Date.now();
      const d = this.dirStates[entry.dir]!;
      let buf: Buffer;
      try {
        buf = await readFile(join(d.path, blockRelPath(keyHash(key)).file));
      } catch (e) {
        if (this.lru.get(key) === entry) this.forget(key, entry);
        const code = errCode(e);
        if (code === 'ENOENT' || code === 'ENOTDIR') {
          // a vanished file is a miss; a vanished dir is a failed disk
          if (!(await this.rootUsable(d))) this.disableDir(d, e);
        } else {
          this.dirFailure(d, e);
        }
        return undefined;
      }
      const data = decodeBlock(buf, key);
      if (!data) {
        this.errorCount++;
        this.log.warn({ dir: d.path, key }, 'ssd cache block failed its checksum; dropped');
        if (this.lru.get(key) === entry) this.evict(key, entry);
        return undefined;
      }
      d.failures = 0;
      return data;
    } catch (e) {
      this.errorCount++;
      this.log.warn({ key, err: String(e) }, 'ssd cache get failed');
      return undefined;
    }
  }

  /**
   * Queues the block to be written in the background and returns at once. Dropped (and
   * counted) when the queue is full, the block cannot fit, or the cache is disabled; a
   * key already cached or queued is left as it is. Never throws.
   */
  put(key: string, data: Buffer): void {
    try {
      // a key still being written (even one dropped meanwhile) is not queued again
      if (!this.enabled || this.has(key) || this.inflight.has(key)) return;
      if (Buffer.byteLength(key) > MAX_KEY_BYTES || data.length > this.maxBytes
          || this.queuedBytes + data.length > this.maxQueueBytes) {
        this.dropped++;
        return;
      }
      // our own copy: the caller may reuse its buffer as soon as put returns
      this.queue.set(key, { data: Buffer.from(data), cancelled: false });
      this.queuedBytes += data.length;
      this.pump();
    } catch (e) {
      this.errorCount++;
      this.log.warn({ key, err: String(e) }, 'ssd cache put failed');
    }
  }

  /** Drops every block whose key starts with `${objectId}/` (queued ones too); resolves with the cached bytes dropped. */
  async dropObject(objectId: string): Promise<number> {
    const prefix = `${objectId}/`;
    for (const [key, job] of [...this.queue]) {
      if (!key.startsWith(prefix)) continue;
      this.queue.delete(key);
      this.queuedBytes -= job.data.length;
    }
    for (const [key, job] of this.inflight) if (key.startsWith(prefix)) job.cancelled = true;
    let keys: string[];
    if (!objectId.includes('/')) {
      keys = [...(this.objects.get(objectId)?.values() ?? [])].flatMap((s) => [...s]);
    } else {
      keys = [];
      for (const [key] of this.lru.evictionOrder()) if (key.startsWith(prefix)) keys.push(key);
    }
    let bytes = 0;
    const unlinks: Promise<void>[] = [];
    for (const key of keys) {
      const entry = this.lru.get(key);
      if (!entry) continue;
      bytes += entry.size;
      unlinks.push(this.evict(key, entry));
    }
    this.checkIdle();
    await Promise.all(unlinks);
    return bytes;
  }

  /** Bytes cached on disk for the object (and version, when given); queued puts are not counted. */
  cachedBytesOf(objectId: string, version?: string): number {
    const versions = this.objects.get(objectId);
    if (!versions) return 0;
    let bytes = 0;
    for (const [v, keys] of versions) {
      if (version !== undefined && v !== version) continue;
      for (const key of keys) bytes += this.lru.get(key)?.size ?? 0;
    }
    return bytes;
  }

  /** Resolves when every queued write has been written (or dropped). */
  flush(): Promise<void> {
    if (this.queue.size === 0 && this.activeWrites === 0) return Promise.resolve();
    return new Promise((res) => this.idleWaiters.push(res));
  }

  /** Flushes, writes each dir's index for a fast restart and releases the dirs. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.flush();
    this.closed = true;
    await Promise.all(this.pendingUnlinks.values());
    const perDir: IndexRecord[][] = this.dirStates.map(() => []);
    for (const [key, e, hot] of this.lru.entriesWithSegment()) perDir[e.dir]!.push({ key, size: e.size, at: e.at, hot });
    for (const [i, d] of this.dirStates.entries()) {
      if (d.enabled) {
        try {
          await writeIndexFile(d.path, perDir[i]!);
        } catch (e) {
          // without an index the next open scans: slower, not wrong
          this.log.warn({ dir: d.path, err: String(e) }, 'ssd cache index not written');
        }
      }
      if (d.locked) await releaseDirLock(d.path);
      openDirs.delete(d.path);
    }
  }

  stats(): SsdCacheStats {
    return {
      cachedBytes: this.lru.bytes,
      maxBytes: this.maxBytes,
      blocks: this.lru.count,
      errors: this.errorCount,
      writesDropped: this.dropped,
      dirs: this.dirStates.filter((d) => d.enabled).map((d) => d.path),
      enabled: this.enabled,
    };
  }

  // ---- loading -------------------------------------------------------------

  private async load(): Promise<void> {
    const all: Array<IndexRecord & { dir: number }> = [];
    for (const [i, d] of this.dirStates.entries()) {
      if (!d.enabled) continue;
      try {
        await this.refreshStatfs(d);
        const loaded = await loadDir(d.path);
        for (const rel of loaded.fanoutDirs) d.madeDirs.add(rel);
        for (const r of loaded.records) all.push({ ...r, dir: i });
        this.log.info({ dir: d.path, source: loaded.source, blocks: loaded.records.length, removed: loaded.removed }, 'ssd cache dir loaded');
      } catch (e) {
        this.disableDir(d, e);
      }
    }
    all.sort((a, b) => a.at - b.at);
    for (const r of all) {
      const prev = this.lru.get(r.key);
      // the same key in two dirs (dirs reordered between runs): keep the later copy
      if (prev) this.evict(r.key, prev);
      this.index(r.key, { size: r.size, dir: r.dir, at: r.at }, r.hot);
    }
    this.evictToBudget(0);
    for (const d of this.dirStates) if (d.enabled) this.evictForFreeSpace(d, 0);
    this.refreshEnabled();
  }

  // ---- writing -------------------------------------------------------------

  private pump(): void {
    while (this.activeWrites < WRITE_CONCURRENCY && this.queue.size > 0) {
      const [key, job] = this.queue.entries().next().value as [string, WriteJob];
      this.queue.delete(key);
      this.inflight.set(key, job);
      this.activeWrites++;
      void this.writeBlock(key, job)
        .catch((e) => {
          this.errorCount++;
          this.log.warn({ key, err: String(e) }, 'ssd cache write failed');
        })
        .finally(() => {
          this.inflight.delete(key);
          this.queuedBytes -= job.data.length;
          this.activeWrites--;
          this.pump();
          this.checkIdle();
        });
    }
  }

  private checkIdle(): void {
    if (this.queue.size > 0 || this.activeWrites > 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  private async writeBlock(key: string, job: WriteJob): Promise<void> {
    const hash = keyHash(key);
    const d = this.chooseDir(hash);
    if (!d || job.cancelled || !this.enabled) {
      if (!job.cancelled) this.dropped++;
      return;
    }
    const size = job.data.length;
    if (d.writtenSinceStatfs >= STATFS_EVERY_BYTES || (d.full && Date.now() - d.lastStatfsAt >= FULL_RECHECK_MS)) {
      try {
        await this.refreshStatfs(d);
      } catch (e) {
        this.dirFailure(d, e);
        this.dropped++;
        return;
      }
    }
    if (!d.enabled || job.cancelled) return;
    // room is made and reserved without an await in between, so concurrent writes cannot overshoot
    this.evictToBudget(size);
    if (!this.evictForFreeSpace(d, size)) {
      this.dropped++;
      return;
    }
    this.reservedBytes += size;
    const onDisk = this.diskBytes(d, size);
    d.availBytes -= onDisk;
    const rel = blockRelPath(hash);
    const final = join(d.path, rel.file);
    const tmp = `${final}${TEMP_MARKER}${process.pid}.${++this.tmpSeq}`;
    let renamed = false;
    try {
      await this.writeTemp(d, rel, tmp, key, job.data);
      const unlinking = this.pendingUnlinks.get(final);
      if (unlinking) await unlinking;
      await rename(tmp, final);
      renamed = true;
    } catch (e) {
      d.availBytes += onDisk;
      await unlink(tmp).catch(() => undefined);
      if (errCode(e) === 'ENOSPC') d.full = true;
      if (!(await this.rootUsable(d))) this.disableDir(d, e);
      else this.dirFailure(d, e);
      return;
    } finally {
      this.reservedBytes -= size;
    }
    if (renamed && (job.cancelled || !d.enabled || this.closed)) {
      d.availBytes += onDisk;
      await unlink(final).catch(() => undefined);
      return;
    }
    d.failures = 0;
    d.writtenSinceStatfs += onDisk;
    this.index(key, { size, dir: this.dirStates.indexOf(d), at: Date.now() }, false);
  }

  private async writeTemp(d: DirState, rel: ReturnType<typeof blockRelPath>, tmp: string, key: string, data: Buffer): Promise<void> {
    const header = encodeBlockHeader(key, data);
    for (let attempt = 0; ; attempt++) {
      await this.ensureFanout(d, rel);
      let fh;
      try {
        fh = await open(tmp, 'w', 0o644);
      } catch (e) {
        // the fan-out dir vanished under us (someone cleaned up): recreate it once
        if (errCode(e) === 'ENOENT' && attempt === 0) {
          d.madeDirs.delete(rel.level2);
          d.madeDirs.delete(rel.level1);
          continue;
        }
        throw e;
      }
      try {
        // no fsync: a block torn by a power cut fails its length or checksum check and is a miss
        await fh.writev([header, data]);
      } finally {
        await fh.close();
      }
      return;
    }
  }

  /** mkdir without recursive: a vanished cache root must fail, not be silently recreated */
  private async ensureFanout(d: DirState, rel: { level1: string; level2: string }): Promise<void> {
    for (const sub of [rel.level1, rel.level2]) {
      if (d.madeDirs.has(sub)) continue;
      try {
        await mkdir(join(d.path, sub));
        d.availBytes -= d.bsize;
      } catch (e) {
        if (errCode(e) !== 'EEXIST') throw e;
      }
      d.madeDirs.add(sub);
    }
  }

  /** The dir a key's block goes to: by hash over the enabled dirs, skipping ones that are full. */
  private chooseDir(hash: string): DirState | undefined {
    const usable = this.dirStates.filter((d) => d.enabled);
    if (usable.length === 0) return undefined;
    const start = Number.parseInt(hash.slice(0, 8), 16) % usable.length;
    const now = Date.now();
    for (let i = 0; i < usable.length; i++) {
      const d = usable[(start + i) % usable.length]!;
      if (!d.full || now - d.lastStatfsAt >= FULL_RECHECK_MS) return d;
    }
    return undefined;
  }

  // ---- space ---------------------------------------------------------------

  private diskBytes(d: DirState, size: number): number {
    return Math.ceil((size + BLOCK_OVERHEAD_BYTES) / d.bsize) * d.bsize;
  }

  private async refreshStatfs(d: DirState): Promise<void> {
    const s = await statfs(d.path);
    d.bsize = s.bsize;
    d.totalBytes = s.blocks * s.bsize;
    d.availBytes = s.bavail * s.bsize;
    d.writtenSinceStatfs = 0;
    d.lastStatfsAt = Date.now();
    d.full = false;
  }

  /** Evicts least valuable blocks (any dir) until `incoming` more bytes fit in maxBytes. */
  private evictToBudget(incoming: number): void {
    if (this.lru.bytes + this.reservedBytes + incoming <= this.maxBytes) return;
    for (const [key, e] of this.lru.evictionOrder()) {
      this.evict(key, e);
      if (this.lru.bytes + this.reservedBytes + incoming <= this.maxBytes) return;
    }
  }

  /**
   * Evicts this dir's least valuable blocks until writing `incoming` bytes keeps its
   * filesystem above the free-space floor; false (and the dir marked full) when even
   * evicting all of them would not.
   */
  private evictForFreeSpace(d: DirState, incoming: number): boolean {
    const floor = this.freeSpaceRatio * d.totalBytes;
    const need = incoming > 0 ? this.diskBytes(d, incoming) : 0;
    if (d.availBytes - need >= floor) return true;
    const dirIndex = this.dirStates.indexOf(d);
    for (const [key, e] of this.lru.evictionOrder()) {
      if (e.dir !== dirIndex) continue;
      this.evict(key, e);
      if (d.availBytes - need >= floor) return true;
    }
    d.full = true;
    return false;
  }

  // ---- index bookkeeping ---------------------------------------------------

  private index(key: string, entry: Entry, hot: boolean): void {
    this.lru.add(key, entry, hot);
    const { objectId, version } = splitKey(key);
    let versions = this.objects.get(objectId);
    if (!versions) this.objects.set(objectId, (versions = new Map()));
    let keys = versions.get(version);
    if (!keys) versions.set(version, (keys = new Set()));
    keys.add(key);
  }

  /** Removes the key from the index without touching its file. */
  private forget(key: string, entry: Entry): void {
    if (this.lru.get(key) !== entry) return;
    this.lru.remove(key);
    const { objectId, version } = splitKey(key);
    const versions = this.objects.get(objectId);
    const keys = versions?.get(version);
    keys?.delete(key);
    if (keys && keys.size === 0) versions!.delete(version);
    if (versions && versions.size === 0) this.objects.delete(objectId);
  }

  /** Removes the key from the index and deletes its file in the background. */
  private evict(key: string, entry: Entry): Promise<void> {
    this.forget(key, entry);
    const d = this.dirStates[entry.dir]!;
    if (!d.enabled) return Promise.resolve();
    d.availBytes += this.diskBytes(d, entry.size);
    const path = join(d.path, blockRelPath(keyHash(key)).file);
    const prior = this.pendingUnlinks.get(path) ?? Promise.resolve();
    const p: Promise<void> = prior
      .then(() => unlink(path))
      .catch((e) => {
        if (errCode(e) !== 'ENOENT') this.dirFailure(d, e);
      })
      .finally(() => {
        if (this.pendingUnlinks.get(path) === p) this.pendingUnlinks.delete(path);
      });
    this.pendingUnlinks.set(path, p);
    return p;
  }

  // ---- failures ------------------------------------------------------------

  private async rootUsable(d: DirState): Promise<boolean> {
    try {
      return (await stat(join(d.path, BLOCKS_SUBDIR))).isDirectory();
    } catch {
      return false;
    }
  }

  private dirFailure(d: DirState, e: unknown): void {
    this.errorCount++;
    if (!d.enabled) return;
    d.failures++;
    this.log.debug({ dir: d.path, code: errCode(e), failures: d.failures }, 'ssd cache dir I/O error');
    if (d.failures >= MAX_DIR_FAILURES) this.disableDir(d, e);
  }

  /** Gives the dir up: its blocks are forgotten (not deleted: the disk is not to be trusted). */
  private disableDir(d: DirState, e: unknown): void {
    if (!d.enabled) return;
    this.errorCount++;
    d.enabled = false;
    const dirIndex = this.dirStates.indexOf(d);
    const doomed: Array<[string, Entry]> = [];
    for (const [key, entry] of this.lru.evictionOrder()) if (entry.dir === dirIndex) doomed.push([key, entry]);
    for (const [key, entry] of doomed) this.forget(key, entry);
    this.log.warn({ dir: d.path, code: errCode(e), err: String(e), forgottenBlocks: doomed.length }, 'ssd cache dir disabled after I/O errors');
    this.refreshEnabled();
  }

  private refreshEnabled(): void {
    if (this.dirStates.some((d) => d.enabled)) return;
    if (this.enabledFlag) this.log.warn({ dirs: this.dirStates.map((d) => d.path) }, 'ssd cache disabled: every cache dir has failed');
    this.enabledFlag = false;
    for (const job of this.queue.values()) this.queuedBytes -= job.data.length;
    this.queue.clear();
    this.checkIdle();
  }
}
