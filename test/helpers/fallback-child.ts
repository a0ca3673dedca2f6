/**
 * A separate process serving the in-memory fixture through the fuse-native
 * fallback, for tests that kill the server: `node fallback-child.js <dir> [auto_unmount]`.
 * Prints "mounted" once the kernel sent INIT, then serves until killed.
 */
import { FuseNativeSession } from '../../src/fuse/fuse-native-session.js';
import { FallbackMemFs } from './fallback-memfs.js';
import { fallbackSessionOptions } from './fallback-mount.js';

const [dir, mode] = process.argv.slice(2);
if (!dir) {
  process.stderr.write('usage: fallback-child.js <mountpoint> [auto_unmount]\n');
  process.exit(2);
}
const session = new FuseNativeSession(dir, new FallbackMemFs(), fallbackSessionOptions({ autoUnmount: mode === 'auto_unmount' }));
session.mount().then(
  () => process.stdout.write('mounted\n'),
  (e: unknown) => {
    process.stderr.write(`mount failed: ${(e as Error).message}\n`);
    process.exit(1);
  },
);
// a bound on the child's life, should the test that started it never kill it
setTimeout(() => void session.unmount().then(() => process.exit(0)), 120_000).unref();
process.on('SIGTERM', () => void session.unmount().then(() => process.exit(0)));
