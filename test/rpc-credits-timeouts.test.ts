/**
 * Flow control and liveness: an Import never has more than `credits` requests in flight,
 * a server never serves more than `credits` requests of one connection at once, a slow
 * request times out with RPC_TIMEOUT while the connection stays up (it still answers
 * pings), and a connection that stops answering is dropped and re-established, whether a
 * request or an idle ping finds out.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Errno, StriaError } from '../src/common/errno.js';
import { silentLogger } from '../src/common/log.js';
import type { Nid } from '../src/lnet/nid.js';
import { RpcClient } from '../src/ptlrpc/client.js';
import type { Import } from '../src/ptlrpc/import.js';
import { Opc } from '../src/ptlrpc/opcodes.js';
import { RpcServer } from '../src/ptlrpc/server.js';
import type { ImportOptions, ImportState, RequestHandler, TargetService } from '../src/ptlrpc/types.js';
import { TcpProxy } from './helpers/tcp-proxy.js';

const log = silentLogger();
const WAIT_LIMIT_MS = 15_000;

/** Handlers that park until released, counting how many run at once. */
class ParkingTarget implements TargetService {
  readonly name: string;
  readonly handlers: ReadonlyMap<number, RequestHandler>;
  running = 0;
  maxRunning = 0;
  served = 0;
  private parked: Array<() => void> = [];
  private parkedWaiters: Array<{ n: number; resolve: () => void }> = [];
  /** shared by targets of one server: handlers running at once across all of them */
  private readonly gauge: { running: number; max: number };

  constructor(name: string, gauge = { running: 0, max: 0 }) {
    this.name = name;
    this.gauge = gauge;
    this.handlers = new Map<number, RequestHandler>([
      [Opc.OST_SYNC, () => this.park()],
      [Opc.OST_GET_INFO, () => ({ body: { fast: true } })],
    ]);
  }

  private async park(): Promise<{ body: unknown }> {
    this.running++;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    this.gauge.running++;
    this.gauge.max = Math.max(this.gauge.max, this.gauge.running);
    await new Promise<void>((resolve) => {
      this.parked.push(resolve);
      this.parkedWaiters = this.parkedWaiters.filter((w) => (this.parked.length >= w.n ? (w.resolve(), false) : true));
    });
    this.running--;
    this.gauge.running--;
    this.served++;
    return { body: { served: this.served } };
  }

  /** Resolves once at least n handlers are parked. */
  whenParked(n: number): Promise<void> {
    if (this.parked.length >= n) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`only ${this.parked.length} handlers parked, wanted ${n}`)), WAIT_LIMIT_MS);
      this.parkedWaiters.push({ n, resolve: () => (clearTimeout(t), resolve()) });
    });
  }

  get parkedCount(): number {
    return this.parked.length;
  }

  releaseAll(): void {
    const p = this.parked;
    this.parked = [];
    for (const r of p) r();
  }
}

function nidOf(port: number): Nid {
  return { addr: '127.0.0.1', port, net: 'tcp' };
}

async function serve(targets: TargetService[], credits?: number): Promise<RpcServer> {
  const s = new RpcServer({ nid: nidOf(0), credits }, log);
  for (const t of targets) s.addTarget(t);
  await s.listen();
  return s;
}

function importTo(client: RpcClient, port: number, target: string, extra: Partial<ImportOptions> = {}): Import {
  return client.import({ nids: [nidOf(port)], target, connectOpc: Opc.OST_CONNECT, pingIntervalMs: 0, ...extra });
}

function reach(imp: Import, state: ImportState): Promise<void> {
  if (imp.state === state) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`import never reached ${state} (is ${imp.state})`)), WAIT_LIMIT_MS);
    const on = (s: ImportState): void => {
      if (s !== state) return;
      clearTimeout(timer);
      imp.off('state', on);
      resolve();
    };
    imp.on('state', on);
  });
}

async function settleSoon(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 10));
}

test('an import keeps at most `credits` requests in flight and queues the rest in order', async () => {
  const target = new ParkingTarget('testfs-OST0000');
  const server = await serve([target]);
  const client = new RpcClient({ uuid: 'credit-client' }, log);
  const imp = importTo(client, server.port, target.name, { credits: 3 });
  await imp.connect();

  const all = Array.from({ length: 20 }, () => imp.request(Opc.OST_SYNC, {}));
  await target.whenParked(3);
  await settleSoon();
  assert.equal(target.parkedCount, 3, 'the server sees only 3 requests');
  assert.deepEqual({ inFlight: imp.stats.inFlight, queued: imp.stats.queued }, { inFlight: 3, queued: 17 });
  for (let round = 0; round < 20 && target.served < 20; round++) {
    target.releaseAll();
    await settleSoon();
  }
  const replies = await Promise.all(all);
  assert.equal(target.maxRunning, 3);
  // FIFO: the first request queued was served first
  assert.deepEqual(replies.map((r) => (r.body as { served: number }).served).slice(0, 3).sort((a, b) => a - b), [1, 2, 3]);
  assert.deepEqual(imp.stats, { sent: 20, inFlight: 0, queued: 0, resent: 0, reconnects: 0, evictions: 0 });
  await client.close();
  await server.close();
});

