/**
 * `stria up --mount M --cache-dir C` gives the mount a local disk cache, as `stria mount`
 * does; the cache flags without a mount, or with bad values, are refused before anything
 * starts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { STRIA_BIN, freePortRange } from './helpers/cluster.js';
import { LineChild } from './helpers/child-process.js';
import { mountSkip } from './helpers/two-mounts.js';
import { LOCK_FILE } from '../src/client/cache/ssd-lock.js';

const WAIT_MS = 60_000;

function refused(args: string[]): { code: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [STRIA_BIN, ...args], { encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, stderr: r.stderr };
}

test('the cache flags need --mount, and bad values are refused before anything starts', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'stria-up-cache-bad-'));
  try {
    const port = String(await freePortRange(3));
    const base = ['up', '--dir', join(dir, 'data'), '--mgs-port', port];
    let r = refused([...base, '--cache-dir', join(dir, 'c')]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /--cache-dir.*give --mount too/);
    r = refused([...base, '--mount', join(dir, 'm'), '--cache-dir', join(dir, 'c'), '--free-space-ratio', '2']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /--free-space-ratio needs a fraction/);
    r = refused([...base, '--mount', join(dir, 'm'), '--cache-size', '1G']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /need --cache-dir/);
    assert.ok(!existsSync(join(dir, 'data')), 'nothing was created');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('stria up --mount --cache-dir mounts with the disk cache in that directory', { skip: mountSkip, timeout: 120_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'stria-up-cache-'));
  const mnt = join(dir, 'mnt');
  const cache = join(dir, 'cache');
  await mkdir(mnt);
  const port = await freePortRange(3);
  const up = new LineChild([process.execPath, STRIA_BIN, 'up', '--dir', join(dir, 'data'), '--osts', '1', '--mgs-port', String(port), '--mount', mnt, '--cache-dir', cache, '--cache-size', '64M'], 'stria up');
  try {
    const mounted = await waitForLog(up, 'mounted');
    assert.deepEqual(mounted.cacheDirs, [cache], 'the mount got the cache directory');
    await waitForLog(up, 'filesystem ready');
    assert.ok(existsSync(join(cache, LOCK_FILE)), 'the disk cache holds its directory');
    assert.ok(readFileSync('/proc/mounts', 'utf8').includes(` ${mnt} `), 'mounted');
  } finally {
    up.signal('SIGTERM');
    assert.equal(await up.exited, 0, up.errors);
    await rm(dir, { recursive: true, force: true });
  }
  assert.ok(!readFileSync('/proc/mounts', 'utf8').includes(` ${mnt} `), 'unmounted when stria up stopped');
});

async function waitForLog(child: LineChild, msgPrefix: string): Promise<Record<string, unknown>> {
  const deadline = Date.now() + WAIT_MS;
  for (let i = 0; i < 10_000 && Date.now() < deadline; i++) {
    for (const l of child.lines) {
      try {
        const rec = JSON.parse(l) as Record<string, unknown>;
        if (typeof rec.msg === 'string' && rec.msg.startsWith(msgPrefix)) return rec;
      } catch {
        // not a log line
      }
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no '${msgPrefix}' from stria up: ${child.lines.slice(-10).join('\n')} ${child.errors}`);
}
