/** The MDT's request handlers: namespace operations over the wire. */
import { statfs } from 'node:fs/promises';
import { z } from 'zod';
import type { Logger } from '../common/log.js';
import { err } from '../common/errno.js';
import { FID_SEQ_NORMAL, FID_SEQ_WIDTH, ROOT_FID, fidKey, type Fid } from '../common/fid.js';
import { validatePoolName, validateStripeCount, validateStripeSize, type LayoutTemplate, type OstObject, type Raid0Layout } from '../common/layout.js';
import { mdtName } from '../common/targets.js';
import type { DirEntry, FileType } from '../common/inode.js';
import { Opc, ReintOp } from '../ptlrpc/opcodes.js';
import type { RequestContext, RequestHandler, ServerExport, TargetService } from '../ptlrpc/types.js';
import type { Namespace } from './namespace.js';
import type { ObjectAllocator } from './lod.js';
import { zFid, zSafeUint } from '../common/validate.js';
import { LdlmServer } from '../ldlm/server.js';
import { LockMode } from '../ldlm/modes.js';
import { InodeBit } from '../ldlm/inodebits.js';
import { CancelRequest, EnqueueRequest } from '../ldlm/protocol.js';
import type { Inode } from '../common/inode.js';
import { FlockEnqueue, FlockRelease, FlockService } from './flock-service.js';
import { isStoreUrl } from './store/open.js';
import { CL, CLF_UNLINK_HSM_EXISTS, CLF_UNLINK_LAST, CLF_HSM_EVENT, hsmRecordFlags, type ChangelogInput, type ChangelogSink } from './changelog-types.js';
import { HS } from '../hsm/flags.js';
import type { Coordinator } from '../hsm/coordinator.js';
import { MdtHsmHost, registerHsmHandlers } from './hsm-handlers.js';

const REDIS_FREE_INODES = 2 ** 32;
import {
  EarlyCancels, CloseBody, FidBody, GetxattrBody, LookupBody, MdsConnectData, ReadpageBody, ReintBody, SetInfoBody, parseBody,
  type LayoutRequest, type MdsConnectReply, type MdtStatfs,
} from './protocol.js';

export interface MdtOptions {
  fsname: string;
  index: number;
  storeDir: string;
  fsDefault: { stripeSize: number; stripeCount: number };
  /** how long a client has to give a lock back before it is evicted (default 20 s) */
  ldlmTimeoutMs?: number;
  /** where namespace and HSM changes are recorded (also settable later: `mdt.changelog = sink`) */
  changelog?: ChangelogSink;
}

/**
 * What a client caches under its PR locks on an inode, in two locks so that losing one
 * leaves the other (reference §3.6): the name lock protects the dentries that lead to
 * the inode; the attribute lock protects what stat(2) shows (size, nlink, times, and the
 * mode and owners: a FUSE kernel checks permissions on its cached attributes), its
 * xattrs and its layout. A create in a directory revokes the directory's attribute lock
 * only, so the directory's name stays cached, and so do the names below it.
 */
export const CLIENT_NAME_BITS = InodeBit.LOOKUP;
export const CLIENT_ATTR_BITS = InodeBit.UPDATE | InodeBit.PERM | InodeBit.XATTR | InodeBit.LAYOUT;
/** Everything a client may cache on an inode: what an unlink revokes. */
export const CLIENT_CACHE_BITS = CLIENT_NAME_BITS | CLIENT_ATTR_BITS;
const INTENT_LOOKUP_RETRIES = 4;

interface OpenHandle {
  fid: Fid;
  /** opened for write (O_WRONLY, O_RDWR, O_TRUNC, or a create): HSM release refuses the file meanwhile */
  write: boolean;
}

/** Linux open(2) flags as clients send them. */
const O_ACCMODE = 0o3;
const O_TRUNC = 0o1000;

export function opensForWrite(flags: number): boolean {
  return (flags & O_ACCMODE) !== 0 || (flags & O_TRUNC) !== 0;
}

const HANDLES_KEY = 'openHandles';

