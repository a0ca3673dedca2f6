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
