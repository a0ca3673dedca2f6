/**
 * Translates fuse-native's path-based callbacks (libfuse 2 high-level API)
 * into LowLevelOps calls: paths become node ids through PathInodes, open files
 * become entries of a handle table, results are packed the way fuse-native's
 * native side reads them.
 *
 * Every request gets exactly one reply: a handler that does not settle within
 * requestTimeoutMs is answered with ETIMEDOUT and its late result is dropped
 * (a late open/create handle is released again).
 */
import { Errno, err } from '../common/errno.js';
import type { Logger } from '../common/log.js';
import type { Timestamp } from '../common/time.js';
import {
  SetattrFlag,
  type FuseAttr,
  type LowLevelOps,
  type RequestCtx,
  type SetattrIn,
  type StatvfsOut,
} from './lowlevel.js';
import { PathInodes, splitParent, type PathInodesOptions, type RequestScope } from './path-inodes.js';

/** fuse-native's reply function: a result (>= 0) or a negated errno, then op-specific values. */
export type Signal = (result: number, ...values: unknown[]) => void;
type Cb = (result: number, value?: unknown) => void;

const O_RDONLY = 0;
const O_RDWR = 2;
const O_CREAT = 0o100;
const O_EXCL = 0o200;
const O_DIRECTORY = 0o200000;

const UINT32_MAX = 0xffffffff;
/** uid_t/gid_t -1: chown leaves this id alone */
const ID_UNCHANGED = UINT32_MAX;
/** size asked of readdir per call; the whole directory goes to libfuse in one reply */
const READDIR_CHUNK = 64 * 1024;
/** a directory listing longer than this is refused rather than held in memory */
const MAX_DIR_ENTRIES = 4 * 1024 * 1024;

export interface FuseNativeOpsOptions extends PathInodesOptions {
  requestTimeoutMs: number;
  logger?: Logger;
}

interface OpenHandle {
  ino: bigint;
  fh: number;
  flags: number;
}

/**
 * A positive integer errno as the contract asks; anything else is EIO.
 */
export function errnoOf(e: unknown): number {
  const n = (e as { errno?: unknown } | null)?.errno;
  return typeof n === 'number' && Number.isInteger(n) && n > 0 ? n : Errno.EIO;
}

function timeToMs(t: Timestamp): number {
  // fuse-native carries milliseconds as an unsigned 64-bit count: nanoseconds go, times before 1970 become 1970
  return Math.max(0, t.sec * 1000 + Math.floor(t.nsec / 1e6));
}

function msToTime(ms: number): Timestamp {
  const sec = Math.floor(ms / 1000);
  return { sec, nsec: Math.round((ms - sec * 1000) * 1e6) };
}

/**
 * st_ino travels as 32 bits through fuse-native: bigger node ids are folded
 * (high half xor low half), which can make two files share an st_ino.
 */
export function foldIno(ino: bigint): number {
  if (ino <= BigInt(UINT32_MAX)) return Number(ino);
  const folded = Number((ino ^ (ino >> 32n)) & BigInt(UINT32_MAX));
  return folded === 0 ? 1 : folded;
}

function setDouble(ints: Uint32Array, i: number, n: number): void {
  const v = Math.max(0, Math.floor(n));
  ints[i] = v % 0x100000000;
  ints[i + 1] = Math.floor(v / 0x100000000);
}

/** The 18 uint32 words fuse-native's populate_stat() reads into a struct stat. */
export function packStat(a: FuseAttr): Uint32Array {
  const ints = new Uint32Array(18);
  ints[0] = a.mode;
  ints[1] = a.uid;
  ints[2] = a.gid;
  setDouble(ints, 3, a.size);
  ints[5] = 0; // st_dev: the kernel fills in the mount's device
  ints[6] = a.nlink;
  ints[7] = foldIno(a.ino);
  ints[8] = a.rdev;
  ints[9] = a.blksize;
  setDouble(ints, 10, a.blocks);
  setDouble(ints, 12, timeToMs(a.atime));
  setDouble(ints, 14, timeToMs(a.mtime));
  setDouble(ints, 16, timeToMs(a.ctime));
  return ints;
}

/**
 * fuse-native passes statvfs fields as 32 bits: block counts that do not fit
 * are given in bigger fragments (f_frsize doubled), as NFS does; inode counts
 * are capped.
 */
