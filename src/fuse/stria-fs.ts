/**
 * The FUSE adapter: kernel requests (by node id) in, StriaClient calls out,
 * errno back. No filesystem logic lives here beyond the translation of ids,
 * attributes, handles and directory offsets.
 */
import { err } from '../common/errno.js';
import { ROOT_FID, fidKey, fidToIno, type Fid } from '../common/fid.js';
import { typeBits, typeFromMode } from '../common/inode.js';
import { now } from '../common/time.js';
import type { FileAttr, FileLockSpec, OpenFile, StriaClient } from '../client/client.js';
import type { CacheInvalidator } from '../client/dlm.js';
import type { PccHook } from '../client/pcc/hook.js';
import { EXTENT_EOF } from '../ldlm/extent.js';
import type { SetattrSpec } from '../client/mdc.js';
import type { LliteOp, LliteStats } from '../ctl/llite-stats.js';
import {
  FUSE_ROOT_ID, RENAME_EXCHANGE, RENAME_NOREPLACE, SetattrFlag,
  type AttrOut, type CreateOut, type DirEntryOut, type EntryOut, type FuseAttr, type LowLevelOps, type OpenOut,
  type RequestCtx, type SetattrIn, type StatvfsOut, type FlockOut, type FuseSession,
} from './lowlevel.js';

/**
 * How long the kernel may keep what this client holds a lock on. Any loss of the lock
 * (callback, LRU, eviction) invalidates it at once, so this is only an upper bound.
 */
const LOCK_COVERED_TIMEOUT = 3600;
const O_APPEND = 0o2000;
const S_ISUID = 0o4000;
const S_ISGID = 0o2000;
const S_IXGRP = 0o010;
const F_RDLCK = 0;
const F_WRLCK = 1;
const F_UNLCK = 2;
const LOCK_SH = 1;
const LOCK_EX = 2;
const LOCK_NB = 4;
const LOCK_UN = 8;
/** names remembered per inode for invalidation; the kernel rarely holds more */
const MAX_NAMES_PER_NODE = 16;

export interface StriaFsOptions {
  /** seconds the kernel may cache attributes and names this client holds no lock on (0 = not at all) */
  attrTimeout: number;
  entryTimeout: number;
  /** llite.*.stats of this mount */
  llite: LliteStats;
}

const NAME_MAX = 255;
const BLKSIZE = 4096;
const DOT_OFFSET = 1;
const DOTDOT_OFFSET = 2;
/** directory offsets above this are MDS readdir cookies shifted past "." and ".." */
const COOKIE_BASE = 2;
const FALLOC_FL_KEEP_SIZE = 0x01;
const XATTR_CREATE = 1;
const XATTR_REPLACE = 2;

interface Known {
  fid: Fid;
  lookups: number;
  /** names the kernel may have cached for it: "parentIno/name" */
  names?: Set<string>;
  /** POSIX lock owners that took locks on it through this mount */
  lockOwners?: Set<bigint>;
}

interface OpenHandle {
  file: OpenFile;
  append: boolean;
}

export class StriaFs implements LowLevelOps {
  private readonly nodes = new Map<bigint, Known>();
  private readonly files = new Map<number, OpenHandle>();
  /** "parentIno/name" -> ino, for every name the kernel may hold (the reverse of Known.names) */
  private readonly dentries = new Map<string, bigint>();
  private session: FuseSession | undefined;
  private readonly dirs = new Map<number, Fid>();
  private nextFh = 1;
  /** Persistent Client Cache of this mount (src/client/pcc), when started: data I/O of attached files goes there */
  pcc: PccHook | undefined;

  constructor(
    private readonly client: StriaClient,
    private readonly opts: StriaFsOptions,
    /** the mount's root: the filesystem root or a subdirectory fileset */
    private readonly rootFid: Fid = ROOT_FID,
  ) {
    this.nodes.set(FUSE_ROOT_ID, { fid: rootFid, lookups: 1 });
  }

  /** the FID the mount's root shows */
  get mountRoot(): Fid {
    return this.rootFid;
  }

