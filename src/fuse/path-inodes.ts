/**
 * Path -> node id translation, for path-based FUSE bindings (fuse-native, the
 * libfuse 2 high-level API) in front of an inode-based LowLevelOps filesystem.
 *
 * A path is resolved by walking its components with ops.lookup from
 * FUSE_ROOT_ID. Names are cached only as long as the filesystem allowed
 * (EntryOut.entryTimeout) and attributes only for attrTimeout, so a filesystem
 * that answers 0 gets a lookup for every component of every request.
 *
 * Every node id the filesystem hands out (lookup, mkdir, create, link...) is
 * counted, as the kernel counts them, and given back with ops.forget once
 * nothing holds it any more: no cached name, no open handle, no request in
 * flight. A cached name also keeps its ancestors' names (evicting a name evicts
 * the names below it), as kernel dentries do.
 */
import { err } from '../common/errno.js';
import { FUSE_ROOT_ID, type EntryOut, type FuseAttr, type LowLevelOps, type RequestCtx } from './lowlevel.js';

export interface PathInodesOptions {
  /** most names kept at once; the least recently used go first */
  maxEntries?: number;
  /** milliseconds clock, for tests */
  now?: () => number;
}

export interface Resolved {
  ino: bigint;
  /** attributes still valid now (from this walk's lookup or the attribute cache) */
  attr?: FuseAttr;
}

interface NameEntry {
  ino: bigint;
  /** ms since epoch after which the name must be looked up again */
  expires: number;
}

interface AttrEntry {
  attr: FuseAttr;
  expires: number;
}

interface NodeRefs {
  /** lookups the filesystem counted and we have not forgotten yet */
  nlookup: number;
  /** cached names, open handles and requests using the node now */
  holds: number;
}

export const DEFAULT_MAX_ENTRIES = 16384;

/** "/a/b" -> ["a", "b"]; "/" -> []. */
export function splitPath(path: string): string[] {
  return path.split('/').filter((c) => c.length > 0);
}

/** "/a/b" -> { dir: "/a", name: "b" } */
export function splitParent(path: string): { dir: string; name: string } {
  const parts = splitPath(path);
  const name = parts.pop();
  if (name === undefined) throw err('EINVAL', 'the root has no parent directory');
  return { dir: '/' + parts.join('/'), name };
}

function normalize(path: string): string {
  return '/' + splitPath(path).join('/');
}

function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

/** Node ids held for the duration of one request; end() lets them go. */
export class RequestScope {
  private readonly held: bigint[] = [];
  private ended = false;

  constructor(private readonly table: PathInodes) {}

  hold(ino: bigint): void {
    if (this.ended) throw new Error('RequestScope used after end()');
    this.table.hold(ino);
    this.held.push(ino);
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    for (const ino of this.held) this.table.release(ino);
    this.held.length = 0;
  }
}

export class PathInodes {
  /** path -> name entry, in least-recently-used-first order */
  private readonly names = new Map<string, NameEntry>();
  /** path -> cached child paths, to evict a subtree without scanning */
  private readonly children = new Map<string, Set<string>>();
  private readonly attrs = new Map<bigint, AttrEntry>();
  private readonly nodes = new Map<bigint, NodeRefs>();
  private readonly maxEntries: number;
  private readonly now: () => number;

  constructor(
    private readonly ops: Pick<LowLevelOps, 'lookup' | 'forget'>,
    opts: PathInodesOptions = {},
  ) {
    this.maxEntries = Math.max(1, opts.maxEntries ?? DEFAULT_MAX_ENTRIES);
    this.now = opts.now ?? Date.now;
  }

  scope(): RequestScope {
    return new RequestScope(this);
  }

  /**
   * Walks `path` from the root. Every node id on the way stays held by `scope`
   * until it ends, as the kernel holds a dentry's ancestors.
   */
  async resolve(ctx: RequestCtx, path: string, scope: RequestScope): Promise<Resolved> {
    const parts = splitPath(path);
    let ino = FUSE_ROOT_ID;
    let fresh: FuseAttr | undefined;
    let prefix = '';
    for (const name of parts) {
      const parentPath = prefix === '' ? '/' : prefix;
      prefix += '/' + name;
      const cached = this.names.get(prefix);
      if (cached && cached.expires > this.now()) {
        this.names.delete(prefix);
        this.names.set(prefix, cached);
        scope.hold(cached.ino);
        ino = cached.ino;
        fresh = undefined;
        continue;
      }
      let entry: EntryOut;
      try {
        entry = await this.ops.lookup(ctx, ino, name);
      } catch (e) {
        if (cached) this.invalidatePath(prefix);
        throw e;
      }
      if (entry.ino === 0n) {
        if (cached) this.invalidatePath(prefix);
        throw err('ENOENT', `${prefix}: no such entry`);
      }
      // a name that now means another node: whatever was cached below it is stale
      if (cached && cached.ino !== entry.ino) this.invalidatePath(prefix);
      this.learnUnder(scope, parentPath, prefix, entry);
      ino = entry.ino;
      fresh = entry.attr;
    }
    return { ino, attr: fresh ?? this.cachedAttr(ino) };
  }

  /**
   * Takes in an entry the filesystem returned for `path` (lookup, mkdir,
   * create, mknod, symlink, link): counts the lookup, holds the node for the
   * request and caches name and attributes as long as allowed.
   */
  learn(scope: RequestScope, path: string, entry: EntryOut): void {
    if (entry.ino === 0n) return;
    const p = normalize(path);
    this.learnUnder(scope, parentOf(p), p, entry);
  }

