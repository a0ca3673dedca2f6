/**
 * A bounded LRU of open object files, so hot objects are not reopened per RPC.
 * A handle evicted while requests still use it closes when the last one is done;
 * a handle that saw writes is fdatasync'ed before it closes, so a later
 * whole-target sync never has to find data behind handles that are gone.
 */
import { open, type FileHandle } from 'node:fs/promises';
import type { Logger } from '../common/log.js';

interface Entry {
  readonly path: string;
  readonly opening: Promise<FileHandle>;
  refs: number;
  dirty: boolean;
  evicted: boolean;
  retired: boolean;
}

export class HandleCache {
  /** insertion order is recency order: the first entry is the least recently used */
  private readonly entries = new Map<string, Entry>();
  private readonly closing = new Set<Promise<void>>();

  constructor(
    private readonly capacity: number,
    private readonly log: Logger,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /**
   * Runs `fn` with an open handle of `path` (opened read-write, never created:
   * a missing file rejects with the fs ENOENT error). `writes` marks the
   * handle dirty for later syncs.
   */
  async use<T>(path: string, fn: (fh: FileHandle) => Promise<T>, writes = false): Promise<T> {
    const e = this.acquire(path);
    try {
      const fh = await e.opening;
      if (writes) e.dirty = true;
      return await fn(fh);
    } finally {
      this.release(e);
    }
  }

  /** Drops `path` from the cache (before its file is unlinked). */
  forget(path: string): void {
    const e = this.entries.get(path);
    if (e) this.evict(e);
  }

  /** fdatasyncs dirty handles whose path passes `filter`, and waits for evicted ones to finish closing. */
  async flush(filter: (path: string) => boolean = () => true): Promise<void> {
    const work: Promise<void>[] = [];
    for (const e of this.entries.values()) {
      if (!e.dirty || !filter(e.path)) continue;
      e.refs++;
      work.push(
        (async () => {
          try {
            const fh = await e.opening;
            // Cleared first: a write landing during the sync marks it dirty again.
            e.dirty = false;
            await fh.datasync();
          } catch (err) {
            e.dirty = true;
            throw err;
          } finally {
            this.release(e);
          }
        })(),
      );
    }
    const results = await Promise.allSettled([...work, ...this.closing]);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  /** Closes every handle once its users are done. */
  async closeAll(): Promise<void> {
    for (const e of [...this.entries.values()]) this.evict(e);
    while (this.closing.size > 0) await Promise.allSettled([...this.closing]);
  }

  private acquire(path: string): Entry {
    let e = this.entries.get(path);
    if (e) {
      this.entries.delete(path);
      this.entries.set(path, e);
    } else {
      const entry: Entry = { path, opening: open(path, 'r+'), refs: 0, dirty: false, evicted: false, retired: false };
      entry.opening.catch(() => {
        // A failed open is not cached: the next request tries again.
        if (this.entries.get(path) === entry) this.entries.delete(path);
        entry.evicted = true;
        entry.retired = true;
      });
      this.entries.set(path, entry);
      e = entry;
      this.trim();
    }
    e.refs++;
    return e;
  }

  private release(e: Entry): void {
    e.refs--;
    if (e.evicted && e.refs === 0) this.retire(e);
  }

  private trim(): void {
    for (const e of this.entries.values()) {
      if (this.entries.size <= this.capacity) break;
      this.evict(e);
    }
  }

  private evict(e: Entry): void {
    if (this.entries.get(e.path) === e) this.entries.delete(e.path);
    e.evicted = true;
    if (e.refs === 0) this.retire(e);
  }

  private retire(e: Entry): void {
    if (e.retired) return;
    e.retired = true;
    const done = (async () => {
      let fh: FileHandle;
      try {
        fh = await e.opening;
      } catch {
        return;
      }
      try {
        if (e.dirty) await fh.datasync();
      } catch (err) {
        this.log.error({ path: e.path, err: (err as Error).message }, 'object sync before close failed');
        throw err;
      } finally {
        await fh.close().catch(() => undefined);
      }
    })();
    this.closing.add(done);
    done.then(
      () => this.closing.delete(done),
      () => this.closing.delete(done),
    );
  }
}
