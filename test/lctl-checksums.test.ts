/**
 * set_param osc.*.checksums really switches bulk checksums: with them on, a byte
 * corrupted in flight is refused by the OST; with them off it is silently stored.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Errno } from '../src/common/errno.js';
import { idifSeq } from '../src/common/fid.js';
import { silentLogger } from '../src/common/log.js';
import { Opc } from '../src/ptlrpc/opcodes.js';
import { RpcClient } from '../src/ptlrpc/client.js';
import { RpcServer } from '../src/ptlrpc/server.js';
import { ObjectStore } from '../src/oss/objstore.js';
import { createOstTarget } from '../src/oss/ost-target.js';
import { OstClient } from '../src/client/osc.js';
import { oscParams } from '../src/ctl/client-params.js';
import { ControlServer } from '../src/ctl/control-server.js';
import { ImportStats, OSC_OPCODES } from '../src/ctl/import-stats.js';
import { getParam, setParam, type Output } from '../src/ctl/lctl-params.js';
import { ParamRegistry } from '../src/ctl/params.js';
import { TcpProxy } from './helpers/tcp-proxy.js';

function capture(): Output & { stdout: string; stderr: string } {
  const o = { stdout: '', stderr: '', out: (s: string) => void (o.stdout += s), err: (s: string) => void (o.stderr += s) };
  return o;
}

test('osc.*.checksums set through lctl decides whether corrupted bulk data is caught', async () => {
  const root = await mkdtemp(join(tmpdir(), 'stria-cksum-'));
  const log = silentLogger();
  await mkdir(join(root, 'ost'));
  const store = await ObjectStore.open(join(root, 'ost'), { fsname: 'fs', index: 0 });
  const server = new RpcServer({ nid: { addr: '127.0.0.1', port: 0, net: 'tcp' } }, log);
  server.addTarget(createOstTarget(store, log));
  await server.listen();
  const proxy = await TcpProxy.start('127.0.0.1', server.port);
  const rpc = new RpcClient({ uuid: 'cksum-client' }, log);
  const runDir = join(root, 'run');
  let control: ControlServer | undefined;
  try {
    const imp = rpc.import({ nids: [{ addr: '127.0.0.1', port: proxy.port, net: 'tcp' }], target: store.name, connectOpc: Opc.OST_CONNECT, connectData: { fsname: 'fs' }, pingIntervalMs: 0 });
    const osc = new OstClient(0, imp, { maxRpcBytes: 4 << 20, checksums: false });
    const reg = new ParamRegistry();
    const dev = 'fs-OST0000-osc-ffff00c0ffee00';
    for (const [name, p] of oscParams(osc, dev, new ImportStats(imp, OSC_OPCODES), rpc.uuid)) reg.register(name, p);
    control = await ControlServer.start(reg, { role: 'client', id: 'ffff00c0ffee00', dir: runDir });

    const seq = idifSeq(0);
    const { first: oid } = await store.precreate(seq, 1);
    const marker = Buffer.from('CORRUPT-ME-PLEASE');
    const payload = Buffer.alloc(64 * 1024);
    for (let i = 0; i < payload.length; i += marker.length) marker.copy(payload, i);
    let armed = false;
    proxy.transform = (dir, chunk) => {
      if (!armed || dir !== 'c2s') return chunk;
      const at = chunk.indexOf(marker);
      if (at < 0) return chunk;
      const copy = Buffer.from(chunk);
      copy[at] ^= 0x20;
      armed = false;
      return copy;
    };
    const readBack = async () => {
      const out = Buffer.alloc(payload.length);
      const n = await osc.read(seq, oid, 0, payload.length, (off, data) => data.copy(out, off));
      return out.subarray(0, n);
    };

    let io = capture();
    assert.equal(await setParam([`osc.*.checksums=1`], {}, io, runDir), 0, io.stderr);
    assert.equal(io.stdout, `osc.${dev}.checksums=1\n`);
    assert.equal(osc.checksums, true);
    armed = true;
    await assert.rejects(osc.write(seq, oid, 0, [payload]), (e: { errno: number; code: string }) => e.errno === Errno.EBADMSG && e.code === 'BULK_CHECKSUM');
    assert.equal(armed, false, 'the corruption happened');
    assert.equal((await readBack()).length, 0, 'nothing was stored');

    io = capture();
    assert.equal(await setParam([`osc.${dev}.checksums=0`], {}, io, runDir), 0, io.stderr);
    io = capture();
    assert.equal(await getParam(['osc.*.checksums'], { noName: true }, io, runDir), 0);
    assert.equal(io.stdout, '0\n');
    armed = true;
    await osc.write(seq, oid, 0, [payload]);
    assert.equal(armed, false, 'the corruption happened');
    const stored = await readBack();
    assert.equal(stored.length, payload.length);
    assert.ok(!stored.equals(payload), 'without checksums the corrupted byte was stored');
    assert.equal(stored.filter((b, i) => b !== payload[i]).length, 1);

    io = capture();
    assert.equal(await setParam(['osc.*.checksums=maybe'], {}, io, runDir), Errno.EINVAL);
    assert.match(io.stderr, /Invalid argument/);
    assert.equal(osc.checksums, false, 'a bad value changed nothing');
  } finally {
    await control?.close();
    await rpc.close();
    await proxy.close();
    await server.close();
    await store.close();
    await rm(root, { recursive: true, force: true });
  }
});
