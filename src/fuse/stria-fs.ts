/**
 * The FUSE adapter: kernel requests (by node id) in, StriaClient calls out,
 * errno back. No filesystem logic lives here beyond the translation of ids,
 * attributes, handles and directory offsets.
 */
import { err } from '../common/errno.js';
import { ROOT_FID, fidKey, fidToIno, type Fid } from '../common/fid.js';
import { typeBits, typeFromMode } from '../common/inode.js';
import { now } from '../common/time.js';
import type { FileAttr, OpenFile, StriaClient } from '../client/client.js';
import type { SetattrSpec } from '../client/mdc.js';
import type { LliteOp, LliteStats } from '../ctl/llite-stats.js';
import {
  FUSE_ROOT_ID, RENAME_EXCHANGE, RENAME_NOREPLACE, SetattrFlag,
  type AttrOut, type CreateOut, type DirEntryOut, type EntryOut, type FuseAttr, type LowLevelOps, type OpenOut,
  type RequestCtx, type SetattrIn, type StatvfsOut,
} from './lowlevel.js';

export interface StriaFsOptions {
  /** seconds the kernel may cache attributes and names (no locks yet: keep short) */
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
}

export class StriaFs implements LowLevelOps {
  private readonly nodes = new Map<bigint, Known>();
  private readonly files = new Map<number, OpenFile>();
  private readonly dirs = new Map<number, Fid>();
  private nextFh = 1;

