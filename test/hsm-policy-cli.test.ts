/**
 * `stria policy` as a command: a bad config is one line naming the key and exit 1;
 * --scan seeds an empty index from the namespace once (files older than the engine's
 * changelog user); --dry-run --once prints what would be done and changes nothing; the
 * daemon cycles until SIGTERM and then stops cleanly.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { TestCluster, STRIA_BIN } from './helpers/cluster.js';
import { fidToString, type Fid } from '../src/common/fid.js';
import type { StriaClient } from '../src/client/client.js';

const run = promisify(execFile);
const cred = { uid: 0, gid: 0 };
let cluster: TestCluster;
let c: StriaClient;
let dir: string;
let old: Fid;

async function policy(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  try {
    const r = await run(process.execPath, [STRIA_BIN, 'policy', ...args], { env: { ...process.env, STRIA_RUN_DIR: cluster.runDir }, timeout: 60_000 });
    return { code: 0, out: r.stdout, err: r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, out: x.stdout, err: x.stderr };
  }
}

before(async () => {
  cluster = await TestCluster.start({ osts: 1, fsname: 'polcli' });
  c = await cluster.mount();
  dir = mkdtempSync(join(tmpdir(), 'stria-policy-cli-'));
  const d = await c.mkdir(c.root, 'old', { mode: 0o755, cred });
  const f = await c.create(d.fid, 'x.dat', { mode: 0o644, cred });
  await c.write(f, 0, Buffer.alloc(12345, 7));
  // the scan reads the OSTs without locks: the bytes must have left the write-back cache
  await c.fsync(f);
  await c.close(f);
  old = f.fid;
  writeFileSync(join(dir, 'ok.yaml'), 'cycle: 1s\narchive:\n  rules:\n    - name: everything\n      path: /old/**\n');
  writeFileSync(join(dir, 'bad.yaml'), 'cycle: fast\n');
});

after(async () => {
  await c?.unmount();
  await cluster?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('a bad configuration stops the command with the key at fault', async () => {
  const r = await policy('--config', join(dir, 'bad.yaml'), '--state-dir', join(dir, 'state-bad'), '--once', cluster.spec());
  assert.equal(r.code, 1);
  assert.match(r.err, /^stria: policy: policy config .*bad\.yaml: cycle: "fast" is not a duration .*\(BAD_POLICY_CONFIG\)$/m);
});

test('--scan --dry-run --once: files from before the engine are found and reported, nothing is done', async () => {
  const state = join(dir, 'state');
  const plain = await policy('--config', join(dir, 'ok.yaml'), '--state-dir', state, '--once', '--dry-run', cluster.spec());
  assert.equal(plain.code, 0, plain.err);
  assert.equal(plain.out, '', 'the changelog never mentioned the old file');

  const scanned = await policy('--config', join(dir, 'ok.yaml'), '--state-dir', state, '--once', '--dry-run', '--scan', cluster.spec());
  assert.equal(scanned.code, 0, scanned.err);
  assert.equal(scanned.out, `would archive ${fidToString(old)} /old/x.dat (12345 bytes, rule everything, archive 1)\n`);
  assert.match(scanned.err, /"msg":"initial namespace scan done"/);
  assert.equal((await c.hsm.state(old)).flags, 0, 'a dry run archives nothing');

  const again = await policy('--config', join(dir, 'ok.yaml'), '--state-dir', state, '--once', '--dry-run', '--scan', cluster.spec());
  assert.match(again.err, /"msg":"index not empty: initial scan skipped"/);
  assert.equal(again.out, scanned.out, 'the same changelog user and index are used again');
});

test('the daemon cycles until SIGTERM, then stops cleanly', async () => {
  const proc = spawn(process.execPath, [STRIA_BIN, 'policy', '--config', join(dir, 'ok.yaml'), '--state-dir', join(dir, 'state-daemon'), '--dry-run', cluster.spec()], {
    env: { ...process.env, STRIA_RUN_DIR: cluster.runDir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  proc.stderr.on('data', (b: Buffer) => (err += b.toString()));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  try {
    const deadline = Date.now() + 30_000;
    while ((err.match(/"msg":"policy cycle done"/g) ?? []).length < 2) {
      assert.ok(Date.now() < deadline, `two cycles never ran:\n${err}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    proc.kill('SIGTERM');
    assert.equal(await exited, 0);
    assert.match(err, /"msg":"policy stopped"/);
  } finally {
    proc.kill('SIGKILL');
  }
});
