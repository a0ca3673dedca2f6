/**
 * The contract between a FUSE session (our libfuse3 low-level N-API binding, or
 * the fuse-native fallback) and the filesystem behind it. Modelled on libfuse3's
 * low-level API: requests name inodes (nodeids), not paths. Node ids are
 * 64-bit, so they travel as BigInt; FUSE_ROOT_ID (1n) is the root.
 *
 * A handler answers by resolving, or fails by throwing/rejecting with an error
 * that has a positive `errno` (StriaError); anything else becomes EIO. Every
 * request gets exactly one reply; a handler that does not settle within the
 * session's `requestTimeoutMs` is answered with ETIMEDOUT (or EINTR once the
 * kernel interrupted it) and its late result is dropped.
 */
import type { Timestamp } from '../common/time.js';

export const FUSE_ROOT_ID = 1n;

export interface RequestCtx {
  uid: number;
  gid: number;
  pid: number;
  umask: number;
  /** true once the kernel sent an interrupt for this request */
  readonly interrupted: boolean;
}

export interface FuseAttr {
  ino: bigint;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  rdev: number;
  size: number;
  /** 512-byte blocks */
  blocks: number;
  blksize: number;
  atime: Timestamp;
  mtime: Timestamp;
  ctime: Timestamp;
}

export interface EntryOut {
  /** nodeid for the kernel; 0n = negative entry (cache the absence) */
  ino: bigint;
  generation: number;
  attr: FuseAttr;
  /** seconds the kernel may cache the attributes / the name */
  attrTimeout: number;
  entryTimeout: number;
}

export interface AttrOut {
  attr: FuseAttr;
  attrTimeout: number;
}

export interface OpenOut {
  fh: number;
  directIo?: boolean;
  keepCache?: boolean;
  nonSeekable?: boolean;
}

export interface CreateOut extends EntryOut, OpenOut {}

/** Bits of `toSet` in setattr (FUSE_SET_ATTR_*). */
export const SetattrFlag = {
  MODE: 1 << 0,
  UID: 1 << 1,
  GID: 1 << 2,
  SIZE: 1 << 3,
  ATIME: 1 << 4,
  MTIME: 1 << 5,
  ATIME_NOW: 1 << 7,
  MTIME_NOW: 1 << 8,
  CTIME: 1 << 10,
} as const;

export interface SetattrIn {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  atime: Timestamp;
  mtime: Timestamp;
  ctime: Timestamp;
}

export interface DirEntryOut {
  name: string;
  ino: bigint;
  /** S_IF* type bits (mode & S_IFMT) */
  type: number;
  /** offset of the NEXT entry (what readdir gets back to continue after this one) */
  nextOffset: number;
  /** readdirplus: the full entry; the binding then counts a lookup for it */
  entry?: EntryOut;
}

export interface StatvfsOut {
  bsize: number;
  frsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  favail: number;
  namemax: number;
}

export interface FlockOut {
  type: number; // F_RDLCK, F_WRLCK, F_UNLCK
  start: number;
  end: number; // inclusive; Number.MAX_SAFE_INTEGER for "to EOF"
  pid: number;
}

/** rename(2) flags */
export const RENAME_NOREPLACE = 1;
export const RENAME_EXCHANGE = 2;

