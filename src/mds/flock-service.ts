/**
 * POSIX record locks and BSD flocks held on the MDT for every client (reference §3.2
 * FLOCK), so fcntl/flock work across mounts. One FlockTable per (file, kind); blocked
 * F_SETLKW requests queue here and are completed by a completion AST; a request that
 * would close a wait cycle is refused with EDEADLK.
 */
import { z } from 'zod';
import { err } from '../common/errno.js';
import type { Logger } from '../common/log.js';
import { zSafeUint } from '../common/validate.js';
import { Opc } from '../ptlrpc/opcodes.js';
import type { ServerExport } from '../ptlrpc/types.js';
import { FLOCK_EOF, FlockTable, FlockWaitGraph, type FlockLock, type FlockRequest } from '../ldlm/flock.js';

export const FlockEnqueue = z.object({
  type: z.literal('flock'),
  res: z.string().min(1).max(128),
  /** 'posix' = fcntl record locks, 'bsd' = flock(2); they never interact */
  kind: z.enum(['posix', 'bsd']),
  /** the kernel's lock owner on that client, as a decimal string */
  owner: z.string().min(1).max(32),
  pid: zSafeUint,
  lock: z.enum(['read', 'write', 'unlock']),
  start: zSafeUint,
  end: zSafeUint,
  /** F_GETLK: report a conflicting lock, change nothing */
  test: z.boolean().optional(),
  /** F_SETLKW: queue when blocked */
  wait: z.boolean().optional(),
  cookie: zSafeUint,
});
export type FlockEnqueue = z.infer<typeof FlockEnqueue>;

export interface FlockReply {
  status: 'granted' | 'waiting' | 'conflict';
  handle?: number;
  /** F_GETLK / refused F_SETLK: the lock in the way (owner omitted, pid as its client reported it) */
  conflict?: { lock: 'read' | 'write'; start: number; end: number; pid: number };
}

/** Drops every lock of one owner on one file: close(2) of a POSIX owner, or the last close of a flock. */
export const FlockRelease = z.object({
  type: z.literal('flock-release'),
  res: z.string().min(1).max(128),
  kind: z.enum(['posix', 'bsd']),
  owner: z.string().min(1).max(32),
});

interface Waiter {
  handle: number;
  exp: ServerExport;
  cookie: number;
  key: string;
  req: FlockRequest;
}

export class FlockService {
  private readonly tables = new Map<string, FlockTable>();
  private readonly waiters = new Map<string, Waiter[]>();
  private readonly graph = new FlockWaitGraph();
  private nextHandle = 1;
  readonly stats = { granted: 0, refused: 0, waits: 0, deadlocks: 0 };

  constructor(private readonly log: Logger) {}

  get lockCount(): number {
    let n = 0;
    for (const t of this.tables.values()) n += t.locks().length;
    return n;
  }

  enqueue(exp: ServerExport, b: FlockEnqueue): FlockReply {
    if (b.start > b.end || b.end > FLOCK_EOF) throw err('EINVAL', 'bad lock range', 'FLOCK_BAD_RANGE');
    const key = tableKey(b.kind, b.res);
    const owner = ownerKey(exp, b.owner);
    const table = this.table(key);
    if (b.test) {
      if (b.lock === 'unlock') throw err('EINVAL', 'F_GETLK needs F_RDLCK or F_WRLCK', 'FLOCK_BAD_REQUEST');
      const c = table.test({ owner, pid: b.pid, type: b.lock, start: b.start, end: b.end });
      this.dropIfEmpty(key);
      return c ? { status: 'conflict', conflict: describe(c) } : { status: 'granted' };
    }
    const req: FlockRequest = { owner, pid: b.pid, type: b.lock, start: b.start, end: b.end };
    const r = table.set(req);
    if (r.granted) {
      this.stats.granted++;
      if (b.lock === 'unlock') this.retry(key);
      else this.dropIfEmpty(key);
      return { status: 'granted' };
    }
    if (!b.wait) {
      this.stats.refused++;
      this.dropIfEmpty(key);
      return { status: 'conflict', conflict: describe(r.blockers[0]!) };
    }
    const holders = [...new Set(r.blockers.map((l) => l.owner))];
    if (this.graph.wouldDeadlock(owner, holders)) {
      this.stats.deadlocks++;
      throw err('EDEADLK', 'resource deadlock would occur', 'FLOCK_DEADLOCK');
    }
    this.graph.addWait(owner, holders);
    const w: Waiter = { handle: this.nextHandle++, exp, cookie: b.cookie, key, req };
    const list = this.waiters.get(key) ?? [];
    list.push(w);
    this.waiters.set(key, list);
    this.stats.waits++;
    return { status: 'waiting', handle: w.handle };
  }

