/**
 * The lock manager over real RPC on loopback: an OST-like target serving LDLM_ENQUEUE
 * and LDLM_CANCEL from an LdlmServer, and separate clients (each its own RpcClient,
 * callback router and lock namespace). Covers shared and conflicting grants with
 * blocking and completion ASTs, the client lock cache, extent growth, early lock
 * cancel, glimpses, eviction of a holder that never gives its lock back, the LRU,
 * and server-local locks. Orderings are asserted through recorded event sequences;
 * every wait is bounded.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { err } from '../src/common/errno.js';
import { silentLogger, type Logger } from '../src/common/log.js';
import type { ObjAttr } from '../src/common/statfs.js';
import { parseBody } from '../src/common/validate.js';
import { LdlmCallbackRouter } from '../src/ldlm/callback-router.js';
import { LdlmClientNamespace, type ClientLock, type LdlmClientOptions, type RevokeReason } from '../src/ldlm/client.js';
import { EXTENT_EOF, type Extent } from '../src/ldlm/extent.js';
import { LockMode } from '../src/ldlm/modes.js';
import { CancelRequest, EnqueueRequest, LockIntent, objectResource } from '../src/ldlm/protocol.js';
import { LdlmServer } from '../src/ldlm/server.js';
import type { Nid } from '../src/lnet/nid.js';
import { RpcClient } from '../src/ptlrpc/client.js';
import type { Import } from '../src/ptlrpc/import.js';
import { Opc } from '../src/ptlrpc/opcodes.js';
import { RpcServer } from '../src/ptlrpc/server.js';
import type { RequestHandler, ServerExport, TargetService } from '../src/ptlrpc/types.js';

const TARGET = 'testfs-OST0000';
const WHOLE: Extent = { start: 0, end: EXTENT_EOF };
const WAIT_LIMIT_MS = 20_000;
const POLL_MS = 5;
/** long enough that no holder in these tests is evicted unless the test wants it */
const RELAXED_CALLBACK_TIMEOUT_MS = 15_000;

const clientLog = silentLogger();

interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

function nidOf(port: number): Nid {
  return { addr: '127.0.0.1', port, net: 'tcp' };
}

function attrsOfSize(size: number): ObjAttr {
  const t = { sec: 1_700_000_000 + size, nsec: 0 };
  return { size, blocks: Math.ceil(size / 512), atime: t, mtime: t, ctime: t };
}

