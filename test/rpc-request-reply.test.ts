/**
 * Request/reply over a real RpcServer and RpcClient on loopback: connect data, bulk both
 * ways (checksummed), checksum corruption caught in both directions, error propagation,
 * unknown opcodes and targets, transno/last_committed, callbacks from the server over
 * the client's own connection, connection sharing, DISCONNECT on close, listen errors.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { Errno, err, StriaError } from '../src/common/errno.js';
import { silentLogger, type Logger } from '../src/common/log.js';
import type { Nid } from '../src/lnet/nid.js';
import { bulkChecksum } from '../src/ptlrpc/checksum.js';
import { RpcClient } from '../src/ptlrpc/client.js';
import { Opc } from '../src/ptlrpc/opcodes.js';
import { RpcServer } from '../src/ptlrpc/server.js';
import type { RequestContext, RequestHandler, ServerExport, TargetService } from '../src/ptlrpc/types.js';
import { TcpProxy } from './helpers/tcp-proxy.js';

interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

function capturingLogger(): { log: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) });
  return { log, lines };
}

/** A small key/value target with a modifying op, bulk ops, and a callback trigger. */
class KvTarget implements TargetService {
  readonly name: string;
  readonly handlers: ReadonlyMap<number, RequestHandler>;
  readonly store = new Map<string, string>();
  readonly seen: RequestContext[] = [];
  disconnected: string[] = [];
  refuse: StriaError | undefined;
  private transno = 0;

  constructor(name: string) {
    this.name = name;
    this.handlers = new Map<number, RequestHandler>([
      [Opc.OST_SET_INFO, (ctx) => this.set(ctx)],
      [Opc.OST_GET_INFO, (ctx) => this.get(ctx)],
      [Opc.OST_WRITE, (ctx) => this.write(ctx)],
      [Opc.OST_READ, (ctx) => this.read(ctx)],
      [Opc.OST_STATFS, () => {
        throw new TypeError('statfs exploded');
      }],
      [Opc.LDLM_ENQUEUE, (ctx) => this.enqueue(ctx)],
      [Opc.OST_PUNCH, () => {
        throw new StriaError(Number.NaN, 'errno went missing', 'WEIRD');
      }],
    ]);
  }

  onConnect(exp: ServerExport, data: unknown): unknown {
    if (this.refuse) throw this.refuse;
    exp.data.set('hello', data);
    return { target: this.name, youSaid: data };
  }

  onDisconnect(exp: ServerExport): void {
    this.disconnected.push(exp.clientUuid);
  }

  private set(ctx: RequestContext): { body: unknown; transno: number } {
    this.seen.push(ctx);
    const b = ctx.body as { key?: unknown; value?: unknown };
    if (typeof b?.key !== 'string' || typeof b.value !== 'string') throw err('EINVAL', 'set needs {key, value}', 'BAD_BODY');
    this.store.set(b.key, b.value);
    this.transno += 1;
    return { body: { ok: true }, transno: this.transno };
  }

  private get(ctx: RequestContext): { body: unknown } {
    this.seen.push(ctx);
    const key = (ctx.body as { key?: unknown })?.key;
    if (typeof key !== 'string') throw err('EINVAL', 'get needs {key}', 'BAD_BODY');
    const value = this.store.get(key);
    if (value === undefined) throw err('ENOENT', `no key '${key}'`, 'NO_SUCH_KEY');
    return { body: { value } };
  }

  private write(ctx: RequestContext): { body: unknown } {
    this.seen.push(ctx);
    return { body: { length: ctx.bulk?.length ?? 0, crc: bulkChecksum(ctx.bulk) } };
  }

  private read(ctx: RequestContext): { body: unknown; bulk: Buffer[] } {
    this.seen.push(ctx);
    const { length, fill } = ctx.body as { length: number; fill: number };
    const half = Math.floor(length / 2);
    return { body: { length }, bulk: [Buffer.alloc(half, fill), Buffer.alloc(length - half, fill + 1)] };
  }