export function packStatfs(s: StatvfsOut): Record<string, number> {
  let { frsize, blocks, bfree, bavail } = s;
  if (frsize <= 0) frsize = s.bsize;
  while (blocks > UINT32_MAX && frsize < 2 ** 30) {
    frsize *= 2;
    blocks = Math.floor(blocks / 2);
    bfree = Math.floor(bfree / 2);
    bavail = Math.floor(bavail / 2);
  }
  const cap = (n: number): number => Math.max(0, Math.min(UINT32_MAX, Math.floor(n)));
  return {
    bsize: cap(s.bsize),
    frsize: cap(frsize),
    blocks: cap(blocks),
    bfree: cap(bfree),
    bavail: cap(bavail),
    files: cap(s.files),
    ffree: cap(s.ffree),
    favail: cap(s.favail),
    fsid: 0,
    flag: 0,
    namemax: cap(s.namemax),
  };
}

function blankSetattr(): SetattrIn {
  const zero = { sec: 0, nsec: 0 };
  return { mode: 0, uid: 0, gid: 0, size: 0, atime: zero, mtime: zero, ctime: zero };
}

/** Open files: fuse-native's fd numbers (int32, chosen here) -> node id and the filesystem's own fh. */
class HandleTable {
  private readonly open = new Map<number, OpenHandle>();
  private next = 1;

  add(h: OpenHandle): number {
    for (let tries = 0; tries < 0x7fffffff; tries++) {
      const fd = this.next;
      this.next = this.next >= 0x7fffffff ? 1 : this.next + 1;
      if (!this.open.has(fd)) {
        this.open.set(fd, h);
        return fd;
      }
    }
    throw err('ENOMEM', 'no free file handle');
  }

  get(fd: number): OpenHandle | undefined {
    return this.open.get(fd);
  }

  delete(fd: number): OpenHandle | undefined {
    const h = this.open.get(fd);
    this.open.delete(fd);
    return h;
  }

  entries(): [number, OpenHandle][] {
    return [...this.open];
  }

  get size(): number {
    return this.open.size;
  }
}

export class FuseNativeOps {
  readonly paths: PathInodes;
  private readonly handles = new HandleTable();
  private readonly timeoutMs: number;
  private readonly uid = process.getuid?.() ?? 0;
  private readonly gid = process.getgid?.() ?? 0;
  /** requests answered with ETIMEDOUT so far */
  timeouts = 0;
  private ended = false;

  constructor(
    private readonly ll: LowLevelOps,
    private readonly opts: FuseNativeOpsOptions,
  ) {
    this.paths = new PathInodes(ll, opts);
    this.timeoutMs = Math.max(1, opts.requestTimeoutMs);
  }

  /** Caller identity is not passed by fuse-native: every request runs as the mounting process. */
  private ctx(): RequestCtx {
    return { uid: this.uid, gid: this.gid, pid: 0, umask: 0, interrupted: false };
  }

