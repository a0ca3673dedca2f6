/**
 * FuseSession over the optional `fuse-native` package (libfuse 2, path-based
 * high-level API): the fallback for hosts that cannot build our own libfuse3
 * binding. Paths are translated to node ids (path-inodes.ts) and requests to
 * LowLevelOps calls (fuse-native-ops.ts). What this loses against the native
 * binding is listed in docs/fuse-native-fallback.md.
 *
 * fuse-native runs libfuse's loop on its own threads and blocks each of them
 * until JavaScript answers: the serving process must never touch its own mount
 * with synchronous calls (fs.*Sync, execSync), which would wait for an answer
 * the blocked event loop cannot give.
 */
import { execFile } from 'node:child_process';
import { readFile, readdir, readlink, realpath, stat } from 'node:fs/promises';
import { endianness } from 'node:os';
import { promisify } from 'node:util';
import { err } from '../common/errno.js';
import type { Logger } from '../common/log.js';
import { fuseNativeAvailable, loadFuseNative, type FuseNativeClass, type FuseNativeLib } from './fuse-native-loader.js';
import { FuseNativeOps, type Signal } from './fuse-native-ops.js';
import type { FuseSession, LowLevelOps, SessionOptions } from './lowlevel.js';

export { fuseNativeAvailable };

const execFileP = promisify(execFile);

/** libfuse 2 cannot take more per write request (FUSE_MAX_MAX_PAGES pages of 4 KiB). */
const LIBFUSE2_MAX_WRITE = 128 * 1024;
/** fuse-native copies the option string into a 1024-byte buffer */
const MAX_OPTION_STRING = 1023;
const POLL_MS = 500;
const SWEEP_MS = 5000;

/**
 * Layout of fuse-native 2.2.x's fuse_thread_locals_t on 64-bit Linux, the
 * buffer it passes as first argument to every handler: `op` at 8, `atime` and
 * `mtime` (milliseconds) at 104 and 112. Its utimens handler hands JavaScript
 * atime twice; the real mtime is read from here, after checking op and atime.
 */
const LOCALS_OP = 8;
const LOCALS_ATIME = 104;
const LOCALS_MTIME = 112;

type Handler = (locals: unknown, op: number, ...args: unknown[]) => unknown;

function realMtime(locals: unknown, opUtimens: number, aLo: number, aHi: number, mLo: number, mHi: number): [number, number] {
  const fits =
    Buffer.isBuffer(locals) &&
    locals.length >= LOCALS_MTIME + 8 &&
    endianness() === 'LE' &&
    (process.arch === 'x64' || process.arch === 'arm64');
  if (!fits) return [mLo, mHi];
  const buf = locals as Buffer;
  if (buf.readUInt32LE(LOCALS_OP) !== opUtimens) return [mLo, mHi];
  if (buf.readBigUInt64LE(LOCALS_ATIME) !== BigInt(aLo) + (BigInt(aHi) << 32n)) return [mLo, mHi];
  const m = buf.readBigUInt64LE(LOCALS_MTIME);
  return [Number(m & 0xffffffffn), Number(m >> 32n)];
}

/** libfuse splits options at commas; a backslash keeps one inside a value. */
function escapeOption(v: string): string {
  return v.replace(/[\\,]/g, (c) => '\\' + c);
}

/**
 * The -o options for libfuse 2. The kernel caches no names, attributes or
 * (unless writebackCache) file data, because fuse-native cannot tell it to
 * drop them: coherence over caching.
 */
