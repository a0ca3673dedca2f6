/**
 * Real FUSE mounts through the fuse-native fallback, in temp dirs, for the
 * fallback tests: mount, run programs against the mount (always as child
 * processes or async fs calls: the serving process must not block on its own
 * mount), and clean up whatever happens.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, rmdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { FuseNativeSession, fuseNativeAvailable } from '../../src/fuse/fuse-native-session.js';
import type { LowLevelOps, SessionOptions } from '../../src/fuse/lowlevel.js';

const execFileP = promisify(execFile);

/** Why mounts cannot be tested here, or undefined when they can. */
export function fallbackSkipReason(): string | undefined {
  const a = fuseNativeAvailable();
  return a.ok ? undefined : a.reason;
}

export function fallbackSessionOptions(over: Partial<SessionOptions> = {}): SessionOptions {
  return {
    fsname: 'fallback-test:/memfs',
    subtype: 'striatest',
    allowOther: false,
    defaultPermissions: false,
    maxWrite: 1 << 20,
    maxReadahead: 1 << 20,
    writebackCache: false,
    autoUnmount: false,
    requestTimeoutMs: 30_000,
    ...over,
  };
}

export interface FallbackMount {
  dir: string;
  session: FuseNativeSession;
  /** path inside the mount */
  p(rel: string): string;
  /** unmounts (lazily detaching leftovers) and removes the temp dir; safe to call twice */
  cleanup(): Promise<void>;
}

export async function mountFallback(ops: LowLevelOps, over: Partial<SessionOptions> = {}): Promise<FallbackMount> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'stria-fallback-'));
  const session = new FuseNativeSession(dir, ops, fallbackSessionOptions(over));
  let cleaned = false;
  const cleanup = async (): Promise<void> => {
    if (cleaned) return;
    cleaned = true;
    await session.unmount().catch(() => undefined);
    if (await isMountpoint(dir)) await execFileP('umount', ['-l', dir]).catch(() => undefined);
    await rmdir(dir).catch(async () => rm(dir, { recursive: true, force: true }).catch(() => undefined));
  };
  try {
    await session.mount();
  } catch (e) {
    await cleanup();
    throw e;
  }
  return { dir, session, p: (rel) => path.join(dir, rel), cleanup };
}

export async function isMountpoint(dir: string): Promise<boolean> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  return text.split('\n').some((line) => line.split(' ')[4] === dir);
}

/** Runs a program (never in-process: the event loop must stay free to serve the mount). */
export async function run(cmd: string, args: string[], opts: { timeoutMs?: number } = {}): Promise<{ stdout: string; stderr: string }> {
  const r = await execFileP(cmd, args, { timeout: opts.timeoutMs ?? 60_000, maxBuffer: 16 << 20 });
  return { stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

/** Runs a program that is expected to fail; returns its stderr. */
export async function runFailing(cmd: string, args: string[], opts: { timeoutMs?: number } = {}): Promise<string> {
  try {
    await run(cmd, args, opts);
  } catch (e) {
    return String((e as { stderr?: unknown }).stderr ?? (e as Error).message);
  }
  throw new Error(`${cmd} ${args.join(' ')} succeeded but should have failed`);
}

/** Waits (bounded) until `cond` holds; false when the bound ran out. */
export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs = 10_000, stepMs = 20): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < Math.ceil(timeoutMs / stepMs) + 1; i++) {
    if (await cond()) return true;
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  return cond();
}