export class MdtTarget implements TargetService {
  readonly name: string;
  readonly handlers = new Map<number, RequestHandler>();
  private nextHandle = 1;
  readonly stats = { creates: 0, unlinks: 0, renames: 0, opens: 0, getattrs: 0, readpages: 0 };
  /** inodebits locks (mdt-<target>_UUID) */
  readonly ldlm: LdlmServer;
  /** fcntl and flock locks of every client */
  readonly flocks: FlockService;
  /** set by the daemon once its RPC server exists */
  evictor: (exp: ServerExport, reason: string) => void = () => undefined;
  /** records of every namespace and HSM change, when the MDS keeps a changelog */
  changelog: ChangelogSink | undefined;
  /** the HSM coordinator; until set, HSM requests other than release and state answer EAGAIN */
  coordinator: Coordinator | undefined;
  /** what the coordinator calls back into: inodes, layouts, objects, completions */
  readonly hsmHost: MdtHsmHost;

  constructor(
    private readonly ns: Namespace,
    private readonly lod: ObjectAllocator,
    private readonly opts: MdtOptions,
    private readonly log: Logger,
  ) {
    this.name = mdtName(opts.fsname, opts.index);
    this.changelog = opts.changelog;
    this.hsmHost = new MdtHsmHost(this, lod, opts.fsname, log);
    this.ldlm = new LdlmServer({
      name: `mdt-${this.name}_UUID`,
      callbackTimeoutMs: opts.ldlmTimeoutMs ?? 20_000,
      log,
      evict: (exp, why) => this.evictor(exp, why),
    });
    this.flocks = new FlockService(log);
    const h = this.handlers;
    h.set(Opc.SEQ_QUERY, async () => ({ body: { seq: await ns.allocSequence(), width: FID_SEQ_WIDTH } }));
    h.set(Opc.MDS_GET_ROOT, () => ({ body: { fid: ROOT_FID } }));
    h.set(Opc.MDS_GETATTR, async (ctx) => {
      this.stats.getattrs++;
      const b = parseBody(FidBody, ctx.body);
      if (!b.lock) return { body: { inode: await ns.getattr(b.fid) } };
      // By FID: no name is resolved, so the attribute lock only (IT_GETATTR without LOOKUP).
      const r = await this.underClientLocks(ctx, b.fid, [{ cookie: b.lock.cookie, bits: CLIENT_ATTR_BITS }], () => ns.getattr(b.fid));
      return { body: { inode: r.inode, lock: r.locks[0] } };
    });
    h.set(Opc.MDS_GETATTR_NAME, async (ctx) => {
      const b = parseBody(LookupBody, ctx.body);
      const { locks } = parseBody(LookupLocks, ctx.body);
      const wanted: WantedLock[] = [];
      if (locks?.name !== undefined) wanted.push({ cookie: locks.name, bits: CLIENT_NAME_BITS });
      if (locks?.attrs !== undefined) wanted.push({ cookie: locks.attrs, bits: CLIENT_ATTR_BITS });
      // a client that asks with `lock` alone caches its name and attributes under one lock
      if (wanted.length === 0 && b.lock) wanted.push({ cookie: b.lock.cookie, bits: CLIENT_CACHE_BITS });
      if (wanted.length === 0) return { body: { inode: await ns.lookup(b.parent, b.name) } };
      // The child is known only after the lookup; the name must still lead to it once locked.
      for (let attempt = 0; ; attempt++) {
        const fid = (await ns.lookup(b.parent, b.name)).fid;
        const r = await this.underClientLocks(ctx, fid, wanted, () => ns.lookup(b.parent, b.name));
        if (fidKey(r.inode.fid) === fidKey(fid) || attempt >= INTENT_LOOKUP_RETRIES) return { body: lookupReply(r, locks !== undefined) };
        this.ldlm.cancel(ctx.export, r.locks.map((l) => l.handle));
      }
    });
    h.set(Opc.LDLM_ENQUEUE, async (ctx) => {
      const exp = requireExport(ctx.export);
      const type = (ctx.body as { type?: unknown } | undefined)?.type;
      if (type === 'flock') return { body: this.flocks.enqueue(exp, parseBody(FlockEnqueue, ctx.body)) };
      if (type === 'flock-release') {
        const b = parseBody(FlockRelease, ctx.body);
        this.flocks.release(exp, b.kind, b.res, b.owner);
        return { body: {} };
      }
      const b = parseBody(EnqueueRequest, ctx.body);
      if (b.type !== 'ibits') throw err('EINVAL', `bad request: an MDT grants inodebits and flock locks, not ${b.type}`, 'BAD_REQUEST');
      return { body: await this.ldlm.enqueue(exp, b) };
    });
    h.set(Opc.LDLM_CANCEL, (ctx) => {
      const exp = requireExport(ctx.export);
      const { handles } = parseBody(CancelRequest, ctx.body);
      this.ldlm.cancel(exp, handles);
      this.flocks.cancelWaits(exp, handles);
      return { body: {} };
    });
    h.set(Opc.MDS_READPAGE, async (ctx) => {
      this.stats.readpages++;
      const b = parseBody(ReadpageBody, ctx.body);
      return { body: fitReaddirPage(await ns.readdir(b.fid, b.cookie, b.limit)) };
    });
    h.set(Opc.MDS_GETXATTR, async (ctx) => {
      const b = parseBody(GetxattrBody, ctx.body);
      if ('list' in b) return { body: { names: await ns.listxattr(b.fid) } };
      return { body: { value: await ns.getxattr(b.fid, b.name) } };
    });
    h.set(Opc.MDS_CLOSE, (ctx) => this.close(ctx));
    h.set(Opc.MDS_REINT, (ctx) => this.reint(ctx));
    h.set(Opc.MDS_STATFS, async () => ({ body: await this.statfs() }));
    h.set(Opc.MDS_SET_INFO, async (ctx) => {
      const b = parseBody(SetInfoBody, ctx.body);
      const tpl = b.template === null ? undefined : checkTemplate(b.template);
      const inode = await this.underLocks([[b.fid, InodeBit.UPDATE | InodeBit.LAYOUT]], () => ns.setDirDefault(b.fid, tpl));
      await this.record(ctx, { type: CL.LYOUT, tfid: b.fid });
      return { body: { inode } };
    });
    h.set(Opc.MDS_SYNC, () => ({ body: {} }));
    h.set(Opc.MDS_GET_INFO, async (ctx) => {
      const b = parseBody(GetInfoBody, ctx.body);
      if (b.key === 'links') return { body: await ns.links(b.fid) };
      return { body: await ns.fid2path(b.fid, { from: b.link ?? 0, maxBytes: FID2PATH_REPLY_BUDGET }) };
    });
    registerHsmHandlers(this);
  }