  private async enqueue(ctx: RequestContext): Promise<{ body: unknown }> {
    const exp = ctx.export!;
    const reply = await exp.request(Opc.LDLM_BL_CALLBACK, { lock: 7 }, { bulk: Buffer.from('server-bulk'), checksum: true });
    let unknownError: StriaError | undefined;
    try {
      await exp.request(Opc.LDLM_GL_CALLBACK, { lock: 7 });
    } catch (e) {
      unknownError = e as StriaError;
    }
    return {
      body: {
        callbackReply: reply.body,
        callbackBulk: reply.bulk?.toString(),
        unknownErrno: unknownError?.errno,
        unknownCode: unknownError?.code,
      },
    };
  }
}

const captured = capturingLogger();
let server: RpcServer;
let kv: KvTarget;
let kv2: KvTarget;
let nid: Nid;

before(async () => {
  kv = new KvTarget('testfs-OST0000');
  kv2 = new KvTarget('testfs-OST0001');
  server = new RpcServer({ nid: { addr: '127.0.0.1', port: 0, net: 'tcp' } }, captured.log);
  server.addTarget(kv);
  server.addTarget(kv2);
  await server.listen();
  nid = { addr: '127.0.0.1', port: server.port, net: 'tcp' };
});

after(async () => {
  await server.close();
});

function newClient(uuid: string): RpcClient {
  return new RpcClient({ uuid }, silentLogger());
}

function importOf(client: RpcClient, target = kv.name, extra: Partial<Parameters<RpcClient['import']>[0]> = {}) {
  return client.import({ nids: [nid], target, connectOpc: Opc.OST_CONNECT, connectData: { client: client.uuid }, pingIntervalMs: 0, ...extra });
}

async function rejectsWith(p: Promise<unknown>, errno: number, code: string, msg?: RegExp): Promise<StriaError> {
  let caught: unknown;
  try {
    await p;
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof StriaError, `expected a StriaError, got ${String(caught)}`);
  assert.equal(caught.errno, errno, `errno of: ${caught.message}`);
  assert.equal(caught.code, code, `code of: ${caught.message}`);
  if (msg) assert.match(caught.message, msg);
  return caught;
}

test('connect returns what onConnect returned and creates one export per client', async () => {
  const client = newClient('client-connect');
  const imp = importOf(client);
  const states: string[] = [];
  imp.on('state', (s: string) => states.push(s));
  const data = await imp.connect();
  assert.deepEqual(data, { target: kv.name, youSaid: { client: 'client-connect' } });
  assert.deepEqual(imp.connectData, data);
  assert.equal(imp.state, 'FULL');
  assert.deepEqual(states, ['CONNECTING', 'FULL']);
  const exps = server.exports(kv.name).filter((e) => e.clientUuid === 'client-connect');
  assert.equal(exps.length, 1);
  assert.equal(exps[0]!.connCnt, 1);
  assert.deepEqual(exps[0]!.data.get('hello'), { client: 'client-connect' });
  await imp.ping();
  await client.ping(nid);
  await client.close();
});

test('requests carry bodies, identities and bulk both ways, with checksums', async () => {
  const client = newClient('client-bulk');
  const imp = importOf(client);
  await imp.connect();

  const set = await imp.request(Opc.OST_SET_INFO, { key: 'a', value: 'alpha' }, { uid: 1234, gid: 5678, jobid: 'dd.1000' });
  assert.deepEqual(set.body, { ok: true });
  const ctx = kv.seen.at(-1)!;
  assert.equal(ctx.uid, 1234);
  assert.equal(ctx.gid, 5678);
  assert.equal(ctx.jobid, 'dd.1000');
  assert.equal(ctx.export!.clientUuid, 'client-bulk');
  assert.deepEqual((await imp.request(Opc.OST_GET_INFO, { key: 'a' })).body, { value: 'alpha' });

  const parts = [Buffer.alloc(300_000, 1), Buffer.alloc(5, 2), Buffer.alloc(70_000, 3)];
  const whole = Buffer.concat(parts);
  for (const checksum of [false, true]) {
    const w = await imp.request(Opc.OST_WRITE, { n: 1 }, { bulk: parts, checksum });
    assert.deepEqual(w.body, { length: whole.length, crc: bulkChecksum(whole) });
    assert.ok(kv.seen.at(-1)!.bulk!.equals(whole));

    const r = await imp.request(Opc.OST_READ, { length: 1_000_001, fill: 9 }, { checksum });
    assert.equal(r.bulk!.length, 1_000_001);
    assert.equal(r.bulk![0], 9);
    assert.equal(r.bulk![1_000_000], 10);
  }
  await client.close();
});

