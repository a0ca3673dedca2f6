/**
 * FuseSession over our libfuse3 low-level binding (native/). Requests are read and decoded on
 * this thread when libuv finds /dev/fuse readable (inline reading), or by native threads that
 * hand them over through a thread-safe function (without it, and as the backstop when this
 * thread stalls); handlers answer by settling, and the answer goes back with fuse_reply_*
 * from this thread.
 *
 * Guarantees and conventions beyond lowlevel.ts:
 * - Exactly one reply per request. A handler that has not settled after `requestTimeoutMs`
 *   is answered ETIMEDOUT by a native thread (even if this thread is stuck); one the kernel
 *   interrupted is answered EINTR at once and sees `ctx.interrupted === true`. Its late
 *   result is dropped. Blocking lock requests (setlk with sleep, flock without LOCK_NB) have
 *   no deadline: only a signal (EINTR) ends them.
 * - Rejections carrying a positive `errno` become that error; anything else becomes EIO and
 *   is reported to `opts.logger.warn` (pino-compatible; nothing is printed without one).
 * - Lookup counts: every EntryOut with ino != 0 a handler returns (lookup, mknod, mkdir,
 *   symlink, link, create, and `entry` of readdir entries when `plus` is true) counts one
 *   lookup, as with a lookup reply. The session calls `forget(ino, 1)` for each one the kernel
 *   does not take: '.' and '..', readdirplus entries that did not fit the buffer, replies
 *   dropped after a timeout/interrupt or refused by the kernel. Likewise an open/opendir/
 *   create whose reply was not delivered gets its `release`/`releasedir`.
 * - Write data is a view of a pooled receive buffer, valid until the handler settles.
 * - O_TRUNC on open arrives as setattr(size=0); suid/sgid clearing on write arrives as a
 *   setattr of the mode (the kernel handles both).
 * - flush(ctx, ino, fh, lockOwner) and release(ctx, ino, fh, flags, flockOwner) get one
 *   extra trailing argument each (see FlushWithOwner / ReleaseWithOwner below).
 * - getlk/setlk/flock/fallocate/flush/fsync/opendir/releasedir/fsyncdir/forget are only
 *   registered with libfuse when the ops object has them (without locks the kernel keeps
 *   POSIX and flock locks locally).
 * - notifyInvalInode/notifyInvalEntry run on a native thread (the kernel may need this thread
 *   to answer a request before it can finish one); the returned promise resolves once the
 *   kernel processed the notification. It never rejects.
 */
import { execFile } from 'node:child_process';
import { accessSync, constants as fsConstants } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
import { Errno, err } from '../common/errno.js';
import type {
  AttrOut, CreateOut, DirEntryOut, EntryOut, FlockOut, FuseAttr, FuseSession, LowLevelOps, OpenOut,
  RequestCtx, SessionOptions, SetattrIn, StatvfsOut,
} from './lowlevel.js';
import {
  IN_F, IN_U, Kind, Msg, OUT_F, OUT_U, Optional, SLOT_BITS, loadNativeAddon,
  type Handle, type NativeAddon, type NativeConfig, type NativeStats, type Scratch,
} from './native-addon.js';

/** The subset of a pino logger the session uses. */
export interface SessionLogger {
  warn(obj: object, msg: string): void;
}

export interface NativeSessionOptions extends SessionOptions {
  /** receives handler failures that were answered EIO, and failures of init/destroy/forget/release-after-undelivered-open */
  logger?: SessionLogger;
  /** kernel max_background (default 64) */
  maxBackground?: number;
  /** kernel congestion_threshold (default 48) */
  congestionThreshold?: number;
  /**
   * The JS thread reads /dev/fuse itself when libuv finds it readable (default true): a request
   * then costs one thread wake-up instead of two (a native thread's, then this thread's). The
   * native threads stay as a backstop: a request this thread leaves waiting for a few hundred
   * milliseconds (stuck, or busy) is read by them, so it is still answered at its deadline.
   */
  inlineRead?: boolean;
  /** native threads reading /dev/fuse (default 2; with inline reading, the backstop) */
  threads?: number;
  /**
   * Bytes the kernel may read ahead of a sequential reader on this mount (the bdi's
   * read_ahead_kb), default 4 MiB and never less than maxReadahead. Readahead is what keeps
   * several read requests in flight for one reader: with 1 MiB requests, a 1 MiB window lets
   * a cold sequential read wait for every request in turn.
   */
  readahead?: number;
}