/** Resolves when `cond` holds, polling; fails the test when it does not within the limit. */
async function waitFor(cond: () => boolean, what: string, limitMs = WAIT_LIMIT_MS): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out after ${limitMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** `p`, or a failure when it does not settle within the limit. */
async function within<T>(p: Promise<T>, what: string, limitMs = WAIT_LIMIT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${limitMs} ms waiting for ${what}`)), limitMs);
  });
  try {
    return await Promise.race([p, limit]);
  } finally {
    clearTimeout(timer);
  }
}

/** The OST side: one target whose lock namespace sends attributes the test controls. */
class LockTarget implements TargetService {
  readonly name = TARGET;
  readonly handlers: ReadonlyMap<number, RequestHandler>;
  readonly ldlm: LdlmServer;
  private readonly attrs = new Map<string, ObjAttr>();

  constructor(callbackTimeoutMs: number, log: Logger, evict: (exp: ServerExport, why: string) => void) {
    this.ldlm = new LdlmServer({
      name: `filter-${TARGET}_UUID`,
      callbackTimeoutMs,
      log,
      evict,
      // A copy: the server may merge a glimpsed size into what it gets.
      lvb: async (res) => structuredClone(this.attrs.get(res) ?? attrsOfSize(0)),
    });
    this.handlers = new Map<number, RequestHandler>([
      [
        Opc.LDLM_ENQUEUE,
        async (ctx) => {
          const b = parseBody(EnqueueRequest, ctx.body);
          if (b.type !== 'extent') throw err('EINVAL', `bad request: an OST grants extent locks, not ${b.type}`, 'BAD_REQUEST');
          return { body: await this.ldlm.enqueue(ctx.export!, b) };
        },
      ],
      [
        Opc.LDLM_CANCEL,
        (ctx) => {
          this.ldlm.cancel(ctx.export!, parseBody(CancelRequest, ctx.body).handles);
          return { body: {} };
        },
      ],
    ]);
  }

  setSize(res: string, size: number): void {
    this.attrs.set(res, attrsOfSize(size));
  }

  onConnect(): unknown {
    return {};
  }

  onDisconnect(exp: ServerExport): void {
    this.ldlm.dropExport(exp);
  }
}

/** One client node: its own RpcClient, callback router and lock namespace for the target. */
interface TestClient {
  readonly name: string;
  readonly rpc: RpcClient;
  readonly imp: Import;
  readonly ns: LdlmClientNamespace;
  /** every revoke hook call, in order */
  readonly revokes: { res: string; why: RevokeReason }[];
  lock(res: string, mode: LockMode, extent?: Extent): Promise<ClientLock>;
}

class Harness {
  private readonly clients: TestClient[] = [];

  private constructor(
    readonly server: RpcServer,
    readonly target: LockTarget,
    /** what happened, in order: revokes, grants, evictions, test steps */
    readonly events: string[],
    readonly serverLines: LogLine[],
  ) {}

  static async start(callbackTimeoutMs = RELAXED_CALLBACK_TIMEOUT_MS): Promise<Harness> {
    const lines: LogLine[] = [];
    const events: string[] = [];
    const serverLog = pino({ level: 'info' }, {
      write: (s: string) => {
        const line = JSON.parse(s) as LogLine;
        lines.push(line);
        if (line.level >= 50 && line.ns !== undefined && /evicting client/.test(line.msg)) events.push(`server:evicts:${String(line.client)}`);
      },
    });
    let rpcServer: RpcServer | undefined;
    const target = new LockTarget(callbackTimeoutMs, serverLog, (exp, why) => rpcServer?.evict(exp, why));
    rpcServer = new RpcServer({ nid: nidOf(0) }, serverLog);
    rpcServer.addTarget(target);
    await rpcServer.listen();
    return new Harness(rpcServer, target, events, lines);
  }

  get ldlm(): LdlmServer {
    return this.target.ldlm;
  }

  async client(name: string, opts: LdlmClientOptions = {}): Promise<TestClient> {
    const rpc = new RpcClient({ uuid: `client-${name}` }, clientLog);
    const router = new LdlmCallbackRouter(rpc);
    const imp = rpc.import({
      nids: [nidOf(this.server.port)],
      target: TARGET,
      connectOpc: Opc.OST_CONNECT,
      pingIntervalMs: 0,
      timeoutMs: 5_000,
      recoveryWaitMs: WAIT_LIMIT_MS,
    });
    const revokes: { res: string; why: RevokeReason }[] = [];
    const events = this.events;
    const ns = new LdlmClientNamespace(
      `${TARGET}-osc-${name}`,
      imp,
      {
        revoke(lock, why) {
          revokes.push({ res: lock.res, why });
          events.push(`${name}:revoke:${why}`);
        },
      },
      clientLog,
      opts,
    );
    router.add(TARGET, ns);
    const c: TestClient = {
      name, rpc, imp, ns, revokes,
      lock: (res, mode, extent = WHOLE) => ns.lock(res, 'extent', mode, { extent }),
    };
    this.clients.push(c);
    await within(imp.connect(), `${name} to connect`);
    return c;
  }

  /** The server-side export of a client, if it has one. */
  exportOf(c: TestClient): ServerExport | undefined {
    return this.server.exports(TARGET).find((e) => e.clientUuid === c.rpc.uuid);
  }

  /** A request/reply round trip on each client's connection: whatever was sent before has been handled. */
  async roundTrips(): Promise<void> {
    for (const c of this.clients) await within(c.imp.ping(), `${c.name} to ping`);
  }

  async close(): Promise<void> {
    for (const c of this.clients) {
      await c.ns.close().catch(() => undefined);
      await c.rpc.close();
    }
    this.ldlm.close();
    await this.server.close();
  }
}

async function withHarness(fn: (h: Harness) => Promise<void>, callbackTimeoutMs?: number): Promise<void> {
  const h = await Harness.start(callbackTimeoutMs);
  try {
    await fn(h);
  } finally {
    await h.close();
  }
}

test('PR/PR share: two clients are both granted PR [0, EOF] on one resource without any AST', async () => {
  await withHarness(async (h) => {
    const res = objectResource(1, 1);
    const a = await h.client('A');
    const b = await h.client('B');
    const la = await within(a.lock(res, LockMode.PR), 'A PR grant');
    const lb = await within(b.lock(res, LockMode.PR), 'B PR grant');
    assert.ok(a.ns.isValid(la) && b.ns.isValid(lb));
    assert.deepEqual(la.extent, WHOLE);
    assert.deepEqual(lb.extent, WHOLE);
    assert.notEqual(la.handle, lb.handle);
    assert.equal(h.ldlm.lockCount, 2);
    assert.equal(h.ldlm.stats.grants, 2);
    assert.equal(h.ldlm.stats.waits, 0);
    assert.equal(h.ldlm.stats.blockingAsts, 0);
    assert.equal(h.ldlm.stats.completionAsts, 0);
    assert.deepEqual([a.revokes, b.revokes], [[], []]);
    a.ns.release(la);
    b.ns.release(lb);
  });
});

test('blocking + completion: B\'s PW waits, A\'s cached PR is called back and cancelled, then B is granted by a completion AST', async () => {
  await withHarness(async (h) => {
    const res = objectResource(1, 2);
    const a = await h.client('A');
    const b = await h.client('B');
    const la = await within(a.lock(res, LockMode.PR), 'A PR grant');
    a.ns.release(la);
    assert.equal(a.ns.unusedCount, 1, 'A keeps its released lock cached');

    h.target.setSize(res, 12_345);
    const lb = await within(
      b.lock(res, LockMode.PW).then((l) => {
        h.events.push('B:granted');
        return l;
      }),
      'B PW grant',
    );

    assert.deepEqual(h.events, ['A:revoke:blocking', 'B:granted']);
    assert.deepEqual(a.revokes, [{ res, why: 'blocking' }]);
    assert.equal(a.ns.stats.blockingAsts, 1);
    assert.equal(a.ns.stats.cancels, 1, 'A sent LDLM_CANCEL for its lock');
    assert.equal(h.ldlm.stats.waits, 1, "B's enqueue waited");
    assert.equal(h.ldlm.stats.blockingAsts, 1);
    assert.equal(h.ldlm.stats.cancels, 1);
    assert.equal(h.ldlm.stats.completionAsts, 1);
    assert.equal(b.ns.stats.completionAsts, 1, 'B was granted through a completion AST');
    assert.ok(b.ns.isValid(lb));
    assert.deepEqual(lb.extent, WHOLE);
    assert.equal(lb.lvb?.size, 12_345, 'the completion AST carries the current object attributes');

    assert.equal(a.ns.match(res, LockMode.PR, { extent: WHOLE }), undefined, "A's namespace no longer matches the lock");
    assert.deepEqual(a.ns.locksOn(res), []);
    assert.equal(a.ns.unusedCount, 0);
    assert.equal(a.ns.lockCount, 0);
    assert.equal(h.ldlm.lockCount, 1);
    b.ns.release(lb);
  });
});

test('blocking AST to a lock in use: the holder finishes first; the waiter is granted only after release()', async () => {
  await withHarness(async (h) => {
    const res = objectResource(1, 3);
    const a = await h.client('A');
    const b = await h.client('B');
    const la = await within(a.lock(res, LockMode.PR), 'A PR grant');

    const bLock = b.lock(res, LockMode.PW).then((l) => {
      h.events.push('B:granted');
      return l;
    });
    await waitFor(() => a.ns.stats.blockingAsts === 1, 'the blocking AST to reach A');
    h.events.push('A:blocking-ast-seen');
    // Whatever A or the server would do on their own has had the chance to happen.
    await h.roundTrips();
    assert.equal(a.ns.isValid(la), false, 'a called-back lock no longer protects new cached state');
    assert.equal(a.ns.match(res, LockMode.PR, { extent: WHOLE }), undefined, 'a called-back lock matches no new user');
    assert.deepEqual(a.revokes, [], 'A does not revoke a lock it still uses');
    assert.equal(h.ldlm.stats.cancels, 0);
    assert.equal(h.ldlm.lockCount, 2, "A's granted lock and B's waiting one");

    h.events.push('A:release');
    a.ns.release(la);
    const lb = await within(bLock, 'B PW grant after A released');

    assert.deepEqual(h.events, ['A:blocking-ast-seen', 'A:release', 'A:revoke:blocking', 'B:granted']);
    assert.equal(h.ldlm.stats.blockingAsts, 1);
    assert.equal(h.ldlm.stats.cancels, 1);
    assert.equal(b.ns.stats.completionAsts, 1);
    assert.deepEqual(a.ns.locksOn(res), []);
    assert.equal(h.ldlm.lockCount, 1);
    b.ns.release(lb);
  });
});

test('lock caching: re-taking a released lock (or a sub-range of it) is a local match with no lock RPC', async () => {
  await withHarness(async (h) => {
    const res = objectResource(1, 4);
    const a = await h.client('A');
    const first = await within(a.lock(res, LockMode.PR), 'A PR grant');
    a.ns.release(first);
    const clientEnqueues = a.ns.stats.enqueues;
    const serverEnqueues = h.ldlm.stats.enqueues;
    const matches = a.ns.stats.matches;
    assert.equal(clientEnqueues, 1);

    const again = await within(a.lock(res, LockMode.PR), 'A PR re-lock');
    assert.equal(again, first, 'the same cached lock');
    a.ns.release(again);
    const sub = await within(a.lock(res, LockMode.PR, { start: 4096, end: 8191 }), 'A PR sub-range lock');
    assert.equal(sub, first);
    a.ns.release(sub);

    assert.equal(a.ns.stats.enqueues, clientEnqueues, 'the client sent no enqueue');
    assert.equal(h.ldlm.stats.enqueues, serverEnqueues, 'the server saw no enqueue');
    assert.equal(a.ns.stats.matches, matches + 2);
    assert.equal(h.ldlm.lockCount, 1);
    assert.equal(a.ns.unusedCount, 1);
  });
});

test('extent growth: a lone PW request for [4096, 8191] is granted [0, EOF]', async () => {
  await withHarness(async (h) => {
    const res = objectResource(1, 5);
    const a = await h.client('A');
    const l = await within(a.lock(res, LockMode.PW, { start: 4096, end: 8191 }), 'A PW grant');
    assert.deepEqual(l.extent, WHOLE);
    assert.equal(h.ldlm.stats.waits, 0);
    a.ns.release(l);
    // The grown lock serves any later write to the object without an RPC.
    const far = await within(a.lock(res, LockMode.PW, { start: 1 << 30, end: (1 << 30) + 4095 }), 'A PW far lock');
    assert.equal(far, l);
    assert.equal(a.ns.stats.enqueues, 1);
    a.ns.release(far);
  });
});

test('early lock cancel: A upgrading its own unused PR to PW cancels it inside the enqueue, with no blocking AST', async () => {
  await withHarness(async (h) => {
    const res = objectResource(1, 6);
    const a = await h.client('A');
    const pr = await within(a.lock(res, LockMode.PR), 'A PR grant');
    a.ns.release(pr);
    const bl = h.ldlm.stats.blockingAsts;
    const early = h.ldlm.stats.earlyCancels;

    const pw = await within(a.lock(res, LockMode.PW), 'A PW grant');

    assert.equal(h.ldlm.stats.blockingAsts, bl, 'no blocking AST was sent');
    assert.equal(a.ns.stats.blockingAsts, 0);
    assert.equal(h.ldlm.stats.earlyCancels, early + 1);
    assert.equal(a.ns.stats.earlyCancels, 1);
    assert.equal(h.ldlm.stats.waits, 0, 'the PW request never waited');
    assert.deepEqual(a.revokes, [{ res, why: 'early-cancel' }]);
    assert.equal(a.ns.isValid(pr), false);
    assert.deepEqual(a.ns.locksOn(res), [pw]);
    assert.equal(h.ldlm.lockCount, 1);
    a.ns.release(pw);
  });
});

test('glimpse: B learns the size A knows under its PW lock, gets no lock, and A keeps its lock', async () => {
  await withHarness(async (h) => {
    const res = objectResource(1, 7);
    h.target.setSize(res, 100);
    const a = await h.client('A');
    const b = await h.client('B');
    const pw = await within(a.lock(res, LockMode.PW), 'A PW grant');
    assert.equal(pw.lvb?.size, 100);
    pw.knownSize = 5000;
    a.ns.release(pw);

    const { lock, reply } = await within(
      b.ns.enqueue(res, 'extent', LockMode.PR, { extent: WHOLE }, { intent: LockIntent.GLIMPSE }),
      'B glimpse',
    );

    assert.equal(lock, undefined);
    assert.equal(reply.status, 'aborted');
    assert.equal(reply.handle, 0);
    assert.equal(reply.lvb?.size, 5000, "the holder's known size beats the server's");
    assert.equal(h.ldlm.stats.glimpseAsts, 1);
    assert.equal(a.ns.stats.glimpseAsts, 1);
    assert.equal(h.ldlm.stats.blockingAsts, 0);
    assert.deepEqual(a.revokes, []);
    assert.ok(a.ns.isValid(pw), 'A keeps its lock');
    assert.deepEqual(a.ns.locksOn(res), [pw]);
    assert.equal(b.ns.lockCount, 0);
    assert.equal(h.ldlm.lockCount, 1);
    // The server's own attributes are untouched by the glimpse.
    const { reply: again } = await within(
      b.ns.enqueue(res, 'extent', LockMode.PR, { extent: WHOLE }, { intent: LockIntent.GLIMPSE }),
      'B second glimpse',
    );
    assert.equal(again.lvb?.size, 5000);
  });
});

test('eviction: a holder that never releases is evicted after the callback timeout; the waiter is granted; the evicted client drops its locks and works on', async () => {
  await withHarness(async (h) => {
    const res = objectResource(1, 8);
    const a = await h.client('A');
    const b = await h.client('B');
    const held = await within(a.lock(res, LockMode.PR), 'A PR grant');
    const oldExport = h.exportOf(a);
    assert.ok(oldExport, 'A has an export');

    const bLock = b.lock(res, LockMode.PW).then((l) => {
      h.events.push('B:granted');
      return l;
    });
    const lb = await within(bLock, 'B PW grant after the eviction of A');

    assert.deepEqual(h.events.slice(0, 2), [`server:evicts:${a.rpc.uuid}`, 'B:granted']);
    assert.equal(h.ldlm.stats.evictions, 1);
    assert.equal(h.ldlm.stats.cancels, 0, 'A never cancelled');
    assert.equal(a.ns.stats.blockingAsts, 1, 'A did get the blocking AST');
    const ldlmLine = h.serverLines.find((l) => l.level === 50 && l.ns !== undefined);
    assert.ok(ldlmLine, 'the lock namespace logged the eviction');
    assert.match(ldlmLine.msg, /lock callback timer expired after \d+s: evicting client client-A/);
    assert.equal(ldlmLine.lock, held.handle);
    assert.ok(
      h.serverLines.some((l) => l.level === 40 && l.client === a.rpc.uuid && /^evicting client/.test(l.msg)),
      'the RPC server logged dropping the export',
    );
    assert.ok(!h.server.exports(TARGET).includes(oldExport), "the server dropped A's export");

    // A reconnects on its own, learns it was evicted, and forgets every lock.
    await waitFor(() => a.revokes.some((r) => r.why === 'evicted'), "A's namespace to drop its locks");
    assert.deepEqual(a.revokes, [{ res, why: 'evicted' }]);
    assert.equal(a.ns.lockCount, 0);
    assert.equal(a.ns.isValid(held), false);
    a.ns.release(held);
    assert.deepEqual(a.revokes, [{ res, why: 'evicted' }], 'releasing a lost lock sends nothing and revokes nothing');
    assert.equal(a.imp.stats.evictions, 1);
    const newExport = h.exportOf(a);
    assert.ok(newExport && newExport.handle !== oldExport.handle, 'A has a new export');

    // A takes new locks afterwards: B's cached PW is called back for it.
    b.ns.release(lb);
    const again = await within(a.lock(res, LockMode.PR), 'A PR grant after eviction');
    assert.ok(a.ns.isValid(again));
    assert.deepEqual(b.revokes, [{ res, why: 'blocking' }]);
    assert.equal(h.ldlm.locksOf(newExport), 1);
    assert.equal(h.ldlm.lockCount, 1);
    assert.equal(h.ldlm.stats.evictions, 1);
    a.ns.release(again);
  }, 1_000);
});

test('LRU: with lru_size 2, releasing 4 locks cancels the 2 oldest; lru_size=clear cancels the rest', async () => {
  await withHarness(async (h) => {
    const a = await h.client('A');
    a.ns.setLruSize(2);
    assert.equal(a.ns.lruSize, 2);
    assert.equal(a.ns.lruResize, false);
    const resources = [11, 12, 13, 14].map((oid) => objectResource(1, oid));
    const locks: ClientLock[] = [];
    for (const res of resources) locks.push(await within(a.lock(res, LockMode.PR), `A PR grant on ${res}`));
    assert.equal(h.ldlm.lockCount, 4);
    for (const l of locks) a.ns.release(l);

    assert.equal(a.ns.unusedCount, 2);
    assert.equal(a.ns.stats.lruCancels, 2);
    await waitFor(() => h.ldlm.lockCount === 2, 'the server to drop the 2 LRU-cancelled locks');
    assert.deepEqual(a.revokes, [
      { res: resources[0], why: 'lru' },
      { res: resources[1], why: 'lru' },
    ]);
    assert.deepEqual(resources.map((r) => a.ns.locksOn(r).length), [0, 0, 1, 1], 'the most recently used stay cached');

    a.ns.setLruSize('clear');
    assert.equal(a.ns.unusedCount, 0);
    await waitFor(() => h.ldlm.lockCount === 0, 'the server to drop the cleared locks');
    assert.equal(a.ns.lockCount, 0);
    assert.deepEqual(a.revokes.map((r) => r.why), ['lru', 'lru', 'lru', 'lru']);
    assert.equal(h.ldlm.stats.cancels, 4);
    assert.equal(h.ldlm.stats.blockingAsts, 0);
  });
});

test('local locks: a server-local PW revokes a cached client PR before it is granted, and holds off client enqueues until released', async () => {
  await withHarness(async (h) => {
    const res = objectResource(1, 9);
    const a = await h.client('A');
    const b = await h.client('B');
    const pr = await within(a.lock(res, LockMode.PR), 'A PR grant');
    a.ns.release(pr);

    const local = await within(
      h.ldlm.lockLocal(res, 'extent', LockMode.PW, { extent: WHOLE }).then((l) => {
        h.events.push(`local:granted after ${h.ldlm.stats.cancels} cancel(s)`);
        return l;
      }),
      'the local lock',
    );
    assert.deepEqual(h.events, ['A:revoke:blocking', 'local:granted after 1 cancel(s)']);
    assert.deepEqual(a.ns.locksOn(res), []);
    assert.equal(h.ldlm.lockCount, 1);

    const bLock = b.lock(res, LockMode.PR).then((l) => {
      h.events.push('B:granted');
      return l;
    });
    await waitFor(() => b.ns.stats.waits === 1, "B's enqueue to be answered 'waiting'");
    await h.roundTrips();
    assert.equal(h.ldlm.stats.blockingAsts, 1, 'a local lock gets no blocking AST');
    assert.equal(h.ldlm.lockCount, 2);

    h.events.push('local:released');
    local.release();
    const lb = await within(bLock, 'B PR grant after the local lock went');
    assert.deepEqual(h.events, ['A:revoke:blocking', 'local:granted after 1 cancel(s)', 'local:released', 'B:granted']);
    assert.equal(b.ns.stats.completionAsts, 1);
    assert.ok(b.ns.isValid(lb));
    assert.equal(h.ldlm.lockCount, 1);
    b.ns.release(lb);
  });
});
