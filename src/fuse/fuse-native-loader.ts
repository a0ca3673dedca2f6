/**
 * Loads the optional `fuse-native` package (libfuse 2 high-level API, prebuilt
 * for linux-x64) on demand, so Stria installs and runs without it, and says
 * why it cannot be used when it cannot.
 *
 * The session subclasses fuse-native's Fuse class and replaces a few of its
 * internal methods (see fuse-native-session.ts), so only the version those
 * were read from is accepted.
 */
import { accessSync, constants as fsConstants, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { delimiter, dirname, join } from 'node:path';
import { err } from '../common/errno.js';

/** What the session calls on a fuse-native Fuse instance. */
export interface FuseNativeInstance {
  readonly mnt: string;
  /** the native fuse_thread_t, set by open(); must outlive the FUSE thread */
  _thread: Buffer | null;
  open(cb: (e: Error | null) => void): void;
}

// fuse-native is untyped JavaScript; its constructor is subclassed, so it is kept loosely typed here.
export type FuseNativeClass = new (mnt: string, ops: object, opts: object) => any;

export interface FuseNativeBinding {
  op_utimens: number;
  op_fgetattr: number;
  op_getxattr: number;
  op_listxattr: number;
  fuse_native_unmount(mnt: string, thread: Buffer): void;
}

export interface FuseNativeLib {
  Fuse: FuseNativeClass;
  binding: FuseNativeBinding;
  version: string;
  /** the fusermount program libfuse 2 runs (unprivileged mounts, auto_unmount, unmount), if any */
  fusermount: string | undefined;
}

export type Availability = { ok: true } | { ok: false; reason: string };

const SUPPORTED_VERSION = /^2\.2\.\d+$/;

let cached: { lib: FuseNativeLib } | { reason: string } | undefined;

function load(): { lib: FuseNativeLib } | { reason: string } {
  if (process.platform !== 'linux') return { reason: `fuse-native fallback supports Linux only (this is ${process.platform})` };
  try {
    accessSync('/dev/fuse', fsConstants.R_OK | fsConstants.W_OK);
  } catch (e) {
    return { reason: `/dev/fuse is not usable (${(e as Error).message}): load the fuse kernel module or pass the device into the container` };
  }
  const require = createRequire(import.meta.url);
  let pkgPath: string;
  try {
    pkgPath = require.resolve('fuse-native/package.json');
  } catch {
    return { reason: 'the optional npm package fuse-native is not installed (npm install fuse-native)' };
  }
  let version: string;
  try {
    version = String((JSON.parse(readFileSync(pkgPath, 'utf8')) as { version?: unknown }).version);
  } catch (e) {
    return { reason: `cannot read fuse-native's package.json: ${(e as Error).message}` };
  }
  if (!SUPPORTED_VERSION.test(version)) {
    return { reason: `fuse-native ${version} is not supported (the adapter relies on the internals of 2.2.x)` };
  }
  let Fuse: FuseNativeClass;
  let binding: FuseNativeBinding;
  try {
    Fuse = require('fuse-native') as FuseNativeClass;
    // the same .node file fuse-native loaded (require caches it): unmount needs it directly
    const fromFuseNative = createRequire(pkgPath);
    const nodeGypBuild = fromFuseNative('node-gyp-build') as (dir: string) => FuseNativeBinding;
    binding = nodeGypBuild(dirname(pkgPath));
  } catch (e) {
    const msg = (e as Error).message;
    const hint = /libfuse\.so/.test(msg) ? ' (install libfuse 2: apt-get install libfuse2)' : '';
    return { reason: `fuse-native failed to load: ${msg}${hint}` };
  }
  for (const m of ['_fuseOptions', '_makeHandlerArray', '_op_getattr', '_op_fgetattr', '_op_getxattr', '_op_listxattr']) {
    if (typeof (Fuse.prototype as Record<string, unknown>)[m] !== 'function') {
      return { reason: `fuse-native ${version} lacks ${m}(): unsupported build` };
    }
  }
  const ops = [binding.op_utimens, binding.op_fgetattr, binding.op_getxattr, binding.op_listxattr];
  if (typeof binding.fuse_native_unmount !== 'function' || ops.some((op) => typeof op !== 'number')) {
    return { reason: `fuse-native ${version}: unexpected native binding` };
  }
  const fusermount = findFusermount();
  if (!fusermount && process.getuid?.() !== 0) {
    return { reason: 'fusermount is not installed: unprivileged FUSE mounts need it (apt-get install fuse3)' };
  }
  return { lib: { Fuse, binding, version, fusermount } };
}

/** libfuse 2 runs /bin/fusermount, else the first fusermount on PATH. */
export function findFusermount(): string | undefined {
  const dirs = ['/bin', ...(process.env.PATH ?? '').split(delimiter).filter((d) => d.length > 0)];
  for (const dir of dirs) {
    const p = join(dir, 'fusermount');
    try {
      if (statSync(p).isFile()) {
        accessSync(p, fsConstants.X_OK);
        return p;
      }
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

export function fuseNativeAvailable(): Availability {
  cached ??= load();
  return 'lib' in cached ? { ok: true } : { ok: false, reason: cached.reason };
}

/** The loaded package; throws with the reason when it is not usable. */
export function loadFuseNative(): FuseNativeLib {
  cached ??= load();
  if ('lib' in cached) return cached.lib;
  throw err('ENODEV', cached.reason, 'FUSE_NATIVE_UNAVAILABLE');
}