const MIB = 1 << 20;
/** The kernel's default readahead; above it the bdi setting is raised after mount. */
const KERNEL_READAHEAD = 128 << 10;
export const DEFAULT_READAHEAD = 4 * MIB;
const OUT_RECORDS = 1024;
const MAX_SLOTS = 1 << 16;
const SLOT_SPAN = 2 ** SLOT_BITS;
const INIT_TIMEOUT_MS = 30_000;
const EBUSY = Errno.EBUSY;
const EPERM = Errno.EPERM;

const kindNames = new Map<number, string>(Object.entries(Kind).map(([k, v]) => [v, k.toLowerCase()]));

class ReqCtx implements RequestCtx {
  private final: boolean | undefined;

  constructor(
    public uid: number,
    public gid: number,
    public pid: number,
    public umask: number,
    private readonly marks: Uint32Array,
    private readonly slot: number,
    private readonly gen: number,
  ) {}

  get interrupted(): boolean {
    return this.final ?? this.marks[this.slot] === this.gen;
  }

  /** The slot is reused once the handler settled: keep the answer it had then. */
  settle(): void {
    this.final ??= this.marks[this.slot] === this.gen;
  }
}

/** A positive errno carried by a rejection, if any. */
function errnoOf(e: unknown): number | undefined {
  if (e === null || typeof e !== 'object') return undefined;
  const n = (e as { errno?: unknown }).errno;
  return typeof n === 'number' && Number.isInteger(n) && n > 0 && n < 1000 ? n : undefined;
}

function escapeOption(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/,/g, '\\,');
}

function optionalMask(ops: LowLevelOps): number {
  let m = 0;
  if (ops.forget) m |= Optional.FORGET;
  if (ops.flush) m |= Optional.FLUSH;
  if (ops.fsync) m |= Optional.FSYNC;
  if (ops.opendir) m |= Optional.OPENDIR;
  if (ops.releasedir) m |= Optional.RELEASEDIR;
  if (ops.fsyncdir) m |= Optional.FSYNCDIR;
  if (ops.fallocate) m |= Optional.FALLOCATE;
  if (ops.getlk) m |= Optional.GETLK;
  if (ops.setlk) m |= Optional.SETLK;
  if (ops.flock) m |= Optional.FLOCK;
  return m;
}

/** Why the binding cannot be used here, if it cannot. */
export function nativeFuseAvailable(): { ok: true } | { ok: false; reason: string } {
  try {
    loadNativeAddon();
  } catch (e) {
    return { ok: false, reason: (e as Error).message };
  }
  try {
    accessSync('/dev/fuse', fsConstants.R_OK | fsConstants.W_OK);
  } catch {
    return { ok: false, reason: '/dev/fuse is missing or not accessible' };
  }
  return { ok: true };
}

type State = 'new' | 'mounting' | 'mounted' | 'stopping' | 'stopped';

/**
 * flush and release get one more argument than lowlevel.ts declares: the lock owner whose
 * POSIX locks end with this close (flush), and the owner of a flock that ends with this
 * release (undefined when none). A filesystem that implements setlk/flock needs them.
 */
type FlushWithOwner = (ctx: RequestCtx, ino: bigint, fh: number, lockOwner: bigint) => Promise<void>;
type ReleaseWithOwner = (ctx: RequestCtx, ino: bigint, fh: number, flags: number, flockOwner: bigint | undefined) => Promise<void>;

export class NativeFuseSession implements FuseSession {
  readonly mountpoint: string;
  readonly done: Promise<void>;

  private readonly addon: NativeAddon;
  private readonly opts: NativeSessionOptions;
  private readonly inF = new Float64Array(IN_F);
  private readonly inU = new BigUint64Array(IN_U);
  private readonly outF = new Float64Array(OUT_RECORDS * OUT_F);
  private readonly outU = new BigUint64Array(OUT_RECORDS * OUT_U);
  private readonly marks = new Uint32Array(MAX_SLOTS);
  private h: Handle | undefined;
  private state: State = 'new';
  private inited = false;
  private ended = false;
  private unmounting: Promise<void> | undefined;
  private initWait: { resolve: () => void; reject: (e: Error) => void } | undefined;
  private resolveDone!: () => void;
  private notifySeq = 0;
  private readonly notifies = new Map<number, () => void>();

