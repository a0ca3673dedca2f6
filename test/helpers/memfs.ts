/**
 * A small in-memory LowLevelOps filesystem for FUSE session tests. It behaves like a real
 * one (owners from the caller, lookup counts, xattrs, links, rename flags) and records what
 * it was asked, so tests can check what reached the handlers. Tests may replace a method on
 * the instance to make it slow, stuck or failing.
 */
import { err, Errno, StriaError } from '../../src/common/errno.js';
import { now, type Timestamp } from '../../src/common/time.js';
import {
  FUSE_ROOT_ID, RENAME_EXCHANGE, RENAME_NOREPLACE, SetattrFlag,
  type AttrOut, type CreateOut, type DirEntryOut, type EntryOut, type FuseAttr, type LowLevelOps,
  type OpenOut, type RequestCtx, type SetattrIn, type StatvfsOut,
} from '../../src/fuse/lowlevel.js';

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const XATTR_CREATE = 1;
const XATTR_REPLACE = 2;
const FALLOC_FL_KEEP_SIZE = 1;
const ZEROS = Buffer.alloc(1 << 20);

export interface MemNode {
  ino: bigint;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  rdev: number;
  data: Buffer;
  size: number;
  target?: string;
  entries?: Map<string, bigint>;
  parent: bigint;
  xattrs: Map<string, Buffer>;
  atime: Timestamp;
  mtime: Timestamp;
  ctime: Timestamp;
  lookups: number;
  /** writes are counted and dropped, reads return zeros up to `size` */
  sink?: boolean;
  directIo?: boolean;
  keepCache?: boolean;
}

export interface CallRecord {
  op: string;
  ino: bigint;
  uid: number;
  gid: number;
  pid: number;
  umask: number;
}

export interface MemFsOptions {
  attrTimeout?: number;
  entryTimeout?: number;
}

export class MemFs implements LowLevelOps {
  readonly nodes = new Map<bigint, MemNode>();
  /** byte count of every write request, in arrival order */
  readonly writeSizes: number[] = [];
  /** byte count of every read request */
  readonly readSizes: number[] = [];
  readonly calls: CallRecord[] = [];
  /** inconsistencies seen (a forget below zero, ...): a test expects none */
  readonly problems: string[] = [];
  readonly fallocates: Array<{ ino: bigint; mode: number; offset: number; length: number }> = [];
  attrTimeout: number;
  entryTimeout: number;
  init?: () => void;
  destroy?: () => void;
  private nextIno = 2n;
  private nextFh = 1;

  constructor(opts: MemFsOptions = {}) {
    this.attrTimeout = opts.attrTimeout ?? 1;
    this.entryTimeout = opts.entryTimeout ?? 1;
    const t = now();
    this.nodes.set(FUSE_ROOT_ID, {
      ino: FUSE_ROOT_ID, mode: S_IFDIR | 0o1777, nlink: 2, uid: 0, gid: 0, rdev: 0, data: Buffer.alloc(0), size: 0,
      entries: new Map(), parent: FUSE_ROOT_ID, xattrs: new Map(), atime: t, mtime: t, ctime: t, lookups: 0,
    });
  }

  // ---- helpers for tests (act behind the kernel's back) ----

  node(ino: bigint): MemNode {
    const n = this.nodes.get(ino);
    if (!n) throw err('ESTALE', `no inode ${ino}`);
    return n;
  }

  /** inode of a path relative to the root, e.g. "a/b" */
  resolve(path: string): bigint {
    let ino = FUSE_ROOT_ID;
    for (const part of path.split('/').filter((p) => p.length > 0)) {
      const child = this.node(ino).entries?.get(part);
      if (child === undefined) throw err('ENOENT', `no ${path}`);
      ino = child;
    }
    return ino;
  }

  addFile(parent: bigint, name: string, content: Buffer | string, opts: Partial<Pick<MemNode, 'directIo' | 'keepCache' | 'sink' | 'size'>> = {}): bigint {
    const data = Buffer.from(content);
    const n = this.newNode(parent, name, S_IFREG | 0o644, 0, 0);
    n.data = data;
    n.size = opts.size ?? data.length;
    n.sink = opts.sink;
    n.directIo = opts.directIo;
    n.keepCache = opts.keepCache;
    return n.ino;
  }

  addDir(parent: bigint, name: string): bigint {
    const n = this.newNode(parent, name, S_IFDIR | 0o755, 0, 0);
    this.node(parent).nlink++;
    return n.ino;
  }

  /** lookups the kernel still holds on inodes other than the root */
  outstandingLookups(): number {
    let total = 0;
    for (const n of this.nodes.values()) if (n.ino !== FUSE_ROOT_ID) total += n.lookups;
    return total;
  }

