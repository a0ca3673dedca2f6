/**
 * A process that mounts the in-memory fixture and serves it until killed, for tests that
 * kill a FUSE daemon. Usage: node fuse-child.js <mountpoint> [auto]
 * ("auto" mounts with autoUnmount). Prints "mounted" once the kernel sent INIT.
 */
import { FUSE_ROOT_ID } from '../../src/fuse/lowlevel.js';
import { NativeFuseSession } from '../../src/fuse/native-session.js';
import { MemFs } from './memfs.js';
import { defaultOptions } from './fuse-mount.js';

const [mountpoint, mode] = process.argv.slice(2);
if (!mountpoint) throw new Error('usage: fuse-child.js <mountpoint> [auto]');
const fs = new MemFs();
fs.addFile(FUSE_ROOT_ID, 'hello', 'hi from the child\n');
const session = new NativeFuseSession(mountpoint, fs, { ...defaultOptions, autoUnmount: mode === 'auto' });
await session.mount();
process.stdout.write('mounted\n');
process.on('SIGTERM', () => void session.unmount());
await session.done;
