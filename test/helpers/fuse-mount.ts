/**
 * Real FUSE mounts of a LowLevelOps filesystem through NativeFuseSession, for tests: a temp
 * mountpoint, bounded unmount, and leftovers lazily unmounted by cleanupMounts() (call it in
 * an after hook). Tools run as child processes: this process answers the FUSE requests, so
 * it must never block on the mount itself.
 */
import { execFile, type ExecFileException } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LowLevelOps } from '../../src/fuse/lowlevel.js';
import { NativeFuseSession, type NativeSessionOptions } from '../../src/fuse/native-session.js';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs argv (no shell unless asked), optionally as another user; never throws on failure. */
export function run(argv: string[], opts: { uid?: number; gid?: number; timeoutMs?: number; input?: string } = {}): Promise<RunResult> {
  const full = opts.uid === undefined ? argv : ['setpriv', `--reuid=${opts.uid}`, `--regid=${opts.gid ?? opts.uid}`, '--clear-groups', ...argv];
  return new Promise((resolve) => {
    const child = execFile(full[0]!, full.slice(1), { timeout: opts.timeoutMs ?? 60_000, maxBuffer: 16 << 20 }, (e: ExecFileException | null, stdout, stderr) => {
      const code = e ? (typeof e.code === 'number' ? e.code : e.killed ? 124 : 1) : 0;
      resolve({ code, stdout, stderr });
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

export function sh(script: string, opts: { uid?: number; gid?: number; timeoutMs?: number } = {}): Promise<RunResult> {
  return run(['bash', '-c', script], opts);
}

export const defaultOptions: NativeSessionOptions = {
  fsname: 'memfs',
  subtype: 'stria-test',
  allowOther: true,
  defaultPermissions: true,
  maxWrite: 1 << 20,
  maxReadahead: 1 << 20,
  writebackCache: false,
  autoUnmount: false,
  requestTimeoutMs: 60_000,
};

const live = new Set<string>();

export async function isMounted(dir: string): Promise<boolean> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  return text.split('\n').some((line) => line.split(' ')[4] === dir);
}

export interface MountedFs {
  dir: string;
  session: NativeFuseSession;
  path(...parts: string[]): string;
}

export async function makeMountpoint(): Promise<{ base: string; dir: string }> {
  const base = await mkdtemp(join(tmpdir(), 'stria-fuse-'));
  await chmod(base, 0o755); // other users must reach the mountpoint
  const dir = join(base, 'mnt');
  await mkdir(dir);
  return { base, dir };
}

/** Mounts `ops`, runs `fn`, and always unmounts (bounded) and removes the temp dir. */
export async function withMount(ops: LowLevelOps, opts: Partial<NativeSessionOptions>, fn: (m: MountedFs) => Promise<void>): Promise<void> {
  const { base, dir } = await makeMountpoint();
  live.add(dir);
  const session = new NativeFuseSession(dir, ops, { ...defaultOptions, ...opts });
  try {
    await session.mount();
    await fn({ dir, session, path: (...parts) => join(dir, ...parts) });
  } finally {
    await boundedUnmount(session, dir);
    live.delete(dir);
    await rm(base, { recursive: true, force: true });
  }
}

export async function boundedUnmount(session: NativeFuseSession, dir: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const gaveUp = new Promise<'timeout'>((r) => {
    timer = setTimeout(() => r('timeout'), 20_000);
  });
  const r = await Promise.race([session.unmount().then(() => 'ok' as const), gaveUp]);
  clearTimeout(timer);
  if (r === 'timeout') await run(['umount', '-l', dir], { timeoutMs: 10_000 });
}

/** Lazily unmounts whatever a failed test left behind. */
export async function cleanupMounts(): Promise<void> {
  for (const dir of live) {
    if (await isMounted(dir)) await run(['umount', '-l', dir], { timeoutMs: 10_000 });
  }
  live.clear();
}

/** Polls `check` every 20 ms until it holds or `ms` passed; returns whether it held. */
export async function waitFor(check: () => boolean | Promise<boolean>, ms = 10_000): Promise<boolean> {
  const until = Date.now() + ms;
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= until) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
}