  // ---- internals ----

  private newNode(parent: bigint, name: string, mode: number, uid: number, gid: number, rdev = 0): MemNode {
    const dir = this.node(parent);
    if (!dir.entries) throw err('ENOTDIR', 'parent is not a directory');
    if (dir.entries.has(name)) throw err('EEXIST', `${name} exists`);
    const t = now();
    const n: MemNode = {
      ino: this.nextIno++, mode, nlink: (mode & S_IFMT) === S_IFDIR ? 2 : 1, uid, gid, rdev,
      data: Buffer.alloc(0), size: 0, parent, xattrs: new Map(), atime: t, mtime: t, ctime: t, lookups: 0,
    };
    if ((mode & S_IFMT) === S_IFDIR) n.entries = new Map();
    this.nodes.set(n.ino, n);
    dir.entries.set(name, n.ino);
    dir.mtime = dir.ctime = t;
    return n;
  }

  private record(op: string, ctx: RequestCtx, ino: bigint): void {
    if (this.calls.length >= 20_000) this.calls.splice(0, 10_000);
    this.calls.push({ op, ino, uid: ctx.uid, gid: ctx.gid, pid: ctx.pid, umask: ctx.umask });
  }

  private dir(ino: bigint): MemNode {
    const n = this.node(ino);
    if (!n.entries) throw err('ENOTDIR', 'not a directory');
    return n;
  }

  private child(parent: bigint, name: string): MemNode {
    const ino = this.dir(parent).entries!.get(name);
    if (ino === undefined) throw err('ENOENT', `${name} not found`);
    return this.node(ino);
  }

  attrOf(n: MemNode): FuseAttr {
    return {
      ino: n.ino, mode: n.mode, nlink: n.nlink, uid: n.uid, gid: n.gid, rdev: n.rdev, size: n.size,
      blocks: Math.ceil(n.size / 512), blksize: 4096, atime: n.atime, mtime: n.mtime, ctime: n.ctime,
    };
  }

  /** An entry handed to the kernel: one more lookup until it forgets. */
  private entry(n: MemNode): EntryOut {
    n.lookups++;
    return { ino: n.ino, generation: 0, attr: this.attrOf(n), attrTimeout: this.attrTimeout, entryTimeout: this.entryTimeout };
  }

  private dropIfUnused(n: MemNode): void {
    if (n.nlink <= 0 && n.lookups <= 0 && n.ino !== FUSE_ROOT_ID) this.nodes.delete(n.ino);
  }

  private unlinkName(parent: bigint, name: string): MemNode {
    const dir = this.dir(parent);
    const n = this.child(parent, name);
    dir.entries!.delete(name);
    dir.mtime = dir.ctime = now();
    n.nlink -= n.entries ? 2 : 1;
    if (n.entries) dir.nlink--;
    n.ctime = now();
    this.dropIfUnused(n);
    return n;
  }

  // ---- LowLevelOps ----

  forget(ino: bigint, nlookup: number): void {
    if (ino === FUSE_ROOT_ID) return;
    const n = this.nodes.get(ino);
    if (!n) {
      this.problems.push(`forget(${ino}, ${nlookup}) of an unknown inode`);
      return;
    }
    n.lookups -= nlookup;
    if (n.lookups < 0) this.problems.push(`inode ${ino} forgotten ${-n.lookups} more times than looked up`);
    this.dropIfUnused(n);
  }

  async lookup(ctx: RequestCtx, parent: bigint, name: string): Promise<EntryOut> {
    this.record('lookup', ctx, parent);
    return this.entry(this.child(parent, name));
  }

  async getattr(ctx: RequestCtx, ino: bigint, _fh?: number): Promise<AttrOut> {
    this.record('getattr', ctx, ino);
    return { attr: this.attrOf(this.node(ino)), attrTimeout: this.attrTimeout };
  }

  async setattr(ctx: RequestCtx, ino: bigint, attr: SetattrIn, toSet: number, _fh?: number): Promise<AttrOut> {
    this.record('setattr', ctx, ino);
    const n = this.node(ino);
    const t = now();
    if (toSet & SetattrFlag.MODE) n.mode = (n.mode & S_IFMT) | (attr.mode & 0o7777);
    if (toSet & SetattrFlag.UID) n.uid = attr.uid;
    if (toSet & SetattrFlag.GID) n.gid = attr.gid;
    if (toSet & SetattrFlag.SIZE) {
      if (!n.sink) {
        const data = Buffer.alloc(attr.size);
        n.data.copy(data, 0, 0, Math.min(n.data.length, attr.size));
        n.data = data;
      }
      n.size = attr.size;
      n.mtime = t;
    }
    if (toSet & SetattrFlag.ATIME) n.atime = toSet & SetattrFlag.ATIME_NOW ? t : attr.atime;
    if (toSet & SetattrFlag.MTIME) n.mtime = toSet & SetattrFlag.MTIME_NOW ? t : attr.mtime;
    n.ctime = toSet & SetattrFlag.CTIME ? attr.ctime : t;
    return { attr: this.attrOf(n), attrTimeout: this.attrTimeout };
  }