test('a corrupted bulk byte in flight is caught in either direction', async () => {
  const proxy = await TcpProxy.start('127.0.0.1', server.port);
  const marker = Buffer.from('CORRUPT-ME-PLEASE');
  let corruptions = 0;
  let armed: 'c2s' | 's2c' | undefined;
  proxy.transform = (dir, chunk) => {
    if (dir !== armed) return chunk;
    const at = chunk.indexOf(marker);
    if (at < 0) return chunk;
    const copy = Buffer.from(chunk);
    copy[at] ^= 0x20;
    armed = undefined;
    corruptions++;
    return copy;
  };
  const client = newClient('client-corrupt');
  const imp = client.import({ nids: [{ addr: '127.0.0.1', port: proxy.port, net: 'tcp' }], target: kv.name, connectOpc: Opc.OST_CONNECT, pingIntervalMs: 0 });
  await imp.connect();
  const payload = Buffer.alloc(64 * 1024);
  for (let i = 0; i < payload.length; i += marker.length) marker.copy(payload, i);

  // request bulk corrupted on its way to the server: the handler must not run
  const writesBefore = kv.seen.filter((c) => c.opc === Opc.OST_WRITE).length;
  armed = 'c2s';
  await rejectsWith(imp.request(Opc.OST_WRITE, {}, { bulk: payload, checksum: true }), Errno.EBADMSG, 'BULK_CHECKSUM');
  assert.equal(corruptions, 1);
  assert.equal(kv.seen.filter((c) => c.opc === Opc.OST_WRITE).length, writesBefore, 'handler not called on a bad checksum');

  // reply bulk corrupted on its way back
  const echo = new KvTarget('echo-target');
  (echo.handlers as Map<number, RequestHandler>).set(Opc.OST_READ, () => ({ bulk: payload }));
  server.addTarget(echo);
  const imp2 = client.import({ nids: [{ addr: '127.0.0.1', port: proxy.port, net: 'tcp' }], target: 'echo-target', connectOpc: Opc.OST_CONNECT, pingIntervalMs: 0 });
  await imp2.connect();
  armed = 's2c';
  await rejectsWith(imp2.request(Opc.OST_READ, {}, { checksum: true }), Errno.EBADMSG, 'BULK_CHECKSUM');
  assert.equal(corruptions, 2);

  // without corruption both pass
  const ok = await imp2.request(Opc.OST_READ, {}, { checksum: true });
  assert.ok(ok.bulk!.equals(payload));
  await client.close();
  await proxy.close();
});

