/**
 * The client's use of locks (llite/osc/mdc glue around src/ldlm/client.ts): one lock
 * namespace per target, data locks taken over a file's stripes in stripe order, and the
 * mapping from a lock back to the file whose cached state it protects, so losing a lock
 * drops exactly that state through the CacheInvalidator (the FUSE mount's kernel caches).
 */
import type { Logger } from '../common/log.js';
import { fidKey, type Fid } from '../common/fid.js';
import { mapExtent, type Raid0Layout } from '../common/layout.js';
import type { ObjAttr } from '../common/statfs.js';
import type { Import } from '../ptlrpc/import.js';
import type { RpcClient } from '../ptlrpc/client.js';
import { LdlmCallbackRouter } from '../ldlm/callback-router.js';
import { LdlmClientNamespace, type ClientLock, type RevokeReason } from '../ldlm/client.js';
import { EXTENT_EOF, LDLM_PAGE_SIZE, type Extent } from '../ldlm/extent.js';
import { InodeBit } from '../ldlm/inodebits.js';
import { LockMode } from '../ldlm/modes.js';
import { LdlmFlag, LockIntent, objectResource } from '../ldlm/protocol.js';
import { MdAttrCache } from './md-attr-cache.js';

/**
 * What the client caches under its MDT locks on an inode, in two locks (mdt-target.ts
 * CLIENT_NAME_BITS / CLIENT_ATTR_BITS): the names that lead to it (LOOKUP: kernel dentries,
 * entry_timeout) and its attributes (attr_timeout; the mode and owners are attributes to a
 * FUSE kernel, which checks permissions on them). An update revokes only the lock whose
 * bits it conflicts with, and only that lock's part of the cache is dropped.
 */
export const MD_NAME_BITS = InodeBit.LOOKUP;
export const MD_ATTR_BITS = InodeBit.UPDATE | InodeBit.PERM | InodeBit.XATTR | InodeBit.LAYOUT;
export const MD_CACHE_BITS = MD_NAME_BITS | MD_ATTR_BITS;

/** Where cached state lives outside the client core: the kernel, through FUSE notifications. */
export interface CacheInvalidator {
  /** drop cached attributes; must not wait on page locks (it is awaited before a cancel) */
  attrs(fid: Fid): Promise<void>;
  /** drop cached pages (and attributes); fired, not awaited: the kernel may hold page locks for us */
  data(fid: Fid): void;
  /** drop cached names that lead to fid; fired, not awaited: the kernel may hold the directory lock */
  names(fid: Fid): void;
}

export interface DataRevoke {
  fid: Fid;
  ostIdx: number;
  seq: number;
  oid: number;
  extent: Extent;
  mode: LockMode;
  why: RevokeReason;
}

/** Locks held for one operation; release() them all when done. */
export class HeldLocks {
  constructor(private readonly entries: Array<{ ns: LdlmClientNamespace; lock: ClientLock }>) {}

  get locks(): ClientLock[] {
    return this.entries.map((e) => e.lock);
  }

  /** True while every lock is still granted and not being called back. */
  get valid(): boolean {
    return this.entries.every((e) => e.ns.isValid(e.lock));
  }

  release(): void {
    for (const e of this.entries.splice(0)) e.ns.release(e.lock);
  }
}

export class ClientDlm {
  readonly router: LdlmCallbackRouter;
  mdc: LdlmClientNamespace | undefined;
  private readonly oscs = new Map<number, LdlmClientNamespace>();
  /** lock resource (per namespace) -> the file it belongs to */
  private readonly owners = new Map<string, Fid>();
  /**
   * Data lock -> its file, for the lock's whole life: `owners` is per resource and is
   * emptied when a resource's last lock goes, which can be while a new lock on it is
   * still being enqueued.
   */
  private readonly lockOwners = new WeakMap<ClientLock, Fid>();
  invalidator: CacheInvalidator | undefined;
  /**
   * Whether a data lock's attributes from its grant still describe the object: true until
   * this client wrote, truncated or set times under it (the data cache tracks that).
   * While a lock is held nobody else can change the object, so stat needs no RPC then.
   */
  lvbCurrent: (lock: ClientLock) => boolean = () => false;
  /**
   * Told when a data lock on one of a file's objects goes (after what it protected was
   * flushed, before the cancel): client caches outside the kernel (pages, PCC copies) drop
   * what the lock covered. `extent` is the lock's object extent, `ostIdx/seq/oid` its object.
   */
  readonly dataRevokeListeners = new Set<(ev: DataRevoke) => void | Promise<void>>();
  /** Told when another client glimpses an object this one holds a lock on: cached writes go out first. */
  readonly glimpseListeners = new Set<(ref: { ostIdx: number; seq: number; oid: number }) => Promise<void>>();
  /** Told when the last valid attribute lock (UPDATE|PERM|XATTR|LAYOUT) on an inode goes. */
  readonly attrRevokeListeners = new Set<(fid: Fid) => void>();
  /** inodes and xattrs read under attribute locks this client holds */
  readonly mdAttrs = new MdAttrCache();