export function fallbackMountOptions(o: SessionOptions): string[] {
  const out = [
    `fsname=${escapeOption(o.fsname)}`,
    `subtype=${escapeOption(o.subtype)}`,
    'use_ino',
    'attr_timeout=0',
    'entry_timeout=0',
    'negative_timeout=0',
    'big_writes',
    `max_write=${Math.max(4096, Math.min(o.maxWrite, LIBFUSE2_MAX_WRITE))}`,
    `max_readahead=${Math.max(0, o.maxReadahead)}`,
  ];
  if (!o.writebackCache) out.push('direct_io');
  // fuse-native cannot tell the filesystem who is calling: with other users on the mount, the kernel must check permissions
  if (o.allowOther) out.push('allow_other', 'default_permissions');
  else if (o.defaultPermissions) out.push('default_permissions');
  if (o.autoUnmount) out.push('auto_unmount');
  out.push(...(o.extraOptions ?? []));
  return out;
}

const classes = new WeakMap<FuseNativeLib, FuseNativeClass>();

/** fuse-native's Fuse with the handlers it gets wrong replaced. */
function sessionClass(lib: FuseNativeLib): FuseNativeClass {
  const known = classes.get(lib);
  if (known) return known;
  const opUtimens = lib.binding.op_utimens;
  const replaced = [lib.binding.op_fgetattr, lib.binding.op_getxattr, lib.binding.op_listxattr];
  const cls = class StriaFuseNative extends lib.Fuse {
    striaAdapter: FuseNativeOps | undefined;
    striaOptions = '';

    constructor(mnt: string, ops: object, opts: object) {
      super(mnt, ops, opts);
      // fuse-native registers an op only when the ops object has it; these are answered by the methods below instead
      for (const op of replaced) (this._implemented as Set<number>).add(op);
    }

    _fuseOptions(): string {
      return this.striaOptions;
    }

    _makeHandlerArray(): Handler[] {
      const handlers = super._makeHandlerArray() as Handler[];
      const utimens = handlers[opUtimens];
      if (utimens) {
        handlers[opUtimens] = (locals, op, path, aLo, aHi, mLo, mHi) =>
          utimens(locals, op, path, aLo, aHi, ...realMtime(locals, opUtimens, aLo as number, aHi as number, mLo as number, mHi as number));
      }
      return handlers;
    }

    _op_getattr(signal: Signal, path: string): void {
      this.striaAdapter!.getattr(signal, path);
    }

    _op_fgetattr(signal: Signal, path: string, fd: number): void {
      this.striaAdapter!.fgetattr(signal, path, fd);
    }

    _op_getxattr(signal: Signal, path: string, name: string, valueBuf: Buffer): void {
      this.striaAdapter!.getxattr(signal, path, name, valueBuf);
    }

    _op_listxattr(signal: Signal, path: string, listBuf: Buffer): void {
      this.striaAdapter!.listxattr(signal, path, listBuf);
    }
  };
  classes.set(lib, cls);
  return cls;
}

/**
 * fuse-native's native thread state must outlive libfuse's thread, which goes
 * on after unmount until it has torn down: instances are never let go.
 */
const keptAlive = new Set<unknown>();

function decodeMountinfoPath(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** major:minor of the FUSE mount at `mountpoint`, from /proc/self/mountinfo; undefined when none. */
async function fuseMountId(mountpoint: string, want?: string): Promise<string | undefined> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  let found: string | undefined;
  for (const line of text.split('\n')) {
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const f = left.split(' ');
    const fstype = right.split(' ')[0] ?? '';
    if (f.length < 5 || decodeMountinfoPath(f[4]!) !== mountpoint || !fstype.startsWith('fuse')) continue;
    if (want === undefined || f[2] === want) found = f[2];
  }
  return found;
}

type State = 'new' | 'mounting' | 'mounted' | 'unmounting' | 'ended';

export class FuseNativeSession implements FuseSession {
  readonly mountpoint: string;
  readonly done: Promise<void>;
  private resolveDone!: () => void;
  private state: State = 'new';
  private readonly adapter: FuseNativeOps;
  private lib: FuseNativeLib | undefined;
  private fuse: { _thread: Buffer | null; open(cb: (e: Error | null) => void): void } | undefined;
  private realMountpoint = '';
  private mountId: string | undefined;
  private poller: NodeJS.Timeout | undefined;
  private sweeper: NodeJS.Timeout | undefined;
  private polling = false;
  /** libfuse's loop was started (fuse-native holds the event loop until told otherwise) */
  private nativeLive = false;
  private mounting: Promise<void> | undefined;
  private unmounting: Promise<void> | undefined;

