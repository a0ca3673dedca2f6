/** Space and object attributes exchanged between targets and clients. */
import type { Timestamp } from './time.js';

/** statfs of one target, in `bsize` units (as statfs(2)). */
export interface StatFs {
  bsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
}

/** Attributes of one OST object. */
export interface ObjAttr {
  size: number;
  /** 512-byte blocks allocated, as Lustre's o_blocks */
  blocks: number;
  atime: Timestamp;
  mtime: Timestamp;
  ctime: Timestamp;
  /**
   * data version: differs from every earlier one once the object's data or size changed
   * (a cache key; opaque, compare for equality only)
   */
  ver?: string;
}