  constructor(mountpoint: string, private readonly ops: LowLevelOps, opts: NativeSessionOptions) {
    this.mountpoint = resolvePath(mountpoint);
    this.opts = opts;
    this.addon = loadNativeAddon();
    this.done = new Promise<void>((resolve) => {
      this.resolveDone = resolve;
    });
  }

  async mount(): Promise<void> {
    if (this.state !== 'new') throw err('EBUSY', `session for ${this.mountpoint} was already mounted`, 'SESSION_USED');
    const scratch: Scratch = { inF: this.inF, inU: this.inU, outF: this.outF, outU: this.outU, intr: this.marks };
    let h: Handle;
    try {
      h = this.addon.createSession(this.config(), this.onMessage, scratch);
    } catch (e) {
      this.finishStopped();
      throw err('EINVAL', (e as Error).message, 'FUSE_OPTIONS');
    }
    this.h = h;
    this.state = 'mounting';
    const init = new Promise<void>((resolve, reject) => {
      this.initWait = { resolve, reject };
    });
    try {
      this.addon.mount(h);
    } catch (e) {
      this.initWait = undefined;
      this.addon.release(h);
      this.finishStopped();
      throw err('EIO', (e as Error).message, 'FUSE_MOUNT_FAILED');
    }
    const timer = setTimeout(() => {
      this.initWait?.reject(err('ETIMEDOUT', `no FUSE INIT from the kernel for ${this.mountpoint}`, 'FUSE_NO_INIT'));
    }, INIT_TIMEOUT_MS);
    try {
      await init;
    } catch (e) {
      await this.unmount();
      throw e;
    } finally {
      clearTimeout(timer);
    }
    await this.raiseReadahead();
  }

  unmount(): Promise<void> {
    if (this.state === 'new' || this.state === 'stopped') return Promise.resolve();
    this.unmounting ??= this.stopAll();
    return this.unmounting;
  }

  notifyInvalInode(ino: bigint, offset: number, len: number): Promise<void> {
    return this.notify(false, ino, offset, len, undefined);
  }

  notifyInvalEntry(parent: bigint, name: string): Promise<void> {
    return this.notify(true, parent, 0, 0, name);
  }

  /** Counters of the native side, for tests and diagnostics. */
  stats(): NativeStats | undefined {
    return this.h && this.state !== 'stopped' ? this.addon.stats(this.h) : undefined;
  }

  private config(): NativeConfig {
    const o = this.opts;
    const maxWrite = o.maxWrite > 0 ? o.maxWrite : MIB;
    const extra = o.extraOptions ?? [];
    const given = extra.map((x) => /^max_read=(\d+)$/.exec(x.trim())).find((m) => m !== null);
    const maxRead = given ? Number(given[1]) : maxWrite;
    const mountOpts = [`fsname=${escapeOption(o.fsname)}`, `subtype=${escapeOption(o.subtype)}`];
    if (!given) mountOpts.push(`max_read=${maxRead}`);
    if (o.allowOther) mountOpts.push('allow_other');
    if (o.defaultPermissions) mountOpts.push('default_permissions');
    if (o.autoUnmount) mountOpts.push('auto_unmount');
    mountOpts.push(...extra);
    return {
      mountpoint: this.mountpoint,
      args: ['-o', mountOpts.join(',')],
      maxWrite,
      maxRead,
      maxReadahead: o.maxReadahead > 0 ? o.maxReadahead : MIB,
      maxBackground: o.maxBackground ?? 64,
      congestionThreshold: o.congestionThreshold ?? 48,
      writebackCache: o.writebackCache,
      timeoutMs: o.requestTimeoutMs > 0 ? o.requestTimeoutMs : 60_000,
      threads: o.threads ?? 2,
      optional: optionalMask(this.ops),
      poolIdle: 32,
      inlineRead: o.inlineRead ?? true,
    };
  }

  private async stopAll(): Promise<void> {
    const h = this.h!;
    if (!this.ended) {
      // A plain umount first: it writes dirty pages back through us before the connection ends.
      let e = await this.umount(h, false);
      if (e === EBUSY) e = await this.umount(h, true);
      if (e === EPERM) await this.fusermountLazy();
    }
    if (this.state === 'mounting' || this.state === 'mounted') this.state = 'stopping';
    if (!this.addon.stop(h) && this.state !== 'stopped') {
      this.addon.release(h);
      this.finishStopped();
    }
    await this.done;
  }

