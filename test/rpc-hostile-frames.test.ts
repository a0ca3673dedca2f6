/**
 * Hostile input: 10,000+ fuzzed frames (random bytes, truncations, wrong magic, absurd
 * lengths, wrong field types, unknown opcodes, mutated valid frames) against a live
 * RpcServer. The server must not crash, must close only the offending connections with a
 * warn line naming the peer, keep its memory bounded, and keep serving a normal client
 * correctly.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { pino } from 'pino';
import { Errno, err } from '../src/common/errno.js';
import { silentLogger } from '../src/common/log.js';
import type { Nid } from '../src/lnet/nid.js';
import { bulkChecksum } from '../src/ptlrpc/checksum.js';
import { RpcClient } from '../src/ptlrpc/client.js';
import { MsgType, Opc } from '../src/ptlrpc/opcodes.js';
import { RpcServer } from '../src/ptlrpc/server.js';
import type { MsgHeader, RequestContext, RequestHandler, TargetService } from '../src/ptlrpc/types.js';
import { fuzzServer } from './helpers/frame-fuzzer.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

interface LogLine {
  level: number;
  msg: string;
  peer?: string;
  code?: string;
}

/** A small real target: validated key/value ops and a checksummed bulk write. */
class KvTarget implements TargetService {
  readonly name = 'fuzz-OST0000';
  readonly handlers: ReadonlyMap<number, RequestHandler>;
  /** handler invocations, to know the fuzzer got past the handle check */
  calls = 0;
  private readonly store = new Map<string, string>();
  private transno = 0;

  constructor() {
    const counted = (h: RequestHandler): RequestHandler => (ctx) => {
      this.calls++;
      return h(ctx);
    };
    this.handlers = new Map<number, RequestHandler>([
      [Opc.OST_SET_INFO, counted((ctx) => this.set(ctx))],
      [Opc.OST_GET_INFO, counted((ctx) => this.get(ctx))],
      [Opc.OST_WRITE, counted((ctx) => ({ body: { length: ctx.bulk?.length ?? 0, crc: bulkChecksum(ctx.bulk) } }))],
    ]);
  }

  private set(ctx: RequestContext): { body: unknown; transno: number } {
    const b = ctx.body as Record<string, unknown> | undefined;
    if (typeof b !== 'object' || b === null || typeof b.key !== 'string' || typeof b.value !== 'string' || b.key.length > 64) {
      throw err('EINVAL', 'set needs { key: string(<=64), value: string }', 'BAD_BODY');
    }
    if (this.store.size >= 1000 && !this.store.has(b.key)) throw err('ENOSPC', 'store full', 'STORE_FULL');
    this.store.set(b.key, b.value);
    return { body: { ok: true }, transno: ++this.transno };
  }

  private get(ctx: RequestContext): { body: unknown } {
    const key = (ctx.body as Record<string, unknown> | undefined)?.key;
    if (typeof key !== 'string') throw err('EINVAL', 'get needs { key: string }', 'BAD_BODY');
    const value = this.store.get(key);
    if (value === undefined) throw err('ENOENT', `no key '${key}'`, 'NO_SUCH_KEY');
    return { body: { value } };
  }
}

const lines: LogLine[] = [];
const serverLog = pino({ level: 'warn' }, { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) });
let server: RpcServer;
let kv: KvTarget;
let nid: Nid;

before(async () => {
  server = new RpcServer({ nid: { addr: '127.0.0.1', port: 0, net: 'tcp' } }, serverLog);
  kv = new KvTarget();
  server.addTarget(kv);
  await server.listen();
  nid = { addr: '127.0.0.1', port: server.port, net: 'tcp' };
});

after(async () => {
  await server.close();
});

