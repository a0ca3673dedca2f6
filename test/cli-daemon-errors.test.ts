/** Daemons refuse bad start-up conditions with one line and a non-zero exit, and stop cleanly on signals. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { STRIA_BIN, freePort, freePortRange } from './helpers/cluster.js';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(args: string[], opts: { killAfterLine?: RegExp; signal?: NodeJS.Signals; timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [STRIA_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, STRIA_LOG_LEVEL: 'info' } });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`timed out: stria ${args.join(' ')}\n${stdout}\n${stderr}`));
    }, opts.timeoutMs ?? 20_000);
    p.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (opts.killAfterLine && opts.killAfterLine.test(stdout)) {
        opts.killAfterLine = undefined;
        p.kill(opts.signal ?? 'SIGTERM');
      }
    });
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

function assertOneLineError(r: Run, pattern: RegExp): void {
  assert.notEqual(r.code, 0, 'non-zero exit');
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line on stderr, got:\n${r.stderr}`);
  assert.match(lines[0]!, pattern);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
}

test('unknown flags and bad values are refused', async () => {
  assertOneLineError(await run(['mgs', '--dir', '/x', '--bogus']), /unknown option '--bogus'/);
  assertOneLineError(await run(['mds', '--fsname', 'waytoolongname', '--mgs', '127.0.0.1@tcp', '--store', '/x']), /filesystem name/);
  assertOneLineError(await run(['mds', '--fsname', 'fs', '--mgs', 'not a nid!', '--store', '/x']), /invalid NID/);
  assertOneLineError(await run(['mds', '--fsname', 'fs', '--mgs', '127.0.0.1@tcp', '--store', '/x', '--stripe-size', '1000']), /multiple of 64 KiB/);
  assertOneLineError(await run(['oss', '--fsname', 'fs', '--mgs', '127.0.0.1@tcp', '--ost', 'nodir']), /INDEX:DIR/);
});

test('a missing data directory is a one-line error', async () => {
  assertOneLineError(await run(['mgs', '--dir', join(tmpdir(), 'stria-does-not-exist-xyz'), '--listen', '127.0.0.1:0@tcp']), /does not exist/);
});

test('a busy port is a one-line error', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'stria-cli-'));
  const blocker = createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
  const port = (blocker.address() as { port: number }).port;
  try {
    assertOneLineError(await run(['mgs', '--dir', dir, '--listen', `127.0.0.1:${port}@tcp`]), /already in use/);
  } finally {
    blocker.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('a directory formatted for another target is refused', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'stria-cli-'));
  try {
    await mkdir(join(dir, 'mgs'));
    await mkdir(join(dir, 'ost'));
    const port = await freePort();
    const mgs = spawn(process.execPath, [STRIA_BIN, 'mgs', '--dir', join(dir, 'mgs'), '--listen', `127.0.0.1:${port}@tcp`], { stdio: 'ignore' });
    try {
      const first = await run(['oss', '--fsname', 'fsa', '--mgs', `127.0.0.1:${port}@tcp`, '--ost', `0:${join(dir, 'ost')}`, '--listen', '127.0.0.1:0@tcp'], { killAfterLine: /OST started/ });
      assert.equal(first.code, 0, `first start formats the directory and stops cleanly on SIGTERM:\n${first.stderr}`);
      assertOneLineError(
        await run(['oss', '--fsname', 'fsb', '--mgs', `127.0.0.1:${port}@tcp`, '--ost', `0:${join(dir, 'ost')}`, '--listen', '127.0.0.1:0@tcp']),
        /holds fsa-OST0000/,
      );
      await writeFile(join(dir, 'junk'), 'x');
      await mkdir(join(dir, 'notarget'));
      await writeFile(join(dir, 'notarget', 'file'), 'x');
      assertOneLineError(
        await run(['oss', '--fsname', 'fsa', '--mgs', `127.0.0.1:${port}@tcp`, '--ost', `1:${join(dir, 'notarget')}`, '--listen', '127.0.0.1:0@tcp']),
        /NOT_A_TARGET|not .*target/i,
      );
    } finally {
      mgs.kill('SIGKILL');
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('stria up starts every service and stops cleanly on SIGINT', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'stria-up-'));
  try {
    const port = await freePortRange(3);
    const r = await run(['up', '--dir', dir, '--osts', '2', '--mgs-port', String(port)], { killAfterLine: /filesystem ready/, signal: 'SIGINT', timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { msg: string });
    assert.ok(lines.some((l) => l.msg === 'MGS started'));
    assert.equal(lines.filter((l) => l.msg === 'OST started').length, 2);
    assert.ok(lines.some((l) => l.msg === 'MDT started'));
    assert.ok(lines.some((l) => l.msg === 'up stopped'), 'logged a clean stop');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