test('handler errors reach the caller with errno, code and message', async () => {
  const client = newClient('client-errors');
  const imp = importOf(client);
  await imp.connect();
  await rejectsWith(imp.request(Opc.OST_GET_INFO, { key: 'missing' }), Errno.ENOENT, 'NO_SUCH_KEY', /no key 'missing'/);
  await rejectsWith(imp.request(Opc.OST_SET_INFO, { key: 1 }), Errno.EINVAL, 'BAD_BODY', /set needs/);

  const errorsBefore = captured.lines.filter((l) => l.level === 50).length;
  await rejectsWith(imp.request(Opc.OST_STATFS, {}), Errno.EIO, 'EIO', /statfs exploded/);
  assert.equal(captured.lines.filter((l) => l.level === 50).length, errorsBefore + 1, 'one error log line for the unexpected exception');

  await rejectsWith(imp.request(Opc.OST_PUNCH, {}), Errno.EIO, 'WEIRD', /errno went missing/);
  await rejectsWith(imp.request(Opc.MDS_REINT, {}), Errno.EOPNOTSUPP, 'UNKNOWN_OPCODE', /MDS_REINT/);
  await rejectsWith(imp.request(4242, {}), Errno.EOPNOTSUPP, 'UNKNOWN_OPCODE');
  // the import is still usable after all of that
  assert.equal(imp.state, 'FULL');
  assert.deepEqual((await imp.request(Opc.OST_SET_INFO, { key: 'e', value: 'fine' })).body, { ok: true });
  await client.close();
});

test('connecting to an unknown target or being refused rejects at once', async () => {
  const client = newClient('client-refused');
  const imp = importOf(client, 'testfs-OST00ff');
  await rejectsWith(imp.connect(), Errno.ENODEV, 'NO_SUCH_TARGET', /testfs-OST00ff/);
  assert.equal(imp.state, 'DISCONN');
  // a request on that import fails the same way rather than waiting
  await rejectsWith(imp.request(Opc.OST_GET_INFO, { key: 'a' }), Errno.ENODEV, 'NO_SUCH_TARGET');

  kv2.refuse = err('EACCES', 'client not allowed', 'NODEMAP_DENIED');
  const imp2 = importOf(client, kv2.name);
  await rejectsWith(imp2.connect(), Errno.EACCES, 'NODEMAP_DENIED', /not allowed/);
  kv2.refuse = undefined;
  assert.equal(server.exports(kv2.name).filter((e) => e.clientUuid === 'client-refused').length, 0);
  await client.close();
});

test('replies carry transno and the target last_committed', async () => {
  const client = newClient('client-transno');
  const imp = importOf(client, kv2.name);
  await imp.connect();
  const a = await imp.request(Opc.OST_SET_INFO, { key: 'x', value: '1' });
  const b = await imp.request(Opc.OST_SET_INFO, { key: 'y', value: '2' });
  assert.ok(a.transno > 0);
  assert.equal(b.transno, a.transno + 1);
  assert.equal(b.lastCommitted, b.transno);
  const read = await imp.request(Opc.OST_GET_INFO, { key: 'x' });
  assert.equal(read.transno, 0);
  assert.equal(read.lastCommitted, b.transno);
  assert.equal(imp.lastCommitted, b.transno);
  await client.close();
});

test('the server calls the client back over the same connection', async () => {
  const client = newClient('client-callback');
  const seen: Array<{ opc: number; target: string; body: unknown; bulk: string | undefined }> = [];
  client.onCallback(Opc.LDLM_BL_CALLBACK, (ctx) => {
    seen.push({ opc: ctx.opc, target: ctx.target, body: ctx.body, bulk: ctx.bulk?.toString() });
    return { body: { cancelled: true }, bulk: Buffer.from('client-bulk') };
  });
  const imp = importOf(client);
  await imp.connect();
  const reply = await imp.request(Opc.LDLM_ENQUEUE, { res: 1 });
  assert.deepEqual(seen, [{ opc: Opc.LDLM_BL_CALLBACK, target: kv.name, body: { lock: 7 }, bulk: 'server-bulk' }]);
  assert.deepEqual(reply.body, {
    callbackReply: { cancelled: true },
    callbackBulk: 'client-bulk',
    unknownErrno: Errno.EOPNOTSUPP,
    unknownCode: 'UNKNOWN_OPCODE',
  });
  await client.close();
});