test('the server serves at most `credits` requests of one connection at once', async () => {
  const gauge = { running: 0, max: 0 };
  const a = new ParkingTarget('testfs-OST0000', gauge);
  const b = new ParkingTarget('testfs-OST0001', gauge);
  const server = await serve([a, b], 2);
  const client = new RpcClient({ uuid: 'server-credit-client' }, log);
  const impA = importTo(client, server.port, a.name, { credits: 4 });
  const impB = importTo(client, server.port, b.name, { credits: 4 });
  await Promise.all([impA.connect(), impB.connect()]);

  const all = [...Array.from({ length: 6 }, () => impA.request(Opc.OST_SYNC, {})), ...Array.from({ length: 6 }, () => impB.request(Opc.OST_SYNC, {}))];
  for (let i = 0; i < 500 && a.parkedCount + b.parkedCount < 2; i++) await new Promise((r) => setTimeout(r, 10));
  await settleSoon();
  assert.equal(a.parkedCount + b.parkedCount, 2, 'two requests served on the shared connection, the others wait');
  assert.equal(impA.stats.inFlight + impB.stats.inFlight, 8, 'both imports used their own credits');
  for (let round = 0; round < 40 && a.served + b.served < 12; round++) {
    a.releaseAll();
    b.releaseAll();
    await settleSoon();
  }
  await Promise.all(all);
  assert.equal(a.served + b.served, 12);
  assert.equal(gauge.max, 2, 'never more than 2 handlers at once for the connection');
  await client.close();
  await server.close();
});

test('a slow request times out with RPC_TIMEOUT; the connection stays up', async () => {
  const target = new ParkingTarget('testfs-OST0000');
  const server = await serve([target]);
  const client = new RpcClient({ uuid: 'timeout-client' }, log);
  const imp = importTo(client, server.port, target.name, { timeoutMs: 5_000 });
  await imp.connect();

  let caught: unknown;
  try {
    await imp.request(Opc.OST_SYNC, {}, { timeoutMs: 150 });
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof StriaError);
  assert.equal(caught.errno, Errno.ETIMEDOUT);
  assert.equal(caught.code, 'RPC_TIMEOUT');
  assert.match(caught.message, /OST_SYNC to testfs-OST0000/);
  assert.equal(imp.stats.inFlight, 0, 'the timed-out request gave its credit back');
  // the ping that follows a timeout is answered, so the connection is kept
  await settleSoon();
  assert.equal(imp.state, 'FULL');
  assert.deepEqual((await imp.request(Opc.OST_GET_INFO, {})).body, { fast: true });
  // the late reply of the timed-out request is dropped harmlessly
  target.releaseAll();
  await settleSoon();
  assert.equal(target.served, 1);
  assert.deepEqual((await imp.request(Opc.OST_GET_INFO, {})).body, { fast: true });
  assert.equal(imp.stats.reconnects, 0);
  await client.close();
  await server.close();
});

test('when the ping after a timeout also fails, the connection is dropped and re-established', async () => {
  const target = new ParkingTarget('testfs-OST0000');
  const server = await serve([target]);
  const proxy = await TcpProxy.start('127.0.0.1', server.port);
  const client = new RpcClient({ uuid: 'dead-peer-client' }, log);
  const imp = importTo(client, proxy.port, target.name, { timeoutMs: 1_000 });
  await imp.connect();
  const states: ImportState[] = [];
  imp.on('state', (s: ImportState) => states.push(s));

  proxy.blackhole = true;
  await assert.rejects(imp.request(Opc.OST_GET_INFO, {}, { timeoutMs: 150 }), { code: 'RPC_TIMEOUT' });
  await reach(imp, 'DISCONN');
  proxy.blackhole = false;
  await reach(imp, 'FULL');
  assert.deepEqual(states.slice(0, 3), ['DISCONN', 'CONNECTING', 'FULL']);
  assert.deepEqual((await imp.request(Opc.OST_GET_INFO, {})).body, { fast: true });
  assert.equal(imp.stats.reconnects, 1);
  await client.close();
  await proxy.close();
  await server.close();
});

test('idle pings find a dead connection without any request', async () => {
  const target = new ParkingTarget('testfs-OST0000');
  const server = await serve([target]);
  const proxy = await TcpProxy.start('127.0.0.1', server.port);
  const client = new RpcClient({ uuid: 'idle-client' }, log);
  const imp = importTo(client, proxy.port, target.name, { timeoutMs: 1_000, pingIntervalMs: 100 });
  await imp.connect();
  // a healthy idle connection stays FULL across several ping intervals
  await new Promise((r) => setTimeout(r, 350));
  assert.equal(imp.state, 'FULL');
  proxy.blackhole = true;
  await reach(imp, 'DISCONN');
  proxy.blackhole = false;
  await reach(imp, 'FULL');
  await imp.ping();
  await client.close();
  await proxy.close();
  await server.close();
});

test('ping() reports a target that is not connected', async () => {
  const target = new ParkingTarget('testfs-OST0000');
  const server = await serve([target]);
  const client = new RpcClient({ uuid: 'ping-client' }, log);
  const imp = importTo(client, server.port, target.name, { recoveryWaitMs: 60_000 });
  await imp.ping(); // connects first
  await server.close();
  await reach(imp, 'CONNECTING');
  await assert.rejects(imp.ping(), { errno: Errno.ENOTCONN, code: 'NOT_CONNECTED' });
  await client.close();
});
