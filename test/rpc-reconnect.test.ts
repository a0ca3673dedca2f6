/**
 * Recovery: an Import survives a server restart on the same port, a cut connection and a
 * lost reply; requests in flight are resent and a modifying request runs exactly once
 * (answered from the export's reply cache); server callbacks fail while the client is
 * away and work again after it reconnects; waiting for a connection is bounded.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { Errno, err, StriaError } from '../src/common/errno.js';
import { silentLogger } from '../src/common/log.js';
import type { Nid } from '../src/lnet/nid.js';
import { RpcClient } from '../src/ptlrpc/client.js';
import type { Import } from '../src/ptlrpc/import.js';
import { MsgFlag, Opc } from '../src/ptlrpc/opcodes.js';
import { RpcServer } from '../src/ptlrpc/server.js';
import type { ImportState, RequestContext, RequestHandler, ServerExport, TargetService } from '../src/ptlrpc/types.js';
import { TcpProxy } from './helpers/tcp-proxy.js';

const log = silentLogger();
const WAIT_LIMIT_MS = 15_000;

/** Counts how often each modifying request ran; a gate can hold handlers mid-execution. */
class LedgerTarget implements TargetService {
  readonly name = 'testfs-OST0000';
  readonly handlers: ReadonlyMap<number, RequestHandler>;
  readonly runs = new Map<string, number>();
  readonly contexts: RequestContext[] = [];
  gate: Promise<void> | undefined;
  started: (() => void) | undefined;
  finished: (() => void) | undefined;
  private transno = 0;

  constructor() {
    this.handlers = new Map<number, RequestHandler>([
      [Opc.OST_SET_INFO, (ctx) => this.append(ctx)],
      [Opc.OST_GET_INFO, () => ({ body: { runs: Object.fromEntries(this.runs) } })],
    ]);
  }

  onConnect(exp: ServerExport): unknown {
    return { connCnt: exp.connCnt };
  }

  private async append(ctx: RequestContext): Promise<{ body: unknown; transno: number }> {
    const key = (ctx.body as { key: string }).key;
    this.contexts.push(ctx);
    this.runs.set(key, (this.runs.get(key) ?? 0) + 1);
    this.started?.();
    if (this.gate) await this.gate;
    this.transno++;
    this.finished?.();
    return { body: { key, run: this.runs.get(key) }, transno: this.transno };
  }
}

function nidOf(port: number): Nid {
  return { addr: '127.0.0.1', port, net: 'tcp' };
}

async function startServer(target: TargetService, port = 0): Promise<RpcServer> {
  const s = new RpcServer({ nid: nidOf(port) }, log);
  s.addTarget(target);
  await s.listen();
  return s;
}

function importTo(client: RpcClient, ports: number[], extra: Record<string, unknown> = {}): Import {
  return client.import({
    nids: ports.map(nidOf),
    target: 'testfs-OST0000',
    connectOpc: Opc.OST_CONNECT,
    pingIntervalMs: 0,
    timeoutMs: 2_000,
    recoveryWaitMs: 20_000,
    ...extra,
  });
}

/** Resolves once the import is in `state` (now or later), bounded in time. */
function reach(imp: Import, state: ImportState): Promise<void> {
  if (imp.state === state) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      imp.off('state', on);
      reject(new Error(`import never reached ${state} (is ${imp.state})`));
    }, WAIT_LIMIT_MS);
    const on = (s: ImportState): void => {
      if (s !== state) return;
      clearTimeout(timer);
      imp.off('state', on);
      resolve();
    };
    imp.on('state', on);
  });
}

function signal(): { promise: Promise<void>; fire: () => void } {
  let fire!: () => void;
  const promise = new Promise<void>((r) => (fire = r));
  return { promise, fire };
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function rejection(p: Promise<unknown>): Promise<StriaError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof StriaError, `StriaError expected, got ${String(e)}`);
    return e;
  }
  assert.fail('expected a rejection');
}

test('the import reconnects after a server restart on the same port and sends what waited', async () => {
  const target = new LedgerTarget();
  const first = await startServer(target);
  const port = first.port;
  const client = new RpcClient({ uuid: 'restart-client' }, log);
  const imp = importTo(client, [port]);
  const states: ImportState[] = [];
  imp.on('state', (s: ImportState) => states.push(s));
  assert.deepEqual(await imp.connect(), { connCnt: 1 });
  await imp.request(Opc.OST_SET_INFO, { key: 'before' });

  await first.close();
  await reach(imp, 'CONNECTING');
  const during = imp.request(Opc.OST_SET_INFO, { key: 'during' });
  assert.equal(imp.stats.queued, 1);

  const second = await startServer(target, port);
  const reply = await during;
  assert.deepEqual(reply.body, { key: 'during', run: 1 });
  assert.equal(imp.state, 'FULL');
  assert.equal(imp.stats.reconnects, 1);
  assert.deepEqual(states.slice(0, 4), ['CONNECTING', 'FULL', 'DISCONN', 'CONNECTING']);
  assert.equal(states.at(-1), 'FULL');
  assert.deepEqual(imp.connectData, { connCnt: 1 }, 'a fresh server knows the client anew');
  assert.equal(target.runs.get('during'), 1);
  await imp.ping();
  await client.close();
  await second.close();
});