  /**
   * Runs one request: exactly one of ok/fail is called, fail with -ETIMEDOUT
   * once the deadline passes. `late` gets a result that came after the deadline.
   */
  private run<T>(
    op: string,
    work: (ctx: RequestCtx, scope: RequestScope) => Promise<T>,
    ok: (v: T) => void,
    fail: (negErrno: number) => void,
    late?: (v: T) => void,
  ): void {
    // a lazily detached mount still sends requests for files that stay open; the filesystem is gone by then
    if (this.ended) return fail(-Errno.ENOTCONN);
    const scope = this.paths.scope();
    let settled = false;
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      this.timeouts++;
      this.opts.logger?.warn({ op, timeoutMs: this.timeoutMs }, 'FUSE request timed out');
      fail(-Errno.ETIMEDOUT);
    }, this.timeoutMs);
    let p: Promise<T>;
    try {
      p = work(this.ctx(), scope);
    } catch (e) {
      p = Promise.reject(e);
    }
    p.then(
      (v) => {
        if (settled) {
          late?.(v);
          return;
        }
        settled = true;
        clearTimeout(timer);
        try {
          ok(v);
        } catch (e) {
          this.opts.logger?.error({ op, err: e }, 'FUSE reply failed');
          fail(-Errno.EIO);
        }
      },
      (e: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        const errno = errnoOf(e);
        if (errno === Errno.EIO) this.opts.logger?.debug({ op, err: e }, 'FUSE request failed');
        fail(-errno);
      },
    )
      // late() or fail() throwing must not become an unhandled rejection
      .catch((e: unknown) => this.opts.logger?.error({ op, err: e }, 'FUSE request bookkeeping failed'))
      .finally(() => scope.end());
  }

  /** Runs a request whose reply is a status, or a status and one value. */
  private call<T>(op: string, cb: Cb, work: (ctx: RequestCtx, scope: RequestScope) => Promise<T>, reply?: (v: T) => unknown, late?: (v: T) => void): void {
    this.run(op, work, (v) => (reply ? cb(0, reply(v)) : cb(0)), (e) => cb(e), late);
  }

  private async resolveDir(ctx: RequestCtx, scope: RequestScope, path: string): Promise<{ parent: bigint; name: string }> {
    const { dir, name } = splitParent(path);
    const { ino } = await this.paths.resolve(ctx, dir, scope);
    return { parent: ino, name };
  }

  private async inoOf(ctx: RequestCtx, scope: RequestScope, path: string): Promise<bigint> {
    return (await this.paths.resolve(ctx, path, scope)).ino;
  }

  private async attrOf(ctx: RequestCtx, scope: RequestScope, path: string): Promise<FuseAttr> {
    const r = await this.paths.resolve(ctx, path, scope);
    if (r.attr) return r.attr;
    const out = await this.ll.getattr(ctx, r.ino, undefined);
    this.paths.setAttr(r.ino, out.attr, out.attrTimeout);
    return out.attr;
  }

  private async setattr(ctx: RequestCtx, ino: bigint, attr: SetattrIn, toSet: number, fh: number | undefined): Promise<void> {
    const out = await this.ll.setattr(ctx, ino, attr, toSet, fh);
    this.paths.setAttr(ino, out.attr, out.attrTimeout);
  }

  private handle(fd: number): OpenHandle {
    const h = this.handles.get(fd);
    if (!h) throw err('EBADF', `fd ${fd} is not open`);
    return h;
  }

  private addHandle(ino: bigint, fh: number, flags: number): number {
    const fd = this.handles.add({ ino, fh, flags });
    this.paths.hold(ino);
    return fd;
  }

  private dropHandle(fd: number): void {
    const h = this.handles.delete(fd);
    if (h) this.paths.release(h.ino);
  }

  /** The ops object handed to fuse-native's constructor (its callback conventions). */
  callbacks(): Record<string, (...args: never[]) => void> {
    const ll = this.ll;
    const paths = this.paths;
    const ops: Record<string, (...args: never[]) => void> = {
      init: (cb: Cb) => {
        try {
          ll.init?.();
          cb(0);
        } catch (e) {
          cb(-errnoOf(e));
        }
      },
      statfs: (path: string, cb: Cb) =>
        this.call('statfs', cb, async (ctx, s) => ll.statfs(ctx, await this.inoOf(ctx, s, path)), packStatfs),
      readdir: (path: string, cb: Cb) => this.call('readdir', cb, (ctx, s) => this.listDir(ctx, s, path), (names) => names),
      readlink: (path: string, cb: Cb) =>
        this.call('readlink', cb, async (ctx, s) => ll.readlink(ctx, await this.inoOf(ctx, s, path)), (t) => t),
      chmod: (path: string, mode: number, cb: Cb) =>
        this.call('chmod', cb, async (ctx, s) => {
          const attr = { ...blankSetattr(), mode };
          await this.setattr(ctx, await this.inoOf(ctx, s, path), attr, SetattrFlag.MODE, undefined);
        }),
      chown: (path: string, uid: number, gid: number, cb: Cb) =>
        this.call('chown', cb, async (ctx, s) => {
          let toSet = 0;
          if (uid !== ID_UNCHANGED) toSet |= SetattrFlag.UID;
          if (gid !== ID_UNCHANGED) toSet |= SetattrFlag.GID;
          const ino = await this.inoOf(ctx, s, path);
          if (toSet !== 0) await this.setattr(ctx, ino, { ...blankSetattr(), uid, gid }, toSet, undefined);
        }),
      truncate: (path: string, size: number, cb: Cb) =>
        this.call('truncate', cb, async (ctx, s) => {
          await this.setattr(ctx, await this.inoOf(ctx, s, path), { ...blankSetattr(), size }, SetattrFlag.SIZE, undefined);
        }),
      ftruncate: (path: string, fd: number, size: number, cb: Cb) =>
        this.call('ftruncate', cb, async (ctx) => {
          const h = this.handle(fd);
          await this.setattr(ctx, h.ino, { ...blankSetattr(), size }, SetattrFlag.SIZE, h.fh);
        }),
      // `mtime` is right only thanks to the handler fix in fuse-native-session.ts (fuse-native passes atime twice)
      utimens: (path: string, atime: number, mtime: number, cb: Cb) =>
        this.call('utimens', cb, async (ctx, s) => {
          const attr = { ...blankSetattr(), atime: msToTime(atime), mtime: msToTime(mtime) };
          await this.setattr(ctx, await this.inoOf(ctx, s, path), attr, SetattrFlag.ATIME | SetattrFlag.MTIME, undefined);
        }),
      mknod: (path: string, mode: number, dev: number, cb: Cb) =>
        this.call('mknod', cb, async (ctx, s) => {
          const { parent, name } = await this.resolveDir(ctx, s, path);
          paths.learn(s, path, await ll.mknod(ctx, parent, name, mode, dev));
          paths.dropAttr(parent);
        }),
      mkdir: (path: string, mode: number, cb: Cb) =>
        this.call('mkdir', cb, async (ctx, s) => {
          const { parent, name } = await this.resolveDir(ctx, s, path);
          paths.learn(s, path, await ll.mkdir(ctx, parent, name, mode));
          paths.dropAttr(parent);
        }),
      symlink: (target: string, path: string, cb: Cb) =>
        this.call('symlink', cb, async (ctx, s) => {
          const { parent, name } = await this.resolveDir(ctx, s, path);
          paths.learn(s, path, await ll.symlink(ctx, target, parent, name));
          paths.dropAttr(parent);
        }),
      link: (from: string, to: string, cb: Cb) =>
        this.call('link', cb, async (ctx, s) => {
          const ino = await this.inoOf(ctx, s, from);
          const { parent, name } = await this.resolveDir(ctx, s, to);
          const entry = await ll.link(ctx, ino, parent, name);
          this.namespaceChanged();
          paths.learn(s, to, entry);
        }),
      unlink: (path: string, cb: Cb) =>
        this.call('unlink', cb, async (ctx, s) => {
          const { parent, name } = await this.resolveDir(ctx, s, path);
          try {
            await ll.unlink(ctx, parent, name);
          } finally {
            paths.invalidatePath(path);
            this.namespaceChanged();
          }
        }),
      rmdir: (path: string, cb: Cb) =>
        this.call('rmdir', cb, async (ctx, s) => {
          const { parent, name } = await this.resolveDir(ctx, s, path);
          try {
            await ll.rmdir(ctx, parent, name);
          } finally {
            paths.invalidatePath(path);
            this.namespaceChanged();
          }
        }),
      rename: (from: string, to: string, cb: Cb) =>
        this.call('rename', cb, async (ctx, s) => {
          const src = await this.resolveDir(ctx, s, from);
          const dst = await this.resolveDir(ctx, s, to);
          try {
            await ll.rename(ctx, src.parent, src.name, dst.parent, dst.name, 0);
          } finally {
            paths.invalidatePath(from);
            paths.invalidatePath(to);
            this.namespaceChanged();
          }
        }),
      open: (path: string, flags: number, cb: Cb) => {
        let ino = 0n;
        this.call(
          'open',
          cb,
          async (ctx, s) => {
            ino = await this.inoOf(ctx, s, path);
            return ll.open(ctx, ino, flags);
          },
          (out) => this.addHandle(ino, out.fh, flags),
          (out) => this.releaseOrphan(ino, out.fh, flags),
        );
      },
      // fuse-native does not pass create's open flags: the file is created exclusively, for reading and writing
      create: (path: string, mode: number, cb: Cb) => {
        const flags = O_CREAT | O_EXCL | O_RDWR;
        let ino = 0n;
        this.call(
          'create',
          cb,
          async (ctx, s) => {
            const { parent, name } = await this.resolveDir(ctx, s, path);
            const out = await ll.create(ctx, parent, name, mode, flags);
            paths.learn(s, path, out);
            paths.dropAttr(parent);
            ino = out.ino;
            return out;
          },
          (out) => this.addHandle(out.ino, out.fh, flags),
          (out) => this.releaseOrphan(ino, out.fh, flags),
        );
      },
      read: (path: string, fd: number, buf: Buffer, len: number, pos: number, cb: Cb) =>
        this.run(
          'read',
          (ctx) => {
            const h = this.handle(fd);
            return ll.read(ctx, h.ino, len, pos, h.fh);
          },
          (data) => cb(copyInto(buf, len, data)),
          (e) => cb(e),
        ),
      write: (path: string, fd: number, buf: Buffer, len: number, pos: number, cb: Cb) => {
        // fuse-native's buffer is libfuse's and is reused once we reply, timed out or not: the filesystem gets a copy
        const data = Buffer.allocUnsafe(len);
        buf.copy(data, 0, 0, len);
        this.run(
          'write',
          async (ctx) => {
            const h = this.handle(fd);
            try {
              return await ll.write(ctx, h.ino, data, pos, h.fh, h.flags);
            } finally {
              paths.dropAttr(h.ino);
            }
          },
          (n) => cb(n),
          (e) => cb(e),
        );
      },
      release: (path: string, fd: number, cb: Cb) =>
        this.call('release', cb, async (ctx) => {
          const h = this.handle(fd);
          try {
            await ll.release(ctx, h.ino, h.fh, h.flags);
          } finally {
            this.dropHandle(fd);
          }
        }),
      setxattr: (path: string, name: string, value: Buffer, _position: number, flags: number, cb: Cb) => {
        const copy = Buffer.from(value);
        this.call('setxattr', cb, async (ctx, s) => ll.setxattr(ctx, await this.inoOf(ctx, s, path), name, copy, flags));
      },
      removexattr: (path: string, name: string, cb: Cb) =>
        this.call('removexattr', cb, async (ctx, s) => ll.removexattr(ctx, await this.inoOf(ctx, s, path), name)),
    };
    if (ll.flush) {
      const flush = ll.flush.bind(ll);
      ops.flush = (path: string, fd: number, cb: Cb) =>
        this.call('flush', cb, async (ctx) => {
          const h = this.handle(fd);
          await flush(ctx, h.ino, h.fh);
        });
    }
    if (ll.fsync) {
      const fsync = ll.fsync.bind(ll);
      ops.fsync = (path: string, datasync: number, fd: number, cb: Cb) =>
        this.call('fsync', cb, async (ctx) => {
          const h = this.handle(fd);
          await fsync(ctx, h.ino, datasync !== 0, h.fh);
        });
    }
    if (ll.fsyncdir) {
      const fsyncdir = ll.fsyncdir.bind(ll);
      ops.fsyncdir = (path: string, datasync: number, _fd: number, cb: Cb) =>
        this.call('fsyncdir', cb, async (ctx, s) => {
          const ino = await this.inoOf(ctx, s, path);
          await this.withDir(ctx, ino, (fh) => fsyncdir(ctx, ino, datasync !== 0, fh));
        });
    }
    return ops;
  }

  /** getattr: replaces fuse-native's own, to pack the stat here. */
  getattr(signal: Signal, path: string): void {
    this.run('getattr', (ctx, s) => this.attrOf(ctx, s, path), (a) => signal(0, packStat(a)), (e) => signal(e));
  }

  /** fgetattr: fuse-native's own ignores the file handle. */
  fgetattr(signal: Signal, path: string, fd: number): void {
    const h = this.handles.get(fd);
    if (!h) return this.getattr(signal, path);
    this.run(
      'fgetattr',
      async (ctx) => {
        const cachedAttr = this.paths.cachedAttr(h.ino);
        if (cachedAttr) return cachedAttr;
        const out = await this.ll.getattr(ctx, h.ino, h.fh);
        this.paths.setAttr(h.ino, out.attr, out.attrTimeout);
        return out.attr;
      },
      (a) => signal(0, packStat(a)),
      (e) => signal(e),
    );
  }

  /** getxattr: fuse-native's own overruns libfuse's buffer when the value is bigger; this answers ERANGE. */
  getxattr(signal: Signal, path: string, name: string, valueBuf: Buffer): void {
    this.run(
      'getxattr',
      async (ctx, s) => this.ll.getxattr(ctx, await this.inoOf(ctx, s, path), name),
      (value) => {
        if (valueBuf.length === 0) return signal(value.length, valueBuf.buffer);
        if (value.length > valueBuf.length) return signal(-Errno.ERANGE, valueBuf.buffer);
        value.copy(valueBuf);
        signal(value.length, valueBuf.buffer);
      },
      (e) => signal(e, valueBuf.buffer),
    );
  }

  /** listxattr: the same for the name list. */
  listxattr(signal: Signal, path: string, listBuf: Buffer): void {
    this.run(
      'listxattr',
      async (ctx, s) => this.ll.listxattr(ctx, await this.inoOf(ctx, s, path)),
      (names) => {
        const packed = Buffer.concat(names.map((n) => Buffer.from(n + '\0', 'utf8')));
        if (listBuf.length === 0) return signal(packed.length, listBuf.buffer);
        if (packed.length > listBuf.length) return signal(-Errno.ERANGE, listBuf.buffer);
        packed.copy(listBuf);
        signal(packed.length, listBuf.buffer);
      },
      (e) => signal(e, listBuf.buffer),
    );
  }

  /** notifyInvalEntry for this adapter's own cache (the kernel caches nothing here). */
  invalidateEntry(parent: bigint, name: string): void {
    this.paths.invalidateEntry(parent, name);
  }

  invalidateInode(ino: bigint): void {
    this.paths.dropAttr(ino);
  }

  /** The session ended: what the filesystem still counts is forgotten, open handles are released. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    const ctx = this.ctx();
    for (const [fd, h] of this.handles.entries()) {
      this.ll.release(ctx, h.ino, h.fh, h.flags).catch(() => undefined);
      this.dropHandle(fd);
    }
    this.paths.forgetAll();
  }

  get openHandles(): number {
    return this.handles.size;
  }

  /** nlink and ctime of nodes other than the entry named may have changed: cached attributes go. */
  private namespaceChanged(): void {
    this.paths.dropAllAttrs();
  }

  private releaseOrphan(ino: bigint, fh: number, flags: number): void {
    this.ll.release(this.ctx(), ino, fh, flags).catch(() => undefined);
  }

  private async withDir<T>(ctx: RequestCtx, ino: bigint, fn: (fh: number) => Promise<T>): Promise<T> {
    if (!this.ll.opendir) return fn(0);
    const { fh } = await this.ll.opendir(ctx, ino, O_RDONLY | O_DIRECTORY);
    try {
      return await fn(fh);
    } finally {
      await this.ll.releasedir?.(ctx, ino, fh).catch(() => undefined);
    }
  }

  /** The whole directory, as libfuse 2's high-level readdir wants it (names only). */
  private async listDir(ctx: RequestCtx, scope: RequestScope, path: string): Promise<string[]> {
    const ino = await this.inoOf(ctx, scope, path);
    return this.withDir(ctx, ino, async (fh) => {
      const names: string[] = [];
      let offset = 0;
      for (;;) {
        const batch = await this.ll.readdir(ctx, ino, READDIR_CHUNK, offset, fh, false);
        if (batch.length === 0) break;
        for (const e of batch) names.push(e.name);
        if (names.length > MAX_DIR_ENTRIES) {
          throw err('EOVERFLOW', `${path}: more than ${MAX_DIR_ENTRIES} entries`);
        }
        const next = batch[batch.length - 1]!.nextOffset;
        if (next === offset) throw err('EIO', `${path}: readdir did not advance`);
        offset = next;
      }
      if (!names.includes('..')) names.unshift('..');
      if (!names.includes('.')) names.unshift('.');
      return names;
    });
  }
}

/** fuse-native replies from its own buffer: the data (one buffer or pieces in order) is copied into it, at most `len` bytes. */
function copyInto(buf: Buffer, len: number, data: Buffer | Buffer[]): number {
  if (!Array.isArray(data)) return data.copy(buf, 0, 0, Math.min(len, data.length));
  let at = 0;
  for (const piece of data) {
    if (at >= len) break;
    at += piece.copy(buf, at, 0, Math.min(len - at, piece.length));
  }
  return at;
}
