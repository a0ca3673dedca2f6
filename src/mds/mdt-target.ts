/** The MDT's request handlers: namespace operations over the wire. */
import { statfs } from 'node:fs/promises';
import { z } from 'zod';
import type { Logger } from '../common/log.js';
import { err } from '../common/errno.js';
import { FID_SEQ_NORMAL, FID_SEQ_WIDTH, ROOT_FID, fidKey, type Fid } from '../common/fid.js';
import { validatePoolName, validateStripeCount, validateStripeSize, type LayoutTemplate, type OstObject, type Raid0Layout } from '../common/layout.js';
import { mdtName } from '../common/targets.js';
import type { DirEntry } from '../common/inode.js';
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
}

/** What a client caches under its PR lock on an inode: its name, attributes, xattrs and layout. */
export const CLIENT_CACHE_BITS = InodeBit.LOOKUP | InodeBit.UPDATE | InodeBit.PERM | InodeBit.XATTR | InodeBit.LAYOUT;
const INTENT_LOOKUP_RETRIES = 4;

interface OpenHandle {
  fid: Fid;
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

  constructor(
    private readonly ns: Namespace,
    private readonly lod: ObjectAllocator,
    private readonly opts: MdtOptions,
    private readonly log: Logger,
  ) {
    this.name = mdtName(opts.fsname, opts.index);
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
      return { body: await this.underClientLock(ctx, b.fid, b.lock.cookie, () => ns.getattr(b.fid)) };
    });
    h.set(Opc.MDS_GETATTR_NAME, async (ctx) => {
      const b = parseBody(LookupBody, ctx.body);
      if (!b.lock) return { body: { inode: await ns.lookup(b.parent, b.name) } };
      // The child is known only after the lookup; the name must still lead to it once locked.
      for (let attempt = 0; ; attempt++) {
        const fid = (await ns.lookup(b.parent, b.name)).fid;
        const r = await this.underClientLock(ctx, fid, b.lock.cookie, () => ns.lookup(b.parent, b.name));
        if (fidKey(r.inode.fid) === fidKey(fid) || attempt >= INTENT_LOOKUP_RETRIES) return { body: r };
        this.ldlm.cancel(ctx.export, [r.lock.handle]);
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
      return { body: { inode: await this.underLocks([[b.fid, InodeBit.UPDATE | InodeBit.LAYOUT]], () => ns.setDirDefault(b.fid, tpl)) } };
    });
    h.set(Opc.MDS_SYNC, () => ({ body: {} }));
    h.set(Opc.MDS_GET_INFO, async (ctx) => {
      const b = parseBody(GetInfoBody, ctx.body);
      if (b.key === 'links') return { body: await ns.links(b.fid) };
      return { body: await ns.fid2path(b.fid, { from: b.link ?? 0, maxBytes: FID2PATH_REPLY_BUDGET }) };
    });
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
    const handles = exp.data.get(HANDLES_KEY) as Map<number, OpenHandle> | undefined;
    if (!handles) return;
    for (const h of handles.values()) void this.closeFid(h.fid);
    handles.clear();
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

  private async open(ctx: RequestContext, fid: Fid) {
    const handles = this.handles(ctx.export);
    const inode = await this.ns.open(fid);
    const handle = this.nextHandle++;
    handles.set(handle, { fid });
    this.stats.opens++;
    return { inode, handle };
  }

  private async close(ctx: RequestContext) {
    const b = parseBody(CloseBody, ctx.body);
    const handles = this.handles(ctx.export);
    const h = handles.get(b.handle);
    if (!h || fidKey(h.fid) !== fidKey(b.fid)) throw err('EBADF', `no open handle ${b.handle} for this file`, 'BAD_HANDLE');
    handles.delete(b.handle);
    await this.closeFid(b.fid);
    return { body: {} };
  }

  private async closeFid(fid: Fid): Promise<void> {
    const { destroy } = await this.ns.close(fid);
    this.destroyObjects(destroy);
  }

  /**
   * Grants the client a PR lock on `fid`, then reads what it protects: any update that
   * follows has to revoke the lock first, so the reply is never older than the cache it fills.
   */
  private async underClientLock(ctx: RequestContext, fid: Fid, cookie: number, read: () => Promise<Inode>) {
    const exp = requireExport(ctx.export);
    const lock = await this.ldlm.enqueue(exp, { res: fidKey(fid), type: 'ibits', mode: LockMode.PR, bits: CLIENT_CACHE_BITS, cookie }, true);
    try {
      const inode = await read();
      return { inode, lock: { handle: lock.handle, mode: lock.mode, bits: lock.bits ?? CLIENT_CACHE_BITS } };
    } catch (e) {
      this.ldlm.cancel(exp, [lock.handle]);
      throw e;
    }
  }

  /** Runs an update under server-local EX locks, so clients caching what it changes drop it first. */
  private async underLocks<T>(targets: Array<[Fid, number]>, fn: () => Promise<T>): Promise<T> {
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
        if (b.open) return { body: await this.open(ctx, inode.fid) };
        return { body: { inode } };
      }
      case ReintOp.OPEN:
        return { body: await this.open(ctx, b.fid) };
      case ReintOp.LINK:
        return { body: { inode: await this.underLocks([[b.parent, U], [b.fid, U]], () => this.ns.link(b.fid, b.parent, b.name)) } };
      case ReintOp.UNLINK: {
        const child = await this.childFid(b.parent, b.name);
        const targets: Array<[Fid, number]> = [[b.parent, U]];
        if (child) targets.push([child, CLIENT_CACHE_BITS]);
        const r = await this.underLocks(targets, () => this.ns.unlink(b.parent, b.name, { dir: b.dir }));
        this.destroyObjects(r.destroy);
        this.stats.unlinks++;
        return { body: { inode: r.inode } };
      }
      case ReintOp.RENAME: {
        const [src, dst] = await Promise.all([this.childFid(b.srcParent, b.srcName), this.childFid(b.dstParent, b.dstName)]);
        const targets: Array<[Fid, number]> = [[b.srcParent, U], [b.dstParent, U]];
        if (src) targets.push([src, InodeBit.LOOKUP | U]);
        if (dst) targets.push([dst, CLIENT_CACHE_BITS]);
        const r = await this.underLocks(targets, () =>
          this.ns.rename(b.srcParent, b.srcName, b.dstParent, b.dstName, { noReplace: b.noReplace, exchange: b.exchange }),
        );
        this.destroyObjects(r.destroy);
        this.stats.renames++;
        return { body: { replaced: r.replaced } };
      }
      case ReintOp.SETATTR:
        return { body: { inode: await this.underLocks([[b.fid, U | InodeBit.PERM]], () => this.ns.setattr(b.fid, b.attrs)) } };
      case ReintOp.SETXATTR: {
        await this.underLocks([[b.fid, U | InodeBit.XATTR]], async () => {
          if (b.value === undefined) await this.ns.removexattr(b.fid, b.name);
          else await this.ns.setxattr(b.fid, b.name, Buffer.from(b.value.buffer, b.value.byteOffset, b.value.byteLength), { create: b.create, replace: b.replace });
        });
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

  private destroyObjects(objects: OstObject[]): void {
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

function requireExport(exp: ServerExport | undefined): ServerExport {
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