  /** The namespace this target serves (HSM handlers and the coordinator's host use it). */
  get namespace(): Namespace {
    return this.ns;
  }

  onConnect(_exp: ServerExport, data: unknown): MdsConnectReply {
    const d = parseBody(MdsConnectData, data);
    if (d.fsname !== this.opts.fsname) {
      throw err('EINVAL', `this MDT serves filesystem ${this.opts.fsname}, not ${d.fsname}`, 'WRONG_FILESYSTEM');
    }
    return { fsname: this.opts.fsname, index: this.opts.index, root: ROOT_FID, fsDefault: this.opts.fsDefault };
  }

  onDisconnect(exp: ServerExport): void {
    this.ldlm.dropExport(exp);
    this.flocks.dropExport(exp);
    this.coordinator?.dropExport(exp);
    const handles = exp.data.get(HANDLES_KEY) as Map<number, OpenHandle> | undefined;
    if (!handles) return;
    for (const h of handles.values()) void this.dropHandle(h);
    handles.clear();
  }

  /**
   * A client went away with the file open: what it wrote may be anywhere between its
   * cache and the OSTs, so a file it had open for write is HSM-dirty (sanity-hsm 52).
   */
  private async dropHandle(h: OpenHandle): Promise<void> {
    try {
      if (h.write && (await this.markDirty(h.fid))) await this.recordHsm(undefined, h.fid, CLF_HSM_EVENT.STATE, 0, true);
      await this.closeFid(h.fid, h.write, undefined);
    } catch (e) {
      this.log.warn({ fid: fidKey(h.fid), err: (e as Error).message }, 'closing the handle of a departed client failed');
    }
  }