  constructor(rpc: RpcClient, private readonly instance: string, private readonly log: Logger) {
    this.router = new LdlmCallbackRouter(rpc);
  }

  addMdc(target: string, imp: Import): LdlmClientNamespace {
    const ns = new LdlmClientNamespace(`${target}-mdc-${this.instance}`, imp, { revoke: (l, why) => this.revokeMetadata(l, why) }, this.log);
    this.router.add(target, ns);
    this.mdc = ns;
    return ns;
  }

  addOsc(index: number, target: string, imp: Import): LdlmClientNamespace {
    const ns = new LdlmClientNamespace(
      `${target}-osc-${this.instance}`,
      imp,
      { revoke: (l, why) => this.revokeData(index, l, why), glimpse: (l) => this.glimpseData(index, l) },
      this.log,
    );
    this.router.add(target, ns);
    this.oscs.set(index, ns);
    return ns;
  }

  namespaces(): LdlmClientNamespace[] {
    return this.router.all();
  }

  osc(index: number): LdlmClientNamespace {
    const ns = this.oscs.get(index);
    if (!ns) throw new Error(`no lock namespace for OST index ${index}`);
    return ns;
  }

  rememberMetadata(fid: Fid): string {
    const res = fidKey(fid);
    this.owners.set(`md/${res}`, fid);
    return res;
  }

  /**
   * Extent locks of `mode` over the object ranges that [offset, offset+length) maps to,
   * taken in stripe order so two clients never wait on each other in a cycle.
   * `whole` takes [0, EOF] on every object (O_APPEND, truncate).
   */
  async lockRange(fid: Fid, layout: Raid0Layout, mode: LockMode, offset: number, length: number, whole = false): Promise<HeldLocks> {
    const wanted: Array<{ stripe: number; extent: Extent }> = whole
      ? layout.objects.map((_, stripe) => ({ stripe, extent: { start: 0, end: EXTENT_EOF } }))
      : mapExtent(offset, Math.max(1, length), layout.stripeSize, layout.objects.length).map((e) => ({
          stripe: e.stripe,
          extent: { start: alignDown(e.objStart), end: Math.min(EXTENT_EOF, alignUp(e.objEnd) - 1) },
        }));
    const held: Array<{ ns: LdlmClientNamespace; lock: ClientLock }> = [];
    try {
      for (const w of wanted) {
        const obj = layout.objects[w.stripe]!;
        const ns = this.osc(obj.ostIdx);
        const res = this.rememberObject(obj.ostIdx, obj.seq, obj.oid, fid);
        const lock = await ns.lock(res, 'extent', mode, { extent: w.extent });
        this.lockOwners.set(lock, fid);
        held.push({ ns, lock });
      }
    } catch (e) {
      for (const h of held) h.ns.release(h.lock);
      throw e;
    }
    return new HeldLocks(held);
  }

  /**
   * `mode` [0, EOF] on every object of a file, all enqueued at once, each refused rather
   * than queued behind a conflicting lock (LDLM_FL_BLOCK_NOWAIT): for a file just created,
   * whose objects nobody else can hold yet. Holding one stripe while waiting for another in
   * any order but the stripes' could deadlock with a client taking them in order (lockRange),
   * so nothing here waits. Undefined when a stripe was refused; the locks granted stay cached.
   */
  async tryLockWhole(fid: Fid, layout: Raid0Layout, mode: LockMode): Promise<HeldLocks | undefined> {
    const results = await Promise.allSettled(
      layout.objects.map(async (obj) => {
        const ns = this.osc(obj.ostIdx);
        const res = this.rememberObject(obj.ostIdx, obj.seq, obj.oid, fid);
        const lock = ns.match(res, mode, { extent: { start: 0, end: EXTENT_EOF } })
          ?? (await ns.enqueue(res, 'extent', mode, { extent: { start: 0, end: EXTENT_EOF } }, { flags: LdlmFlag.BLOCK_NOWAIT })).lock;
        if (lock) this.lockOwners.set(lock, fid);
        return lock ? { ns, lock } : undefined;
      }),
    );
    const held = results.flatMap((r) => (r.status === 'fulfilled' && r.value ? [r.value] : []));
    if (held.length === layout.objects.length) return new HeldLocks(held);
    for (const h of held) h.ns.release(h.lock);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    return undefined;
  }