  release(exp: ServerExport, kind: 'posix' | 'bsd', res: string, owner: string): void {
    const key = tableKey(kind, res);
    const table = this.tables.get(key);
    if (!table) return;
    table.releaseOwner(ownerKey(exp, owner));
    this.retry(key);
  }

  /** Interrupted F_SETLKW: forget the waiting requests. */
  cancelWaits(exp: ServerExport, handles: readonly number[]): void {
    const wanted = new Set(handles);
    for (const [key, list] of this.waiters) {
      const keep = list.filter((w) => !(w.exp === exp && wanted.has(w.handle)));
      for (const w of list) if (!keep.includes(w)) this.graph.removeWait(w.req.owner);
      this.setWaiters(key, keep);
    }
  }

  /** The client is gone: its locks and waits go, and blocked requests of others are retried. */
  dropExport(exp: ServerExport): void {
    const prefix = `${exp.clientUuid}/`;
    for (const [key, list] of [...this.waiters]) {
      const keep = list.filter((w) => w.exp !== exp);
      for (const w of list) if (w.exp === exp) this.graph.removeWait(w.req.owner);
      this.setWaiters(key, keep);
    }
    for (const [key, table] of [...this.tables]) {
      table.releaseOwnersMatching((o) => o.startsWith(prefix));
      this.retry(key);
    }
  }

  /** Locks of one file (lctl, tests). */
  locks(kind: 'posix' | 'bsd', res: string): FlockLock[] {
    return this.tables.get(tableKey(kind, res))?.locks() ?? [];
  }

  private table(key: string): FlockTable {
    let t = this.tables.get(key);
    if (!t) this.tables.set(key, (t = new FlockTable()));
    return t;
  }

  private setWaiters(key: string, list: Waiter[]): void {
    if (list.length === 0) this.waiters.delete(key);
    else this.waiters.set(key, list);
  }

  private dropIfEmpty(key: string): void {
    if (this.tables.get(key)?.isEmpty() && !this.waiters.has(key)) this.tables.delete(key);
  }

  /** Grants queued requests that no longer conflict, in arrival order. */
  private retry(key: string): void {
    const list = this.waiters.get(key);
    const table = this.tables.get(key);
    if (list && table) {
      const still: Waiter[] = [];
      for (const w of list) {
        const r = table.set(w.req);
        if (!r.granted) {
          this.graph.addWait(w.req.owner, [...new Set(r.blockers.map((l) => l.owner))]);
          still.push(w);
          continue;
        }
        this.graph.removeWait(w.req.owner);
        this.stats.granted++;
        void this.complete(w);
      }
      this.setWaiters(key, still);
    }
    this.dropIfEmpty(key);
  }

  private async complete(w: Waiter): Promise<void> {
    try {
      await w.exp.request(Opc.LDLM_CP_CALLBACK, { handle: w.handle, cookie: w.cookie });
    } catch (e) {
      // The waiter is gone: its lock must not stay behind and block others.
      this.log.warn({ client: w.exp.clientUuid, res: w.key, err: (e as Error).message }, 'flock completion AST failed: dropping the lock');
      const table = this.tables.get(w.key);
      table?.set({ ...w.req, type: 'unlock' });
      this.retry(w.key);
    }
  }
}

function tableKey(kind: 'posix' | 'bsd', res: string): string {
  return `${kind}:${res}`;
}

function ownerKey(exp: ServerExport, owner: string): string {
  return `${exp.clientUuid}/${owner}`;
}

function describe(l: FlockLock): { lock: 'read' | 'write'; start: number; end: number; pid: number } {
  return { lock: l.type, start: l.start, end: l.end, pid: l.pid };
}
