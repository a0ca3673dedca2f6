/** Control sockets left by processes that died are skipped and removed; live ones still answer. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ControlServer } from '../src/ctl/control-server.js';
import { ParamRegistry } from '../src/ctl/params.js';
import { STRIA_BIN } from './helpers/cluster.js';

const run = promisify(execFile);

async function deadPid(): Promise<number> {
  const p = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  await new Promise((r) => p.once('exit', r));
  return p.pid!;
}

test('lctl removes sockets of dead processes and of nobody listening, and still reads the live one', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'stria-stale-'));
  const reg = new ParamRegistry();
  reg.register('obdfilter.fs-OST0000.uuid', { get: () => 'fs-OST0000_UUID' });
  reg.addDevices(() => [{ type: 'obdfilter', name: 'fs-OST0000', uuid: 'fs-OST0000_UUID', status: 'UP', refcount: 0 }]);
  const live = await ControlServer.start(reg, { role: 'oss', dir });
  try {
    const dead = await deadPid();
    // a crashed daemon's socket, and a file at a live pid's name that nobody listens on
    await writeFile(join(dir, `mds-${dead}.sock`), '');
    await writeFile(join(dir, `client-${process.pid}-ffff0badc0ffee.sock`), '');
    await writeFile(join(dir, 'unrelated.txt'), 'kept');

    const env = { ...process.env, STRIA_RUN_DIR: dir };
    const dl = await run(process.execPath, [join(STRIA_BIN, '..', 'lctl.js'), 'dl'], { env, timeout: 30_000 });
    assert.equal(dl.stdout, '  0 UP obdfilter fs-OST0000 fs-OST0000_UUID 0\n');
    assert.equal(dl.stderr, '');
    const get = await run(process.execPath, [join(STRIA_BIN, '..', 'lctl.js'), 'get_param', '*.*.uuid'], { env, timeout: 30_000 });
    assert.equal(get.stdout, 'obdfilter.fs-OST0000.uuid=fs-OST0000_UUID\n');

    const left = (await readdir(dir)).sort();
    assert.deepEqual(left, [`oss-${process.pid}.sock`, 'unrelated.txt']);
  } finally {
    await live.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('a second server of the same role and id in one process is refused', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'stria-stale-'));
  const a = await ControlServer.start(new ParamRegistry(), { role: 'mgs', dir });
  try {
    await assert.rejects(ControlServer.start(new ParamRegistry(), { role: 'mgs', dir }), /already served/);
  } finally {
    await a.close();
    await rm(dir, { recursive: true, force: true });
  }
});