  private handles(exp: ServerExport | undefined): Map<number, OpenHandle> {
    if (!exp) throw err('ENOTCONN', 'not connected', 'NOT_CONNECTED');
    let m = exp.data.get(HANDLES_KEY) as Map<number, OpenHandle> | undefined;
    if (!m) {
      m = new Map();
      exp.data.set(HANDLES_KEY, m);
    }
    return m;
  }

  private async open(ctx: RequestContext, fid: Fid, write: boolean) {
    const handles = this.handles(ctx.export);
    // before the open can be seen: an archive running on the file must not complete unaware
    if (write) this.coordinator?.noteWrite(fid);
    const { inode, dirtied } = await this.ns.openHsm(fid, { write });
    const handle = this.nextHandle++;
    handles.set(handle, { fid, write });
    this.stats.opens++;
    if (dirtied) await this.recordHsm(ctx, fid, CLF_HSM_EVENT.STATE, 0, true);
    return { inode, handle };
  }

  /**
   * HSM DIRTY after a write, under the UPDATE lock as every inode change is (clients cache
   * inodes under their attribute locks); only archived files change, so only they pay for it.
   */
  private async markDirty(fid: Fid): Promise<boolean> {
    const flags = (await this.ns.hsmState(fid).catch(() => undefined))?.flags ?? 0;
    if (!(flags & HS.EXISTS) || flags & (HS.DIRTY | HS.RELEASED)) return false;
    return this.underLocks([[fid, InodeBit.UPDATE]], () => this.ns.hsmMarkDirty(fid));
  }

  private async close(ctx: RequestContext) {
    const b = parseBody(CloseBody, ctx.body);
    const handles = this.handles(ctx.export);
    const h = handles.get(b.handle);
    if (!h || fidKey(h.fid) !== fidKey(b.fid)) throw err('EBADF', `no open handle ${b.handle} for this file`, 'BAD_HANDLE');
    handles.delete(b.handle);
    // DIRTY before the handle stops counting as a writer: a release in between must not pass
    if (h.write && b.modified) {
      this.coordinator?.noteWrite(b.fid);
      if (await this.markDirty(b.fid)) await this.recordHsm(ctx, b.fid, CLF_HSM_EVENT.STATE, 0, true);
    }
    await this.closeFid(b.fid, h.write, ctx);
    return { body: {} };
  }

  private async closeFid(fid: Fid, write: boolean, ctx: RequestContext | undefined): Promise<void> {
    const { destroy } = await this.ns.close(fid, { write });
    this.destroyObjects(destroy);
    if (write) await this.record(ctx, { type: CL.CLOSE, tfid: fid });
  }

  /**
   * Appends a changelog record for an operation that succeeded, with the caller's ids,
   * job and NID when there is a request. A changelog failure never fails the operation.
   */
  async record(ctx: RequestContext | undefined, rec: ChangelogInput): Promise<void> {
    const sink = this.changelog;
    if (!sink) return;
    const full: ChangelogInput = { ...rec };
    if (ctx) {
      full.uid = ctx.uid;
      full.gid = ctx.gid;
      if (ctx.jobid) full.jobid = ctx.jobid;
      const nid = peerNid(ctx.export?.peer);
      if (nid) full.nid = nid;
    }
    try {
      await sink.append(full);
    } catch (e) {
      this.log.warn({ type: rec.type, fid: fidKey(rec.tfid), err: (e as Error).message }, 'changelog append failed');
    }
  }

  /** An HSM record: the event and error in the flags, and whether the file is dirty now (read when not given). */
  async recordHsm(ctx: RequestContext | undefined, fid: Fid, event: number, errval: number, dirty?: boolean): Promise<void> {
    if (!this.changelog) return;
    if (dirty === undefined) {
      const ino = await this.ns.getattr(fid).catch(() => undefined);
      dirty = ((ino?.hsm?.flags ?? 0) & HS.DIRTY) !== 0;
    }
    await this.record(ctx, { type: CL.HSM, tfid: fid, flags: hsmRecordFlags(event, errval, dirty) });
  }

