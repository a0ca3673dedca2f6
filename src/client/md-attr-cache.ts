/**
 * MDT attributes and xattrs of inodes, kept while this client holds a PR attribute lock
 * (UPDATE|PERM|XATTR|LAYOUT) on them, as Lustre's llite keeps an inode under its ibits
 * locks. The MDT revokes that lock before it changes any of them, so while the lock is held
 * a stat or getxattr answers from here without an MDS round trip. ClientDlm drops an
 * inode's entry when its last attribute lock goes.
 *
 * The rule for filling it: a reply goes in only if the lock it was read under is still
 * valid when the reply arrives. The MDT read it after that lock was granted, and nothing
 * can have changed it since without calling the lock back first.
 */
import { err } from '../common/errno.js';
import type { Inode } from '../common/inode.js';

interface Entry {
  inode?: Inode;
  /** name -> value; null: the MDT answered ENODATA */
  xattrs?: Map<string, Buffer | null>;
}

/** far above the client lock LRU (32,768 per namespace): locks, not this, bound it in use */
const DEFAULT_MAX_ENTRIES = 65_536;
/** a kernel asks a few names per inode (security.capability, ACLs, selinux) */
const MAX_XATTRS_PER_INODE = 32;

export class MdAttrCache {
  /** keyed by the lock resource (fidKey), in least recently used order */
  private readonly entries = new Map<string, Entry>();
  hits = 0;
  misses = 0;

  constructor(private readonly maxEntries = DEFAULT_MAX_ENTRIES) {}

  get size(): number {
    return this.entries.size;
  }

  /** A copy of the cached inode (callers spread and adjust what they get). */
  inode(res: string): Inode | undefined {
    const e = this.touch(res);
    if (e?.inode) {
      this.hits++;
      return { ...e.inode };
    }
    this.misses++;
    return undefined;
  }

  /** A copy of the cached inode, without counting a hit or a miss (the client's own decisions). */
  peekInode(res: string): Inode | undefined {
    const inode = this.entries.get(res)?.inode;
    return inode ? { ...inode } : undefined;
  }

  /** Keeps `inode` when `covered` (its lock was still valid as the reply arrived). */
  putInode(res: string, inode: Inode, covered: boolean): void {
    if (!covered) return;
    this.entry(res).inode = { ...inode };
  }

  /**
   * The cached value of an xattr: a copy of its bytes, `null` for one the MDT said does
   * not exist, `undefined` when not cached.
   */
  xattr(res: string, name: string): Buffer | null | undefined {
    const v = this.touch(res)?.xattrs?.get(name);
    if (v === undefined) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    return v === null ? null : Buffer.from(v);
  }

  putXattr(res: string, name: string, value: Buffer | null, covered: boolean): void {
    if (!covered) return;
    const e = this.entry(res);
    e.xattrs ??= new Map();
    if (!e.xattrs.has(name) && e.xattrs.size >= MAX_XATTRS_PER_INODE) return;
    e.xattrs.set(name, value === null ? null : Buffer.from(value));
  }

  /** The inode's last attribute lock went (or this client changed it): forget it. */
  drop(res: string): void {
    this.entries.delete(res);
  }

  clear(): void {
    this.entries.clear();
  }

  private touch(res: string): Entry | undefined {
    const e = this.entries.get(res);
    if (e) {
      this.entries.delete(res);
      this.entries.set(res, e);
    }
    return e;
  }

  private entry(res: string): Entry {
    let e = this.touch(res);
    if (!e) {
      e = {};
      this.entries.set(res, e);
      if (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    }
    return e;
  }
}

/** What the MDT answers for an xattr that does not exist, given from the cache. */
export function noXattr(name: string, fidText: string): Error {
  return err('ENODATA', `no xattr '${name}' on ${fidText}`);
}