  private umount(h: Handle, lazy: boolean): Promise<number> {
    return new Promise((resolve) => this.addon.umount(h, lazy, resolve));
  }

  private fusermountLazy(): Promise<void> {
    return new Promise((resolve) => {
      execFile('fusermount3', ['-u', '-z', this.mountpoint], { timeout: 30_000 }, () => resolve());
    });
  }

  /** Bigger readahead than the kernel offers at INIT has to be set on the mount's bdi. */
  private async raiseReadahead(): Promise<void> {
    const want = Math.max(this.opts.maxReadahead, this.opts.readahead ?? DEFAULT_READAHEAD);
    if (!(want > KERNEL_READAHEAD)) return;
    try {
      const info = await readFile('/proc/self/mountinfo', 'utf8');
      let dev: string | undefined;
      for (const line of info.split('\n')) {
        const f = line.split(' ');
        const point = f[4]?.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
        if (point === this.mountpoint) dev = f[2];
      }
      if (dev) await writeFile(`/sys/class/bdi/${dev}/read_ahead_kb`, String(Math.ceil(want / 1024)));
    } catch {
      // Not root, or no sysfs: the kernel's default readahead stays.
    }
  }

  private notify(entry: boolean, ino: bigint, off: number, len: number, name: string | undefined): Promise<void> {
    if (this.state !== 'mounted' || !this.h) return Promise.resolve();
    const token = ++this.notifySeq;
    return new Promise<void>((resolve) => {
      this.notifies.set(token, resolve);
      if (!this.addon.notify(this.h!, entry, ino, off, len, name, token)) {
        this.notifies.delete(token);
        resolve();
      }
    });
  }

  private finishStopped(): void {
    const wasInited = this.inited;
    this.state = 'stopped';
    for (const resolve of this.notifies.values()) resolve();
    this.notifies.clear();
    this.initWait?.reject(err('ENOTCONN', `FUSE session for ${this.mountpoint} ended before INIT`, 'FUSE_ENDED'));
    this.initWait = undefined;
    if (wasInited) {
      try {
        this.ops.destroy?.();
      } catch (e) {
        this.opts.logger?.warn({ err: e }, 'FUSE destroy handler failed');
      }
    }
    this.resolveDone();
  }

  // ---- messages from the native side ----

  private readonly onMessage = (kind: number, id: number, s1: string | undefined, s2: string | undefined, data: unknown): void => {
    if (kind < Msg.INIT) {
      this.request(kind, id, s1, s2, data);
      return;
    }
    switch (kind) {
      case Msg.INIT:
        this.inited = true;
        this.state = 'mounted';
        try {
          this.ops.init?.();
        } catch (e) {
          this.opts.logger?.warn({ err: e }, 'FUSE init handler failed');
        }
        this.initWait?.resolve();
        this.initWait = undefined;
        break;
      case Msg.ENDED:
        // Unmounted from outside (fusermount3 -u, umount) or the connection was aborted.
        this.ended = true;
        if (this.state !== 'stopped') {
          this.state = 'stopping';
          this.addon.stop(this.h!);
        }
        break;
      case Msg.STOPPED:
        this.addon.release(this.h!);
        this.finishStopped();
        break;
      case Msg.FORGET: {
        const pairs = data as BigUint64Array;
        for (let i = 0; i + 1 < pairs.length; i += 2) this.forget(pairs[i], Number(pairs[i + 1]));
        break;
      }
      case Msg.NOTIFY_DONE: {
        const resolve = this.notifies.get(id);
        this.notifies.delete(id);
        resolve?.();
        break;
      }
    }
  };

  private forget(ino: bigint, n: number): void {
    if (ino === 0n || !this.ops.forget) return;
    try {
      this.ops.forget(ino, n);
    } catch (e) {
      this.opts.logger?.warn({ err: e, ino: String(ino) }, 'FUSE forget handler failed');
    }
  }

  /** Starts the handler; `ok` sends the reply. Exactly one native reply call per request. */
  private run<T>(id: number, kind: number, ctx: ReqCtx, start: () => Promise<T> | T, ok: (v: T) => void): void {
    let p: Promise<T> | T;
    try {
      p = start();
    } catch (e) {
      ctx.settle();
      this.fail(id, kind, e);
      return;
    }
    Promise.resolve(p).then(
      (v) => {
        ctx.settle();
        try {
          ok(v);
        } catch (e) {
          this.fail(id, kind, e);
        }
      },
      (e: unknown) => {
        ctx.settle();
        this.fail(id, kind, e);
      },
    );
  }