  /**
   * Grants the client PR locks on `fid`, then reads what they protect: any update that
   * follows has to revoke them first, so the reply is never older than the cache it fills.
   */
  private async underClientLocks(ctx: RequestContext, fid: Fid, wanted: WantedLock[], read: () => Promise<Inode>): Promise<{ inode: Inode; locks: GrantedLock[] }> {
    const exp = requireExport(ctx.export);
    // Queued together (enqueue places a lock before its first await): holding one granted
    // while waiting for the other could wait on an update that waits for the one held.
    const settled = await Promise.allSettled(
      wanted.map((w) => this.ldlm.enqueue(exp, { res: fidKey(fid), type: 'ibits', mode: LockMode.PR, bits: w.bits, cookie: w.cookie }, true)),
    );
    const locks: GrantedLock[] = [];
    let failed: unknown;
    settled.forEach((r, i) => {
      if (r.status === 'fulfilled') locks.push({ handle: r.value.handle, mode: r.value.mode, bits: r.value.bits ?? wanted[i]!.bits });
      else failed ??= r.reason;
    });
    try {
      if (failed !== undefined) throw failed;
      return { inode: await read(), locks };
    } catch (e) {
      this.ldlm.cancel(exp, locks.map((l) => l.handle));
      throw e;
    }
  }

  /**
   * The locks a create's intent asks for (Lustre's IT_CREATE): the new inode's name and
   * attribute locks, and an attribute lock on the parent, whose attributes the create just
   * changed and which the kernel asks for next. The create is done whatever happens here:
   * a lock that cannot be granted is left out of the reply, not turned into an error.
   */
  private async createLocks(ctx: RequestContext, parent: Fid, child: Fid, want: IntentLocks): Promise<Record<string, unknown>> {
    const out: Record<string, unknown> = {};
    const wanted: WantedLock[] = [];
    if (want.name !== undefined) wanted.push({ cookie: want.name, bits: CLIENT_NAME_BITS });
    if (want.attrs !== undefined) wanted.push({ cookie: want.attrs, bits: CLIENT_ATTR_BITS });
    try {
      if (wanted.length > 0) Object.assign(out, lookupReply(await this.underClientLocks(ctx, child, wanted, () => this.ns.getattr(child)), true));
      if (want.parentAttrs !== undefined) Object.assign(out, await this.parentIntent(ctx, parent, want.parentAttrs));
    } catch (e) {
      this.log.debug({ parent: fidKey(parent), child: fidKey(child), err: (e as Error).message }, 'create: intent locks not granted');
    }
    return out;
  }

  /** A directory an update just changed, with a new attribute lock for the client that changed it. */
  private async parentIntent(ctx: RequestContext, parent: Fid, cookie: number): Promise<{ parent: Inode; parentLock?: GrantedLock }> {
    const r = await this.underClientLocks(ctx, parent, [{ cookie, bits: CLIENT_ATTR_BITS }], () => this.ns.getattr(parent));
    return { parent: r.inode, parentLock: r.locks[0] };
  }

  /** Runs an update under server-local EX locks, so clients caching what it changes drop it first. */
  async underLocks<T>(targets: Array<[Fid, number]>, fn: () => Promise<T>): Promise<T> {
    const merged = new Map<string, number>();
    for (const [fid, bits] of targets) merged.set(fidKey(fid), (merged.get(fidKey(fid)) ?? 0) | bits);
    const locks = await Promise.all([...merged].map(([res, bits]) => this.ldlm.lockLocal(res, 'ibits', LockMode.EX, { bits })));
    try {
      return await fn();
    } finally {
      for (const l of locks) l.release();
    }
  }

  private async childFid(parent: Fid, name: string): Promise<Fid | undefined> {
    try {
      return (await this.ns.lookup(parent, name)).fid;
    } catch {
      return undefined; // the update itself reports the missing name
    }
  }

