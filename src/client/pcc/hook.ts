/**
 * What the FUSE adapter asks PCC (src/fuse/stria-fs.ts): every call answers at once for a
 * file that has no PCC copy on this mount, and `undefined` / `false` means "do it through
 * Lustre as usual".
 */
import type { Fid } from '../../common/fid.js';
import type { FileAttr, OpenFile } from '../client.js';

export interface PccCaller {
  uid: number;
  gid: number;
  /** the file's name as the kernel reached it, when known (rules match on it) */
  name?: string;
}

export interface PccHook {
  /** after an MDT open: counts the open; an O_RDONLY open may attach by a read-only rule */
  opened(f: OpenFile, flags: number, who: PccCaller): Promise<void>;
  /** after a create: a read-write rule may attach the new file; returns the open file to use */
  created(f: OpenFile, flags: number, who: PccCaller): Promise<OpenFile>;
  /** close(2) of a descriptor: a read-write copy's size goes to the MDT (lazy size) */
  flushed(f: OpenFile): Promise<void>;
  /** the open file is gone (its last descriptor closed) */
  released(f: OpenFile): void;
  /** data from the PCC copy, or undefined */
  read(f: OpenFile, offset: number, length: number): Promise<Buffer | undefined>;
  /** a read-write copy takes the write (returns where it went); a read-only copy is dropped first */
  write(f: OpenFile, offset: number, data: Buffer, append: boolean): Promise<{ written: number; offset: number } | undefined>;
  /** true when the file's data lives in a read-write copy, which was synced */
  fsync(f: OpenFile): Promise<boolean>;
  /** true when a read-write copy took the size change; a read-only copy is dropped first */
  truncate(fid: Fid, size: number): Promise<boolean>;
  /** attributes as this mount must show them (size and mtime of a read-write copy) */
  attrs(a: FileAttr): FileAttr;
}
