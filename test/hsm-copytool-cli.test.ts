/**
 * `stria copytool` refuses bad command lines and unusable archives with one line and exit
 * status 1, before it mounts anything: a missing or doubled backend, bad URLs, ids, sizes
 * and credentials, a missing directory, a bucket that does not exist.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { STRIA_BIN } from './helpers/cluster.js';
import { startS3Server, type TestS3Server } from './helpers/s3-server.js';

// no MGS answers here: every case must fail before the mount
const SPEC = '127.0.0.1:1@tcp:/testfs';

let s3: TestS3Server;
let dir: string;

before(async () => {
  s3 = await startS3Server('stria-cli');
  dir = await mkdtemp(join(tmpdir(), 'stria-ct-cli-'));
});
after(async () => {
  await s3?.stop();
  await rm(dir, { recursive: true, force: true });
});

function copytool(...args: string[]): Promise<{ code: number | null; stderr: string; stdout: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [STRIA_BIN, 'copytool', ...args], {
      env: { ...process.env, STRIA_RUN_DIR: join(dir, 'run'), AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' },
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 60_000,
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.once('error', reject);
    p.once('exit', (code) => resolve({ code, stderr, stdout }));
  });
}

async function refused(args: string[], message: RegExp): Promise<void> {
  const r = await copytool(...args);
  assert.equal(r.code, 1, `exit 1 for ${args.join(' ')}: ${r.stderr}`);
  assert.match(r.stderr, message);
  assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
}

test('a backend must be given, exactly one', async () => {
  await refused(['--archive', '1', SPEC], /^stria: copytool: give one of --s3 URL or --posix DIR$/m);
  await refused(['--archive', '1', '--s3', s3.url, '--posix', dir, SPEC], /give one of --s3 URL or --posix DIR/);
});

test('bad values are refused with the reason', async () => {
  await refused(['--posix', dir, SPEC], /required option '--archive <id>'/);
  await refused(['--archive', '0', '--posix', dir, SPEC], /archive id '0': must be 1\.\.4294967295/);
  await refused(['--archive', 'x', '--posix', dir, SPEC], /archive id 'x'/);
  await refused(['--archive', '1', '--s3', 'ftp://h/b', SPEC], /unsupported scheme 'ftp:'/);
  await refused(['--archive', '1', '--s3', 'http://h:9000', SPEC], /names no bucket/);
  await refused(['--archive', '1', '--s3', 'http://k:s@h:9000/bucket', SPEC], /credentials do not go in the URL/);
  await refused(['--archive', '1', '--s3', s3.url, '--part-size', '1M', SPEC], /part size 1048576: must be 5 MiB\.\.5 GiB/);
  await refused(['--archive', '1', '--s3', s3.url, '--workers', '0', SPEC], /--workers '0': must be 1\.\.256/);
  await refused(['--archive', '1', '--s3', s3.url, '--access-key', 'A', SPEC], /--access-key and --secret-key go together/);
  await refused(['--archive', '1', '--posix', dir, '--region', 'eu-west-1', SPEC], /S3 options given with --posix/);
  await refused(['--archive', '1', '--posix', dir, '127.0.0.1:1@tcp:/testfs/sub'], /without a path/);
  await refused(['--archive', '1', '--posix', dir, 'nonsense'], /is not MGSNID:\/FSNAME/);
});

test('an archive that cannot be used stops the start-up with its code', async () => {
  await refused(['--archive', '1', '--posix', join(dir, 'missing'), SPEC], /^stria: copytool: archive directory .*missing.* \(BAD_ARCHIVE_DIR\)$/m);
  await refused(['--archive', '1', '--s3', `${s3.endpoint}/no-such-bucket`, SPEC], /bucket no-such-bucket does not exist .*--create-bucket.* \(NO_BUCKET\)/);
  await refused(['--archive', '1', '--s3', s3.url, '--access-key', 'WHO', '--secret-key', 'WRONG', SPEC], /access denied .*\(S3_ACCESS_DENIED\)/);
});

test('--help describes the options', async () => {
  const p = spawn(process.execPath, [STRIA_BIN, 'copytool', '--help'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  p.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise((r) => p.once('exit', r));
  assert.equal(code, 0);
  for (const o of ['--archive <id>', '--s3 <url>', '--posix <dir>', '--workers <n>', '--part-size <size>', '--queue-size <n>', '--region <region>', '--access-key <id>', '--secret-key <key>', '--path-style', '--no-path-style', '--create-bucket']) {
    assert.ok(out.includes(o), `--help mentions ${o}`);
  }
});