test('a request cut off mid-execution is resent and runs once', async () => {
  const target = new LedgerTarget();
  const server = await startServer(target);
  const proxy = await TcpProxy.start('127.0.0.1', server.port);
  const client = new RpcClient({ uuid: 'cut-client' }, log);
  const imp = importTo(client, [proxy.port]);
  await imp.connect();

  const gate = signal();
  const started = signal();
  target.gate = gate.promise;
  target.started = started.fire;
  const pending = imp.request(Opc.OST_SET_INFO, { key: 'cut' });
  await started.promise;
  proxy.cutAll();
  await reach(imp, 'DISCONN');
  await reach(imp, 'FULL');
  gate.fire();
  const reply = await pending;
  assert.deepEqual(reply.body, { key: 'cut', run: 1 });
  assert.ok(reply.transno > 0);
  assert.equal(target.runs.get('cut'), 1, 'the handler ran exactly once');
  assert.ok(imp.stats.resent >= 1, 'the request was resent');
  const exp = server.exports()[0]!;
  assert.equal(exp.connCnt, 2, 'the export was reused on reconnect');
  await client.close();
  await proxy.close();
  await server.close();
});

test('a lost reply is rebuilt from the reply cache, not by running the request again', async () => {
  const target = new LedgerTarget();
  const server = await startServer(target);
  const proxy = await TcpProxy.start('127.0.0.1', server.port);
  const client = new RpcClient({ uuid: 'lost-reply-client' }, log);
  const imp = importTo(client, [proxy.port]);
  await imp.connect();

  const finished = signal();
  target.finished = finished.fire;
  proxy.dropReplies = true;
  const pending = imp.request(Opc.OST_SET_INFO, { key: 'lost' });
  await finished.promise;
  target.finished = undefined;
  // let the (swallowed) reply leave the server before cutting
  await new Promise((r) => setImmediate(r));
  proxy.dropReplies = false;
  proxy.cutAll();
  const reply = await pending;
  assert.deepEqual(reply.body, { key: 'lost', run: 1 });
  assert.equal(target.runs.get('lost'), 1);
  assert.equal(target.contexts.filter((c) => (c.body as { key: string }).key === 'lost').length, 1);
  assert.ok(imp.stats.resent >= 1);
  await client.close();
  await proxy.close();
  await server.close();
});

test('a request that never reached the server is resent with MSG_RESENT and runs once', async () => {
  const target = new LedgerTarget();
  const server = await startServer(target);
  const proxy = await TcpProxy.start('127.0.0.1', server.port);
  const client = new RpcClient({ uuid: 'swallowed-client' }, log);
  const imp = importTo(client, [proxy.port]);
  await imp.connect();
  proxy.blackhole = true;
  const pending = imp.request(Opc.OST_SET_INFO, { key: 'swallowed' });
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(imp.stats.inFlight, 1);
  proxy.blackhole = false;
  proxy.cutAll();
  const reply = await pending;
  assert.deepEqual(reply.body, { key: 'swallowed', run: 1 });
  const ctx = target.contexts.find((c) => (c.body as { key: string }).key === 'swallowed')!;
  assert.ok(ctx.flags & MsgFlag.RESENT, 'the execution came from the resend');
  await client.close();
  await proxy.close();
  await server.close();
});