  private fid(ino: bigint): Fid {
    const k = this.nodes.get(ino);
    if (!k) throw err('ESTALE', `unknown inode ${ino}`, 'STALE_INODE');
    return k.fid;
  }

  private nodeId(fid: Fid): bigint {
    return fidKey(fid) === fidKey(this.rootFid) ? FUSE_ROOT_ID : fidToIno(fid);
  }

  /** Every entry handed to the kernel counts one lookup until it forgets it. */
  private remember(fid: Fid): bigint {
    const id = this.nodeId(fid);
    const k = this.nodes.get(id);
    if (k) k.lookups++;
    else this.nodes.set(id, { fid, lookups: 1 });
    return id;
  }

  private attrOf(attr: FileAttr): FuseAttr {
    const a = this.pcc?.attrs(attr) ?? attr;
    return {
      ino: fidToIno(a.fid),
      mode: a.mode,
      nlink: a.nlink,
      uid: a.uid,
      gid: a.gid,
      rdev: a.rdev,
      size: a.size,
      blocks: a.blocks,
      blksize: BLKSIZE,
      atime: a.atime,
      mtime: a.mtime,
      ctime: a.ctime,
    };
  }

  private attrTimeout(a: FileAttr): number {
    return a.covered ? LOCK_COVERED_TIMEOUT : this.opts.attrTimeout;
  }

  /**
   * A name is cached while a LOOKUP lock on the inode it leads to is held, attributes
   * while an attribute lock is: each lock's loss drops only its part (dlm.ts).
   */
  private entry(a: FileAttr, parent?: bigint, name?: string): EntryOut {
    const ino = this.remember(a.fid);
    if (parent !== undefined && name !== undefined) this.rememberName(ino, parent, name);
    return {
      ino,
      generation: 0,
      attr: this.attrOf(a),
      attrTimeout: this.attrTimeout(a),
      entryTimeout: a.nameCovered === true ? LOCK_COVERED_TIMEOUT : this.opts.entryTimeout,
    };
  }

  /**
   * The attributes of `fid`, reached by `name` in `parent`, with the name covered when it
   * still leads there (one lookup RPC: a name lock and an attribute lock); else by FID.
   */
  private async attrsByName(parent: Fid, name: string, fid: Fid): Promise<FileAttr> {
    const a = await this.client.lookup(parent, name).catch(() => undefined);
    if (a && fidKey(a.fid) === fidKey(fid)) return a;
    return this.client.getattr(fid);
  }

  private rememberName(ino: bigint, parent: bigint, name: string): void {
    const k = this.nodes.get(ino);
    if (!k) return;
    const key = `${parent}/${name}`;
    const previous = this.dentries.get(key);
    if (previous !== undefined && previous !== ino) this.nodes.get(previous)?.names?.delete(key);
    k.names ??= new Set();
    if (k.names.size >= MAX_NAMES_PER_NODE) {
      const oldest = k.names.values().next().value!;
      k.names.delete(oldest);
      this.dentries.delete(oldest);
    }
    k.names.add(key);
    this.dentries.set(key, ino);
  }

  private invalidateNameLater(parent: bigint, name: string): void {
    const session = this.session;
    if (session) void Promise.resolve(session.notifyInvalEntry(parent, name)).catch(() => undefined);
  }

  /** The kernel dropped or moved a name: keep the name map in step (it drives name invalidation). */
  private forgetName(parent: bigint, name: string): bigint | undefined {
    const key = `${parent}/${name}`;
    const ino = this.dentries.get(key);
    if (ino === undefined) return undefined;
    this.dentries.delete(key);
    this.nodes.get(ino)?.names?.delete(key);
    return ino;
  }

