/** `-o` mount options of `stria mount`, parsed and validated. */
import { err } from '../common/errno.js';

export type FuseImpl = 'native' | 'fuse-native';

export interface MountOptions {
  allowOther: boolean;
  defaultPermissions: boolean;
  readOnly: boolean;
  attrTimeout: number;
  entryTimeout: number;
  checksums: boolean;
  writebackCache: boolean;
  maxRpcsInFlight: number;
  fuse: FuseImpl;
  /** llite.*.max_cached_mb at mount, in bytes (memory pages below the kernel's page cache) */
  maxCachedBytes?: number;
  /** the local disk cache (--cache-dir), when the mount has one */
  diskCache?: DiskCacheOptions;
}

export interface DiskCacheOptions {
  dirs: string[];
  sizeBytes: number;
  freeSpaceRatio: number;
}

/** JuiceFS's defaults: 100 GiB, keep 10 % of the disk free. */
export const DEFAULT_DISK_CACHE_BYTES = 100 * 1024 ** 3;
export const DEFAULT_FREE_SPACE_RATIO = 0.1;

const UNITS: Record<string, number> = { '': 1024 ** 2, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** "512" (MiB, as JuiceFS's --cache-size), "64K", "100M", "2G", "1T" -> bytes. */
export function parseSize(name: string, v: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$/i.exec(v.trim());
  const n = m ? Math.floor(Number(m[1]) * UNITS[m[2]!.toLowerCase()]!) : NaN;
  if (!Number.isSafeInteger(n) || n < 0) throw err('EINVAL', `${name} needs a size such as 512 (MiB), 64K, 100M or 2G, not '${v}'`, 'BAD_MOUNT_OPTION');
  return n;
}

/** --cache-dir A:B, --cache-size, --free-space-ratio as the mount command takes them. */
export function diskCacheOptions(o: { cacheDir?: string; cacheSize?: string; freeSpaceRatio?: string }): DiskCacheOptions | undefined {
  if (o.cacheDir === undefined) {
    if (o.cacheSize !== undefined || o.freeSpaceRatio !== undefined) throw err('EINVAL', '--cache-size and --free-space-ratio need --cache-dir', 'BAD_MOUNT_OPTION');
    return undefined;
  }
  const dirs = o.cacheDir.split(':').map((d) => d.trim()).filter((d) => d.length > 0);
  if (dirs.length === 0) throw err('EINVAL', '--cache-dir needs at least one directory (several are separated by ":")', 'BAD_MOUNT_OPTION');
  const ratio = o.freeSpaceRatio === undefined ? DEFAULT_FREE_SPACE_RATIO : Number(o.freeSpaceRatio);
  if (!Number.isFinite(ratio) || ratio < 0 || ratio > 0.9) throw err('EINVAL', `--free-space-ratio needs a fraction in 0..0.9, not '${o.freeSpaceRatio}'`, 'BAD_MOUNT_OPTION');
  return { dirs, sizeBytes: o.cacheSize === undefined ? DEFAULT_DISK_CACHE_BYTES : parseSize('--cache-size', o.cacheSize), freeSpaceRatio: ratio };
}

export const DEFAULT_MOUNT_OPTIONS: MountOptions = {
  allowOther: true,
  defaultPermissions: true,
  readOnly: false,
  // What no lock covers is not cached; what a lock covers is cached until the lock goes.
  attrTimeout: 0,
  entryTimeout: 0,
  checksums: false,
  writebackCache: false,
  maxRpcsInFlight: 8,
  fuse: 'native',
};

function seconds(name: string, v: string | undefined): number {
  const n = Number(v);
  if (v === undefined || !Number.isFinite(n) || n < 0 || n > 3600) throw err('EINVAL', `mount option ${name} needs seconds in 0..3600`, 'BAD_MOUNT_OPTION');
  return n;
}

/** Parses "allow_other,attr_timeout=0,..." (several -o values are joined with ','). */
export function parseMountOptions(text: string | undefined, base: MountOptions = DEFAULT_MOUNT_OPTIONS): MountOptions {
  const o = { ...base };
  for (const item of (text ?? '').split(',').map((s) => s.trim()).filter((s) => s.length > 0)) {
    const eq = item.indexOf('=');
    const key = eq < 0 ? item : item.slice(0, eq);
    const value = eq < 0 ? undefined : item.slice(eq + 1);
    switch (key) {
      case 'allow_other': o.allowOther = true; break;
      case 'noallow_other': o.allowOther = false; break;
      case 'default_permissions': o.defaultPermissions = true; break;
      case 'nodefault_permissions': o.defaultPermissions = false; break;
      case 'ro': o.readOnly = true; break;
      case 'rw': o.readOnly = false; break;
      case 'attr_timeout': o.attrTimeout = seconds(key, value); break;
      case 'entry_timeout': o.entryTimeout = seconds(key, value); break;
      case 'checksum': case 'checksums': o.checksums = true; break;
      case 'nochecksum': case 'nochecksums': o.checksums = false; break;
      case 'writeback_cache': o.writebackCache = true; break;
      case 'max_rpcs_in_flight': {
        const n = Number(value);
        if (!Number.isInteger(n) || n < 1 || n > 512) throw err('EINVAL', 'mount option max_rpcs_in_flight needs 1..512', 'BAD_MOUNT_OPTION');
        o.maxRpcsInFlight = n;
        break;
      }
      case 'max_cached_mb': {
        const n = Number(value);
        if (!Number.isInteger(n) || n < 0 || n > 1 << 20) throw err('EINVAL', 'mount option max_cached_mb needs MiB in 0..1048576', 'BAD_MOUNT_OPTION');
        o.maxCachedBytes = n * 1024 * 1024;
        break;
      }
      case 'fuse':
        if (value !== 'native' && value !== 'fuse-native') throw err('EINVAL', 'mount option fuse= takes native or fuse-native', 'BAD_MOUNT_OPTION');
        o.fuse = value;
        break;
      case 'defaults': case 'noatime': case 'relatime': case 'user_xattr': case 'flock': case 'lazystatfs':
        break; // accepted for fstab compatibility; behaviour is fixed
      default:
        throw err('EINVAL', `unknown mount option '${key}'`, 'BAD_MOUNT_OPTION');
    }
  }
  return o;
}