  private async reint(ctx: RequestContext) {
    const b = parseBody(ReintBody, ctx.body);
    const { cancels } = parseBody(EarlyCancels, ctx.body);
    if (cancels?.length && ctx.export) this.ldlm.cancel(ctx.export, cancels);
    const U = InodeBit.UPDATE;
    switch (b.op) {
      case ReintOp.CREATE: {
        if (b.fid.seq < FID_SEQ_NORMAL) throw err('EINVAL', 'new files need a FID from a client sequence', 'BAD_FID');
        let layout: Raid0Layout | undefined;
        if (b.type === 'reg') layout = await this.allocateLayout(b.parent, b.layout);
        let inode;
        try {
          inode = await this.underLocks([[b.parent, U]], () => this.ns.create(b.parent, b.name, {
            fid: b.fid, type: b.type, mode: b.mode, uid: b.uid, gid: b.gid, rdev: b.rdev, target: b.target, layout,
            dirDefault: b.type === 'dir' && b.layout ? checkTemplate(b.layout) : undefined,
          }));
        } catch (e) {
          if (layout) this.destroyObjects(layout.objects);
          throw e;
        }
        // A resent create returns the existing inode: give back the objects we just took.
        if (layout && inode.layout && inode.layout.objects !== layout.objects && !sameObjects(inode.layout.objects, layout.objects)) {
          this.destroyObjects(layout.objects);
        }
        this.stats.creates++;
        await this.record(ctx, { type: CREATE_RECORD[b.type], tfid: inode.fid, pfid: b.parent, name: b.name });
        // a create that opens is the writer of the new file
        const body: Record<string, unknown> = b.open ? await this.open(ctx, inode.fid, true) : { inode };
        const { locks } = parseBody(IntentLocksBody, ctx.body);
        if (locks) Object.assign(body, await this.createLocks(ctx, b.parent, inode.fid, locks));
        return { body };
      }
      case ReintOp.OPEN:
        return { body: await this.open(ctx, b.fid, opensForWrite(b.flags)) };
      case ReintOp.LINK: {
        const inode = await this.underLocks([[b.parent, U], [b.fid, U]], () => this.ns.link(b.fid, b.parent, b.name));
        await this.record(ctx, { type: CL.HLINK, tfid: b.fid, pfid: b.parent, name: b.name });
        return { body: { inode } };
      }
      case ReintOp.UNLINK: {
        const child = await this.childFid(b.parent, b.name);
        const targets: Array<[Fid, number]> = [[b.parent, U]];
        if (child) targets.push([child, CLIENT_CACHE_BITS]);
        const r = await this.underLocks(targets, () => this.ns.unlink(b.parent, b.name, { dir: b.dir }));
        this.destroyObjects(r.destroy);
        this.stats.unlinks++;
        await this.record(ctx, { type: b.dir ? CL.RMDIR : CL.UNLNK, tfid: r.inode.fid, pfid: b.parent, name: b.name, flags: lastLinkFlags(r.inode) });
        const { locks } = parseBody(IntentLocksBody, ctx.body);
        const parentAttrs = locks?.parentAttrs;
        const parent = parentAttrs === undefined ? {} : await this.parentIntent(ctx, b.parent, parentAttrs).catch(() => ({}));
        return { body: { inode: r.inode, ...parent } };
      }
      case ReintOp.RENAME: {
        const [src, dst] = await Promise.all([this.childFid(b.srcParent, b.srcName), this.childFid(b.dstParent, b.dstName)]);
        const targets: Array<[Fid, number]> = [[b.srcParent, U], [b.dstParent, U]];
        // the moved inode: its name (LOOKUP) and its ctime (UPDATE)
        if (src) targets.push([src, InodeBit.LOOKUP | U]);
        if (dst) targets.push([dst, CLIENT_CACHE_BITS]);
        const r = await this.underLocks(targets, () =>
          this.ns.rename(b.srcParent, b.srcName, b.dstParent, b.dstName, { noReplace: b.noReplace, exchange: b.exchange }),
        );
        this.destroyObjects(r.destroy);
        this.stats.renames++;
        const moved = r.moved ?? src;
        if (moved) {
          // Lustre's RENME: t= what the target name named before (replaced or exchanged; zero FID if nothing), s= the moved file
          const target = b.exchange ? dst : r.replaced?.fid;
          await this.record(ctx, {
            type: CL.RENME, tfid: target ?? NO_FID, pfid: b.dstParent, name: b.dstName, sfid: moved, spfid: b.srcParent, sname: b.srcName,
            flags: r.replaced ? lastLinkFlags(r.replaced) : 0,
          });
        }
        return { body: { replaced: r.replaced } };
      }
      case ReintOp.SETATTR: {
        const { inode, dirtied } = await this.underLocks([[b.fid, U | InodeBit.PERM]], () => this.ns.setattrHsm(b.fid, b.attrs));
        const truncate = b.attrs.size !== undefined;
        // a truncate is a write: it cancels an archive running on the file
        if (truncate) this.coordinator?.noteWrite(b.fid);
        await this.record(ctx, { type: truncate ? CL.TRUNC : CL.SATTR, tfid: b.fid });
        if (dirtied) await this.recordHsm(ctx, b.fid, CLF_HSM_EVENT.STATE, 0, true);
        return { body: { inode } };
      }
      case ReintOp.SETXATTR: {
        // ctime changes with any xattr; an ACL is a permission (Lustre revokes PERM for it)
        const bits = U | InodeBit.XATTR | (b.name.startsWith(POSIX_ACL_PREFIX) ? InodeBit.PERM : 0);
        await this.underLocks([[b.fid, bits]], async () => {
          if (b.value === undefined) await this.ns.removexattr(b.fid, b.name);
          else await this.ns.setxattr(b.fid, b.name, Buffer.from(b.value.buffer, b.value.byteOffset, b.value.byteLength), { create: b.create, replace: b.replace });
        });
        await this.record(ctx, { type: LOV_XATTRS.has(b.name) ? CL.LYOUT : CL.XATTR, tfid: b.fid });
        return { body: {} };
      }
    }
  }

