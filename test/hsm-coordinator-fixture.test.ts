/**
 * Shared by the hsm-coordinator tests (it declares no tests of its own): a Coordinator over
 * a real LMDB store in a temp dir, with
 *  - TestHost: the coordinator's MDT side, backed by a Map of inodes, recording what the
 *    coordinator asked of it (completions, destroyed objects, changelog events);
 *  - AgentExport: a copytool's export whose `request` records the pushed action lists
 *    and can be made to fail or to look disconnected;
 *  - a manual clock, so agent-loss, timeouts and grace are driven by tick() and not by
 *    waiting.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { err, type StriaError } from '../src/common/errno.js';
import { FID_SEQ_NORMAL, fidKey, idifSeq, type Fid } from '../src/common/fid.js';
import type { HsmAttrs, Inode } from '../src/common/inode.js';
import type { OstObject, Raid0Layout } from '../src/common/layout.js';
import { silentLogger } from '../src/common/log.js';
import { Opc } from '../src/ptlrpc/opcodes.js';
import type { ReplyMessage, ServerExport } from '../src/ptlrpc/types.js';
import { openLmdbStore } from '../src/mds/store/lmdb.js';
import type { MetadataStore } from '../src/mds/store/types.js';
import { Coordinator, type CoordinatorHost, type CoordinatorOptions } from '../src/hsm/coordinator.js';
import { HS } from '../src/hsm/flags.js';
import { HSM_ACTIONS_KEY, type HsmActionItem, type HsmActionList } from '../src/hsm/protocol.js';

export const T0 = 1_700_000_000_000;
export const ROOT = { uid: 0, gid: 0 };
export const USER = { uid: 500, gid: 500 };

let oidSeq = 0;
export function newFid(): Fid {
  return { seq: FID_SEQ_NORMAL, oid: ++oidSeq, ver: 0 };
}

export class ManualClock {
  t = T0;
  now = (): number => this.t;
  advance(ms: number): void {
    this.t += ms;
  }
}

export interface HsmCall {
  fid: Fid;
  archiveId?: number;
  result?: { dataVersion: string; size: number; checksum: string };
  layout?: Raid0Layout;
  dataVersion?: string;
}

/** The MDT side of the coordinator, over a Map of inodes. */
export class TestHost implements CoordinatorHost {
  readonly fsname = 'testfs';
  readonly inodes = new Map<string, Inode>();
  readonly destroyed: OstObject[] = [];
  readonly events: Array<{ fid: Fid; event: number; errval: number }> = [];
  readonly archives: HsmCall[] = [];
  readonly restores: HsmCall[] = [];
  readonly removes: HsmCall[] = [];
  allocations = 0;
  failAllocate: StriaError | undefined;
  failComplete: StriaError | undefined;
  /** completions wait for this (an MDT slow to get its locks) */
  completeGate: Promise<void> | undefined;
  private nextOid = 0x1000;

  /** A regular file with `hsm` state; released files get the stub layout. */
  addFile(fid: Fid, o: { flags?: number; archiveId?: number; size?: number; stripeCount?: number; type?: Inode['type'] } = {}): Inode {
    const flags = o.flags ?? 0;
    const stripeCount = o.stripeCount ?? 2;
    const size = o.size ?? 3 * 1024 * 1024;
    const released = (flags & HS.RELEASED) !== 0;
    const t = { sec: 1_600_000_000, nsec: 5 };
    const hsm: HsmAttrs = { flags, archiveId: o.archiveId ?? (flags & HS.EXISTS ? 1 : 0) };
    if (flags & HS.ARCHIVED) {
      hsm.archVer = 'v1:abc';
      hsm.archSize = size;
      hsm.archChecksum = 'sha256:00ff';
    }
    const inode: Inode = {
      fid,
      type: o.type ?? 'reg',
      mode: 0o100644,
      uid: USER.uid,
      gid: USER.gid,
      nlink: 1,
      size,
      rdev: 0,
      atime: { sec: t.sec + 10, nsec: 0 },
      mtime: t,
      ctime: t,
      btime: t,
      layout: {
        pattern: released ? 'released' : 'raid0',
        stripeSize: 1024 * 1024,
        stripeCount,
        stripeOffset: -1,
        layoutGen: 3,
        objects: released ? [] : this.objects(stripeCount),
      },
      hsm,
    };
    this.inodes.set(fidKey(fid), inode);
    return inode;
  }

  inode(fid: Fid): Inode {
    const i = this.inodes.get(fidKey(fid));
    assert.ok(i, `no inode ${fidKey(fid)}`);
    return i;
  }

  private objects(n: number): OstObject[] {
    return Array.from({ length: n }, (_, i) => ({ ostIdx: i, seq: idifSeq(i), oid: this.nextOid++ }));
  }

  async getInode(fid: Fid): Promise<Inode | undefined> {
    const i = this.inodes.get(fidKey(fid));
    return i ? structuredClone(i) : undefined;
  }

  async allocateRestoreLayout(inode: Inode): Promise<Raid0Layout> {
    if (this.failAllocate) throw this.failAllocate;
    this.allocations++;
    const stub = inode.layout!;
    return { ...stub, pattern: 'raid0', objects: this.objects(stub.stripeCount) };
  }