  /**
   * Connects lock revocation to the kernel's caches. Attribute invalidation is awaited
   * (it never waits on page locks); page and name invalidation are fired: the kernel may
   * hold page or directory locks while it waits for this very client.
   */
  attachSession(session: FuseSession): void {
    this.session = session;
    const invalidator: CacheInvalidator = {
      attrs: async (fid) => {
        const ino = this.nodeId(fid);
        if (this.nodes.has(ino)) await Promise.resolve(session.notifyInvalInode(ino, -1, 0)).catch(() => undefined);
      },
      data: (fid) => {
        const ino = this.nodeId(fid);
        if (this.nodes.has(ino)) void Promise.resolve(session.notifyInvalInode(ino, 0, 0)).catch(() => undefined);
      },
      names: (fid) => {
        const k = this.nodes.get(this.nodeId(fid));
        for (const n of k?.names ?? []) {
          const slash = n.indexOf('/');
          void Promise.resolve(session.notifyInvalEntry(BigInt(n.slice(0, slash)), n.slice(slash + 1))).catch(() => undefined);
        }
      },
    };
    this.client.dlm.invalidator = invalidator;
  }

  private timed<T>(op: LliteOp, fn: () => Promise<T>): Promise<T> {
    return this.opts.llite.time(op, fn);
  }

  forget(ino: bigint, nlookup: number): void {
    if (ino === FUSE_ROOT_ID) return;
    const k = this.nodes.get(ino);
    if (!k) return;
    k.lookups -= nlookup;
    if (k.lookups > 0) return;
    this.nodes.delete(ino);
    for (const key of k.names ?? []) if (this.dentries.get(key) === ino) this.dentries.delete(key);
  }

  async lookup(_ctx: RequestCtx, parent: bigint, name: string): Promise<EntryOut> {
    checkName(name);
    return this.entry(await this.client.lookup(this.fid(parent), name), parent, name);
  }

  async getattr(_ctx: RequestCtx, ino: bigint): Promise<AttrOut> {
    return this.timed('getattr', async () => {
      const a = await this.client.getattr(this.fid(ino));
      return { attr: this.attrOf(a), attrTimeout: this.attrTimeout(a) };
    });
  }

  async setattr(ctx: RequestCtx, ino: bigint, attr: SetattrIn, toSet: number): Promise<AttrOut> {
    // A size change is a truncate in llite's stats; the rest is a setattr.
    return this.timed(toSet & SetattrFlag.SIZE ? 'truncate' : 'setattr', async () => {
      const spec: SetattrSpec = {};
      const fid = this.fid(ino);
      if (toSet & SetattrFlag.MODE) spec.mode = attr.mode & 0o7777;
      if (toSet & SetattrFlag.UID) spec.uid = attr.uid;
      if (toSet & SetattrFlag.GID) spec.gid = attr.gid;
      // an RW-PCC copy takes the size change itself (reference §6)
      if (toSet & SetattrFlag.SIZE && !(await this.pcc?.truncate(fid, attr.size))) spec.size = attr.size;
      const t = now();
      if (toSet & SetattrFlag.ATIME_NOW) spec.atime = t;
      else if (toSet & SetattrFlag.ATIME) spec.atime = attr.atime;
      if (toSet & SetattrFlag.MTIME_NOW) spec.mtime = t;
      else if (toSet & SetattrFlag.MTIME) spec.mtime = attr.mtime;
      if (toSet & SetattrFlag.CTIME) spec.ctime = attr.ctime;
      // A truncate of a released file restores it first, as the caller (reference §7.3).
      const a = Object.keys(spec).length > 0 ? await this.client.setattr(fid, spec, cred(ctx)) : await this.client.getattr(fid);
      return { attr: this.attrOf(a), attrTimeout: this.attrTimeout(a) };
    });
  }

  async readlink(_ctx: RequestCtx, ino: bigint): Promise<string> {
    return this.client.readlink(this.fid(ino));
  }

  async mknod(ctx: RequestCtx, parent: bigint, name: string, mode: number, rdev: number): Promise<EntryOut> {
    checkName(name);
    return this.timed('mknod', async () => {
      const type = typeFromMode(mode) ?? 'reg';
      return this.entry(await this.client.mknod(this.fid(parent), name, { type, mode: mode & 0o7777, rdev, cred: ctx }), parent, name);
    });
  }

  async mkdir(ctx: RequestCtx, parent: bigint, name: string, mode: number): Promise<EntryOut> {
    checkName(name);
    return this.timed('mkdir', async () => {
      return this.entry(await this.client.mkdir(this.fid(parent), name, { mode: mode & 0o7777, cred: ctx }), parent, name);
    });
  }