test('server callbacks fail with ENOTCONN while the client is away and work after it reconnects', async () => {
  const target = new LedgerTarget();
  const server = await startServer(target);
  const proxy = await TcpProxy.start('127.0.0.1', server.port);
  const client = new RpcClient({ uuid: 'callback-client' }, log);
  client.onCallback(Opc.LDLM_BL_CALLBACK, (ctx) => ({ body: { target: ctx.target } }));
  const imp = importTo(client, [proxy.port], { timeoutMs: 1_000 });
  await imp.connect();
  const exp = server.exports()[0]!;
  assert.deepEqual((await exp.request(Opc.LDLM_BL_CALLBACK, {})).body, { target: 'testfs-OST0000' });

  proxy.blackhole = true; // reconnect attempts get a socket that never answers
  proxy.cutAll();
  const first = await rejection(exp.request(Opc.LDLM_BL_CALLBACK, {}, { timeoutMs: 5_000 }));
  assert.equal(first.errno, Errno.ENOTCONN);
  let last: StriaError | undefined;
  for (let i = 0; i < 200; i++) {
    last = await rejection(exp.request(Opc.LDLM_BL_CALLBACK, {}, { timeoutMs: 5_000 }));
    if (last.code === 'NOT_CONNECTED') break;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.equal(last!.errno, Errno.ENOTCONN);
  assert.equal(last!.code, 'NOT_CONNECTED');

  // the import's reconnect attempt lands in the black hole; its CONNECT goes unanswered
  for (let i = 0; i < 500 && proxy.accepted < 2; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(proxy.accepted, 2);
  assert.equal(imp.state, 'CONNECTING');
  proxy.blackhole = false;
  await reach(imp, 'FULL');
  assert.equal(server.exports()[0], exp, 'the same export is reused');
  assert.equal(exp.connCnt, 2);
  assert.deepEqual((await exp.request(Opc.LDLM_BL_CALLBACK, {})).body, { target: 'testfs-OST0000' });
  await client.close();
  await proxy.close();
  await server.close();
});

test('a NOT_CONNECTED reply makes the import reconnect and resend', async () => {
  const target = new LedgerTarget();
  const server = await startServer(target);
  const a = new RpcClient({ uuid: 'twin' }, log);
  const b = new RpcClient({ uuid: 'twin' }, log);
  const impA = importTo(a, [server.port]);
  const impB = importTo(b, [server.port]);
  await impA.connect();
  await impB.connect(); // same uuid: the export now belongs to b's connection
  const reply = await impA.request(Opc.OST_SET_INFO, { key: 'twin-a' });
  assert.deepEqual(reply.body, { key: 'twin-a', run: 1 });
  assert.equal(impA.stats.reconnects, 1);
  assert.equal(server.exports()[0]!.connCnt, 3);
  await a.close();
  await b.close();
  await server.close();
});

test('the first connect keeps retrying a refused port, then succeeds when the server appears', async () => {
  const port = await freePort();
  const client = new RpcClient({ uuid: 'early-client' }, log);
  const imp = importTo(client, [port]);
  const connecting = imp.connect();
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(imp.state, 'CONNECTING');
  const target = new LedgerTarget();
  const server = await startServer(target, port);
  assert.deepEqual(await connecting, { connCnt: 1 });
  await client.close();
  await server.close();
});

test('waiting for a connection is bounded by recoveryWaitMs', async () => {
  const port = await freePort();
  const client = new RpcClient({ uuid: 'patient-client' }, log);
  const never = importTo(client, [port], { recoveryWaitMs: 400 });
  const e = await rejection(never.connect());
  assert.equal(e.errno, Errno.ETIMEDOUT);
  assert.equal(e.code, 'RECOVERY_TIMEOUT');
  assert.match(e.message, /ECONNREFUSED/);
  await never.close();

  const target = new LedgerTarget();
  const server = await startServer(target);
  const imp = importTo(client, [server.port], { recoveryWaitMs: 400 });
  await imp.connect();
  await server.close();
  await reach(imp, 'CONNECTING');
  const r = await rejection(imp.request(Opc.OST_SET_INFO, { key: 'never' }));
  assert.equal(r.errno, Errno.ETIMEDOUT);
  assert.equal(r.code, 'RECOVERY_TIMEOUT');
  assert.match(r.message, /OST_SET_INFO/);
  assert.equal(target.runs.get('never'), undefined);
  await client.close();
});

test('failover NIDs are tried round-robin', async () => {
  const dead = await freePort();
  const target = new LedgerTarget();
  const server = await startServer(target);
  const client = new RpcClient({ uuid: 'failover-client' }, log);
  const imp = importTo(client, [dead, server.port]);
  await imp.connect();
  assert.equal(imp.nid!.port, server.port);
  await client.close();
  await server.close();
});

test('a target that refuses a reconnect is retried, not given up on', async () => {
  const target = new LedgerTarget();
  let refuse = false;
  const picky: TargetService = {
    name: target.name,
    handlers: target.handlers,
    onConnect: (exp) => {
      if (refuse) throw err('EAGAIN', 'recovering, try later', 'TARGET_RECOVERING');
      return { connCnt: exp.connCnt };
    },
  };
  const server = await startServer(picky);
  const proxy = await TcpProxy.start('127.0.0.1', server.port);
  const client = new RpcClient({ uuid: 'picky-client' }, log);
  const imp = importTo(client, [proxy.port]);
  await imp.connect();
  refuse = true;
  proxy.cutAll();
  await reach(imp, 'CONNECTING');
  const pending = imp.request(Opc.OST_SET_INFO, { key: 'after-refusal' });
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(imp.state, 'CONNECTING');
  refuse = false;
  assert.deepEqual((await pending).body, { key: 'after-refusal', run: 1 });
  await client.close();
  await proxy.close();
  await server.close();
});