  private fail(id: number, kind: number, e: unknown): void {
    const errno = errnoOf(e);
    if (errno === undefined) this.opts.logger?.warn({ err: e, op: kindNames.get(kind) }, 'FUSE handler failed; answered EIO');
    this.addon.replyErr(this.h!, id, errno ?? Errno.EIO);
  }

  private done0(id: number): void {
    this.addon.replyErr(this.h!, id, 0);
  }

  /** Pieces go out in one writev (fuse_reply_iov), without being joined first. */
  private sendRead(id: number, data: Buffer | Buffer[]): number {
    return Array.isArray(data) ? this.addon.replyIov(this.h!, id, data) : this.addon.replyBuf(this.h!, id, data);
  }

  private request(kind: number, id: number, s1: string | undefined, s2: string | undefined, data: unknown): void {
    const f = this.inF;
    const u = this.inU;
    const ops = this.ops;
    const ctx = new ReqCtx(f[0], f[1], f[2], f[3], this.marks, id % SLOT_SPAN, Math.floor(id / SLOT_SPAN) >>> 0);
    const ino = u[0];
    const name = s1 ?? '';
    const a = f[4];
    const b = f[5];
    const c = f[6];
    const d = f[7];
    const fh45 = a !== 0 ? b : undefined;
    switch (kind) {
      case Kind.LOOKUP:
        return this.run(id, kind, ctx, () => ops.lookup(ctx, ino, name), (e) => this.sendEntry(id, e));
      case Kind.GETATTR:
        return this.run(id, kind, ctx, () => ops.getattr(ctx, ino, fh45), (r) => this.sendAttr(id, r));
      case Kind.SETATTR: {
        const attr: SetattrIn = {
          mode: d, uid: f[8], gid: f[9], size: f[10],
          atime: { sec: f[11], nsec: f[12] }, mtime: { sec: f[13], nsec: f[14] }, ctime: { sec: f[15], nsec: f[16] },
        };
        return this.run(id, kind, ctx, () => ops.setattr(ctx, ino, attr, c, fh45), (r) => this.sendAttr(id, r));
      }
      case Kind.READLINK:
        return this.run(id, kind, ctx, () => ops.readlink(ctx, ino), (t) => void this.addon.replyReadlink(this.h!, id, String(t)));
      case Kind.MKNOD:
        return this.run(id, kind, ctx, () => ops.mknod(ctx, ino, name, a, b), (e) => this.sendEntry(id, e));
      case Kind.MKDIR:
        return this.run(id, kind, ctx, () => ops.mkdir(ctx, ino, name, a), (e) => this.sendEntry(id, e));
      case Kind.UNLINK:
        return this.run(id, kind, ctx, () => ops.unlink(ctx, ino, name), () => this.done0(id));
      case Kind.RMDIR:
        return this.run(id, kind, ctx, () => ops.rmdir(ctx, ino, name), () => this.done0(id));
      case Kind.SYMLINK:
        return this.run(id, kind, ctx, () => ops.symlink(ctx, s2 ?? '', ino, name), (e) => this.sendEntry(id, e));
      case Kind.RENAME: {
        const newParent = u[1];
        return this.run(id, kind, ctx, () => ops.rename(ctx, ino, name, newParent, s2 ?? '', a), () => this.done0(id));
      }
      case Kind.LINK: {
        const newParent = u[1];
        return this.run(id, kind, ctx, () => ops.link(ctx, ino, newParent, name), (e) => this.sendEntry(id, e));
      }
      case Kind.OPEN:
        return this.run(id, kind, ctx, () => ops.open(ctx, ino, a), (o) => {
          if (this.sendOpen(id, o) < 0) this.undoOpen(ctx, ino, o.fh, a, false);
        });
      case Kind.READ:
        return this.run(id, kind, ctx, () => ops.read(ctx, ino, a, b, c), (data) => void this.sendRead(id, data));
      case Kind.WRITE: {
        const buf = data instanceof ArrayBuffer ? Buffer.from(data, f[8], a) : (data as Buffer);
        return this.run(id, kind, ctx, () => ops.write(ctx, ino, buf, b, c, d), (n) => {
          if (typeof n !== 'number') throw new TypeError('write handler must resolve with a byte count');
          this.addon.replyWrite(this.h!, id, n);
        });
      }
      case Kind.FLUSH: {
        const owner = u[1];
        return this.run(id, kind, ctx, () => (ops.flush as FlushWithOwner)(ctx, ino, a, owner), () => this.done0(id));
      }
      case Kind.RELEASE: {
        const flockOwner = c !== 0 ? u[1] : undefined;
        return this.run(id, kind, ctx, () => (ops.release as ReleaseWithOwner)(ctx, ino, a, b, flockOwner), () => this.done0(id));
      }
      case Kind.FSYNC:
        return this.run(id, kind, ctx, () => ops.fsync!(ctx, ino, a !== 0, b), () => this.done0(id));
      case Kind.OPENDIR:
        return this.run(id, kind, ctx, () => ops.opendir!(ctx, ino, a), (o) => {
          if (this.sendOpen(id, o) < 0) this.undoOpen(ctx, ino, o.fh, a, true);
        });
      case Kind.READDIR:
      case Kind.READDIRPLUS: {
        const plus = kind === Kind.READDIRPLUS;
        return this.run(id, kind, ctx, () => ops.readdir(ctx, ino, a, b, c, plus), (list) => this.sendDir(id, plus, list));
      }
      case Kind.RELEASEDIR:
        return this.run(id, kind, ctx, () => ops.releasedir!(ctx, ino, a), () => this.done0(id));
      case Kind.FSYNCDIR:
        return this.run(id, kind, ctx, () => ops.fsyncdir!(ctx, ino, a !== 0, b), () => this.done0(id));
      case Kind.STATFS:
        return this.run(id, kind, ctx, () => ops.statfs(ctx, ino), (s) => this.sendStatfs(id, s));
      case Kind.SETXATTR:
        return this.run(id, kind, ctx, () => ops.setxattr(ctx, ino, name, data as Buffer, a), () => this.done0(id));
      case Kind.GETXATTR:
        return this.run(id, kind, ctx, () => ops.getxattr(ctx, ino, name), (val) => void this.addon.replyBuf(this.h!, id, val));
      case Kind.LISTXATTR:
        return this.run(id, kind, ctx, () => ops.listxattr(ctx, ino), (names) => {
          const list = Buffer.from(names.map((n) => `${n}\0`).join(''), 'utf8');
          this.addon.replyBuf(this.h!, id, list);
        });
      case Kind.REMOVEXATTR:
        return this.run(id, kind, ctx, () => ops.removexattr(ctx, ino, name), () => this.done0(id));
      case Kind.CREATE:
        return this.run(id, kind, ctx, () => ops.create(ctx, ino, name, a, b), (cr) => this.sendCreate(id, ctx, cr, b));
      case Kind.FALLOCATE:
        return this.run(id, kind, ctx, () => ops.fallocate!(ctx, ino, a, b, c, d), () => this.done0(id));
      case Kind.GETLK: {
        const owner = u[1];
        const lock = this.lockIn();
        return this.run(id, kind, ctx, () => ops.getlk!(ctx, ino, a, owner, lock), (l) => this.sendLock(id, l));
      }
      case Kind.SETLK: {
        const owner = u[1];
        const lock = this.lockIn();
        const sleep = f[9] !== 0;
        return this.run(id, kind, ctx, () => ops.setlk!(ctx, ino, a, owner, lock, sleep), () => this.done0(id));
      }
      case Kind.FLOCK: {
        const owner = u[1];
        return this.run(id, kind, ctx, () => ops.flock!(ctx, ino, a, owner, b), () => this.done0(id));
      }
      default:
        this.addon.replyErr(this.h!, id, Errno.ENOSYS);
    }
  }