  private learnUnder(scope: RequestScope, parentPath: string, path: string, entry: EntryOut): void {
    this.counted(entry.ino);
    scope.hold(entry.ino);
    this.setAttr(entry.ino, entry.attr, entry.attrTimeout);
    const old = this.names.get(path);
    if (old && old.ino === entry.ino && entry.entryTimeout > 0) {
      // the same node again: the names cached below it stay right
      old.expires = this.now() + entry.entryTimeout * 1000;
      this.names.delete(path);
      this.names.set(path, old);
      return;
    }
    if (old) this.dropName(path, old);
    if (entry.entryTimeout > 0) {
      this.names.set(path, { ino: entry.ino, expires: this.now() + entry.entryTimeout * 1000 });
      let kids = this.children.get(parentPath);
      if (!kids) this.children.set(parentPath, (kids = new Set()));
      kids.add(path);
      this.hold(entry.ino);
      this.evictOverflow();
    }
  }

  cachedAttr(ino: bigint): FuseAttr | undefined {
    const a = this.attrs.get(ino);
    if (!a) return undefined;
    if (a.expires > this.now()) return a.attr;
    this.attrs.delete(ino);
    return undefined;
  }

  /** Attributes of a node that is held (root, a cached name, a handle or a request). */
  setAttr(ino: bigint, attr: FuseAttr, attrTimeout: number): void {
    if (attrTimeout > 0 && (ino === FUSE_ROOT_ID || this.nodes.has(ino))) {
      this.attrs.set(ino, { attr, expires: this.now() + attrTimeout * 1000 });
    } else {
      this.attrs.delete(ino);
    }
  }

  dropAttr(ino: bigint): void {
    this.attrs.delete(ino);
  }

  dropAllAttrs(): void {
    this.attrs.clear();
  }

  /** The node a cached, unexpired name stands for. */
  cachedIno(path: string): bigint | undefined {
    const e = this.names.get(normalize(path));
    return e && e.expires > this.now() ? e.ino : undefined;
  }

  /** Forgets the cached name `path` and every cached name below it. */
  invalidatePath(path: string): void {
    const p = normalize(path);
    const e = this.names.get(p);
    if (e) this.dropName(p, e);
    else this.dropChildren(p);
  }

  /** Forgets the cached name `name` in directory `parent` (and below it), wherever that directory is cached. */
  invalidateEntry(parent: bigint, name: string): void {
    const dirs: string[] = [];
    if (parent === FUSE_ROOT_ID) dirs.push('/');
    for (const [path, e] of this.names) if (e.ino === parent) dirs.push(path);
    for (const dir of dirs) this.invalidatePath(dir === '/' ? '/' + name : `${dir}/${name}`);
  }

  /** Drops every cached name whose time is up. */
  sweep(): void {
    const now = this.now();
    for (const [path, e] of [...this.names]) {
      if (e.expires <= now && this.names.get(path) === e) this.dropName(path, e);
    }
    for (const [ino, a] of [...this.attrs]) if (a.expires <= now) this.attrs.delete(ino);
  }

  /** For an open handle (or any other long hold) on a node this table counted. */
  hold(ino: bigint): void {
    if (ino === FUSE_ROOT_ID) return;
    const r = this.nodes.get(ino);
    if (r) r.holds++;
    else this.nodes.set(ino, { nlookup: 0, holds: 1 });
  }

  release(ino: bigint): void {
    if (ino === FUSE_ROOT_ID) return;
    const r = this.nodes.get(ino);
    if (!r) return;
    if (--r.holds > 0) return;
    this.nodes.delete(ino);
    this.attrs.delete(ino);
    if (r.nlookup > 0) this.forget(ino, r.nlookup);
  }

  /** Drops every cached name and forgets every counted lookup (the session ended). */
  forgetAll(): void {
    const counted = [...this.nodes];
    this.names.clear();
    this.children.clear();
    this.attrs.clear();
    this.nodes.clear();
    for (const [ino, r] of counted) if (r.nlookup > 0) this.forget(ino, r.nlookup);
  }

  /** What the table holds now: cached names and node ids not yet forgotten. */
  stats(): { names: number; nodes: number; attrs: number } {
    return { names: this.names.size, nodes: this.nodes.size, attrs: this.attrs.size };
  }

  private counted(ino: bigint): void {
    if (ino === FUSE_ROOT_ID) return;
    const r = this.nodes.get(ino);
    if (r) r.nlookup++;
    // not held by anyone yet: the caller holds it right after counting
    else this.nodes.set(ino, { nlookup: 1, holds: 0 });
  }

  private forget(ino: bigint, n: number): void {
    try {
      this.ops.forget?.(ino, n);
    } catch {
      // forget has no reply; a filesystem that throws here has nothing to tell the kernel either
    }
  }

  private dropName(path: string, e: NameEntry): void {
    this.dropChildren(path);
    this.names.delete(path);
    const kids = this.children.get(parentOf(path));
    if (kids) {
      kids.delete(path);
      if (kids.size === 0) this.children.delete(parentOf(path));
    }
    this.release(e.ino);
  }

  private dropChildren(path: string): void {
    const kids = this.children.get(path);
    if (!kids) return;
    for (const kid of [...kids]) {
      const ke = this.names.get(kid);
      if (ke) this.dropName(kid, ke);
    }
    this.children.delete(path);
  }

  private evictOverflow(): void {
    while (this.names.size > this.maxEntries) {
      const oldest = this.names.entries().next();
      if (oldest.done) return;
      const [path, e] = oldest.value;
      this.dropName(path, e);
    }
  }
}