  async readlink(ctx: RequestCtx, ino: bigint): Promise<string> {
    this.record('readlink', ctx, ino);
    const n = this.node(ino);
    if (n.target === undefined) throw err('EINVAL', 'not a symlink');
    return n.target;
  }

  async mknod(ctx: RequestCtx, parent: bigint, name: string, mode: number, rdev: number): Promise<EntryOut> {
    this.record('mknod', ctx, parent);
    return this.entry(this.newNode(parent, name, mode, ctx.uid, ctx.gid, rdev));
  }

  async mkdir(ctx: RequestCtx, parent: bigint, name: string, mode: number): Promise<EntryOut> {
    this.record('mkdir', ctx, parent);
    const n = this.newNode(parent, name, S_IFDIR | (mode & 0o7777), ctx.uid, ctx.gid);
    this.node(parent).nlink++;
    return this.entry(n);
  }

  async unlink(ctx: RequestCtx, parent: bigint, name: string): Promise<void> {
    this.record('unlink', ctx, parent);
    if (this.child(parent, name).entries) throw err('EISDIR', `${name} is a directory`);
    this.unlinkName(parent, name);
  }

  async rmdir(ctx: RequestCtx, parent: bigint, name: string): Promise<void> {
    this.record('rmdir', ctx, parent);
    const n = this.child(parent, name);
    if (!n.entries) throw err('ENOTDIR', `${name} is not a directory`);
    if (n.entries.size > 0) throw err('ENOTEMPTY', `${name} is not empty`);
    this.unlinkName(parent, name);
  }

  async symlink(ctx: RequestCtx, target: string, parent: bigint, name: string): Promise<EntryOut> {
    this.record('symlink', ctx, parent);
    const n = this.newNode(parent, name, S_IFLNK | 0o777, ctx.uid, ctx.gid);
    n.target = target;
    n.size = Buffer.byteLength(target);
    return this.entry(n);
  }

  async rename(ctx: RequestCtx, parent: bigint, name: string, newParent: bigint, newName: string, flags: number): Promise<void> {
    this.record('rename', ctx, parent);
    const from = this.dir(parent);
    const to = this.dir(newParent);
    const n = this.child(parent, name);
    const existing = to.entries!.get(newName);
    if (flags & RENAME_EXCHANGE) {
      if (existing === undefined) throw err('ENOENT', `${newName} not found`);
      from.entries!.set(name, existing);
      to.entries!.set(newName, n.ino);
      return;
    }
    if (existing !== undefined) {
      if (flags & RENAME_NOREPLACE) throw err('EEXIST', `${newName} exists`);
      if (existing === n.ino) return;
      const old = this.node(existing);
      if (old.entries && old.entries.size > 0) throw err('ENOTEMPTY', `${newName} is not empty`);
      this.unlinkName(newParent, newName);
    }
    from.entries!.delete(name);
    to.entries!.set(newName, n.ino);
    if (n.entries && parent !== newParent) {
      from.nlink--;
      to.nlink++;
      n.parent = newParent;
    }
    const t = now();
    from.mtime = from.ctime = to.mtime = to.ctime = n.ctime = t;
  }

  async link(ctx: RequestCtx, ino: bigint, newParent: bigint, newName: string): Promise<EntryOut> {
    this.record('link', ctx, ino);
    const n = this.node(ino);
    if (n.entries) throw err('EPERM', 'hard links to directories are not allowed');
    const dir = this.dir(newParent);
    if (dir.entries!.has(newName)) throw err('EEXIST', `${newName} exists`);
    dir.entries!.set(newName, ino);
    n.nlink++;
    n.ctime = now();
    return this.entry(n);
  }

  async open(ctx: RequestCtx, ino: bigint, _flags: number): Promise<OpenOut> {
    this.record('open', ctx, ino);
    const n = this.node(ino);
    return { fh: this.nextFh++, directIo: n.directIo, keepCache: n.keepCache };
  }

  async create(ctx: RequestCtx, parent: bigint, name: string, mode: number, _flags: number): Promise<CreateOut> {
    this.record('create', ctx, parent);
    const n = this.newNode(parent, name, S_IFREG | (mode & 0o7777), ctx.uid, ctx.gid);
    return { ...this.entry(n), fh: this.nextFh++ };
  }

