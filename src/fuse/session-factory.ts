/** Picks the FUSE implementation: our libfuse3 binding, or fuse-native as the fallback. */
import { err } from '../common/errno.js';
import type { FuseSession, LowLevelOps, SessionOptions } from './lowlevel.js';
import type { FuseImpl } from './mount-options.js';

export async function createSession(impl: FuseImpl, mountpoint: string, ops: LowLevelOps, opts: SessionOptions): Promise<FuseSession> {
  if (impl === 'native') {
    const m = await import('./native-session.js');
    const ok = m.nativeFuseAvailable();
    if (!ok.ok) throw err('ENODEV', `${ok.reason} (or mount with --fuse fuse-native)`, 'NO_NATIVE_FUSE');
    return new m.NativeFuseSession(mountpoint, ops, opts);
  }
  const m = await import('./fuse-native-session.js');
  const ok = m.fuseNativeAvailable();
  if (!ok.ok) throw err('ENODEV', ok.reason, 'NO_FUSE_NATIVE');
  return new m.FuseNativeSession(mountpoint, ops, opts);
}