  destroyObjects(objects: OstObject[]): void {
    this.destroyed.push(...objects);
  }

  async completeArchive(fid: Fid, archiveId: number, result: { dataVersion: string; size: number; checksum: string }): Promise<void> {
    this.archives.push({ fid, archiveId, result });
    if (this.failComplete) throw this.failComplete;
    const i = this.inode(fid);
    i.hsm = {
      flags: ((i.hsm?.flags ?? 0) | HS.EXISTS | HS.ARCHIVED) & ~(HS.DIRTY | HS.LOST),
      archiveId,
      archVer: result.dataVersion,
      archSize: result.size,
      archChecksum: result.checksum,
    };
  }

  async completeRestore(fid: Fid, layout: Raid0Layout, dataVersion?: string): Promise<void> {
    this.restores.push(dataVersion === undefined ? { fid, layout } : { fid, layout, dataVersion });
    await this.completeGate;
    if (this.failComplete) throw this.failComplete;
    const i = this.inode(fid);
    i.layout = { ...layout, layoutGen: (i.layout?.layoutGen ?? 0) + 1 };
    i.hsm = { ...i.hsm!, flags: i.hsm!.flags & ~HS.RELEASED, ...(dataVersion === undefined ? {} : { archVer: dataVersion }) };
  }

  async completeRemove(fid: Fid): Promise<void> {
    this.removes.push({ fid });
    if (this.failComplete) throw this.failComplete;
    const i = this.inodes.get(fidKey(fid));
    if (i?.hsm) i.hsm = { ...i.hsm, flags: i.hsm.flags & ~(HS.EXISTS | HS.ARCHIVED | HS.DIRTY) };
  }

  hsmEvent(fid: Fid, event: number, errval: number): void {
    this.events.push({ fid, event, errval });
  }
}

let handles = 0;

/** A copytool's MDT export: records pushed action lists; can fail pushes or go down. */
export class AgentExport implements ServerExport {
  readonly target = 'testfs-MDT0000';
  readonly peer = '127.0.0.1:40000';
  readonly handle = ++handles;
  /** bumped by reconnect() */
  connCnt = 1;
  readonly data = new Map<string, unknown>();
  connected = true;
  /** every push, failed ones included */
  readonly pushed: HsmActionList[] = [];
  failPushes: StriaError | undefined;

  constructor(readonly clientUuid: string) {}

  async request(opc: number, body: unknown): Promise<ReplyMessage> {
    assert.equal(opc, Opc.LDLM_SET_INFO);
    const b = body as { key: string; hal: HsmActionList };
    assert.equal(b.key, HSM_ACTIONS_KEY);
    this.pushed.push(structuredClone(b.hal));
    if (this.failPushes) throw this.failPushes;
    if (!this.connected) throw err('ENOTCONN', 'agent connection is down');
    return { body: {}, bulk: undefined, transno: 0, lastCommitted: 0 };
  }

  /** the client came back to this export on a new connection */
  reconnect(): void {
    this.connected = true;
    this.connCnt++;
  }

  items(action?: HsmActionItem['action']): HsmActionItem[] {
    return this.pushed.flatMap((h) => h.items).filter((i) => action === undefined || i.action === action);
  }
}

export interface Env {
  dir: string;
  store: MetadataStore;
  host: TestHost;
  clock: ManualClock;
  c: Coordinator;
  opts: Partial<CoordinatorOptions>;
  /** stops this coordinator and starts a new one on the same store, as after an MDS restart */
  restart(): Promise<Coordinator>;
}

/** Timers stay out of the way (loop period 1 h): tests drive the loop with tick(). */
export async function withCoordinator(fn: (env: Env) => Promise<void>, opts: Partial<CoordinatorOptions> = {}): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stria-hsmcdt-'));
  const store = await openLmdbStore(dir);
  const host = new TestHost();
  const clock = new ManualClock();
  const make = () => new Coordinator({ store, host, log: silentLogger(), clock: clock.now, loopPeriodMs: 3600_000, ...opts });
  const env: Env = {
    dir,
    store,
    host,
    clock,
    opts,
    c: make(),
    restart: async () => {
      await env.c.stop();
      env.c = make();
      await env.c.start();
      return env.c;
    },
  };
  try {
    await env.c.start();
    await fn(env);
  } finally {
    await env.c.stop();
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The pushed item of `cookie` (the last one pushed with it). */
export function pushedItem(agent: AgentExport, cookie: number): HsmActionItem {
  const found = agent.items().filter((i) => i.cookie === cookie && i.action !== 'CANCEL');
  assert.ok(found.length > 0, `cookie ${cookie} was not pushed to ${agent.clientUuid}`);
  return found[found.length - 1]!;
}

export function statusOf(c: Coordinator, cookie: number): string | undefined {
  return c.listActions().find((a) => a.cookie === cookie)?.status;
}

export async function rejects(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (e: StriaError) => {
    assert.equal(e.code, code, `expected ${code}, got ${e.code}: ${e.message}`);
    return true;
  });
}
