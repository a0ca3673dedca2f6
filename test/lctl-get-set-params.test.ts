/**
 * lctl get_param / set_param against a process's control socket: Lustre's output
 * formats, Lustre's error lines and exit statuses, bad values refused with nothing changed.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ControlServer } from '../src/ctl/control-server.js';
import { ParamRegistry } from '../src/ctl/params.js';
import { checkRange, parseUint } from '../src/ctl/values.js';
import { STRIA_BIN } from './helpers/cluster.js';

const run = promisify(execFile);
const LCTL = join(STRIA_BIN, '..', 'lctl.js');
let dir: string;
let server: ControlServer;
let rif = 8;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stria-lctl-'));
  const reg = new ParamRegistry();
  reg.register('osc.fs-OST0000-osc-ffff00.max_rpcs_in_flight', {
    get: () => String(rif),
    set: (v) => {
      rif = checkRange(parseUint(v, 'max_rpcs_in_flight'), 1, 512, 'max_rpcs_in_flight');
    },
  });
  reg.register('osc.fs-OST0000-osc-ffff00.stats', { get: () => 'snapshot_time             1.000000000 secs.nsecs\nread_bytes                1 samples [bytes] 4 4 4 16\n' });
  reg.register('osc.fs-OST0000-osc-ffff00.uuid', { get: () => 'client-uuid-1' });
  reg.register('osc.fs-OST0000-osc-ffff00.empty', { get: () => '' });
  reg.register('osc.fs-OST0000-osc-ffff00.broken', {
    get: () => {
      throw Object.assign(new Error('statfs failed'), { code: 'EIO' });
    },
  });
  server = await ControlServer.start(reg, { role: 'oss', dir });
});

after(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

async function lctl(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [LCTL, ...args], { env: { ...process.env, STRIA_RUN_DIR: dir }, timeout: 30_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}

test('one-line values print as name=value, multi-line values as name= then the lines', async () => {
  const r = await lctl('get_param', 'osc.*.max_rpcs_in_flight', 'osc.*.stats', 'osc.*.uuid', 'osc.*.empty');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(
    r.stdout,
    'osc.fs-OST0000-osc-ffff00.max_rpcs_in_flight=8\n' +
      'osc.fs-OST0000-osc-ffff00.stats=\nsnapshot_time             1.000000000 secs.nsecs\nread_bytes                1 samples [bytes] 4 4 4 16\n' +
      'osc.fs-OST0000-osc-ffff00.uuid=client-uuid-1\n',
  );
});

test('-n prints values only, -N names only, -F marks writable parameters and directories', async () => {
  assert.equal((await lctl('get_param', '-n', 'osc.*.max_rpcs_in_flight', 'osc.*.uuid')).stdout, '8\nclient-uuid-1\n');
  assert.equal((await lctl('get_param', '-N', 'osc.*.m*')).stdout, 'osc.fs-OST0000-osc-ffff00.max_rpcs_in_flight\n');
  assert.equal((await lctl('get_param', '-N', '-F', 'osc.*')).stdout, 'osc.fs-OST0000-osc-ffff00/\n');
  assert.equal((await lctl('get_param', '-F', 'osc.*.max_rpcs_in_flight')).stdout, 'osc.fs-OST0000-osc-ffff00.max_rpcs_in_flight==8\n');
  assert.equal((await lctl('get_param', 'osc/*/uuid')).stdout, 'osc.fs-OST0000-osc-ffff00.uuid=client-uuid-1\n', 'slashes work as separators');
});

test('an unknown parameter is ENOENT, with Lustre\'s message and exit status 2; the others still print', async () => {
  const r = await lctl('get_param', 'osc.*.nosuch', 'osc.*.uuid');
  assert.equal(r.code, 2);
  assert.equal(r.stderr, "error: get_param: param_path 'osc.*.nosuch': No such file or directory\n");
  assert.equal(r.stdout, 'osc.fs-OST0000-osc-ffff00.uuid=client-uuid-1\n');
});