  /**
   * Object attributes for stat: under a cached lock covering the object, or from a glimpse
   * enqueue, which is granted a PR [0, EOF] lock when nothing conflicts and otherwise
   * returns the attributes merged with what the writer knows, without a lock (§3.3).
   */
  async glimpseObject(fid: Fid, ostIdx: number, seq: number, oid: number, getattr: () => Promise<ObjAttr>): Promise<{ attr: ObjAttr; lock?: { ns: LdlmClientNamespace; lock: ClientLock } }> {
    const ns = this.osc(ostIdx);
    const res = this.rememberObject(ostIdx, seq, oid, fid);
    const whole = { start: 0, end: EXTENT_EOF };
    const held = ns.match(res, LockMode.PR, { extent: whole });
    if (held) {
      if (held.lvb && this.lvbCurrent(held)) return { attr: held.lvb, lock: { ns, lock: held } };
      try {
        return { attr: await getattr(), lock: { ns, lock: held } };
      } catch (e) {
        ns.release(held);
        throw e;
      }
    }
    const { lock, reply } = await ns.enqueue(res, 'extent', LockMode.PR, { extent: whole }, { intent: LockIntent.GLIMPSE });
    if (lock) this.lockOwners.set(lock, fid);
    const attr = reply.lvb ?? (await getattr());
    return { attr, lock: lock ? { ns, lock } : undefined };
  }

  private rememberObject(ostIdx: number, seq: number, oid: number, fid: Fid): string {
    const res = objectResource(seq, oid);
    this.owners.set(`${ostIdx}/${res}`, fid);
    return res;
  }

  /**
   * An MDT lock goes: what it alone protected is dropped. Names go only with the last
   * valid LOOKUP lock on the inode, attributes only with the last valid attribute lock;
   * a lock the LRU trims while a newer one covers the same bits drops nothing.
   */
  private async revokeMetadata(lock: ClientLock, why: RevokeReason): Promise<void> {
    const key = `md/${lock.res}`;
    const fid = this.owners.get(key);
    const ns = this.mdc;
    const others = ns ? ns.locksOn(lock.res).filter((l) => l !== lock) : [];
    if (others.length === 0) this.owners.delete(key);
    let still = 0;
    for (const l of others) if (ns!.isValid(l)) still |= l.bits ?? 0;
    const lost = (lock.bits ?? MD_CACHE_BITS) & ~still;
    // whatever else happens: an attribute no lock covers any more is not served again
    if (lost & MD_ATTR_BITS || why === 'unmount') this.mdAttrs.drop(lock.res);
    if (!fid || why === 'unmount' || !this.invalidator) return;
    if (lost & MD_NAME_BITS) this.invalidator.names(fid);
    if (lost & MD_ATTR_BITS) {
      for (const l of this.attrRevokeListeners) l(fid);
      await this.invalidator.attrs(fid);
    }
  }

  /** The MDT locks this client holds on an inode and their bits, for tests and lctl. */
  metadataLocks(fid: Fid): Array<{ bits: number; valid: boolean }> {
    const ns = this.mdc;
    if (!ns) return [];
    return ns.locksOn(fidKey(fid)).map((l) => ({ bits: l.bits ?? 0, valid: ns.isValid(l) }));
  }

  private async glimpseData(ostIdx: number, lock: ClientLock): Promise<void> {
    const [seq, oid] = lock.res.split(':').map(Number);
    await Promise.all([...this.glimpseListeners].map((l) => l({ ostIdx, seq: seq!, oid: oid! })));
  }

  private async revokeData(ostIdx: number, lock: ClientLock, why: RevokeReason): Promise<void> {
    const key = `${ostIdx}/${lock.res}`;
    const fid = this.lockOwners.get(lock) ?? this.owners.get(key);
    if (this.oscs.get(ostIdx)?.locksOn(lock.res).length === 0) this.owners.delete(key);
    if (!fid || why === 'unmount') return;
    const [seq, oid] = lock.res.split(':').map(Number);
    const ev: DataRevoke = { fid, ostIdx, seq: seq!, oid: oid!, extent: lock.extent ?? { start: 0, end: EXTENT_EOF }, mode: lock.mode, why };
    // Listeners may flush dirty data under this lock: they all run before the cancel goes.
    await Promise.all([...this.dataRevokeListeners].map(async (l) => {
      try {
        await l(ev);
      } catch (e) {
        this.log.warn({ err: (e as Error).message, fid: fidKey(fid) }, 'cache callback on lock revoke failed');
      }
    }));
    if (!this.invalidator) return;
    this.invalidator.data(fid);
    await this.invalidator.attrs(fid);
  }

  async close(): Promise<void> {
    await Promise.all(this.namespaces().map((ns) => ns.close()));
  }
}

function alignDown(n: number): number {
  return n - (n % LDLM_PAGE_SIZE);
}

function alignUp(n: number): number {
  const r = n % LDLM_PAGE_SIZE;
  return r === 0 ? n : n + (LDLM_PAGE_SIZE - r);
}