  private async allocateLayout(parent: Fid, req: LayoutRequest | undefined): Promise<Raid0Layout> {
    const tpl = await this.ns.effectiveLayoutTemplate(parent);
    const r = req ? checkTemplate(req) : {};
    const stripeSize = r.stripeSize || tpl.stripeSize;
    const stripeCount = r.stripeCount || tpl.stripeCount;
    const stripeOffset = r.stripeOffset !== undefined && r.stripeOffset >= 0 ? r.stripeOffset : tpl.stripeOffset;
    const pool = r.pool ?? tpl.pool;
    const objects = await this.lod.allocate({ stripeCount, stripeOffset, pool });
    return { pattern: 'raid0', stripeSize, stripeCount: objects.length, stripeOffset, pool, layoutGen: 0, objects };
  }

  /** Best effort: an object that cannot be destroyed now is logged and left behind. */
  destroyObjects(objects: OstObject[]): void {
    for (const o of objects) {
      const osp = this.lod.getOst(o.ostIdx);
      if (!osp) {
        this.log.warn({ ost: o.ostIdx, oid: o.oid }, 'object on an unknown OST left behind');
        continue;
      }
      void osp.destroy(o.oid);
    }
  }

  private async statfs(): Promise<MdtStatfs> {
    const { inodes } = await this.ns.counts();
    if (isStoreUrl(this.opts.storeDir)) {
      // A Redis store has no block device to report; inodes are bounded by its memory only.
      return { bsize: 4096, blocks: 0, bfree: 0, bavail: 0, files: inodes + REDIS_FREE_INODES, ffree: REDIS_FREE_INODES };
    }
    const s = await statfs(this.opts.storeDir);
    return { bsize: s.bsize, blocks: s.blocks, bfree: s.bfree, bavail: s.bavail, files: inodes + s.ffree, ffree: s.ffree };
  }
}

interface WantedLock {
  cookie: number;
  bits: number;
}

interface GrantedLock {
  handle: number;
  mode: LockMode;
  bits: number;
}

/**
 * MDS_GETATTR_NAME's separate locks: `name` (LOOKUP) and `attrs` (UPDATE|PERM|XATTR|LAYOUT),
 * each named by the client's cookie; either may be left out when the client holds one.
 * The reply carries them as `nameLock` and `attrLock`.
 */
const LookupLocks = z.object({ locks: z.object({ name: zSafeUint.optional(), attrs: zSafeUint.optional() }).optional() });

/**
 * The intent locks of a create or an unlink, each named by the client's cookie: `name` and
 * `attrs` on the new inode (create only, as MDS_GETATTR_NAME's), `parentAttrs` on the
 * directory. The reply carries `nameLock`, `attrLock`, and `parent` with `parentLock`.
 */
const IntentLocksBody = z.object({
  locks: z.object({ name: zSafeUint.optional(), attrs: zSafeUint.optional(), parentAttrs: zSafeUint.optional() }).optional(),
});
type IntentLocks = NonNullable<z.infer<typeof IntentLocksBody>['locks']>;

