/**
 * Loads our libfuse3 low-level binding (native/, built by `npm run build:native`) and
 * describes its surface. The numbering below mirrors native/src/session.h.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { err } from '../common/errno.js';

export const NOT_BUILT = 'the native FUSE binding is not built: run npm run build:native (needs libfuse3-dev, g++)';

/** Request kinds (native -> JS), as in native/src/session.h. */
export const Kind = {
  LOOKUP: 1, GETATTR: 2, SETATTR: 3, READLINK: 4, MKNOD: 5, MKDIR: 6, UNLINK: 7, RMDIR: 8,
  SYMLINK: 9, RENAME: 10, LINK: 11, OPEN: 12, READ: 13, WRITE: 14, FLUSH: 15, RELEASE: 16, FSYNC: 17,
  OPENDIR: 18, READDIR: 19, READDIRPLUS: 20, RELEASEDIR: 21, FSYNCDIR: 22, STATFS: 23, SETXATTR: 24,
  GETXATTR: 25, LISTXATTR: 26, REMOVEXATTR: 27, CREATE: 28, FALLOCATE: 29, GETLK: 30, SETLK: 31, FLOCK: 32,
} as const;

/** Session messages (native -> JS). */
export const Msg = { INIT: 100, ENDED: 101, FORGET: 102, NOTIFY_DONE: 103, STOPPED: 104 } as const;

/** Optional handlers present in the ops object; absent ones are not registered with libfuse. */
export const Optional = {
  FORGET: 1 << 0, FLUSH: 1 << 1, FSYNC: 1 << 2, OPENDIR: 1 << 3, RELEASEDIR: 1 << 4,
  FSYNCDIR: 1 << 5, FALLOCATE: 1 << 6, GETLK: 1 << 7, SETLK: 1 << 8, FLOCK: 1 << 9,
} as const;

/** Shared typed arrays: request arguments in, reply records out, interrupt marks. */
export const IN_F = 24;
export const IN_U = 2;
export const OUT_F = 20;
export const OUT_U = 2;
export const SLOT_BITS = 20;

export interface NativeConfig {
  mountpoint: string;
  /** arguments for fuse_session_new after argv[0], e.g. ['-o', 'fsname=x,subtype=y'] */
  args: string[];
  maxWrite: number;
  /** must match a max_read= in args (0 when none) */
  maxRead: number;
  maxReadahead: number;
  maxBackground: number;
  congestionThreshold: number;
  writebackCache: boolean;
  /** <= 0: no deadline */
  timeoutMs: number;
  threads: number;
  optional: number;
  poolIdle: number;
  /** the JS thread reads /dev/fuse itself; the native threads only take over when it stalls */
  inlineRead: boolean;
}

export interface Scratch {
  inF: Float64Array;
  inU: BigUint64Array;
  outF: Float64Array;
  outU: BigUint64Array;
  /** intr[slot] === generation once the kernel interrupted that request */
  intr: Uint32Array;
}

export type Dispatch = (
  kind: number,
  id: number,
  s1: string | undefined,
  s2: string | undefined,
  data: ArrayBuffer | Buffer | BigUint64Array | number | undefined,
) => void;

export interface NativeStats {
  requests: number;
  timeouts: number;
  interrupts: number;
  late: number;
  zeroCopyWrites: number;
  copiedWrites: number;
  /** requests the JS thread read from /dev/fuse itself (the rest came from the native threads) */
  inlineRequests: number;
  inFlight: number;
  pooledBuffers: number;
}

declare const handleBrand: unique symbol;
export type Handle = { readonly [handleBrand]: true };

/** Reply results: >= 0 delivered; REPLY_LATE already answered; other < 0: -errno from /dev/fuse. */
export interface NativeAddon {
  REPLY_LATE: number;
  createSession(config: NativeConfig, dispatch: Dispatch, scratch: Scratch): Handle;
  mount(h: Handle): void;
  stop(h: Handle): boolean;
  release(h: Handle): void;
  umount(h: Handle, lazy: boolean, cb: (errno: number) => void): void;
  notify(h: Handle, entry: boolean, ino: bigint, off: number, len: number, name: string | undefined, token: number): boolean;
  stats(h: Handle): NativeStats;
  replyErr(h: Handle, id: number, errno: number): number;
  replyEntry(h: Handle, id: number): number;
  replyCreate(h: Handle, id: number): number;
  replyAttr(h: Handle, id: number): number;
  replyReadlink(h: Handle, id: number, target: string): number;
  replyOpen(h: Handle, id: number): number;
  replyWrite(h: Handle, id: number, count: number): number;
  replyBuf(h: Handle, id: number, data: Uint8Array | undefined): number;
  /** a READ reply from several buffers in one writev (fuse_reply_iov); read synchronously */
  replyIov(h: Handle, id: number, pieces: Buffer[]): number;
  replyStatfs(h: Handle, id: number): number;
  replyLock(h: Handle, id: number): number;
  /** returns how many of the `count` records were sent */
  replyDir(h: Handle, id: number, names: string[], count: number): number;
}

function findAddon(): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'native', 'build', 'Release', 'stria_fuse.node');
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return undefined;
}

let cached: NativeAddon | undefined;

/** The loaded binding; throws StriaError ENODEV (code NO_NATIVE_FUSE) when it is not built. */
export function loadNativeAddon(): NativeAddon {
  if (cached) return cached;
  const path = findAddon();
  if (!path) throw err('ENODEV', NOT_BUILT, 'NO_NATIVE_FUSE');
  try {
    cached = createRequire(import.meta.url)(path) as NativeAddon;
  } catch (e) {
    throw err('ENODEV', `${NOT_BUILT} (loading ${path} failed: ${(e as Error).message})`, 'NO_NATIVE_FUSE');
  }
  return cached;
}