function memory(): number {
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

test('the server survives 10,000 hostile frames and keeps answering correctly', async () => {
  const client = new RpcClient({ uuid: 'honest-client' }, silentLogger());
  const imp = client.import({ nids: [nid], target: 'fuzz-OST0000', connectOpc: Opc.OST_CONNECT, pingIntervalMs: 0 });
  await imp.connect();
  await imp.request(Opc.OST_SET_INFO, { key: 'before', value: 'fuzzing' });

  gc();
  const baseline = memory();
  let peak = baseline;
  const sampler = setInterval(() => (peak = Math.max(peak, memory())), 20);

  const valid: MsgHeader[] = [
    { v: 1, t: MsgType.REQUEST, opc: Opc.OBD_PING, xid: 1 },
    { v: 1, t: MsgType.REQUEST, opc: Opc.OST_CONNECT, xid: 1, b: { target: 'fuzz-OST0000', uuid: 'fuzzer', data: { x: 1 } } },
    { v: 1, t: MsgType.REQUEST, opc: Opc.OST_SET_INFO, xid: 1, h: 1, cc: 1, b: { key: 'k', value: 'v' } },
    { v: 1, t: MsgType.REQUEST, opc: Opc.OST_WRITE, xid: 1, h: 2, ck: 12345, ckr: true },
    { v: 1, t: MsgType.REQUEST, opc: Opc.OST_DISCONNECT, xid: 1, h: 3 },
    { v: 1, t: MsgType.REPLY, opc: Opc.LDLM_BL_CALLBACK, xid: 5, st: 0, lc: 3 },
  ];
  let result: { sent: number; connections: number };
  try {
    result = await fuzzServer('127.0.0.1', server.port, { frames: 10_000, seed: 20240611, validHeaders: valid });
  } finally {
    clearInterval(sampler);
  }
  assert.equal(result.sent, 10_000);
  assert.ok(result.connections > 1000, `the server closed the connection after bad frames (${result.connections} connections)`);

  // every closed connection was reported with its peer; nothing crashed or logged an error
  const closes = lines.filter((l) => l.msg === 'closing connection after a malformed frame');
  assert.ok(closes.length > 1000, `${closes.length} malformed-frame warnings`);
  assert.ok(closes.every((l) => typeof l.peer === 'string' && /^127\.0\.0\.1:\d+$/.test(l.peer)));
  assert.ok(new Set(closes.map((l) => l.code)).size >= 3, 'several kinds of frame errors were hit');
  assert.ok(kv.calls > 100, `the handlers were reached with fuzzed requests (${kv.calls} calls)`);
  assert.deepEqual(lines.filter((l) => l.level >= 50), [], 'no error-level log lines');

  // the honest client, connected all along, still gets correct answers
  assert.equal(imp.state, 'FULL');
  assert.deepEqual((await imp.request(Opc.OST_GET_INFO, { key: 'before' })).body, { value: 'fuzzing' });
  await imp.request(Opc.OST_SET_INFO, { key: 'after', value: 'still fine' });
  assert.deepEqual((await imp.request(Opc.OST_GET_INFO, { key: 'after' })).body, { value: 'still fine' });
  const bulk = Buffer.alloc(256 * 1024, 0x5a);
  assert.deepEqual((await imp.request(Opc.OST_WRITE, {}, { bulk, checksum: true })).body, { length: bulk.length, crc: bulkChecksum(bulk) });
  await assert.rejects(imp.request(Opc.OST_GET_INFO, { key: 42 }), { errno: Errno.EINVAL, code: 'BAD_BODY' });
  assert.equal(imp.stats.reconnects, 0);

  // and a newcomer connects normally
  const other = new RpcClient({ uuid: 'late-client' }, silentLogger());
  const imp2 = other.import({ nids: [nid], target: 'fuzz-OST0000', connectOpc: Opc.OST_CONNECT, pingIntervalMs: 0 });
  assert.deepEqual((await imp2.request(Opc.OST_GET_INFO, { key: 'after' })).body, { value: 'still fine' });
  await other.close();
  await client.close();

  // memory: bounded during the run, and back near the baseline afterwards
  gc();
  const MiB = 1024 * 1024;
  assert.ok(peak - baseline < 256 * MiB, `peak memory grew by ${Math.round((peak - baseline) / MiB)} MiB`);
  assert.ok(memory() - baseline < 32 * MiB, `memory after the run grew by ${Math.round((memory() - baseline) / MiB)} MiB`);
  assert.ok(server.exports().length <= 3, `${server.exports().length} exports left`);
});

test('a malformed frame closes only its own connection, with a warn line naming the peer', async () => {
  const client = new RpcClient({ uuid: 'bystander' }, silentLogger());
  const imp = client.import({ nids: [nid], target: 'fuzz-OST0000', connectOpc: Opc.OST_CONNECT, pingIntervalMs: 0 });
  await imp.connect();
  const before = lines.length;
  const raw = connect({ host: '127.0.0.1', port: server.port });
  await new Promise<void>((resolve, reject) => {
    raw.once('connect', resolve);
    raw.once('error', reject);
  });
  const local = `${raw.localAddress}:${raw.localPort}`;
  const closed = new Promise<void>((resolve) => raw.once('close', () => resolve()));
  raw.on('error', () => undefined);
  raw.write('GET / HTTP/1.1\r\nHost: stria\r\n\r\n');
  await closed;
  const warn = lines.slice(before).find((l) => l.msg === 'closing connection after a malformed frame');
  assert.ok(warn, 'a warn line was logged');
  assert.equal(warn.level, 40);
  assert.equal(warn.peer, local);
  assert.equal(warn.code, 'BAD_MAGIC');
  await imp.ping();
  assert.equal(imp.state, 'FULL');
  await client.close();
});