test('a parameter whose read fails is reported and the exit status is its errno', async () => {
  const r = await lctl('get_param', 'osc.*.broken');
  assert.equal(r.code, 5);
  assert.match(r.stderr, /^error: read_param: 'osc\.fs-OST0000-osc-ffff00\.broken': Input\/output error \(statfs failed\)\n$/);
});

test('set_param changes the value and prints name=value; -n is silent', async () => {
  let r = await lctl('set_param', 'osc.*.max_rpcs_in_flight=16');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'osc.fs-OST0000-osc-ffff00.max_rpcs_in_flight=16\n');
  assert.equal(rif, 16);
  r = await lctl('set_param', '-n', 'osc.fs-OST0000-osc-ffff00.max_rpcs_in_flight', '12');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, '');
  assert.equal(rif, 12);
});

test('bad values are refused with ERANGE or EINVAL and change nothing', async () => {
  for (const [value, code, text] of [
    ['0', 34, 'Numerical result out of range'],
    ['9999', 34, 'Numerical result out of range'],
    ['abc', 22, 'Invalid argument'],
    ['-1', 22, 'Invalid argument'],
  ] as const) {
    const r = await lctl('set_param', `osc.*.max_rpcs_in_flight=${value}`);
    assert.equal(r.code, code, `${value}: ${r.stderr}`);
    assert.equal(r.stdout, '');
    const lines = r.stderr.trimEnd().split('\n');
    assert.match(lines[0]!, new RegExp(`^error: set_param: setting osc\\.fs-OST0000-osc-ffff00\\.max_rpcs_in_flight=${value}: ${text} \\(.*max_rpcs_in_flight.*\\)$`));
    assert.equal(lines[1], `error: set_param: setting 'osc.*.max_rpcs_in_flight'='${value}': ${text}`);
    assert.equal(rif, 12, `${value} left the value alone`);
  }
});

test('set_param of a read-only or unknown parameter, an empty value, and -P are refused', async () => {
  let r = await lctl('set_param', 'osc.*.uuid=x');
  assert.equal(r.code, 13);
  assert.match(r.stderr, /setting osc\.fs-OST0000-osc-ffff00\.uuid=x: Permission denied/);
  r = await lctl('set_param', 'osc.*.nosuch=1');
  assert.equal(r.code, 2);
  assert.equal(r.stderr, "error: set_param: param_path 'osc.*.nosuch': No such file or directory\nerror: set_param: setting 'osc.*.nosuch'='1': No such file or directory\n");
  r = await lctl('set_param', 'osc.*.max_rpcs_in_flight=');
  assert.equal(r.code, 22);
  assert.equal(r.stderr, 'error: set_param: setting osc.*.max_rpcs_in_flight: Invalid argument\n');
  r = await lctl('set_param', '-P', 'osc.*.max_rpcs_in_flight=4');
  assert.equal(r.code, 95);
  assert.match(r.stderr, /-P .*not supported/);
  assert.equal(rif, 12);
});

test('the control socket is private to its owner and removed on close', async () => {
  const st = await stat(server.path);
  assert.ok(st.isSocket());
  assert.equal(st.mode & 0o777, 0o600);
  assert.equal((await stat(dir)).mode & 0o777, 0o700);
  const reg = new ParamRegistry();
  reg.register('llite.fs-ffff01.uuid', { get: () => 'u' });
  const extra = await ControlServer.start(reg, { role: 'client', id: 'ffff01', dir });
  assert.equal((await lctl('get_param', 'llite.*.uuid')).stdout, 'llite.fs-ffff01.uuid=u\n');
  await extra.close();
  await assert.rejects(stat(extra.path), { code: 'ENOENT' });
  assert.equal((await lctl('get_param', 'llite.*.uuid')).code, 2);
});