  private lockIn(): FlockOut {
    const f = this.inF;
    return { type: f[5], start: f[6], end: f[7] < 0 ? Number.MAX_SAFE_INTEGER : f[7], pid: f[8] };
  }

  // ---- replies (records go to the output scratch, then one native call) ----

  private putAttr(rec: number, a: FuseAttr): void {
    const f = this.outF;
    const o = rec * OUT_F;
    f[o] = a.mode;
    f[o + 1] = a.nlink;
    f[o + 2] = a.uid;
    f[o + 3] = a.gid;
    f[o + 4] = a.rdev;
    f[o + 5] = a.size;
    f[o + 6] = a.blocks;
    f[o + 7] = a.blksize;
    f[o + 8] = a.atime.sec;
    f[o + 9] = a.atime.nsec;
    f[o + 10] = a.mtime.sec;
    f[o + 11] = a.mtime.nsec;
    f[o + 12] = a.ctime.sec;
    f[o + 13] = a.ctime.nsec;
    this.outU[rec * OUT_U + 1] = BigInt.asUintN(64, BigInt(a.ino));
  }

  private putEntry(rec: number, e: EntryOut): void {
    this.putAttr(rec, e.attr);
    const o = rec * OUT_F;
    this.outF[o + 14] = e.attrTimeout;
    this.outF[o + 15] = e.entryTimeout;
    this.outF[o + 16] = e.generation;
    this.outU[rec * OUT_U] = BigInt.asUintN(64, BigInt(e.ino));
  }