  constructor(
    mountpoint: string,
    private readonly ops: LowLevelOps,
    private readonly opts: SessionOptions,
    private readonly logger?: Logger,
  ) {
    this.mountpoint = mountpoint;
    this.adapter = new FuseNativeOps(ops, { requestTimeoutMs: opts.requestTimeoutMs, logger });
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
  }

  /** The adapter, for tests and counters: its path table and handle count. */
  get translator(): FuseNativeOps {
    return this.adapter;
  }

  mount(): Promise<void> {
    if (this.state !== 'new') return Promise.reject(err('EBUSY', `session for ${this.mountpoint} was already mounted`));
    this.state = 'mounting';
    this.mounting = this.doMount().catch((e: unknown) => {
      this.finish();
      throw e;
    });
    return this.mounting;
  }

  private async doMount(): Promise<void> {
    const lib = loadFuseNative();
    this.lib = lib;
    this.realMountpoint = await realpath(this.mountpoint);
    if (!(await stat(this.realMountpoint)).isDirectory()) throw err('ENOTDIR', `${this.mountpoint} is not a directory`);
    if (this.opts.autoUnmount && !lib.fusermount) {
      throw err('ENOSYS', 'auto_unmount needs the fusermount program (apt-get install fuse3)');
    }
    const optionString = '-o' + fallbackMountOptions(this.opts).join(',');
    if (optionString.length > MAX_OPTION_STRING) {
      throw err('E2BIG', `mount options are ${optionString.length} bytes; fuse-native takes at most ${MAX_OPTION_STRING}`);
    }
    const Cls = sessionClass(lib);
    const fuse = new Cls(this.realMountpoint, this.adapter.callbacks(), { timeout: false });
    fuse.striaAdapter = this.adapter;
    fuse.striaOptions = optionString;
    this.fuse = fuse;
    keptAlive.add(fuse);

    const deadlineMs = Math.max(this.opts.requestTimeoutMs, 10_000);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.nativeLive = true;
        reject(err('ETIMEDOUT', `${this.mountpoint}: the kernel did not send INIT within ${deadlineMs} ms`));
      }, deadlineMs);
      fuse.open((e: Error | null) => {
        clearTimeout(timer);
        if (e) return reject(err('EIO', `mounting ${this.mountpoint} with fuse-native failed: ${e.message} (libfuse prints why on stderr)`));
        this.nativeLive = true;
        resolve();
      });
    }).catch(async (e: unknown) => {
      if (await this.isMounted().catch(() => false)) await this.detach().catch(() => undefined);
      throw e;
    });

    this.mountId = await fuseMountId(this.realMountpoint);
    this.state = 'mounted';
    this.poller = setInterval(() => void this.checkStillMounted(), POLL_MS);
    this.poller.unref();
    this.sweeper = setInterval(() => this.adapter.paths.sweep(), SWEEP_MS);
    this.sweeper.unref();
    this.logger?.info({ mountpoint: this.mountpoint, fuseNative: lib.version, options: optionString }, 'mounted with fuse-native');
  }

  unmount(): Promise<void> {
    if (this.unmounting) return this.unmounting;
    if (this.state === 'new' || this.state === 'ended') {
      this.finish();
      return Promise.resolve();
    }
    this.unmounting = (async () => {
      await this.mounting?.catch(() => undefined);
      if (this.state !== 'ended') {
        this.state = 'unmounting';
        if (await this.isMounted()) await this.detach();
        this.finish();
      }
    })().catch((e: unknown) => {
      // still mounted and serving: a later unmount() may succeed
      this.unmounting = undefined;
      if (this.state === 'unmounting') this.state = 'mounted';
      throw e;
    });
    return this.unmounting;
  }

  /** fuse-native cannot send invalidations: the kernel caches nothing (see mount options), only this adapter's cache is dropped. */
  notifyInvalInode(ino: bigint, _offset: number, _len: number): void {
    this.adapter.invalidateInode(ino);
  }

  notifyInvalEntry(parent: bigint, name: string): void {
    this.adapter.invalidateEntry(parent, name);
  }

  private async isMounted(): Promise<boolean> {
    if (!this.realMountpoint) return false;
    return (await fuseMountId(this.realMountpoint, this.mountId)) !== undefined;
  }

  /**
   * Files this very process holds open on its own mount. Spawning a program
   * while one is open deadlocks: the child's exec closes its copy, the kernel
   * sends FLUSH and waits for this process, which waits for the exec.
   */
  private async ownOpenFiles(): Promise<string[]> {
    const inside = (p: string): boolean => p === this.realMountpoint || p.startsWith(this.realMountpoint + '/');
    const found: string[] = [];
    for (const fd of await readdir('/proc/self/fd').catch(() => [] as string[])) {
      const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '');
      if (inside(target)) found.push(target);
    }
    return found;
  }

  /** Lazy unmount, so a busy mount goes too; as root, umount(8) if fusermount is missing or fails. */
  private async detach(): Promise<void> {
    const own = await this.ownOpenFiles();
    if (own.length > 0) {
      throw err('EBUSY', `cannot unmount ${this.mountpoint}: this process holds ${own.length} file(s) open on it (${own[0]}); close them first`);
    }
    const failures: string[] = [];
    const fusermount = this.lib?.fusermount;
    if (fusermount) {
      try {
        await execFileP(fusermount, ['-u', '-z', this.realMountpoint]);
      } catch (e) {
        failures.push(`fusermount: ${(e as Error).message.trim()}`);
      }
    }
    if (failures.length > 0 || !fusermount) {
      if (!(await this.isMounted())) return;
      if (process.getuid?.() === 0) {
        try {
          await execFileP('umount', ['-l', this.realMountpoint]);
        } catch (e) {
          failures.push(`umount: ${(e as Error).message.trim()}`);
        }
      }
    }
    if (await this.isMounted()) throw err('EBUSY', `cannot unmount ${this.mountpoint}: ${failures.join('; ') || 'no unmount program'}`);
  }

  private async checkStillMounted(): Promise<void> {
    if (this.polling || this.state !== 'mounted') return;
    this.polling = true;
    try {
      if (!(await this.isMounted()) && this.state === 'mounted') {
        this.logger?.info({ mountpoint: this.mountpoint }, 'unmounted from outside');
        this.finish();
      }
    } catch (e) {
      this.logger?.warn({ err: e }, 'cannot read /proc/self/mountinfo');
    } finally {
      this.polling = false;
    }
  }

  /** The session is over: let the event loop go, give back what the filesystem counts, destroy. */
  private finish(): void {
    if (this.state === 'ended') return;
    const wasServing = this.fuse !== undefined && this.state !== 'new';
    this.state = 'ended';
    clearInterval(this.poller);
    clearInterval(this.sweeper);
    if (this.nativeLive && this.fuse?._thread && this.lib) {
      try {
        // drops fuse-native's hold on the event loop; libfuse's thread ends by itself once unmounted
        this.lib.binding.fuse_native_unmount(this.realMountpoint, this.fuse._thread);
      } catch (e) {
        this.logger?.warn({ err: e }, 'fuse-native unmount failed');
      }
    }
    if (wasServing) {
      this.adapter.end();
      try {
        this.ops.destroy?.();
      } catch (e) {
        this.logger?.warn({ err: e }, 'destroy failed');
      }
    }
    this.resolveDone();
  }
}
