/**
 * A small in-memory filesystem behind the LowLevelOps contract, for the
 * fuse-native fallback tests. It keeps the kernel's bookkeeping honest: lookup
 * counts (a forget below zero is recorded as an error), open counts, and frees
 * a node only once it has no name, no lookup and no open handle left.
 */
import { Errno, StriaError, type ErrnoName } from '../../src/common/errno.js';
import { S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from '../../src/common/inode.js';
import { now, type Timestamp } from '../../src/common/time.js';
import {
  FUSE_ROOT_ID,
  RENAME_EXCHANGE,
  RENAME_NOREPLACE,
  SetattrFlag,
  type AttrOut,
  type CreateOut,
  type DirEntryOut,
  type EntryOut,
  type FuseAttr,
  type LowLevelOps,
  type OpenOut,
  type RequestCtx,
  type SetattrIn,
  type StatvfsOut,
} from '../../src/fuse/lowlevel.js';

export interface MemFsOptions {
  /** seconds the adapter may cache names / attributes (EntryOut, AttrOut) */
  entryTimeout?: number;
  attrTimeout?: number;
  /** writes only move the size, reads return zeros: for throughput runs */
  discardData?: boolean;
  /** at most this many entries per readdir reply (to exercise paging) */
  readdirPageEntries?: number;
  /** awaited first by every handler: a test can hold a request or fail it */
  gate?: (op: string, ino: bigint, name?: string) => Promise<void> | void;
}

interface MemNode {
  ino: bigint;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  rdev: number;
  size: number;
  atime: Timestamp;
  mtime: Timestamp;
  ctime: Timestamp;
  data: Buffer;
  children?: Map<string, bigint>;
  parent: bigint;
  target?: string;
  xattrs: Map<string, Buffer>;
  nlookup: number;
  opens: number;
}

const XATTR_CREATE = 1;
const XATTR_REPLACE = 2;
const O_ACCMODE = 3;
const O_TRUNC = 0o1000;
const O_EXCL = 0o200;

function fail(name: ErrnoName, message: string): never {
  throw new StriaError(Errno[name], message);
}

export class FallbackMemFs implements LowLevelOps {
  readonly nodes = new Map<bigint, MemNode>();
  /** handler calls so far, by op name */
  readonly calls = new Map<string, number>();
  /** forgets that would have taken a lookup count below zero, or named an unknown node */
  readonly forgetErrors: string[] = [];
  inited = false;
  destroyed = false;
  private nextIno = 2n;
  private nextFh = 100;
  private readonly entryTimeout: number;
  private readonly attrTimeout: number;

  constructor(private readonly opts: MemFsOptions = {}) {
    this.entryTimeout = opts.entryTimeout ?? 0;
    this.attrTimeout = opts.attrTimeout ?? 0;
    const t = now();
    this.nodes.set(FUSE_ROOT_ID, this.newNode(FUSE_ROOT_ID, S_IFDIR | 0o755, 0, 0, FUSE_ROOT_ID, t));
    this.root().nlink = 2;
  }

  /** lookups the filesystem counted and nobody forgot yet */
  outstandingLookups(): number {
    let n = 0;
    for (const node of this.nodes.values()) if (node.ino !== FUSE_ROOT_ID) n += node.nlookup;
    return n;
  }

  openCount(): number {
    let n = 0;
    for (const node of this.nodes.values()) n += node.opens;
    return n;
  }

  count(op: string): number {
    return this.calls.get(op) ?? 0;
  }

  /** Node by path, walking names directly (no lookup counted): for assertions. */
  nodeAt(path: string): MemNode | undefined {
    let cur = this.root();
    for (const name of path.split('/').filter((c) => c.length > 0)) {
      const ino = cur.children?.get(name);
      if (ino === undefined) return undefined;
      cur = this.nodes.get(ino)!;
    }
    return cur;
  }

  init(): void {
    this.inited = true;
  }

  destroy(): void {
    this.destroyed = true;
  }

  async lookup(_ctx: RequestCtx, parent: bigint, name: string): Promise<EntryOut> {
    await this.enter('lookup', parent, name);
    const ino = this.dir(parent).children!.get(name);
    if (ino === undefined) fail('ENOENT', `${name}: not found`);
    return this.entry(this.node(ino));
  }

  forget(ino: bigint, nlookup: number): void {
    this.calls.set('forget', this.count('forget') + 1);
    const node = this.nodes.get(ino);
    if (!node) {
      this.forgetErrors.push(`forget(${ino}, ${nlookup}): unknown node`);
      return;
    }
    node.nlookup -= nlookup;
    if (node.nlookup < 0) {
      this.forgetErrors.push(`forget(${ino}, ${nlookup}): count went to ${node.nlookup}`);
      node.nlookup = 0;
    }
    this.maybeFree(node);
  }

  async getattr(_ctx: RequestCtx, ino: bigint): Promise<AttrOut> {
    await this.enter('getattr', ino);
    return { attr: this.attr(this.node(ino)), attrTimeout: this.attrTimeout };
  }

  async setattr(_ctx: RequestCtx, ino: bigint, a: SetattrIn, toSet: number): Promise<AttrOut> {
    await this.enter('setattr', ino);
    const node = this.node(ino);
    const t = now();
    if (toSet & SetattrFlag.MODE) node.mode = (node.mode & S_IFMT) | (a.mode & 0o7777);
    if (toSet & SetattrFlag.UID) node.uid = a.uid;
    if (toSet & SetattrFlag.GID) node.gid = a.gid;
    if (toSet & SetattrFlag.SIZE) {
      if ((node.mode & S_IFMT) === S_IFDIR) fail('EISDIR', 'truncate of a directory');
      this.resize(node, a.size);
      node.mtime = t;
    }
    if (toSet & SetattrFlag.ATIME_NOW) node.atime = t;
    else if (toSet & SetattrFlag.ATIME) node.atime = a.atime;
    if (toSet & SetattrFlag.MTIME_NOW) node.mtime = t;
    else if (toSet & SetattrFlag.MTIME) node.mtime = a.mtime;
    node.ctime = t;
    return { attr: this.attr(node), attrTimeout: this.attrTimeout };
  }

  async readlink(_ctx: RequestCtx, ino: bigint): Promise<string> {
    await this.enter('readlink', ino);
    const node = this.node(ino);
    if (node.target === undefined) fail('EINVAL', 'not a symlink');
    return node.target;
  }

  async mknod(ctx: RequestCtx, parent: bigint, name: string, mode: number, rdev: number): Promise<EntryOut> {
    await this.enter('mknod', parent, name);
    return this.entry(this.add(ctx, parent, name, mode, rdev));
  }

  async mkdir(ctx: RequestCtx, parent: bigint, name: string, mode: number): Promise<EntryOut> {
    await this.enter('mkdir', parent, name);
    const node = this.add(ctx, parent, name, S_IFDIR | (mode & 0o7777), 0);
    return this.entry(node);
  }

  async symlink(ctx: RequestCtx, target: string, parent: bigint, name: string): Promise<EntryOut> {
    await this.enter('symlink', parent, name);
    const node = this.add(ctx, parent, name, S_IFLNK | 0o777, 0);
    node.target = target;
    node.size = Buffer.byteLength(target);
    return this.entry(node);
  }

  async unlink(_ctx: RequestCtx, parent: bigint, name: string): Promise<void> {
    await this.enter('unlink', parent, name);
    const dir = this.dir(parent);
    const node = this.child(dir, name);
    if ((node.mode & S_IFMT) === S_IFDIR) fail('EISDIR', `${name} is a directory`);
    this.detachName(dir, name, node);
  }

  async rmdir(_ctx: RequestCtx, parent: bigint, name: string): Promise<void> {
    await this.enter('rmdir', parent, name);
    const dir = this.dir(parent);
    const node = this.child(dir, name);
    if ((node.mode & S_IFMT) !== S_IFDIR) fail('ENOTDIR', `${name} is not a directory`);
    if (node.children!.size > 0) fail('ENOTEMPTY', `${name} is not empty`);
    this.detachName(dir, name, node);
  }

  async rename(_ctx: RequestCtx, parent: bigint, name: string, newParent: bigint, newName: string, flags: number): Promise<void> {
    await this.enter('rename', parent, name);
    if (flags & RENAME_EXCHANGE) fail('EINVAL', 'RENAME_EXCHANGE is not supported here');
    const from = this.dir(parent);
    const to = this.dir(newParent);
    const node = this.child(from, name);
    const isDir = (node.mode & S_IFMT) === S_IFDIR;
    for (let p = to; ; p = this.node(p.parent)) {
      if (p.ino === node.ino) fail('EINVAL', 'cannot move a directory into itself');
      if (p.ino === FUSE_ROOT_ID) break;
    }
    const existing = to.children!.get(newName);
    if (existing !== undefined) {
      if (existing === node.ino) return;
      if (flags & RENAME_NOREPLACE) fail('EEXIST', `${newName} exists`);
      const victim = this.node(existing);
      const victimIsDir = (victim.mode & S_IFMT) === S_IFDIR;
      if (isDir && !victimIsDir) fail('ENOTDIR', `${newName} is not a directory`);
      if (!isDir && victimIsDir) fail('EISDIR', `${newName} is a directory`);
      if (victimIsDir && victim.children!.size > 0) fail('ENOTEMPTY', `${newName} is not empty`);
      this.detachName(to, newName, victim);
    }
    from.children!.delete(name);
    to.children!.set(newName, node.ino);
    if (isDir && from !== to) {
      from.nlink--;
      to.nlink++;
    }
    node.parent = to.ino;
    const t = now();
    node.ctime = t;
    from.mtime = from.ctime = t;
    to.mtime = to.ctime = t;
  }

  async link(_ctx: RequestCtx, ino: bigint, newParent: bigint, newName: string): Promise<EntryOut> {
    await this.enter('link', newParent, newName);
    const node = this.node(ino);
    if ((node.mode & S_IFMT) === S_IFDIR) fail('EPERM', 'hard link to a directory');
    const dir = this.dir(newParent);
    if (dir.children!.has(newName)) fail('EEXIST', `${newName} exists`);
    dir.children!.set(newName, ino);
    node.nlink++;
    const t = now();
    node.ctime = t;
    dir.mtime = dir.ctime = t;
    return this.entry(node);
  }

  async open(_ctx: RequestCtx, ino: bigint, flags: number): Promise<OpenOut> {
    await this.enter('open', ino);
    const node = this.node(ino);
    if ((node.mode & S_IFMT) === S_IFDIR && (flags & O_ACCMODE) !== 0) fail('EISDIR', 'directory opened for writing');
    if (flags & O_TRUNC) this.resize(node, 0);
    node.opens++;
    return { fh: this.nextFh++ };
  }

  async create(ctx: RequestCtx, parent: bigint, name: string, mode: number, flags: number): Promise<CreateOut> {
    await this.enter('create', parent, name);
    const dir = this.dir(parent);
    const existing = dir.children!.get(name);
    let node: MemNode;
    if (existing !== undefined) {
      if (flags & O_EXCL) fail('EEXIST', `${name} exists`);
      node = this.node(existing);
    } else {
      node = this.add(ctx, parent, name, S_IFREG | (mode & 0o7777), 0);
    }
    node.opens++;
    return { ...this.entry(node), fh: this.nextFh++ };
  }

  async read(_ctx: RequestCtx, ino: bigint, size: number, offset: number): Promise<Buffer> {
    await this.enter('read', ino);
    const node = this.node(ino);
    const end = Math.min(node.size, offset + size);
    if (end <= offset) return Buffer.alloc(0);
    if (this.opts.discardData) return Buffer.alloc(end - offset);
    return Buffer.from(node.data.subarray(offset, end));
  }

  async write(_ctx: RequestCtx, ino: bigint, data: Buffer, offset: number): Promise<number> {
    await this.enter('write', ino);
    const node = this.node(ino);
    const end = offset + data.length;
    if (this.opts.discardData) {
      node.size = Math.max(node.size, end);
    } else {
      if (end > node.size) this.resize(node, end);
      data.copy(node.data, offset);
    }
    node.mtime = node.ctime = now();
    return data.length;
  }

  async flush(_ctx: RequestCtx, ino: bigint): Promise<void> {
    await this.enter('flush', ino);
  }

  async release(_ctx: RequestCtx, ino: bigint, _fh?: number, _flags?: number): Promise<void> {
    await this.enter('release', ino);
    const node = this.node(ino);
    node.opens--;
    this.maybeFree(node);
  }

  async fsync(_ctx: RequestCtx, ino: bigint): Promise<void> {
    await this.enter('fsync', ino);
  }

  async opendir(_ctx: RequestCtx, ino: bigint): Promise<OpenOut> {
    await this.enter('opendir', ino);
    this.dir(ino).opens++;
    return { fh: this.nextFh++ };
  }

  async readdir(_ctx: RequestCtx, ino: bigint, size: number, offset: number): Promise<DirEntryOut[]> {
    await this.enter('readdir', ino);
    const dir = this.dir(ino);
    const all: [string, bigint][] = [['.', dir.ino], ['..', dir.parent], ...dir.children!];
    const max = Math.max(1, Math.min(this.opts.readdirPageEntries ?? Infinity, Math.floor(size / 32)));
    return all.slice(offset, offset + max).map(([name, child], i) => ({
      name,
      ino: child,
      type: this.node(child).mode & S_IFMT,
      nextOffset: offset + i + 1,
    }));
  }

  async releasedir(_ctx: RequestCtx, ino: bigint): Promise<void> {
    await this.enter('releasedir', ino);
    const node = this.node(ino);
    node.opens--;
    this.maybeFree(node);
  }

  async statfs(_ctx: RequestCtx, ino: bigint): Promise<StatvfsOut> {
    await this.enter('statfs', ino);
    let used = 0;
    for (const node of this.nodes.values()) used += Math.ceil(node.size / 4096);
    const blocks = 1 << 20;
    return {
      bsize: 4096,
      frsize: 4096,
      blocks,
      bfree: blocks - used,
      bavail: blocks - used,
      files: 1 << 20,
      ffree: (1 << 20) - this.nodes.size,
      favail: (1 << 20) - this.nodes.size,
      namemax: 255,
    };
  }

  async setxattr(_ctx: RequestCtx, ino: bigint, name: string, value: Buffer, flags: number): Promise<void> {
    await this.enter('setxattr', ino, name);
    const node = this.node(ino);
    const has = node.xattrs.has(name);
    if (flags & XATTR_CREATE && has) fail('EEXIST', `${name} exists`);
    if (flags & XATTR_REPLACE && !has) fail('ENODATA', `${name} does not exist`);
    node.xattrs.set(name, Buffer.from(value));
    node.ctime = now();
  }

  async getxattr(_ctx: RequestCtx, ino: bigint, name: string): Promise<Buffer> {
    await this.enter('getxattr', ino, name);
    const v = this.node(ino).xattrs.get(name);
    if (!v) fail('ENODATA', `${name} does not exist`);
    return v;
  }

  async listxattr(_ctx: RequestCtx, ino: bigint): Promise<string[]> {
    await this.enter('listxattr', ino);
    return [...this.node(ino).xattrs.keys()];
  }

  async removexattr(_ctx: RequestCtx, ino: bigint, name: string): Promise<void> {
    await this.enter('removexattr', ino, name);
    const node = this.node(ino);
    if (!node.xattrs.delete(name)) fail('ENODATA', `${name} does not exist`);
    node.ctime = now();
  }

  private async enter(op: string, ino: bigint, name?: string): Promise<void> {
    this.calls.set(op, this.count(op) + 1);
    await this.opts.gate?.(op, ino, name);
  }

  private root(): MemNode {
    return this.nodes.get(FUSE_ROOT_ID)!;
  }

  private node(ino: bigint): MemNode {
    const node = this.nodes.get(ino);
    if (!node) fail('ESTALE', `node ${ino} is gone`);
    return node;
  }

  private dir(ino: bigint): MemNode {
    const node = this.node(ino);
    if (!node.children) fail('ENOTDIR', `node ${ino} is not a directory`);
    return node;
  }

  private child(dir: MemNode, name: string): MemNode {
    const ino = dir.children!.get(name);
    if (ino === undefined) fail('ENOENT', `${name}: not found`);
    return this.node(ino);
  }

  private newNode(ino: bigint, mode: number, uid: number, gid: number, parent: bigint, t: Timestamp): MemNode {
    const node: MemNode = {
      ino,
      mode,
      nlink: 1,
      uid,
      gid,
      rdev: 0,
      size: 0,
      atime: t,
      mtime: t,
      ctime: t,
      data: Buffer.alloc(0),
      parent,
      xattrs: new Map(),
      nlookup: 0,
      opens: 0,
    };
    if ((mode & S_IFMT) === S_IFDIR) {
      node.children = new Map();
      node.nlink = 2;
    }
    return node;
  }

  private add(ctx: RequestCtx, parent: bigint, name: string, mode: number, rdev: number): MemNode {
    const dir = this.dir(parent);
    if (dir.children!.has(name)) fail('EEXIST', `${name} exists`);
    if (Buffer.byteLength(name) > 255) fail('ENAMETOOLONG', 'name too long');
    const t = now();
    const node = this.newNode(this.nextIno++, mode, ctx.uid, ctx.gid, parent, t);
    node.rdev = rdev;
    this.nodes.set(node.ino, node);
    dir.children!.set(name, node.ino);
    if (node.children) dir.nlink++;
    dir.mtime = dir.ctime = t;
    return node;
  }

  private detachName(dir: MemNode, name: string, node: MemNode): void {
    dir.children!.delete(name);
    const t = now();
    if (node.children) {
      node.nlink = 0;
      dir.nlink--;
    } else {
      node.nlink--;
    }
    node.ctime = t;
    dir.mtime = dir.ctime = t;
    this.maybeFree(node);
  }

  private maybeFree(node: MemNode): void {
    if (node.ino !== FUSE_ROOT_ID && node.nlink === 0 && node.nlookup <= 0 && node.opens <= 0) this.nodes.delete(node.ino);
  }

  private resize(node: MemNode, size: number): void {
    if (this.opts.discardData) {
      node.size = size;
      return;
    }
    if (size > node.data.length) {
      const grown = Buffer.alloc(Math.max(size, Math.min(node.data.length * 2, size + (64 << 20))));
      node.data.copy(grown, 0, 0, node.size);
      node.data = grown;
    } else if (size < node.size) {
      node.data.fill(0, size, node.size);
    }
    node.size = size;
  }

  private entry(node: MemNode): EntryOut {
    node.nlookup++;
    return { ino: node.ino, generation: 0, attr: this.attr(node), attrTimeout: this.attrTimeout, entryTimeout: this.entryTimeout };
  }

  private attr(node: MemNode): FuseAttr {
    return {
      ino: node.ino,
      mode: node.mode,
      nlink: node.nlink,
      uid: node.uid,
      gid: node.gid,
      rdev: node.rdev,
      size: node.size,
      blocks: Math.ceil(node.size / 512),
      blksize: 4096,
      atime: node.atime,
      mtime: node.mtime,
      ctime: node.ctime,
    };
  }
}