  async unlink(_ctx: RequestCtx, parent: bigint, name: string): Promise<void> {
    checkName(name);
    return this.timed('unlink', async () => {
      await this.client.unlink(this.fid(parent), name);
      this.forgetName(parent, name);
    });
  }

  async rmdir(_ctx: RequestCtx, parent: bigint, name: string): Promise<void> {
    checkName(name);
    return this.timed('rmdir', async () => {
      await this.client.rmdir(this.fid(parent), name);
      this.forgetName(parent, name);
    });
  }

  async symlink(ctx: RequestCtx, target: string, parent: bigint, name: string): Promise<EntryOut> {
    checkName(name);
    if (Buffer.byteLength(target) > 4095) throw err('ENAMETOOLONG', 'symlink target longer than 4095 bytes', 'TARGET_TOO_LONG');
    return this.timed('symlink', async () => {
      return this.entry(await this.client.symlink(this.fid(parent), name, target, ctx), parent, name);
    });
  }

  async rename(_ctx: RequestCtx, parent: bigint, name: string, newParent: bigint, newName: string, flags: number): Promise<void> {
    checkName(name);
    checkName(newName);
    if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) throw err('EINVAL', `unsupported rename flags ${flags}`, 'BAD_FLAGS');
    return this.timed('rename', async () => {
      await this.client.rename(this.fid(parent), name, this.fid(newParent), newName, {
        noReplace: (flags & RENAME_NOREPLACE) !== 0,
        exchange: (flags & RENAME_EXCHANGE) !== 0,
      });
      // The kernel moves its dentries itself; the names we invalidate must move with them.
      const moved = this.forgetName(parent, name);
      const other = this.forgetName(newParent, newName);
      if (moved !== undefined) this.rememberName(moved, newParent, newName);
      if (other !== undefined && (flags & RENAME_EXCHANGE) !== 0) this.rememberName(other, parent, name);
      // The moved dentry keeps the timeout it was looked up with, but the MDT revoked the
      // lock behind it (the rename took the child's LOOKUP bit): drop it once the kernel,
      // which holds the directory locks until the rename returns, has moved it.
      this.invalidateNameLater(newParent, newName);
      if ((flags & RENAME_EXCHANGE) !== 0) this.invalidateNameLater(parent, name);
    });
  }

  async link(_ctx: RequestCtx, ino: bigint, newParent: bigint, newName: string): Promise<EntryOut> {
    checkName(newName);
    return this.timed('link', async () => {
      return this.entry(await this.client.link(this.fid(ino), this.fid(newParent), newName), newParent, newName);
    });
  }

  private addFile(f: OpenFile, flags: number): number {
    const fh = this.nextFh++;
    this.files.set(fh, { file: f, append: (flags & O_APPEND) !== 0 });
    return fh;
  }

  private handle(fh: number): OpenHandle {
    const f = this.files.get(fh);
    if (!f) throw err('EBADF', `no open file handle ${fh}`, 'BAD_HANDLE');
    return f;
  }

  private file(fh: number): OpenFile {
    return this.handle(fh).file;
  }

  /**
   * The kernel's page cache is kept across opens: every cached page was read or written
   * under an extent lock, and losing the lock drops the pages. O_APPEND descriptors bypass
   * the page cache: the kernel would place appends at its own idea of the end of file,
   * while the write must go where the end is once PW [0, EOF] is held on every object.
   */
  private openOut(fh: number, flags: number): OpenOut {
    const append = (flags & O_APPEND) !== 0;
    return { fh, keepCache: !append, directIo: append };
  }

  /** A name the kernel reached the inode by, for PCC rules on file names. */
  private nameOf(ino: bigint): string | undefined {
    const first = this.nodes.get(ino)?.names?.values().next().value;
    return first === undefined ? undefined : first.slice(first.indexOf('/') + 1);
  }

  async open(ctx: RequestCtx, ino: bigint, flags: number): Promise<OpenOut> {
    return this.timed('open', async () => {
      const f = await this.client.open(this.fid(ino), flags);
      await this.pcc?.opened(f, flags, { uid: ctx.uid, gid: ctx.gid, name: this.nameOf(ino) });
      return this.openOut(this.addFile(f, flags), flags);
    });
  }

  async create(ctx: RequestCtx, parent: bigint, name: string, mode: number, flags: number): Promise<CreateOut> {
    checkName(name);
    return this.timed('create', async () => {
      const pfid = this.fid(parent);
      // the name and attribute locks come with the create: the new dentry stays cached
      const created = await this.client.createEntry(pfid, name, { mode: mode & 0o7777, cred: ctx });
      let f = created.file;
      let attr = created.attr;
      if (this.pcc) {
        f = await this.pcc.created(f, flags, { uid: ctx.uid, gid: ctx.gid, name });
        if (f !== created.file) attr = await this.attrsByName(pfid, name, f.fid);
      }
      return { ...this.entry(attr, parent, name), ...this.openOut(this.addFile(f, flags), flags) };
    });
  }

  /** Reads and writes of a released file wait in the client for its restore (reference §7.3). */
  async read(ctx: RequestCtx, _ino: bigint, size: number, offset: number, fh: number): Promise<Buffer | Buffer[]> {
    const t0 = process.hrtime.bigint();
    const f = this.file(fh);
    // the client's answer is its cached pages as they are (read-only, sent in one writev)
    const data = (await this.pcc?.read(f, offset, size)) ?? (await this.client.readv(f, offset, size, cred(ctx)));
    const bytes = Array.isArray(data) ? data.reduce((n, b) => n + b.length, 0) : data.length;
    this.opts.llite.io('read', bytes, Number((process.hrtime.bigint() - t0) / 1000n));
    return data;
  }

  async write(ctx: RequestCtx, _ino: bigint, data: Buffer, offset: number, fh: number): Promise<number> {
    const t0 = process.hrtime.bigint();
    const h = this.handle(fh);
    if (h.append) await this.killSuidOnDirectWrite(ctx, h.file);
    const { written } = (await this.pcc?.write(h.file, offset, data, h.append)) ?? (await this.client.write(h.file, offset, data, { append: h.append, cred: cred(ctx) }));
    this.opts.llite.io('write', written, Number((process.hrtime.bigint() - t0) / 1000n));
    return written;
  }

  /**
   * The kernel clears set-id bits itself before cached writes, but leaves it to the
   * filesystem for direct-I/O writes (FUSE_WRITE_KILL_SUIDGID, which libfuse 3.14 does not
   * pass on): a writer without CAP_FSETID (approximated as uid != 0) drops S_ISUID, and
   * S_ISGID when the group may execute, as should_remove_suid() does.
   */
  private async killSuidOnDirectWrite(ctx: RequestCtx, f: OpenFile): Promise<void> {
    if (ctx.uid === 0 || (f.inode.mode & (S_ISUID | S_ISGID)) === 0) return;
    const a = await this.client.getattr(f.fid);
    let kill = a.mode & S_ISUID;
    if (a.mode & S_ISGID && a.mode & S_IXGRP) kill |= S_ISGID;
    if (kill === 0) return;
    await this.client.setattr(f.fid, { mode: a.mode & 0o7777 & ~kill });
    f.inode = { ...f.inode, mode: a.mode & ~kill };
  }

  /** close(2) of a descriptor: the POSIX locks of its owner on this file end (fcntl semantics). */
  async flush(_ctx: RequestCtx, ino: bigint, fh: number, lockOwner?: bigint): Promise<void> {
    const h = this.files.get(fh);
    const k = this.nodes.get(ino);
    try {
      if (h) await this.pcc?.flushed(h.file);
      // a failed background write of this file surfaces at close(2), as on a local filesystem
      if (h) (this.client as { takeWriteError?: (f: OpenFile) => void }).takeWriteError?.(h.file);
    } finally {
      if (lockOwner !== undefined && k?.lockOwners?.has(lockOwner)) {
        k.lockOwners.delete(lockOwner);
        await this.client.releaseLocks(k.fid, 'posix', lockOwner);
      }
    }
  }

  async release(_ctx: RequestCtx, ino: bigint, fh: number, _flags?: number, flockOwner?: bigint): Promise<void> {
    const h = this.files.get(fh);
    if (!h) return;
    this.files.delete(fh);
    this.pcc?.released(h.file);
    if (flockOwner !== undefined) await this.client.releaseLocks(h.file.fid, 'bsd', flockOwner).catch(() => undefined);
    void ino;
    await this.timed('close', () => this.client.close(h.file));
  }

  async getlk(_ctx: RequestCtx, ino: bigint, _fh: number, owner: bigint, lock: FlockOut): Promise<FlockOut> {
    const type = lockType(lock.type);
    if (type === 'unlock') throw err('EINVAL', 'F_GETLK needs F_RDLCK or F_WRLCK', 'BAD_LOCK_TYPE');
    const c = await this.client.testLock(this.fid(ino), { kind: 'posix', owner, pid: lock.pid, type, start: lock.start, end: lock.end });
    if (!c) return { type: F_UNLCK, start: lock.start, end: lock.end, pid: 0 };
    return { type: c.type === 'read' ? F_RDLCK : F_WRLCK, start: c.start, end: c.end >= EXTENT_EOF ? Number.MAX_SAFE_INTEGER : c.end, pid: c.pid };
  }

  async setlk(ctx: RequestCtx, ino: bigint, _fh: number, owner: bigint, lock: FlockOut, sleep: boolean): Promise<void> {
    const k = this.nodes.get(ino);
    const spec: FileLockSpec = { kind: 'posix', owner, pid: lock.pid || ctx.pid, type: lockType(lock.type), start: lock.start, end: lock.end };
    await this.client.setLock(this.fid(ino), spec, sleep, () => ctx.interrupted);
    if (k && spec.type !== 'unlock') (k.lockOwners ??= new Set()).add(owner);
  }

  async flock(ctx: RequestCtx, ino: bigint, _fh: number, owner: bigint, op: number): Promise<void> {
    const base = { kind: 'bsd' as const, owner, pid: ctx.pid, start: 0, end: EXTENT_EOF };
    if (op & LOCK_UN) {
      await this.client.setLock(this.fid(ino), { ...base, type: 'unlock' }, false);
      return;
    }
    const type = op & LOCK_EX ? 'write' : op & LOCK_SH ? 'read' : undefined;
    if (!type) throw err('EINVAL', `invalid flock operation ${op}`, 'BAD_LOCK_TYPE');
    await this.client.setLock(this.fid(ino), { ...base, type }, (op & LOCK_NB) === 0, () => ctx.interrupted);
  }

  async fsync(_ctx: RequestCtx, _ino: bigint, _datasync: boolean, fh: number): Promise<void> {
    return this.timed('fsync', async () => {
      const f = this.file(fh);
      if (!(await this.pcc?.fsync(f))) await this.client.fsync(f);
    });
  }

  async opendir(_ctx: RequestCtx, ino: bigint): Promise<OpenOut> {
    const fid = this.fid(ino);
    const fh = this.nextFh++;
    this.dirs.set(fh, fid);
    return { fh };
  }

  async releasedir(_ctx: RequestCtx, _ino: bigint, fh: number): Promise<void> {
    this.dirs.delete(fh);
  }

  async readdir(_ctx: RequestCtx, ino: bigint, size: number, offset: number, fh: number, plus: boolean): Promise<DirEntryOut[]> {
    return this.timed('readdir', async () => {
      const fid = this.dirs.get(fh) ?? this.fid(ino);
      const out: DirEntryOut[] = [];
      const dirType = typeBits('dir');
      if (offset < DOT_OFFSET) out.push({ name: '.', ino: fidToIno(fid), type: dirType, nextOffset: DOT_OFFSET });
      if (offset < DOTDOT_OFFSET) out.push({ name: '..', ino: fidToIno(fid), type: dirType, nextOffset: DOTDOT_OFFSET });
      const cookie = offset <= COOKIE_BASE ? 0 : offset - COOKIE_BASE;
      // Ask for about what fits: a dirent is ~24 bytes plus the name, a direntplus ~150.
      const limit = Math.max(1, Math.min(1024, Math.floor(size / (plus ? 160 : 32))));
      const page = await this.client.readdir(fid, cookie, limit);
      // By name, so the kernel may keep the entries as dentries under their name locks; an
      // entry this client still holds both locks for goes as a plain one: what the kernel
      // took from its lookup is current, and a missing dentry costs that one lookup again.
      const attrs = plus
        ? await Promise.all(page.entries.map((e) => (this.client.holdsEntry(fid, e.name, e.fid) ? undefined : this.attrsByName(fid, e.name, e.fid).catch(() => undefined))))
        : [];
      page.entries.forEach((e, i) => {
        const a = attrs[i];
        out.push({
          name: e.name,
          ino: fidToIno(e.fid),
          type: typeBits(e.type),
          nextOffset: e.cookie + COOKIE_BASE,
          entry: a ? this.entry(a, ino, e.name) : undefined,
        });
      });
      return out;
    });
  }

  async statfs(): Promise<StatvfsOut> {
    return this.timed('statfs', async () => {
      const s = await this.client.statfs();
      return { bsize: s.bsize, frsize: s.bsize, blocks: s.blocks, bfree: s.bfree, bavail: s.bavail, files: s.files, ffree: s.ffree, favail: s.ffree, namemax: NAME_MAX };
    });
  }

  async setxattr(_ctx: RequestCtx, ino: bigint, name: string, value: Buffer, flags: number): Promise<void> {
    return this.timed('setxattr', async () => {
      await this.client.setxattr(this.fid(ino), name, Buffer.from(value), {
        create: (flags & XATTR_CREATE) !== 0,
        replace: (flags & XATTR_REPLACE) !== 0,
      });
    });
  }

  async getxattr(_ctx: RequestCtx, ino: bigint, name: string): Promise<Buffer> {
    return this.timed('getxattr', async () => {
      return this.client.getxattr(this.fid(ino), name);
    });
  }

  async listxattr(_ctx: RequestCtx, ino: bigint): Promise<string[]> {
    return this.timed('listxattr', async () => {
      return this.client.listxattr(this.fid(ino));
    });
  }

  async removexattr(_ctx: RequestCtx, ino: bigint, name: string): Promise<void> {
    return this.timed('removexattr', async () => {
      await this.client.removexattr(this.fid(ino), name);
    });
  }

  /** Space is not reserved on the OSTs yet: mode 0 extends the size, KEEP_SIZE is a no-op. */
  async fallocate(ctx: RequestCtx, ino: bigint, mode: number, offset: number, length: number): Promise<void> {
    if (mode & ~FALLOC_FL_KEEP_SIZE) throw err('EOPNOTSUPP', `fallocate mode ${mode} is not supported`, 'FALLOCATE_MODE');
    if (mode & FALLOC_FL_KEEP_SIZE) return;
    await this.timed('fallocate', async () => {
      const fid = this.fid(ino);
      const raw = await this.client.getattr(fid);
      const a = this.pcc?.attrs(raw) ?? raw;
      if (a.type !== 'reg') throw err('ENODEV', 'fallocate needs a regular file', 'NOT_REGULAR');
      if (offset + length > a.size && !(await this.pcc?.truncate(fid, offset + length))) await this.client.setattr(fid, { size: offset + length }, cred(ctx));
    });
  }
}

function lockType(t: number): 'read' | 'write' | 'unlock' {
  if (t === F_RDLCK) return 'read';
  if (t === F_WRLCK) return 'write';
  if (t === F_UNLCK) return 'unlock';
  throw err('EINVAL', `invalid lock type ${t}`, 'BAD_LOCK_TYPE');
}

/** Who the kernel says made the request (a restore it triggers runs as them). */
function cred(ctx: RequestCtx): { uid: number; gid: number } {
  return { uid: ctx.uid, gid: ctx.gid };
}

function checkName(name: string): void {
  if (Buffer.byteLength(name) > NAME_MAX) throw err('ENAMETOOLONG', `name longer than ${NAME_MAX} bytes`, 'NAME_TOO_LONG');
}
