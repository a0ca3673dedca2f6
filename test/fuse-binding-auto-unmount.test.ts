/** Native FUSE binding: a daemon killed with SIGKILL leaves no dead mount when autoUnmount is set. */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isMounted, makeMountpoint, run, waitFor } from './helpers/fuse-mount.js';

const CHILD = join(fileURLToPath(new URL('.', import.meta.url)), 'helpers', 'fuse-child.js');
const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups) await c();
});

async function startChild(dir: string, auto: boolean): Promise<ChildProcess> {
  const child = spawn(process.execPath, [CHILD, dir, ...(auto ? ['auto'] : [])], { stdio: ['ignore', 'pipe', 'pipe'] });
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    if (await isMounted(dir)) await run(['umount', '-l', dir], { timeoutMs: 10_000 });
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const up = await waitFor(() => out.includes('mounted') || child.exitCode !== null, 20_000);
  assert.ok(up && out.includes('mounted'), `child did not mount: ${out}`);
  return child;
}

async function kill9(child: ChildProcess): Promise<void> {
  const gone = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGKILL');
  await gone;
}

test('kill -9 of a daemon mounted with autoUnmount: the mount goes away', { timeout: 60_000 }, async () => {
  const { base, dir } = await makeMountpoint();
  cleanups.push(() => rm(base, { recursive: true, force: true }));
  const child = await startChild(dir, true);
  assert.equal((await run(['cat', join(dir, 'hello')])).stdout, 'hi from the child\n');
  await kill9(child);
  assert.ok(await waitFor(async () => !(await isMounted(dir)), 10_000), 'the mount is still there');
  const st = await run(['stat', '-c', '%F', dir]);
  assert.equal(st.stdout.trim(), 'directory'); // the plain directory again, not a dead mount
});

test('without autoUnmount the same kill leaves a dead mount (what the option prevents)', { timeout: 60_000 }, async () => {
  const { base, dir } = await makeMountpoint();
  cleanups.push(() => rm(base, { recursive: true, force: true }));
  const child = await startChild(dir, false);
  await kill9(child);
  assert.equal(await isMounted(dir), true);
  const st = await run(['stat', dir]);
  assert.notEqual(st.code, 0);
  assert.match(st.stderr, /Transport endpoint is not connected/);
  await run(['umount', '-l', dir], { timeoutMs: 10_000 });
  assert.equal(await isMounted(dir), false);
});