export interface LowLevelOps {
  init?(): void;
  destroy?(): void;
  lookup(ctx: RequestCtx, parent: bigint, name: string): Promise<EntryOut>;
  forget?(ino: bigint, nlookup: number): void;
  getattr(ctx: RequestCtx, ino: bigint, fh: number | undefined): Promise<AttrOut>;
  setattr(ctx: RequestCtx, ino: bigint, attr: SetattrIn, toSet: number, fh: number | undefined): Promise<AttrOut>;
  readlink(ctx: RequestCtx, ino: bigint): Promise<string>;
  mknod(ctx: RequestCtx, parent: bigint, name: string, mode: number, rdev: number): Promise<EntryOut>;
  mkdir(ctx: RequestCtx, parent: bigint, name: string, mode: number): Promise<EntryOut>;
  unlink(ctx: RequestCtx, parent: bigint, name: string): Promise<void>;
  rmdir(ctx: RequestCtx, parent: bigint, name: string): Promise<void>;
  symlink(ctx: RequestCtx, target: string, parent: bigint, name: string): Promise<EntryOut>;
  rename(ctx: RequestCtx, parent: bigint, name: string, newParent: bigint, newName: string, flags: number): Promise<void>;
  link(ctx: RequestCtx, ino: bigint, newParent: bigint, newName: string): Promise<EntryOut>;
  open(ctx: RequestCtx, ino: bigint, flags: number): Promise<OpenOut>;
  create(ctx: RequestCtx, parent: bigint, name: string, mode: number, flags: number): Promise<CreateOut>;
  /**
   * Resolves with at most `size` bytes; fewer only at EOF. A list is the data in pieces, in
   * order (the binding sends them in one writev, never assembled): no piece may be written
   * to by anyone until the reply has gone out, since the binding reads them as they are.
   */
  read(ctx: RequestCtx, ino: bigint, size: number, offset: number, fh: number): Promise<Buffer | Buffer[]>;
  /** `data` is only valid until the returned promise settles: copy what you keep */
  write(ctx: RequestCtx, ino: bigint, data: Buffer, offset: number, fh: number, flags: number): Promise<number>;
  flush?(ctx: RequestCtx, ino: bigint, fh: number): Promise<void>;
  release(ctx: RequestCtx, ino: bigint, fh: number, flags: number): Promise<void>;
  fsync?(ctx: RequestCtx, ino: bigint, datasync: boolean, fh: number): Promise<void>;
  opendir?(ctx: RequestCtx, ino: bigint, flags: number): Promise<OpenOut>;
  /** entries starting after `offset` (0 = start); the binding packs as many as fit in `size` */
  readdir(ctx: RequestCtx, ino: bigint, size: number, offset: number, fh: number, plus: boolean): Promise<DirEntryOut[]>;
  releasedir?(ctx: RequestCtx, ino: bigint, fh: number): Promise<void>;
  fsyncdir?(ctx: RequestCtx, ino: bigint, datasync: boolean, fh: number): Promise<void>;
  statfs(ctx: RequestCtx, ino: bigint): Promise<StatvfsOut>;
  setxattr(ctx: RequestCtx, ino: bigint, name: string, value: Buffer, flags: number): Promise<void>;
  /** the whole value; the binding answers size probes (size 0) and ERANGE itself */
  getxattr(ctx: RequestCtx, ino: bigint, name: string): Promise<Buffer>;
  listxattr(ctx: RequestCtx, ino: bigint): Promise<string[]>;
  removexattr(ctx: RequestCtx, ino: bigint, name: string): Promise<void>;
  fallocate?(ctx: RequestCtx, ino: bigint, mode: number, offset: number, length: number, fh: number): Promise<void>;
  /** POSIX record locks; not implementing them (ENOSYS) lets the kernel lock locally */
  getlk?(ctx: RequestCtx, ino: bigint, fh: number, owner: bigint, lock: FlockOut): Promise<FlockOut>;
  setlk?(ctx: RequestCtx, ino: bigint, fh: number, owner: bigint, lock: FlockOut, sleep: boolean): Promise<void>;
  flock?(ctx: RequestCtx, ino: bigint, fh: number, owner: bigint, op: number): Promise<void>;
}

export interface SessionOptions {
  /** shown as the mount source in /proc/mounts, e.g. "127.0.0.1@tcp:/testfs" */
  fsname: string;
  /** mount type becomes fuse.<subtype> */
  subtype: string;
  allowOther: boolean;
  defaultPermissions: boolean;
  /** bytes; 1 MiB by default */
  maxWrite: number;
  maxReadahead: number;
  writebackCache: boolean;
  /** unmount automatically when the process dies (fusermount3 auto_unmount) */
  autoUnmount: boolean;
  /** deadline for a handler before an error reply is sent (default 60 s) */
  requestTimeoutMs: number;
  /** extra -o options passed to libfuse as they are */
  extraOptions?: string[];
}

export interface FuseSession {
  readonly mountpoint: string;
  /** mounts and starts serving; resolves once the kernel sent INIT */
  mount(): Promise<void>;
  /** unmounts (lazily if busy) and stops serving; idempotent */
  unmount(): Promise<void>;
  /**
   * drop cached pages [offset, offset+len) of an inode (len 0 = to the end; offset -1 =
   * attributes only); a returned promise settles once the kernel processed it, never rejecting
   */
  notifyInvalInode(ino: bigint, offset: number, len: number): Promise<void> | void;
  /** drop a cached name */
  notifyInvalEntry(parent: bigint, name: string): Promise<void> | void;
  /** resolves when the session ends (unmounted from outside, or by unmount()) */
  readonly done: Promise<void>;
}