  private putOpen(rec: number, o: OpenOut): void {
    const f = this.outF;
    const base = rec * OUT_F;
    f[base] = o.fh;
    f[base + 1] = o.directIo ? 1 : 0;
    f[base + 2] = o.keepCache ? 1 : 0;
    f[base + 3] = o.nonSeekable ? 1 : 0;
  }

  private sendEntry(id: number, e: EntryOut): void {
    this.putEntry(0, e);
    if (this.addon.replyEntry(this.h!, id) < 0) this.unlookup(e.ino);
  }

  private sendAttr(id: number, r: AttrOut): void {
    this.putAttr(0, r.attr);
    this.outF[14] = r.attrTimeout;
    this.addon.replyAttr(this.h!, id);
  }

  private sendOpen(id: number, o: OpenOut): number {
    this.putOpen(0, o);
    return this.addon.replyOpen(this.h!, id);
  }

  private sendCreate(id: number, ctx: RequestCtx, c: CreateOut, flags: number): void {
    this.putEntry(0, c);
    this.putOpen(1, c);
    if (this.addon.replyCreate(this.h!, id) < 0) {
      this.unlookup(c.ino);
      this.undoOpen(ctx, c.ino, c.fh, flags, false);
    }
  }

  private sendStatfs(id: number, s: StatvfsOut): void {
    const f = this.outF;
    f[0] = s.bsize;
    f[1] = s.frsize;
    f[2] = s.blocks;
    f[3] = s.bfree;
    f[4] = s.bavail;
    f[5] = s.files;
    f[6] = s.ffree;
    f[7] = s.favail;
    f[8] = s.namemax;
    this.addon.replyStatfs(this.h!, id);
  }

  private sendLock(id: number, l: FlockOut): void {
    const f = this.outF;
    f[0] = l.type;
    f[1] = l.start;
    f[2] = l.end;
    f[3] = l.pid;
    this.addon.replyLock(this.h!, id);
  }

  private sendDir(id: number, plus: boolean, list: DirEntryOut[]): void {
    const n = Math.min(list.length, OUT_RECORDS);
    const names = new Array<string>(n);
    const f = this.outF;
    for (let i = 0; i < n; i++) {
      const de = list[i];
      const o = i * OUT_F;
      names[i] = de.name;
      if (plus && de.entry) {
        this.putEntry(i, de.entry);
        f[o + 18] = 1;
      } else {
        f[o + 18] = 0;
        f[o + 19] = de.type;
        this.outU[i * OUT_U + 1] = BigInt.asUintN(64, BigInt(de.ino));
      }
      f[o + 17] = de.nextOffset;
    }
    const rc = this.addon.replyDir(this.h!, id, names, n);
    if (!plus) return;
    const sent = rc >= 0 ? rc : 0;
    for (let i = 0; i < list.length; i++) {
      const de = list[i];
      if (!de.entry) continue;
      // The kernel counts no lookup for '.' and '..', nor for what it never received.
      if (i >= sent || de.name === '.' || de.name === '..') this.unlookup(de.entry.ino);
    }
  }

  private unlookup(ino: bigint): void {
    if (ino !== 0n) this.forget(ino, 1);
  }

  private undoOpen(ctx: RequestCtx, ino: bigint, fh: number, flags: number, dir: boolean): void {
    const p = dir ? this.ops.releasedir?.(ctx, ino, fh) : this.ops.release(ctx, ino, fh, flags);
    Promise.resolve(p).catch((e: unknown) => this.opts.logger?.warn({ err: e }, 'FUSE release after an undelivered open failed'));
  }
}
