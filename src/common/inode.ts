/** Inode records as the MDS stores them and sends them to clients. */
import type { Fid } from './fid.js';
import type { LayoutTemplate, Raid0Layout } from './layout.js';
import type { Timestamp } from './time.js';

export type FileType = 'reg' | 'dir' | 'lnk' | 'chr' | 'blk' | 'fifo' | 'sock';

export const S_IFMT = 0o170000;
export const S_IFSOCK = 0o140000;
export const S_IFLNK = 0o120000;
export const S_IFREG = 0o100000;
export const S_IFBLK = 0o060000;
export const S_IFDIR = 0o040000;
export const S_IFCHR = 0o020000;
export const S_IFIFO = 0o010000;

const TYPE_BITS: Record<FileType, number> = {
  reg: S_IFREG, dir: S_IFDIR, lnk: S_IFLNK, chr: S_IFCHR, blk: S_IFBLK, fifo: S_IFIFO, sock: S_IFSOCK,
};

export function typeBits(type: FileType): number {
  return TYPE_BITS[type];
}

export function typeFromMode(mode: number): FileType | undefined {
  const bits = mode & S_IFMT;
  for (const [t, b] of Object.entries(TYPE_BITS)) if (b === bits) return t as FileType;
  return undefined;
}

export interface Inode {
  fid: Fid;
  type: FileType;
  /** full st_mode, file type bits included */
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  /**
   * Size kept on the MDT: authoritative for directories, symlinks, device
   * files and files without objects; for striped files the OST objects decide
   * (reference §5) and this is the last size the MDS was told.
   */
  size: number;
  rdev: number;
  atime: Timestamp;
  mtime: Timestamp;
  ctime: Timestamp;
  btime: Timestamp;
  /** regular files: the striping layout with its objects */
  layout?: Raid0Layout;
  /** directories: default layout for new entries, when set */
  dirDefault?: LayoutTemplate;
  /** directories: the parent directory (root is its own parent) */
  parent?: Fid;
  /** symlinks: the target */
  target?: string;
  /** regular files: HSM state (reference §7.1); absent means no flags, archive id 0 */
  hsm?: HsmAttrs;
}

/** HSM state kept with the inode (Lustre's hsm_attrs xattr, plus what restore needs). */
export interface HsmAttrs {
  /** HS_* bits (src/hsm/flags.ts) */
  flags: number;
  /** archive the copy lives in (0: none yet) */
  archiveId: number;
  /** data version the archive copy was made from (StriaClient.dataVersion) */
  archVer?: string;
  /** size of the archived data, bytes */
  archSize?: number;
  /** "sha256:<hex>" of the archived data, verified on restore */
  archChecksum?: string;
}

export interface DirEntry {
  name: string;
  fid: Fid;
  type: FileType;
  /** readdir position to resume after this entry */
  cookie: number;
}