function lookupReply(r: { inode: Inode; locks: GrantedLock[] }, separate: boolean) {
  if (!separate) return { inode: r.inode, lock: r.locks[0] };
  const has = (bit: number) => r.locks.find((l) => (l.bits & bit) !== 0);
  return { inode: r.inode, nameLock: has(InodeBit.LOOKUP), attrLock: has(InodeBit.UPDATE) };
}

const CREATE_RECORD: Record<FileType, number> = {
  reg: CL.CREAT, dir: CL.MKDIR, lnk: CL.SLINK, chr: CL.MKNOD, blk: CL.MKNOD, fifo: CL.MKNOD, sock: CL.MKNOD,
};
const POSIX_ACL_PREFIX = 'system.posix_acl_';
/** setting these changes a layout (a directory's default): LYOUT rather than XATTR */
const LOV_XATTRS = new Set(['lustre.lov', 'trusted.lov']);
/** Lustre's zero FID: a rename record's target when no file was replaced */
const NO_FID: Fid = { seq: 0, oid: 0, ver: 0 };

/** UNLNK/RMDIR (and RENME of a replaced file): the last name went, and whether an archive copy outlives it. */
function lastLinkFlags(ino: Inode): number {
  if (ino.nlink > 0) return 0;
  return CLF_UNLINK_LAST | ((ino.hsm?.flags ?? 0) & HS.EXISTS ? CLF_UNLINK_HSM_EXISTS : 0);
}

/** "127.0.0.1:51000" -> "127.0.0.1@tcp" (the NID a changelog record names) */
export function peerNid(peer: string | undefined): string | undefined {
  if (!peer) return undefined;
  const colon = peer.lastIndexOf(':');
  const addr = (colon > 0 ? peer.slice(0, colon) : peer).replace(/^\[(.*)\]$/, '$1');
  return addr && addr !== '?' ? `${addr}@tcp` : undefined;
}

export function requireExport(exp: ServerExport | undefined): ServerExport {
  if (!exp) throw err('ENOTCONN', 'not connected', 'NOT_CONNECTED');
  return exp;
}

/**
 * MDS_GET_INFO: 'fid2path' answers the paths of an inode's names from link
 * `link` on, as many as fit one reply ({ paths, next? }); 'links' answers its
 * (parent FID, name) pairs ({ links, overflow }).
 */
const GetInfoBody = z.discriminatedUnion('key', [
  z.object({ key: z.literal('fid2path'), fid: zFid, link: zSafeUint.optional() }),
  z.object({ key: z.literal('links'), fid: zFid }),
]);
const FID2PATH_REPLY_BUDGET = 32 * 1024;

/** A readdir reply must fit in one message header: later entries wait for the next page. */
const READDIR_REPLY_BUDGET = 48 * 1024;
const READDIR_ENTRY_OVERHEAD = 96; // FID, type, cookie and msgpack framing, generously

function fitReaddirPage(page: { entries: DirEntry[]; eof: boolean }): { entries: DirEntry[]; eof: boolean } {
  let bytes = 0;
  for (let i = 0; i < page.entries.length; i++) {
    bytes += Buffer.byteLength(page.entries[i]!.name) + READDIR_ENTRY_OVERHEAD;
    if (bytes > READDIR_REPLY_BUDGET && i > 0) return { entries: page.entries.slice(0, i), eof: false };
  }
  return page;
}

function checkTemplate(r: LayoutRequest): LayoutTemplate {
  if (r.stripeSize) validateStripeSize(r.stripeSize);
  if (r.stripeCount !== undefined) validateStripeCount(r.stripeCount);
  if (r.pool) validatePoolName(r.pool);
  const t: LayoutTemplate = {};
  if (r.stripeSize) t.stripeSize = r.stripeSize;
  if (r.stripeCount) t.stripeCount = r.stripeCount;
  if (r.stripeOffset !== undefined) t.stripeOffset = r.stripeOffset;
  if (r.pool) t.pool = r.pool;
  return t;
}

function sameObjects(a: OstObject[], b: OstObject[]): boolean {
  return a.length === b.length && a.every((o, i) => o.ostIdx === b[i]!.ostIdx && o.oid === b[i]!.oid);
}
