/**
 * The per-mount VFS counters of `llite.<fsname>-<instance>.stats`, fed by the
 * FUSE adapter: one sample per completed operation with its latency in
 * microseconds, plus the bytes of each read and write (Lustre's llite_opcode_table).
 */
import { StatsSet, type CounterDef } from './stats.js';

/** Operations timed in microseconds, in Lustre's order and spelling. */
export const LLITE_TIMED_OPS = [
  'read', 'write', 'open', 'close', 'mmap', 'page_fault', 'page_mkwrite', 'seek', 'fsync', 'readdir',
  'setattr', 'truncate', 'flock', 'getattr', 'fallocate',
  'create', 'link', 'unlink', 'symlink', 'mkdir', 'rmdir', 'mknod', 'rename',
  'statfs', 'setxattr', 'getxattr', 'listxattr', 'removexattr', 'inode_permission',
] as const;
/** Operations only counted. */
export const LLITE_COUNTED_OPS = ['ioctl', 'getxattr_hits'] as const;

export type LliteTimedOp = (typeof LLITE_TIMED_OPS)[number];
export type LliteCountedOp = (typeof LLITE_COUNTED_OPS)[number];
export type LliteOp = LliteTimedOp | LliteCountedOp;

const ORDER: readonly string[] = [
  'read_bytes', 'write_bytes', 'read', 'write', 'ioctl', 'open', 'close', 'mmap', 'page_fault', 'page_mkwrite', 'seek',
  'fsync', 'readdir', 'setattr', 'truncate', 'flock', 'getattr', 'fallocate', 'create', 'link', 'unlink', 'symlink',
  'mkdir', 'rmdir', 'mknod', 'rename', 'statfs', 'setxattr', 'getxattr', 'getxattr_hits', 'listxattr', 'removexattr',
  'inode_permission',
];

function defOf(name: string): CounterDef {
  if (name === 'read_bytes' || name === 'write_bytes') return { name, unit: 'bytes' };
  if ((LLITE_COUNTED_OPS as readonly string[]).includes(name)) return { name, unit: 'reqs', minmax: false };
  return { name, unit: 'usec' };
}

export class LliteStats {
  readonly stats = new StatsSet(ORDER.map(defOf));

  /** One completed operation that took `usec` microseconds (ioctl, getxattr_hits: only counted). */
  count(op: LliteOp, usec = 0): void {
    this.stats.add(op, usec);
  }

  /** One read(2)/write(2) call that moved `bytes` bytes in `usec` microseconds. */
  io(dir: 'read' | 'write', bytes: number, usec: number): void {
    this.stats.add(`${dir}_bytes`, bytes);
    this.stats.add(dir, usec);
  }

  /** Runs `fn` and, when it succeeds, counts it under `op` with its duration. */
  async time<T>(op: LliteOp, fn: () => Promise<T>): Promise<T> {
    const t0 = process.hrtime.bigint();
    const r = await fn();
    this.stats.add(op, Number((process.hrtime.bigint() - t0) / 1000n));
    return r;
  }
}