test('imports to targets of one server share one connection', async () => {
  const client = newClient('client-shared');
  const a = importOf(client, kv.name);
  const b = importOf(client, kv2.name);
  await Promise.all([a.connect(), b.connect()]);
  const ea = server.exports(kv.name).find((e) => e.clientUuid === 'client-shared')!;
  const eb = server.exports(kv2.name).find((e) => e.clientUuid === 'client-shared')!;
  assert.equal(ea.peer, eb.peer);
  assert.notEqual(ea.handle, eb.handle);
  // a second live import of the same target would fight over its export
  assert.throws(() => importOf(client, kv.name), { errno: Errno.EEXIST, code: 'IMPORT_EXISTS' });
  await a.close();
  const again = importOf(client, kv.name);
  await again.connect();
  await client.close();
});

test('a request before connect() connects implicitly', async () => {
  const client = newClient('client-implicit');
  const imp = importOf(client);
  const r = await imp.request(Opc.OST_SET_INFO, { key: 'implicit', value: 'yes' });
  assert.deepEqual(r.body, { ok: true });
  assert.equal(imp.state, 'FULL');
  await client.close();
});

test('requests the peer would refuse fail locally and the connection survives', async () => {
  const client = new RpcClient({ uuid: 'client-big', maxHeaderBytes: 1024, maxBulkBytes: 4096 }, silentLogger());
  const imp = importOf(client);
  await imp.connect();
  await rejectsWith(imp.request(Opc.OST_SET_INFO, { key: 'k', value: 'v'.repeat(5000) }), Errno.E2BIG, 'FRAME_TOO_LARGE');
  await rejectsWith(imp.request(Opc.OST_WRITE, {}, { bulk: Buffer.alloc(5000) }), Errno.E2BIG, 'FRAME_TOO_LARGE');
  await rejectsWith(imp.request(-1, {}), Errno.EINVAL, 'BAD_REQUEST');
  await rejectsWith(imp.request(Opc.OST_SET_INFO, {}, { uid: -5 }), Errno.EINVAL, 'BAD_REQUEST');
  await rejectsWith(imp.request(Opc.OST_SET_INFO, {}, { bulk: 'text' as unknown as Buffer }), Errno.EINVAL, 'BAD_REQUEST');
  assert.deepEqual((await imp.request(Opc.OST_SET_INFO, { key: 'k', value: 'small' })).body, { ok: true });
  assert.equal(imp.stats.reconnects, 0);
  await client.close();
});

test('close() sends DISCONNECT, fails what is pending with ESHUTDOWN', async () => {
  const slow = new KvTarget('slow-target');
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  (slow.handlers as Map<number, RequestHandler>).set(Opc.OST_SYNC, async () => {
    await gate;
    return { body: 'late' };
  });
  server.addTarget(slow);
  const client = newClient('client-close');
  const imp = importOf(client, 'slow-target', { credits: 1 });
  await imp.connect();
  assert.equal(server.exports('slow-target').length, 1);
  const inFlight = imp.request(Opc.OST_SYNC, {});
  const queued = imp.request(Opc.OST_SYNC, {});
  assert.equal(imp.stats.inFlight, 1);
  assert.equal(imp.stats.queued, 1);
  const closing = imp.close();
  await rejectsWith(inFlight, Errno.ESHUTDOWN, 'IMPORT_CLOSED');
  await rejectsWith(queued, Errno.ESHUTDOWN, 'IMPORT_CLOSED');
  await closing;
  assert.equal(imp.state, 'CLOSED');
  assert.deepEqual(slow.disconnected, ['client-close']);
  assert.equal(server.exports('slow-target').length, 0);
  await rejectsWith(imp.request(Opc.OST_SYNC, {}), Errno.ESHUTDOWN, 'IMPORT_CLOSED');
  release();
  await client.close();
});

test('listening on a port in use fails with ADDRESS_IN_USE', async () => {
  const other = new RpcServer({ nid: { addr: '127.0.0.1', port: server.port, net: 'tcp' } }, silentLogger());
  await rejectsWith(other.listen(), Errno.EBUSY, 'ADDRESS_IN_USE', new RegExp(`^address 127\\.0\\.0\\.1:${server.port} is already in use$`));
  await other.close();
});