  async read(_ctx: RequestCtx, ino: bigint, size: number, offset: number, _fh: number): Promise<Buffer> {
    this.readSizes.push(size);
    const n = this.node(ino);
    const end = Math.min(n.size, offset + size);
    if (end <= offset) return Buffer.alloc(0);
    if (n.sink) return ZEROS.subarray(0, Math.min(end - offset, ZEROS.length));
    return n.data.subarray(offset, end);
  }

  async write(_ctx: RequestCtx, ino: bigint, data: Buffer, offset: number, _fh: number, _flags: number): Promise<number> {
    this.writeSizes.push(data.length);
    const n = this.node(ino);
    const end = offset + data.length;
    if (!n.sink) {
      if (end > n.data.length) {
        const grown = Buffer.alloc(Math.max(end, n.data.length * 2));
        n.data.copy(grown);
        n.data = grown;
      }
      data.copy(n.data, offset);
    }
    if (end > n.size) n.size = end;
    n.mtime = n.ctime = now();
    return data.length;
  }

  async flush(_ctx: RequestCtx, _ino: bigint, _fh: number): Promise<void> {}

  async release(_ctx: RequestCtx, _ino: bigint, _fh: number, _flags: number): Promise<void> {}

  async fsync(_ctx: RequestCtx, _ino: bigint, _datasync: boolean, _fh: number): Promise<void> {}

  async opendir(ctx: RequestCtx, ino: bigint, _flags: number): Promise<OpenOut> {
    this.record('opendir', ctx, ino);
    this.dir(ino);
    return { fh: this.nextFh++ };
  }

  async readdir(ctx: RequestCtx, ino: bigint, _size: number, offset: number, _fh: number, plus: boolean): Promise<DirEntryOut[]> {
    this.record(plus ? 'readdirplus' : 'readdir', ctx, ino);
    const dir = this.dir(ino);
    const all: Array<[string, MemNode]> = [
      ['.', dir],
      ['..', this.node(dir.parent)],
      ...[...dir.entries!].map(([name, child]): [string, MemNode] => [name, this.node(child)]),
    ];
    // Offsets are positions: entry i continues at i + 1. Everything from there is offered;
    // the session sends what fits.
    return all.slice(offset).map(([name, n], i) => ({
      name,
      ino: n.ino,
      type: n.mode & S_IFMT,
      nextOffset: offset + i + 1,
      entry: plus ? this.entry(n) : undefined,
    }));
  }

  async releasedir(_ctx: RequestCtx, _ino: bigint, _fh: number): Promise<void> {}

  async statfs(_ctx: RequestCtx, _ino: bigint): Promise<StatvfsOut> {
    return { bsize: 4096, frsize: 4096, blocks: 1 << 20, bfree: 1 << 19, bavail: 1 << 19, files: 1 << 16, ffree: 1 << 15, favail: 1 << 15, namemax: 255 };
  }

  async setxattr(ctx: RequestCtx, ino: bigint, name: string, value: Buffer, flags: number): Promise<void> {
    this.record('setxattr', ctx, ino);
    const n = this.node(ino);
    if (flags & XATTR_CREATE && n.xattrs.has(name)) throw err('EEXIST', `${name} exists`);
    if (flags & XATTR_REPLACE && !n.xattrs.has(name)) throw err('ENODATA', `${name} not set`);
    n.xattrs.set(name, Buffer.from(value));
    n.ctime = now();
  }

  async getxattr(ctx: RequestCtx, ino: bigint, name: string): Promise<Buffer> {
    this.record('getxattr', ctx, ino);
    const v = this.node(ino).xattrs.get(name);
    if (!v) throw new StriaError(Errno.ENODATA, `${name} not set`);
    return v;
  }

  async listxattr(ctx: RequestCtx, ino: bigint): Promise<string[]> {
    this.record('listxattr', ctx, ino);
    return [...this.node(ino).xattrs.keys()];
  }

  async removexattr(ctx: RequestCtx, ino: bigint, name: string): Promise<void> {
    this.record('removexattr', ctx, ino);
    if (!this.node(ino).xattrs.delete(name)) throw err('ENODATA', `${name} not set`);
  }

  async fallocate(ctx: RequestCtx, ino: bigint, mode: number, offset: number, length: number, _fh: number): Promise<void> {
    this.record('fallocate', ctx, ino);
    this.fallocates.push({ ino, mode, offset, length });
    if (mode & ~FALLOC_FL_KEEP_SIZE) throw err('EOPNOTSUPP', `fallocate mode ${mode}`);
    const n = this.node(ino);
    if (!(mode & FALLOC_FL_KEEP_SIZE) && offset + length > n.size) {
      const data = Buffer.alloc(offset + length);
      n.data.copy(data, 0, 0, n.size);
      n.data = data;
      n.size = offset + length;
    }
  }
}