  constructor(
    private readonly client: StriaClient,
    private readonly opts: StriaFsOptions,
    /** the mount's root: the filesystem root or a subdirectory fileset */
    private readonly rootFid: Fid = ROOT_FID,
  ) {
    this.nodes.set(FUSE_ROOT_ID, { fid: rootFid, lookups: 1 });
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

  private attrOf(a: FileAttr): FuseAttr {
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

  private entry(a: FileAttr): EntryOut {
    return {
      ino: this.remember(a.fid),
      generation: 0,
      attr: this.attrOf(a),
      attrTimeout: this.opts.attrTimeout,
      entryTimeout: this.opts.entryTimeout,
    };
  }

  private timed<T>(op: LliteOp, fn: () => Promise<T>): Promise<T> {
    return this.opts.llite.time(op, fn);
  }

  forget(ino: bigint, nlookup: number): void {
    if (ino === FUSE_ROOT_ID) return;
    const k = this.nodes.get(ino);
    if (!k) return;
    k.lookups -= nlookup;
    if (k.lookups <= 0) this.nodes.delete(ino);
  }

  async lookup(_ctx: RequestCtx, parent: bigint, name: string): Promise<EntryOut> {
    checkName(name);
    return this.entry(await this.client.lookup(this.fid(parent), name));
  }

  async getattr(_ctx: RequestCtx, ino: bigint): Promise<AttrOut> {
    return this.timed('getattr', async () => {
      return { attr: this.attrOf(await this.client.getattr(this.fid(ino))), attrTimeout: this.opts.attrTimeout };
    });
  }

  async setattr(_ctx: RequestCtx, ino: bigint, attr: SetattrIn, toSet: number): Promise<AttrOut> {
    // A size change is a truncate in llite's stats; the rest is a setattr.
    return this.timed(toSet & SetattrFlag.SIZE ? 'truncate' : 'setattr', async () => {
      const spec: SetattrSpec = {};
      if (toSet & SetattrFlag.MODE) spec.mode = attr.mode & 0o7777;
      if (toSet & SetattrFlag.UID) spec.uid = attr.uid;
      if (toSet & SetattrFlag.GID) spec.gid = attr.gid;
      if (toSet & SetattrFlag.SIZE) spec.size = attr.size;
      const t = now();
      if (toSet & SetattrFlag.ATIME_NOW) spec.atime = t;
      else if (toSet & SetattrFlag.ATIME) spec.atime = attr.atime;
      if (toSet & SetattrFlag.MTIME_NOW) spec.mtime = t;
      else if (toSet & SetattrFlag.MTIME) spec.mtime = attr.mtime;
      if (toSet & SetattrFlag.CTIME) spec.ctime = attr.ctime;
      const a = await this.client.setattr(this.fid(ino), spec);
      return { attr: this.attrOf(a), attrTimeout: this.opts.attrTimeout };
    });
  }

  async readlink(_ctx: RequestCtx, ino: bigint): Promise<string> {
    return this.client.readlink(this.fid(ino));
  }

  async mknod(ctx: RequestCtx, parent: bigint, name: string, mode: number, rdev: number): Promise<EntryOut> {
    checkName(name);
    return this.timed('mknod', async () => {
      const type = typeFromMode(mode) ?? 'reg';
      return this.entry(await this.client.mknod(this.fid(parent), name, { type, mode: mode & 0o7777, rdev, cred: ctx }));
    });
  }

  async mkdir(ctx: RequestCtx, parent: bigint, name: string, mode: number): Promise<EntryOut> {
    checkName(name);
    return this.timed('mkdir', async () => {
      return this.entry(await this.client.mkdir(this.fid(parent), name, { mode: mode & 0o7777, cred: ctx }));
    });
  }

  async unlink(_ctx: RequestCtx, parent: bigint, name: string): Promise<void> {
    checkName(name);
    return this.timed('unlink', async () => {
      await this.client.unlink(this.fid(parent), name);
    });
  }

  async rmdir(_ctx: RequestCtx, parent: bigint, name: string): Promise<void> {
    checkName(name);
    return this.timed('rmdir', async () => {
      await this.client.rmdir(this.fid(parent), name);
    });
  }

  async symlink(ctx: RequestCtx, target: string, parent: bigint, name: string): Promise<EntryOut> {
    checkName(name);
    if (Buffer.byteLength(target) > 4095) throw err('ENAMETOOLONG', 'symlink target longer than 4095 bytes', 'TARGET_TOO_LONG');
    return this.timed('symlink', async () => {
      return this.entry(await this.client.symlink(this.fid(parent), name, target, ctx));
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
    });
  }

  async link(_ctx: RequestCtx, ino: bigint, newParent: bigint, newName: string): Promise<EntryOut> {
    checkName(newName);
    return this.timed('link', async () => {
      return this.entry(await this.client.link(this.fid(ino), this.fid(newParent), newName));
    });
  }

  private addFile(f: OpenFile): number {
    const fh = this.nextFh++;
    this.files.set(fh, f);
    return fh;
  }

  private file(fh: number): OpenFile {
    const f = this.files.get(fh);
    if (!f) throw err('EBADF', `no open file handle ${fh}`, 'BAD_HANDLE');
    return f;
  }

  async open(_ctx: RequestCtx, ino: bigint, flags: number): Promise<OpenOut> {
    return this.timed('open', async () => {
      const f = await this.client.open(this.fid(ino), flags);
      // Without extent locks yet, drop the kernel's cached pages at every open (close-to-open coherence).
      return { fh: this.addFile(f), keepCache: false };
    });
  }

  async create(ctx: RequestCtx, parent: bigint, name: string, mode: number, _flags: number): Promise<CreateOut> {
    checkName(name);
    return this.timed('create', async () => {
      const pfid = this.fid(parent);
      const f = await this.client.create(pfid, name, { mode: mode & 0o7777, cred: ctx });
      const attr = await this.client.getattr(f.fid);
      return { ...this.entry(attr), fh: this.addFile(f), keepCache: false };
    });
  }

  async read(_ctx: RequestCtx, _ino: bigint, size: number, offset: number, fh: number): Promise<Buffer> {
    const t0 = process.hrtime.bigint();
    const data = await this.client.read(this.file(fh), offset, size);
    this.opts.llite.io('read', data.length, Number((process.hrtime.bigint() - t0) / 1000n));
    return data;
  }

  async write(_ctx: RequestCtx, _ino: bigint, data: Buffer, offset: number, fh: number): Promise<number> {
    const t0 = process.hrtime.bigint();
    const n = await this.client.write(this.file(fh), offset, data);
    this.opts.llite.io('write', n, Number((process.hrtime.bigint() - t0) / 1000n));
    return n;
  }

  async flush(): Promise<void> {
    // Writes are synchronous to the OSTs for now: nothing is buffered here.
  }

  async release(_ctx: RequestCtx, _ino: bigint, fh: number): Promise<void> {
    const f = this.files.get(fh);
    if (!f) return;
    this.files.delete(fh);
    await this.timed('close', () => this.client.close(f));
  }

  async fsync(_ctx: RequestCtx, _ino: bigint, _datasync: boolean, fh: number): Promise<void> {
    return this.timed('fsync', async () => {
      await this.client.fsync(this.file(fh));
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
      const attrs = plus ? await Promise.all(page.entries.map((e) => this.client.getattr(e.fid).catch(() => undefined))) : [];
      page.entries.forEach((e, i) => {
        const a = attrs[i];
        out.push({
          name: e.name,
          ino: fidToIno(e.fid),
          type: typeBits(e.type),
          nextOffset: e.cookie + COOKIE_BASE,
          entry: a ? this.entry(a) : undefined,
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
  async fallocate(_ctx: RequestCtx, ino: bigint, mode: number, offset: number, length: number): Promise<void> {
    if (mode & ~FALLOC_FL_KEEP_SIZE) throw err('EOPNOTSUPP', `fallocate mode ${mode} is not supported`, 'FALLOCATE_MODE');
    if (mode & FALLOC_FL_KEEP_SIZE) return;
    await this.timed('fallocate', async () => {
      const fid = this.fid(ino);
      const a = await this.client.getattr(fid);
      if (a.type !== 'reg') throw err('ENODEV', 'fallocate needs a regular file', 'NOT_REGULAR');
      if (offset + length > a.size) await this.client.setattr(fid, { size: offset + length });
    });
  }
}

function checkName(name: string): void {
  if (Buffer.byteLength(name) > NAME_MAX) throw err('ENAMETOOLONG', `name longer than ${NAME_MAX} bytes`, 'NAME_TOO_LONG');
}
