/** lctl list_param: glob patterns per component over every process's parameters, -F, -D, -R. */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ControlServer } from '../src/ctl/control-server.js';
import { ParamRegistry } from '../src/ctl/params.js';
import { STRIA_BIN } from './helpers/cluster.js';

const run = promisify(execFile);
let dir: string;
const servers: ControlServer[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stria-list-'));
  const v = (s: string) => ({ get: () => s });
  const rw = { get: () => '1', set: () => undefined };
  // two "processes": an OSS and a client mount, as separate sockets
  const oss = new ParamRegistry();
  for (const ost of ['fs-OST0000', 'fs-OST0001']) {
    oss.register(`obdfilter.${ost}.stats`, { get: () => 'x\n', set: () => undefined });
    oss.register(`obdfilter.${ost}.kbytesfree`, v('1'));
  }
  const client = new ParamRegistry();
  for (const ost of ['fs-OST0000', 'fs-OST0001', 'fs-OST000a']) {
    client.register(`osc.${ost}-osc-ffff00.max_rpcs_in_flight`, rw);
    client.register(`osc.${ost}-osc-ffff00.stats`, { get: () => 'x\n', set: () => undefined });
    client.register(`osc.${ost}-osc-ffff00.ost_conn_uuid`, v('127.0.0.1@tcp'));
  }
  client.register('llite.fs-ffff00.stats', { get: () => 'x\n', set: () => undefined });
  servers.push(await ControlServer.start(oss, { role: 'oss', dir }));
  servers.push(await ControlServer.start(client, { role: 'client', id: 'ffff00', dir }));
});

after(async () => {
  for (const s of servers) await s.close();
  await rm(dir, { recursive: true, force: true });
});

async function lctl(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [join(STRIA_BIN, '..', 'lctl.js'), ...args], { env: { ...process.env, STRIA_RUN_DIR: dir }, timeout: 30_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}

test('patterns match per component across every process, sorted', async () => {
  assert.equal((await lctl('list_param', '*')).stdout, 'llite\nobdfilter\nosc\n');
  assert.equal((await lctl('list_param', '*.*.stats')).stdout, [
    'llite.fs-ffff00.stats',
    'obdfilter.fs-OST0000.stats',
    'obdfilter.fs-OST0001.stats',
    'osc.fs-OST0000-osc-ffff00.stats',
    'osc.fs-OST0001-osc-ffff00.stats',
    'osc.fs-OST000a-osc-ffff00.stats',
    '',
  ].join('\n'));
  assert.equal((await lctl('list_param', 'osc.*OST000[0-9]*.max_*')).stdout, 'osc.fs-OST0000-osc-ffff00.max_rpcs_in_flight\nosc.fs-OST0001-osc-ffff00.max_rpcs_in_flight\n');
  assert.equal((await lctl('list_param', 'osc.fs-OST000?-osc-*.ost_conn_uuid')).stdout.split('\n').length - 1, 3);
  assert.equal((await lctl('list_param', 'obdfilter.*')).stdout, 'obdfilter.fs-OST0000\nobdfilter.fs-OST0001\n');
});

test('-F marks directories with / and writable parameters with =; -D lists directories only', async () => {
  assert.equal((await lctl('list_param', '-F', 'osc.fs-OST0000-osc-ffff00.*')).stdout, [
    'osc.fs-OST0000-osc-ffff00.max_rpcs_in_flight=',
    'osc.fs-OST0000-osc-ffff00.ost_conn_uuid',
    'osc.fs-OST0000-osc-ffff00.stats=',
    '',
  ].join('\n'));
  assert.equal((await lctl('list_param', '-F', 'obdfilter.*')).stdout, 'obdfilter.fs-OST0000/\nobdfilter.fs-OST0001/\n');
  assert.equal((await lctl('list_param', '-D', '*.*')).stdout.split('\n').filter(Boolean).length, 6);
});

test('-R lists everything below the matched directories', async () => {
  assert.equal((await lctl('list_param', '-R', 'obdfilter')).stdout, [
    'obdfilter',
    'obdfilter.fs-OST0000',
    'obdfilter.fs-OST0000.kbytesfree',
    'obdfilter.fs-OST0000.stats',
    'obdfilter.fs-OST0001',
    'obdfilter.fs-OST0001.kbytesfree',
    'obdfilter.fs-OST0001.stats',
    '',
  ].join('\n'));
});

test('a pattern that matches nothing is an error with status 2', async () => {
  const r = await lctl('list_param', 'mdc.*');
  assert.equal(r.code, 2);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr, "error: list_param: param_path 'mdc.*': No such file or directory\nerror: list_param: listing 'mdc.*': No such file or directory\n");
});
