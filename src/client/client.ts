/**
 * The client core (Lustre's llite without the VFS glue): mounts a filesystem
 * through the MGS, then offers inode-based operations that the FUSE adapter
 * and tools call. File data is striped over the OSTs by StripedIo.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { Logger } from '../common/log.js';
import { silentLogger } from '../common/log.js';
import { Errno, err, toStriaError } from '../common/errno.js';
import { fidKey, fidToString, type Fid } from '../common/fid.js';
import type { DirEntry, FileType, Inode } from '../common/inode.js';
import type { LayoutTemplate, Raid0Layout } from '../common/layout.js';
import { mdtName, ostName } from '../common/targets.js';
import { now, type Timestamp } from '../common/time.js';
import { parseNid, type Nid } from '../lnet/nid.js';
import { Opc } from '../ptlrpc/opcodes.js';
import { RpcClient } from '../ptlrpc/client.js';
import { MgsClient } from '../mgs/mgc.js';
import type { FsConfig } from '../mgs/protocol.js';
import type { MdsConnectReply } from '../mds/protocol.js';
import { MdtClient, type CreateSpec, type Cred, type SetattrSpec } from './mdc.js';
import { OstClient } from './osc.js';
import type { StatFs } from '../common/statfs.js';
import { StripedIo, mergeAttrs } from './lov.js';
import { objectSizeForFileSize } from '../common/layout.js';
import { objectResource } from '../ldlm/protocol.js';
import { FidAllocator } from './fid-alloc.js';
import { Statahead } from './statahead.js';
import { ClientDlm, MD_ATTR_BITS, MD_CACHE_BITS, MD_NAME_BITS, type HeldLocks } from './dlm.js';
import { LockMode } from '../ldlm/modes.js';
import { EXTENT_EOF } from '../ldlm/extent.js';
import { InodeBit } from '../ldlm/inodebits.js';
import type { ClientLock } from '../ldlm/client.js';
import { HsmMdc } from './hsm-mdc.js';
import { noXattr } from './md-attr-cache.js';
import { HS } from '../hsm/flags.js';
import { HSM_ACTIONS_KEY, type HsmActionList } from '../hsm/protocol.js';
import type { CallbackContext } from '../ptlrpc/client.js';
import { DEFAULT_RESTORE_TIMEOUT_MS, RestoreWaiter, isReleasedInode } from './restore.js';
import { OpenCache, opensForWrite, type MdtOpen, type SharedOpen } from './open-cache.js';
import { ClientCache, type ClientCacheOptions, type ReadaheadHandle } from './cache/client-cache.js';
import type { CacheControl, CacheTunables } from './cache/types.js';

export interface ClientOptions {
  mgsNids: Nid[];
  fsname: string;
  uuid?: string;
  /** crc32c on every bulk transfer (osc.*.checksums) */
  checksums?: boolean;
  /** largest I/O RPC (max_pages_per_rpc), default 4 MiB */
  maxRpcBytes?: number;
  /** RPCs in flight per OST (max_rpcs_in_flight), default 8 */
  maxRpcsInFlight?: number;
  timeoutMs?: number;
  /** how long a request waits for a lost server to come back (default 300 s) */
  recoveryWaitMs?: number;
  /** how long I/O on a released file waits for its implicit restore (default 1 h) */
  restoreTimeoutMs?: number;
  /** the data cache: memory pages, the local disk level, readahead, write-back */
  cache?: ClientCacheOptions;
}

/** Attributes as stat(2) sees them: for striped files size/blocks/times come from the objects. */
export interface FileAttr extends Inode {
  blocks: number;
  /**
   * True when, as these attributes were read, this client held locks covering all of them
   * (the inode's MDT attribute lock and, for striped files, a lock on every object): they
   * may be cached until a lock goes, which the CacheInvalidator hears about.
   */
  covered: boolean;
  /**
   * True when the name these attributes were looked up by was resolved under a LOOKUP
   * lock on the inode, still held: the name may be cached until that lock goes (only
   * lookups set it).
   */
  nameCovered?: boolean;
}

/** What the MDT answered for an inode, with the locks this client held as it was read. */
interface MdRead {
  inode: Inode;
  /** covers the attributes (MD_ATTR_BITS) */
  attrLock?: ClientLock;
  /** covers the name that led to the inode (MD_NAME_BITS) */
  nameLock?: ClientLock;
}

/** MDS_GETATTR_NAME's reply when separate name and attribute locks were asked for (mdt-target.ts). */
interface LookupLocksReply {
  inode: Inode;
  nameLock?: { handle: number; mode: LockMode; bits: number };
  attrLock?: { handle: number; mode: LockMode; bits: number };
}

/** MDS_REINT CREATE's reply with the intent locks asked for (mdt-target.ts createLocks). */
interface CreateIntentReply extends LookupLocksReply {
  handle?: number;
  parent?: Inode;
  parentLock?: { handle: number; mode: LockMode; bits: number };
}

/** One POSIX record lock or flock as fcntl(2) describes it. */
export interface FileLockSpec {
  kind: 'posix' | 'bsd';
  /** the kernel's lock owner */
  owner: bigint;
  pid: number;
  type: 'read' | 'write' | 'unlock';
  start: number;
  /** inclusive; EXTENT_EOF = to the end */
  end: number;
}

export interface OpenFile {
  fid: Fid;
  handle: number;
  inode: Inode;
  /** data was written through this handle: the close tells the MDT (HSM dirty) */
  modified?: boolean;
}

export type { StatFs as FsStatfs } from '../common/statfs.js';

export class StriaClient {
  readonly root: Fid;
  /** the filesystem's default layout, from the MDT at connect */
  readonly fsDefault: { stripeSize: number; stripeCount: number };
  private readonly osts = new Map<number, OstClient>();
  private readonly io: StripedIo;
  private readonly fids: FidAllocator;
  /** lock namespaces and the caches they protect */
  readonly dlm: ClientDlm;
  /**
   * "parent/name" -> the child FID recent lookups and creates found, for early lock cancel,
   * with the LOOKUP lock the MDT granted with that answer (bounded, oldest out).
   */
  private readonly children = new Map<string, KnownChild>();
  /** HSM requests to the MDT's coordinator (lfs hsm_*, copytools, implicit restore) */
  readonly hsm: HsmMdc;
  /** implicit restores in progress, one per file */
  private readonly restores: RestoreWaiter;
  /** read-only opens share one MDT handle per file (llite.*.opencache_*) */
  readonly openCache: OpenCache;
  /** lookups ahead of runs of numbered names (llite.*.statahead_*) */
  readonly statahead: Statahead;
  /** the local opens served by a shared handle, given back to the cache at close */
  private readonly sharedOpens = new WeakMap<OpenFile, SharedOpen>();
  /** file data below the kernel's page cache: memory pages, local disk, readahead, write-back */
  readonly dataCache: ClientCache;
  /** what lctl, `stria warmup` and `stria stats` see of the data cache */
  readonly cache: CacheControl & { tunables: CacheTunables };
  private readonly readaheadHandles = new WeakMap<OpenFile, ReadaheadHandle>();

  private constructor(
    readonly fsname: string,
    private readonly rpc: RpcClient,
    private readonly mgc: MgsClient,
    readonly mdc: MdtClient,
    private config: FsConfig,
    connect: MdsConnectReply,
    private readonly opts: ClientOptions,
    private readonly log: Logger,
  ) {
    this.root = connect.root;
    this.fsDefault = connect.fsDefault;
    this.io = new StripedIo((idx) => this.osc(idx));
    this.fids = new FidAllocator(() => this.mdc.allocSequence());
    this.dlm = new ClientDlm(rpc, rpc.uuid.slice(0, 8), log);
    this.dlm.addMdc(mdtName(fsname, 0), mdc.imp);
    this.hsm = new HsmMdc(mdc.imp);
    this.restores = new RestoreWaiter(
      {
        requestRestore: (fid, cred) => this.hsm.request({ action: 'restore', fids: [fid] }, cred),
        action: (fid) => this.hsm.action(fid),
        getattr: (fid) => this.mdc.getattr(fid),
      },
      { timeoutMs: opts.restoreTimeoutMs ?? DEFAULT_RESTORE_TIMEOUT_MS },
    );
    this.openCache = new OpenCache((fid, handle) => this.mdc.close(fid, handle), {}, log);
    this.statahead = new Statahead(
      (parent, name) => this.lookAhead(parent, name),
      (parent, name) => this.knowsEntry(parent, name),
      (name, e) => this.log.debug({ name, err: toStriaError(e).message }, 'statahead lookup failed'),
    );
    this.dataCache = new ClientCache(
      {
        osc: (i) => this.osc(i),
        dlm: this.dlm,
        log,
        glimpseSizes: async (layout) => (await Promise.all(layout.objects.map((o) => this.osc(o.ostIdx).getattr(o.seq, o.oid)))).map((a) => a.size),
      },
      opts.cache,
    );
    this.cache = {
      tunables: this.dataCache.tunables,
      warmup: (fid) => this.warmup(fid),
      check: (fid) => this.cacheCheck(fid),
      evict: (fid) => this.cacheEvict(fid),
      stats: () => this.dataCache.stats(this.ostClients()),
    };
    // A new export has none of our handles: closing their numbers there could hit new ones.
    mdc.imp.on('new-export', () => this.openCache.forgetAll());
  }

  static async mount(opts: ClientOptions, log: Logger = silentLogger()): Promise<StriaClient> {
    const rpc = new RpcClient({ uuid: opts.uuid ?? randomUUID() }, log);
    try {
      const mgc = new MgsClient(rpc, opts.mgsNids, { timeoutMs: opts.timeoutMs, recoveryWaitMs: opts.recoveryWaitMs });
      await mgc.connect();
      const config = await mgc.config(opts.fsname);
      const mdt = config.mdts.find((m) => m.index === 0);
      if (!mdt) throw err('ENODEV', `filesystem ${opts.fsname} has no MDT0000 registered`, 'NO_MDT');
      const imp = rpc.import({
        nids: mdt.nids.map((n) => parseNid(n)),
        target: mdtName(opts.fsname, 0),
        connectOpc: Opc.MDS_CONNECT,
        connectData: { fsname: opts.fsname },
        timeoutMs: opts.timeoutMs,
        recoveryWaitMs: opts.recoveryWaitMs,
      });
      const connect = (await imp.connect()) as MdsConnectReply;
      const client = new StriaClient(opts.fsname, rpc, mgc, new MdtClient(imp), config, connect, opts, log);
      client.adoptConfig(config);
      return client;
    } catch (e) {
      await rpc.close();
      throw e;
    }
  }

  /** The OSC for an OST index; unknown indexes trigger a configuration refresh. */
  private osc(index: number): OstClient {
    const c = this.osts.get(index);
    if (!c) throw err('EIO', `OST index ${index} is not in the configuration of ${this.fsname}`, 'UNKNOWN_OST');
    return c;
  }

  private adoptConfig(config: FsConfig): void {
    this.config = config;
    for (const ost of config.osts) {
      if (this.osts.has(ost.index)) continue;
      const imp = this.rpc.import({
        nids: ost.nids.map((n) => parseNid(n)),
        target: ostName(this.fsname, ost.index),
        connectOpc: Opc.OST_CONNECT,
        connectData: { fsname: this.fsname },
        timeoutMs: this.opts.timeoutMs,
        recoveryWaitMs: this.opts.recoveryWaitMs,
        credits: this.opts.maxRpcsInFlight ?? 8,
      });
      this.osts.set(ost.index, new OstClient(ost.index, imp, { maxRpcBytes: this.opts.maxRpcBytes ?? 4 << 20, checksums: this.opts.checksums ?? false }));
      this.dlm.addOsc(ost.index, ostName(this.fsname, ost.index), imp);
    }
  }

  /** Re-reads the MGS configuration (new OSTs, pools). */
  async refreshConfig(): Promise<FsConfig> {
    const cfg = await this.mgc.config(this.fsname);
    this.adoptConfig(cfg);
    return cfg;
  }

  get configuration(): FsConfig {
    return this.config;
  }

  ostClients(): OstClient[] {
    return [...this.osts.values()].sort((a, b) => a.index - b.index);
  }

  private async ensureOsts(layout: Raid0Layout | undefined): Promise<void> {
    if (!layout) return;
    if (layout.objects.some((o) => !this.osts.has(o.ostIdx))) await this.refreshConfig();
  }

  /**
   * Completes MDT attributes with the objects' (size, blocks, times). `mdCovered`: the
   * inode's MDT lock was held as it was read; the result is `covered` only if every
   * object was read under a lock too and no lock was called back meanwhile.
   */
  private async withObjects(inode: Inode, mdLock?: ClientLock): Promise<FileAttr> {
    const mdValid = () => mdLock !== undefined && this.dlm.mdc!.isValid(mdLock);
    if (isReleasedInode(inode)) {
      // Size and times stay on the MDT; one block, so tar and cp do not take it for a hole (§5).
      return { ...inode, blocks: inode.size > 0 ? 1 : 0, covered: mdValid() };
    }
    if (inode.type !== 'reg' || !inode.layout || inode.layout.pattern !== 'raid0' || inode.layout.objects.length === 0) {
      return { ...inode, blocks: Math.ceil(inode.size / 512), covered: mdValid() };
    }
    const layout = inode.layout;
    await this.ensureOsts(layout);
    // stat shows what is on the OSTs, as any other client would see it after a glimpse
    await this.flushCached(layout);
    const got = await Promise.all(
      layout.objects.map((o) => this.dlm.glimpseObject(inode.fid, o.ostIdx, o.seq, o.oid, () => this.osc(o.ostIdx).getattr(o.seq, o.oid))),
    );
    const held = got.map((g) => g.lock);
    const covered = mdValid() && held.every((h) => h !== undefined && h.ns.isValid(h.lock));
    for (const h of held) if (h) h.ns.release(h.lock);
    const m = mergeAttrs(layout, got.map((g) => g.attr));
    // bytes this client wrote that are still in its write-back cache
    const pending = this.dataCache.pendingAttrs(layout);
    m.size = Math.max(m.size, pending.size);
    if (pending.mtime) m.mtime = latest(m.mtime ?? pending.mtime, pending.mtime);
    return {
      ...inode,
      size: m.size,
      blocks: m.blocks,
      mtime: latest(inode.mtime, m.mtime),
      ctime: latest(inode.ctime, m.ctime),
      atime: latest(inode.atime, m.atime),
      covered,
    };
  }

  /** MDT attributes under a PR attribute lock: a cached one (no lock RPC) or one granted with the reply. */
  private async mdGetattr(fid: Fid): Promise<MdRead> {
    const ns = this.dlm.mdc!;
    const res = this.dlm.rememberMetadata(fid);
    const held = ns.match(res, LockMode.PR, { bits: MD_ATTR_BITS });
    if (held) {
      const cached = this.dlm.mdAttrs.inode(res);
      if (cached) return { inode: cached, attrLock: held };
      try {
        const inode = await this.mdc.getattr(fid);
        this.dlm.mdAttrs.putInode(res, inode, ns.isValid(held));
        return { inode, attrLock: held };
      } catch (e) {
        ns.release(held);
        throw e;
      }
    }
    const pending = ns.prepareIntent(res, 'ibits', LockMode.PR, MD_ATTR_BITS);
    try {
      const r = await this.mdc.getattrIntent(fid, pending.cookie);
      const attrLock = ns.completeIntent(pending, r.lock);
      this.dlm.mdAttrs.putInode(res, r.inode, attrLock !== undefined && ns.isValid(attrLock));
      return { inode: r.inode, attrLock };
    } catch (e) {
      ns.abortIntent(pending);
      throw e;
    }
  }

  /**
   * A name resolved under a name lock and its inode's attributes under an attribute
   * lock (IT_LOOKUP and IT_GETATTR in one request). Locks this client already holds on
   * the inode the name led to last time are used as they are, not asked for again.
   */
  private async mdLookup(parent: Fid, name: string): Promise<MdRead> {
    const known = this.knownEntry(parent, name);
    if (known) return known;
    const ns = this.dlm.mdc!;
    const hint = this.children.get(childKey(parent, name))?.fid;
    const hintRes = hint ? fidKey(hint) : undefined;
    // Noted, not held: the MDT may have to wait for an update that waits for a lock this
    // request holds. A lock still granted after the reply, never called back meanwhile,
    // covered the read.
    const peek = (bits: number): ClientLock | undefined => {
      const l = hintRes ? ns.match(hintRes, LockMode.PR, { bits }) : undefined;
      if (l) ns.release(l);
      return l;
    };
    const heldName = peek(MD_NAME_BITS);
    const heldAttrs = peek(MD_ATTR_BITS);
    // The child's FID is known only from the reply: the locks wait under a provisional resource.
    const provisional = `lookup/${childKey(parent, name)}`;
    const pendingName = heldName ? undefined : ns.prepareIntent(provisional, 'ibits', LockMode.PR, MD_NAME_BITS);
    const pendingAttrs = heldAttrs ? undefined : ns.prepareIntent(provisional, 'ibits', LockMode.PR, MD_ATTR_BITS);
    const locks: { name?: number; attrs?: number } = {};
    if (pendingName) locks.name = pendingName.cookie;
    if (pendingAttrs) locks.attrs = pendingAttrs.cookie;
    let r: LookupLocksReply;
    try {
      // (MdtClient.lookupIntent asks for one lock covering both; this asks for them apart)
      r = (await this.mdc.imp.request(Opc.MDS_GETATTR_NAME, { parent, name, locks })).body as LookupLocksReply;
    } catch (e) {
      for (const p of [pendingName, pendingAttrs]) if (p) ns.abortIntent(p);
      throw e;
    }
    const res = this.dlm.rememberMetadata(r.inode.fid);
    // a name that leads elsewhere now: what was noted covers another inode
    const still = (noted: ClientLock | undefined) => (noted && hintRes === res && ns.reuse(noted) ? noted : undefined);
    const nameLock = pendingName ? ns.completeIntent(pendingName, r.nameLock, res) : still(heldName);
    const attrLock = pendingAttrs ? ns.completeIntent(pendingAttrs, r.attrLock, res) : still(heldAttrs);
    this.rememberChild(parent, name, r.inode.fid, nameLock);
    this.dlm.mdAttrs.putInode(res, r.inode, attrLock !== undefined && ns.isValid(attrLock));
    return { inode: r.inode, nameLock, attrLock };
  }

  /**
   * A lookup answered by this client alone: the name was resolved under a LOOKUP lock on
   * the child that is still granted (an unlink or rename of the name would have called it
   * back first), and the child's attributes are cached under an attribute lock. The kernel
   * forgets its dentries (memory pressure, drop_caches) while the locks live on here.
   */
  private knowsEntry(parent: Fid, name: string): boolean {
    const known = this.knownEntry(parent, name);
    if (!known) return false;
    const ns = this.dlm.mdc!;
    if (known.attrLock) ns.release(known.attrLock);
    if (known.nameLock) ns.release(known.nameLock);
    return true;
  }

  private knownEntry(parent: Fid, name: string): MdRead | undefined {
    const known = this.children.get(childKey(parent, name));
    const ns = this.dlm.mdc!;
    if (!known?.nameLock || !ns.reuse(known.nameLock)) return undefined;
    const res = fidKey(known.fid);
    const attrLock = ns.match(res, LockMode.PR, { bits: MD_ATTR_BITS });
    const inode = attrLock ? this.dlm.mdAttrs.inode(res) : undefined;
    if (attrLock && inode) return { inode, nameLock: known.nameLock, attrLock };
    if (attrLock) ns.release(attrLock);
    ns.release(known.nameLock);
    return undefined;
  }

  private async attrsUnderLocks(md: MdRead): Promise<FileAttr> {
    const ns = this.dlm.mdc!;
    try {
      const attr = await this.withObjects(md.inode, md.attrLock);
      if (md.nameLock) attr.nameCovered = ns.isValid(md.nameLock);
      return attr;
    } finally {
      if (md.attrLock) ns.release(md.attrLock);
      if (md.nameLock) ns.release(md.nameLock);
    }
  }

  async getattr(fid: Fid): Promise<FileAttr> {
    return this.attrsUnderLocks(await this.mdGetattr(fid));
  }

  async lookup(parent: Fid, name: string): Promise<FileAttr> {
    // a lookup ahead of this very name: once it is done, this one finds its answer cached
    await this.statahead.pending(parent, name);
    let attr: FileAttr;
    try {
      attr = await this.attrsUnderLocks(await this.mdLookup(parent, name));
    } catch (e) {
      if (isNotFound(e)) this.statahead.observe(parent, name, false);
      throw e;
    }
    this.statahead.observe(parent, name, true);
    return attr;
  }

  /** Statahead's lookup: the same locks and caches as the application's, nothing handed to the kernel. */
  private async lookAhead(parent: Fid, name: string): Promise<boolean> {
    try {
      await this.attrsUnderLocks(await this.mdLookup(parent, name));
      return true;
    } catch (e) {
      if (isNotFound(e)) return false;
      throw e;
    }
  }

  /**
   * True while this client holds valid name and attribute locks on `fid`, which `name` in
   * `parent` led to when this client last looked it up: whatever a cache took from that
   * lookup is still current, so there is nothing to fetch again.
   */
  holdsEntry(parent: Fid, name: string, fid: Fid): boolean {
    const hint = this.children.get(childKey(parent, name))?.fid;
    if (!hint || fidKey(hint) !== fidKey(fid)) return false;
    let bits = 0;
    for (const l of this.dlm.metadataLocks(fid)) if (l.valid) bits |= l.bits;
    return (bits & MD_CACHE_BITS) === MD_CACHE_BITS;
  }

  /** Early lock cancel: this client's own cached MDT locks that an update of these inodes would revoke. */
  private async elc(targets: Array<[Fid, number]>): Promise<number[]> {
    const out: number[] = [];
    for (const [fid, bits] of targets) out.push(...(await this.dlm.mdc!.earlyCancel(fidKey(fid), 'ibits', LockMode.EX, { bits })));
    return out;
  }

  /** Creates and opens a regular file; `layout` is the setstripe request for it. */
  async create(parent: Fid, name: string, spec: { mode: number; cred: Cred; layout?: LayoutTemplate }): Promise<OpenFile> {
    return (await this.createEntry(parent, name, spec)).file;
  }

  /**
   * create(), with the new file's attributes as stat would see them (for a FUSE entry).
   * The creator is the file's writer: it takes PW [0, EOF] on the new, empty objects now,
   * one enqueue per object as the first write would have taken, all at once. Their LVBs give the size,
   * so the entry's attributes are covered (the kernel asks for none before the open's
   * permission check) and the first write finds its lock held.
   */
  async createEntry(parent: Fid, name: string, spec: { mode: number; cred: Cred; layout?: LayoutTemplate }): Promise<{ file: OpenFile; attr: FileAttr }> {
    const r = await this.createWithIntent(parent, name, { type: 'reg', mode: spec.mode, uid: spec.cred.uid, gid: spec.cred.gid, layout: spec.layout, open: true });
    const inode = r.md.inode;
    await this.ensureOsts(inode.layout);
    if (inode.layout?.pattern === 'raid0' && inode.layout.objects.length > 0) {
      try {
        (await this.dlm.tryLockWhole(inode.fid, inode.layout, LockMode.PW))?.release();
      } catch (e) {
        // the file exists: stat glimpses its objects later instead
        this.log.debug({ fid: fidKey(inode.fid), err: toStriaError(e).message }, 'create: no write lock on the new objects');
      }
    }
    const file: OpenFile = { fid: inode.fid, handle: r.handle!, inode };
    return { file, attr: await this.attrsUnderLocks(r.md) };
  }

  /**
   * MDS create with the intent locks of Lustre's IT_CREATE: the new inode's name and
   * attribute locks and the parent's attribute lock come with the reply, so neither the
   * lookup that follows a create nor the kernel's getattr of the directory needs an RPC.
   * The MdRead holds the child's locks: release them (attrsUnderLocks does).
   */
  private async createWithIntent(parent: Fid, name: string, spec: Omit<CreateSpec, 'fid'>): Promise<{ md: MdRead; handle?: number }> {
    const ns = this.dlm.mdc!;
    const fid = await this.fids.next();
    const res = this.dlm.rememberMetadata(fid);
    const parentRes = this.dlm.rememberMetadata(parent);
    const cancels = await this.elc([[parent, InodeBit.UPDATE]]);
    const pendingName = ns.prepareIntent(res, 'ibits', LockMode.PR, MD_NAME_BITS);
    const pendingAttrs = ns.prepareIntent(res, 'ibits', LockMode.PR, MD_ATTR_BITS);
    const pendingParent = ns.prepareIntent(parentRes, 'ibits', LockMode.PR, MD_ATTR_BITS);
    let r: CreateIntentReply;
    try {
      r = await this.mdc.create(parent, name, { fid, ...spec }, cancels, { name: pendingName.cookie, attrs: pendingAttrs.cookie, parentAttrs: pendingParent.cookie });
    } catch (e) {
      for (const p of [pendingName, pendingAttrs, pendingParent]) ns.abortIntent(p);
      throw e;
    }
    const nameLock = ns.completeIntent(pendingName, r.nameLock);
    const attrLock = ns.completeIntent(pendingAttrs, r.attrLock);
    this.adoptParentIntent(pendingParent, r);
    this.dlm.mdAttrs.putInode(res, r.inode, attrLock !== undefined && ns.isValid(attrLock));
    this.rememberChild(parent, name, r.inode.fid, nameLock);
    return { md: { inode: r.inode, nameLock, attrLock }, handle: r.handle };
  }


  async mkdir(parent: Fid, name: string, spec: { mode: number; cred: Cred; layout?: LayoutTemplate }): Promise<FileAttr> {
    return this.makeNode(parent, name, 'dir', spec.mode, spec.cred, { layout: spec.layout });
  }

  async mknod(parent: Fid, name: string, spec: { type: FileType; mode: number; rdev?: number; cred: Cred }): Promise<FileAttr> {
    if (spec.type === 'reg') {
      const f = await this.create(parent, name, { mode: spec.mode, cred: spec.cred });
      await this.close(f);
      return this.getattr(f.fid);
    }
    if (spec.type === 'dir' || spec.type === 'lnk') throw err('EINVAL', `mknod cannot make a ${spec.type}`, 'BAD_TYPE');
    return this.makeNode(parent, name, spec.type, spec.mode, spec.cred, { rdev: spec.rdev ?? 0 });
  }

  async symlink(parent: Fid, name: string, target: string, cred: Cred): Promise<FileAttr> {
    return this.makeNode(parent, name, 'lnk', 0o777, cred, { target });
  }

  private async makeNode(parent: Fid, name: string, type: FileType, mode: number, cred: Cred, extra: { rdev?: number; target?: string; layout?: LayoutTemplate }): Promise<FileAttr> {
    const r = await this.createWithIntent(parent, name, { type, mode, uid: cred.uid, gid: cred.gid, ...extra });
    return this.attrsUnderLocks(r.md);
  }

  async readlink(fid: Fid): Promise<string> {
    const inode = await this.mdc.getattr(fid);
    if (inode.type !== 'lnk' || inode.target === undefined) throw err('EINVAL', 'not a symbolic link', 'NOT_SYMLINK');
    return inode.target;
  }

  async link(fid: Fid, parent: Fid, name: string): Promise<FileAttr> {
    const cancels = await this.elc([[parent, InodeBit.UPDATE], [fid, InodeBit.UPDATE]]);
    return this.withObjects(await this.mdc.link(fid, parent, name, cancels));
  }

  async unlink(parent: Fid, name: string): Promise<void> {
    await this.removeName(parent, name, false);
  }

  async rmdir(parent: Fid, name: string): Promise<void> {
    await this.removeName(parent, name, true);
  }

  /** Unlink or rmdir; the directory's new attributes come back under a new lock (the kernel asks for them next). */
  private async removeName(parent: Fid, name: string, dir: boolean): Promise<void> {
    const ns = this.dlm.mdc!;
    if (!dir) this.cancelObjectLocksOf(parent, name);
    const cancels = await this.elc(this.withChild([[parent, InodeBit.UPDATE]], parent, name));
    const parentRes = this.dlm.rememberMetadata(parent);
    const pending = ns.prepareIntent(parentRes, 'ibits', LockMode.PR, MD_ATTR_BITS);
    let r: Awaited<ReturnType<MdtClient['unlinkIntent']>>;
    try {
      r = await this.mdc.unlinkIntent(parent, name, dir, cancels, pending.cookie);
    } catch (e) {
      ns.abortIntent(pending);
      throw e;
    }
    this.adoptParentIntent(pending, r);
    this.forgetChild(parent, name);
  }

  /**
   * Early cancel of the object locks of a file whose last name is going: the MDT destroys
   * its objects once the unlink commits, and each OST would first call back this client's
   * lock on them (a blocking AST and the cancel it answers). Sent beside the unlink, the
   * cancel reaches the OST before the destroy. Only for a file this client knows, from its
   * cached inode, to have one link; objects with bytes still cached dirty are left to the
   * callback, so no flush races the destroy. A guess that turns out wrong (the unlink fails,
   * or another client linked the file meanwhile) only costs this client its cached locks.
   */
  private cancelObjectLocksOf(parent: Fid, name: string): void {
    const child = this.children.get(childKey(parent, name))?.fid;
    const inode = child ? this.dlm.mdAttrs.peekInode(fidKey(child)) : undefined;
    if (!inode || inode.type !== 'reg' || inode.nlink !== 1 || inode.layout?.pattern !== 'raid0') return;
    for (const o of inode.layout.objects) {
      if (this.dataCache.hasDirty(o.ostIdx, o.seq, o.oid)) continue;
      void this.dlm.osc(o.ostIdx).cancelResource(objectResource(o.seq, o.oid), 'early-cancel').catch(() => undefined);
    }
  }

  /** The parent's attribute lock an update's reply brought: its attributes are cached under it, the lock kept in the LRU. */
  private adoptParentIntent(pending: ClientLock, r: { parent?: Inode; parentLock?: { handle: number; mode: LockMode; bits: number } }): void {
    const ns = this.dlm.mdc!;
    const lock = ns.completeIntent(pending, r.parentLock);
    if (!lock) return;
    if (r.parent) this.dlm.mdAttrs.putInode(pending.res, r.parent, ns.isValid(lock));
    ns.release(lock);
  }

  async rename(srcParent: Fid, srcName: string, dstParent: Fid, dstName: string, flags: { noReplace?: boolean; exchange?: boolean } = {}): Promise<void> {
    let targets: Array<[Fid, number]> = [[srcParent, InodeBit.UPDATE], [dstParent, InodeBit.UPDATE]];
    targets = this.withChild(this.withChild(targets, srcParent, srcName), dstParent, dstName);
    await this.mdc.rename(srcParent, srcName, dstParent, dstName, flags, await this.elc(targets));
    this.forgetChild(srcParent, srcName);
    this.forgetChild(dstParent, dstName);
  }

  /**
   * Early cancel also covers the child an update revokes, when this client looked it up
   * (a stale guess only costs a cached lock). Saves the MDT a blocking AST to us per unlink.
   */
  private withChild(targets: Array<[Fid, number]>, parent: Fid, name: string): Array<[Fid, number]> {
    const child = this.children.get(childKey(parent, name))?.fid;
    return child ? [...targets, [child, MD_CACHE_BITS]] : targets;
  }

  /** `nameLock`: the LOOKUP lock on `fid` granted with the answer that found the name, if any. */
  private rememberChild(parent: Fid, name: string, fid: Fid, nameLock: ClientLock | undefined): void {
    const key = childKey(parent, name);
    this.children.delete(key);
    this.children.set(key, { fid, nameLock });
    if (this.children.size > MAX_REMEMBERED_CHILDREN) this.children.delete(this.children.keys().next().value!);
  }

  private forgetChild(parent: Fid, name: string): void {
    this.children.delete(childKey(parent, name));
  }

  /**
   * setattr; a size change punches the objects first (truncate, under PW [0, EOF] on every
   * object, so every other client drops its cached pages and size), then records it on the MDT.
   * Truncating a released file restores it first, with `cred` (reference §7.3).
   */
  async setattr(fid: Fid, attrs: SetattrSpec, cred?: Cred): Promise<FileAttr> {
    try {
      return await this.setattrOnce(fid, attrs, cred);
    } catch (e) {
      // The objects went away under us (the file was released meanwhile): once more, restoring.
      if (attrs.size === undefined || !isMissingObject(e)) throw e;
      return this.setattrOnce(fid, attrs, cred);
    }
  }

  private async setattrOnce(fid: Fid, attrs: SetattrSpec, cred: Cred | undefined): Promise<FileAttr> {
    let inode = await this.mdc.getattr(fid);
    if (attrs.size !== undefined && isReleasedInode(inode)) inode = await this.restores.restore(fid, cred);
    const layout = inode.type === 'reg' && inode.layout?.pattern === 'raid0' && inode.layout.objects.length > 0 ? inode.layout : undefined;
    const mdtAttrs: SetattrSpec = { ...attrs };
    if (attrs.size !== undefined) {
      if (inode.type === 'dir') throw err('EISDIR', 'cannot truncate a directory', 'IS_DIR');
      if (inode.type !== 'reg') throw err('EINVAL', 'cannot truncate a special file', 'NOT_REGULAR');
      const t = now();
      mdtAttrs.mtime ??= t;
      mdtAttrs.ctime ??= t;
    }
    const touchesObjects = layout !== undefined && (attrs.size !== undefined || attrs.mtime !== undefined || attrs.atime !== undefined);
    let held: HeldLocks | undefined;
    if (touchesObjects) {
      await this.ensureOsts(layout);
      held = await this.dlm.lockRange(fid, layout, LockMode.PW, 0, 0, true);
    }
    try {
      // cached writes land first, or they would land over the truncate or the new times
      if (layout && touchesObjects) {
        await this.flushCached(layout);
        this.dataCache.markWritten(held!);
      }
      if (layout && attrs.size !== undefined) {
        await this.io.truncate(layout, attrs.size);
        noteKnownSizes(held!, layout, attrs.size, true);
        const n = layout.objects.length;
        this.dataCache.truncated(layout, layout.objects.map((_, i) => objectSizeForFileSize(attrs.size!, i, layout.stripeSize, n)), held!);
      }
      if (layout && touchesObjects) {
        // An archived, clean file whose times alone change keeps a current archive copy: the
        // data version (object ctimes) moves under our PW locks, so carry the record along.
        const h = inode.hsm;
        const rebase = attrs.size === undefined && h?.archVer !== undefined && (h.flags & (HS.EXISTS | HS.ARCHIVED | HS.DIRTY)) === (HS.EXISTS | HS.ARCHIVED);
        const from = rebase ? await this.dataVersionOf(inode) : undefined;
        // Object times feed stat's merged times: keep them from overriding explicit ones.
        await this.io.setTimes(layout, { mtime: mdtAttrs.mtime, atime: attrs.atime });
        if (from !== undefined && from === h!.archVer) {
          const to = await this.dataVersionOf(inode);
          if (to !== from) await this.hsm.setState({ fid, set: 0, clear: 0, rebase: { from, to } }, cred);
        }
      }
      inode = await this.mdc.setattr(fid, mdtAttrs, await this.elc([[fid, InodeBit.UPDATE | InodeBit.PERM]]));
    } finally {
      held?.release();
    }
    return this.withObjects(inode);
  }

  /**
   * Opens a file on the MDT. A read-only open may share the file's cached MDT handle
   * (no RPC) while the MDT lock behind the inode it read holds; opens for write always
   * get a handle of their own.
   */
  async open(fid: Fid, flags = 0): Promise<OpenFile> {
    if (opensForWrite(flags)) return this.openOnMdt(fid, flags);
    const r = await this.openCache.open(fid, () => this.openCovered(fid, flags));
    const f: OpenFile = { fid: r.inode.fid, handle: r.handle, inode: r.inode };
    if (r.shared) this.sharedOpens.set(f, r.shared);
    return f;
  }

  private async openOnMdt(fid: Fid, flags: number): Promise<OpenFile> {
    const r = await this.mdc.open(fid, flags);
    await this.ensureOsts(r.inode.layout);
    return { fid: r.inode.fid, handle: r.handle, inode: r.inode };
  }

  /**
   * An MDT open whose inode may be shared: this client held a lock covering the layout
   * before the open and still holds it after the reply. A layout change (HSM release,
   * restore) or an unlink revokes that lock before it happens, so while the lock stays
   * the inode read is current.
   */
  private async openCovered(fid: Fid, flags: number): Promise<MdtOpen> {
    const ns = this.dlm.mdc;
    const lock = ns?.locksOn(fidKey(fid)).find((l) => ns.isValid(l) && ((l.bits ?? 0) & InodeBit.LAYOUT) !== 0);
    const f = await this.openOnMdt(fid, flags);
    const shareable = ns !== undefined && lock !== undefined && ns.isValid(lock) && f.inode.type === 'reg' && !isReleasedInode(f.inode);
    return { handle: f.handle, inode: f.inode, current: shareable ? () => ns.isValid(lock) : undefined };
  }

  async close(f: OpenFile): Promise<void> {
    const shared = this.sharedOpens.get(f);
    if (shared) return this.openCache.release(shared);
    await this.mdc.close(f.fid, f.handle, f.modified === true);
  }

  private dataLayout(f: OpenFile): Raid0Layout | undefined {
    if (f.inode.type === 'dir') throw err('EISDIR', 'is a directory', 'IS_DIR');
    const l = f.inode.layout;
    return l && l.pattern === 'raid0' && l.objects.length > 0 ? l : undefined;
  }

  /**
   * The layout to do I/O on: a released file is restored first (with the caller's
   * credentials; any user may restore) and the open file takes the restored inode.
   */
  private async ioLayout(f: OpenFile, cred: Cred | undefined): Promise<Raid0Layout | undefined> {
    if (f.inode.type === 'dir') throw err('EISDIR', 'is a directory', 'IS_DIR');
    if (isReleasedInode(f.inode)) {
      f.inode = await this.restores.restore(f.fid, cred);
      await this.ensureOsts(f.inode.layout);
    }
    return this.dataLayout(f);
  }

  /**
   * Runs `io` on the open file's current layout. An object gone missing means the layout
   * changed since the open (the file was released, perhaps restored into new objects, by
   * someone else): the inode is read again and `io` runs once more on what it holds now.
   */
  private async onCurrentLayout<T>(f: OpenFile, cred: Cred | undefined, io: (layout: Raid0Layout | undefined) => Promise<T>): Promise<T> {
    const layout = await this.ioLayout(f, cred);
    try {
      return await io(layout);
    } catch (e) {
      if (!layout || !isMissingObject(e)) throw e;
      const fresh = await this.mdc.getattr(f.fid);
      if (sameObjects(fresh.layout, layout)) throw e;
      f.inode = fresh;
      await this.ensureOsts(fresh.layout);
      return io(await this.ioLayout(f, cred));
    }
  }

  /**
   * Reads under PR locks on the objects the range maps to (cached locks cost no RPC).
   * A released file is restored first (`cred`: whose access it is).
   */
  async read(f: OpenFile, offset: number, length: number, cred?: Cred): Promise<Buffer> {
    // a copy: callers may write into what read returns, never into the cache's pages
    return Buffer.concat(await this.readv(f, offset, length, cred));
  }

  /**
   * `read`'s bytes as the pieces they are cached in (page buffers and subarrays of them),
   * in order, their lengths adding up to what `read` returns: for replies that go out in
   * one writev without assembling a buffer. The pieces are read-only (they may be the page
   * cache's own buffers, which nothing writes once filled: see ClientCache.readv).
   */
  async readv(f: OpenFile, offset: number, length: number, cred?: Cred): Promise<Buffer[]> {
    checkRange(offset, length);
    if (f.inode.type === 'dir') throw err('EISDIR', 'is a directory', 'IS_DIR');
    // nothing to read: no reason to bring the data back
    if (length === 0) return [];
    return this.onCurrentLayout(f, cred, async (layout) => {
      if (!layout) return [];
      const held = await this.dlm.lockRange(f.fid, layout, LockMode.PR, offset, length);
      try {
        return await this.dataCache.readv(f.fid, layout, offset, length, held, this.readaheadHandle(f));
      } finally {
        held.release();
      }
    });
  }

  /**
   * Writes under PW locks on the objects the range maps to. With `append`, the data goes
   * at the end of file as it is under PW [0, EOF] on every object, so appends from any
   * number of clients are serialised and never overwrite one another (reference §5).
   * Resolves with where the data went. A released file is restored first (`cred`: whose
   * access it is).
   */
  async write(f: OpenFile, offset: number, data: Buffer, opts: { sync?: boolean; append?: boolean; cred?: Cred } = {}): Promise<{ written: number; offset: number }> {
    checkRange(offset, data.length);
    return this.onCurrentLayout(f, opts.cred, async (layout) => {
      if (!layout) throw err('EIO', `file ${fidKey(f.fid)} has no objects`, 'NO_OBJECTS');
      const held = await this.dlm.lockRange(f.fid, layout, LockMode.PW, offset, data.length, opts.append === true);
      try {
        let at = offset;
        if (opts.append) at = await this.dataCache.fileSize(layout, held);
        checkRange(at, data.length);
        f.modified = true;
        await this.dataCache.write(f.fid, layout, at, data, held, opts.sync === true);
        noteKnownSizes(held, layout, at + data.length);
        return { written: data.length, offset: at };
      } finally {
        held.release();
      }
    });
  }

  /** The file's cached writes go to the OSTs and reach their disks; a write that failed since the last report fails it. */
  async fsync(f: OpenFile): Promise<void> {
    const layout = this.dataLayout(f);
    if (layout) {
      await this.flushCached(layout);
      await this.io.sync(layout);
    }
    this.dataCache.writeback.takeError(f.fid);
  }

  /** Throws, once, the error of a cached write of the file that failed in the background (close(2) reports it). */
  takeWriteError(f: OpenFile): void {
    this.dataCache.writeback.takeError(f.fid);
  }

  private flushCached(layout: Raid0Layout): Promise<void> {
    return this.dataCache.writeback.flushObjects(layout.objects.map((o) => ({ ost: o.ostIdx, seq: o.seq, oid: o.oid })));
  }

  /** Readahead for one open file: prefetches take their own PR locks and fill the cache. */
  private readaheadHandle(f: OpenFile): ReadaheadHandle {
    let h = this.readaheadHandles.get(f);
    if (!h) {
      h = {
        sizeHint: f.inode.size,
        prefetch: async (start, length) => {
          const layout = this.dataLayout(f);
          if (!layout || isReleasedInode(f.inode)) return;
          try {
            const held = await this.dlm.lockRange(f.fid, layout, LockMode.PR, start, length);
            try {
              await this.dataCache.prefetch(layout, start, length, held);
            } finally {
              held.release();
            }
          } catch (e) {
            this.log.debug({ fid: fidKey(f.fid), start, length, err: toStriaError(e).message }, 'readahead failed');
          }
        },
      };
      this.readaheadHandles.set(f, h);
    }
    return h;
  }

  /** Whole file into the cache levels (stria warmup), in RPC-sized steps under PR locks. */
  private async warmup(fid: Fid): Promise<{ size: number; loadedBytes: number }> {
    const attr = await this.getattr(fid);
    if (attr.type !== 'reg') throw err('EINVAL', `${fidKey(fid)} is not a regular file`, 'NOT_REGULAR');
    if (isReleasedInode(attr)) return { size: attr.size, loadedBytes: 0 };
    const layout = attr.layout?.pattern === 'raid0' && attr.layout.objects.length > 0 ? attr.layout : undefined;
    if (!layout) return { size: attr.size, loadedBytes: 0 };
    await this.ensureOsts(layout);
    const before = this.ostReadBytes();
    const step = 4 << 20;
    for (let off = 0; off < attr.size; off += step) {
      const len = Math.min(step, attr.size - off);
      const held = await this.dlm.lockRange(fid, layout, LockMode.PR, off, len);
      try {
        await this.dataCache.prefetch(layout, off, len, held);
      } finally {
        held.release();
      }
    }
    await this.dataCache.ssd?.flush();
    return { size: attr.size, loadedBytes: this.ostReadBytes() - before };
  }

  private ostReadBytes(): number {
    let n = 0;
    for (const c of this.osts.values()) n += c.stats.readBytes;
    return n;
  }

  /** How much of the file the local disk level holds under the objects' current versions. */
  private async cacheCheck(fid: Fid): Promise<{ size: number; cachedBytes: number }> {
    const attr = await this.getattr(fid);
    const layout = attr.type === 'reg' && attr.layout?.pattern === 'raid0' && attr.layout.objects.length > 0 ? attr.layout : undefined;
    if (!layout || attr.size === 0) return { size: attr.size, cachedBytes: 0 };
    await this.ensureOsts(layout);
    const held = await this.dlm.lockRange(fid, layout, LockMode.PR, 0, attr.size);
    try {
      return { size: attr.size, cachedBytes: Math.min(attr.size, this.dataCache.diskBytesOf(layout, held)) };
    } finally {
      held.release();
    }
  }

  private async cacheEvict(fid: Fid): Promise<number> {
    const inode = await this.mdc.getattr(fid);
    const layout = inode.type === 'reg' && inode.layout?.pattern === 'raid0' ? inode.layout : undefined;
    return layout ? this.dataCache.evict(layout) : 0;
  }

  /**
   * fcntl record locks and flock(2), held on the MDT for every client. `wait` (F_SETLKW,
   * flock without LOCK_NB) blocks until granted; `interrupted` is polled so a signal
   * withdraws the request. Refused: EAGAIN. Would deadlock: EDEADLK.
   */
  async setLock(fid: Fid, l: FileLockSpec, wait: boolean, interrupted: () => boolean = () => false): Promise<void> {
    const ns = this.dlm.mdc!;
    const cookie = ns.newCookie();
    const expected = wait ? ns.expectCompletion(cookie) : undefined;
    let r;
    try {
      r = await this.mdc.flock({ ...flockBody(fid, l), wait, cookie });
    } catch (e) {
      expected?.cancel();
      throw e;
    }
    if (r.status === 'granted') {
      expected?.cancel();
      return;
    }
    if (r.status === 'conflict' || !expected) {
      expected?.cancel();
      throw err('EAGAIN', 'the lock is held by another process', 'LOCK_CONFLICT');
    }
    const handle = r.handle ?? 0;
    let poll: NodeJS.Timeout | undefined;
    const interruptedWait = new Promise<'interrupted'>((resolve) => {
      poll = setInterval(() => {
        if (interrupted()) resolve('interrupted');
      }, FLOCK_INTERRUPT_POLL_MS);
    });
    try {
      const outcome = await Promise.race([expected.done.then(() => 'granted' as const), interruptedWait]);
      if (outcome === 'granted') return;
      expected.cancel();
      await this.mdc.cancelLocks([handle]);
      // Granted just before the cancel arrived: give it back.
      await this.mdc.flock({ ...flockBody(fid, { ...l, type: 'unlock' }), cookie: ns.newCookie() }).catch(() => undefined);
      throw err('EINTR', 'interrupted while waiting for a lock', 'LOCK_INTERRUPTED');
    } finally {
      clearInterval(poll);
    }
  }

  /** F_GETLK: the first lock that would block `l`, or undefined. */
  async testLock(fid: Fid, l: FileLockSpec): Promise<{ type: 'read' | 'write'; start: number; end: number; pid: number } | undefined> {
    const r = await this.mdc.flock({ ...flockBody(fid, l), test: true, cookie: 0 });
    if (r.status !== 'conflict' || !r.conflict) return undefined;
    return { type: r.conflict.lock, start: r.conflict.start, end: r.conflict.end, pid: r.conflict.pid };
  }

  /** Every lock of `owner` on the file ends (close of a POSIX owner's descriptor, last close of a flock). */
  async releaseLocks(fid: Fid, kind: 'posix' | 'bsd', owner: bigint): Promise<void> {
    await this.mdc.flockRelease(fidKey(fid), kind, owner.toString());
  }

  async readdir(fid: Fid, cookie: number, limit = 256): Promise<{ entries: DirEntry[]; eof: boolean }> {
    return this.mdc.readdir(fid, cookie, limit);
  }

  /** Every entry of a directory, page by page. */
  async *listDir(fid: Fid, pageSize = 1024): AsyncGenerator<DirEntry> {
    let cookie = 0;
    for (;;) {
      const page = await this.mdc.readdir(fid, cookie, pageSize);
      for (const e of page.entries) yield e;
      if (page.eof || page.entries.length === 0) return;
      cookie = page.entries[page.entries.length - 1]!.cookie;
    }
  }

  /** From the attribute cache while an XATTR lock is held (the kernel asks security.capability before every write). */
  async getxattr(fid: Fid, name: string): Promise<Buffer> {
    const ns = this.dlm.mdc!;
    const res = this.dlm.rememberMetadata(fid);
    const held = ns.match(res, LockMode.PR, { bits: InodeBit.XATTR });
    if (!held) return this.mdc.getxattr(fid, name);
    try {
      const cached = this.dlm.mdAttrs.xattr(res, name);
      if (cached === null) throw noXattr(name, fidToString(fid));
      if (cached) return cached;
      try {
        const value = await this.mdc.getxattr(fid, name);
        this.dlm.mdAttrs.putXattr(res, name, value, ns.isValid(held));
        return value;
      } catch (e) {
        if (toStriaError(e).errno === Errno.ENODATA) this.dlm.mdAttrs.putXattr(res, name, null, ns.isValid(held));
        throw e;
      }
    } finally {
      ns.release(held);
    }
  }

  listxattr(fid: Fid): Promise<string[]> {
    return this.mdc.listxattr(fid);
  }

  async setxattr(fid: Fid, name: string, value: Buffer, flags: { create?: boolean; replace?: boolean } = {}): Promise<void> {
    return this.mdc.setxattr(fid, name, value, flags, await this.elc([[fid, InodeBit.XATTR]]));
  }

  async removexattr(fid: Fid, name: string): Promise<void> {
    return this.mdc.setxattr(fid, name, undefined, {}, await this.elc([[fid, InodeBit.XATTR]]));
  }

  setDirStripe(fid: Fid, template: LayoutTemplate | null): Promise<Inode> {
    return this.mdc.setDirDefault(fid, template);
  }

  /** statfs summed over targets: space from the OSTs, inodes from the MDT (reference §2.7). */
  async statfs(): Promise<StatFs> {
    const [mdt, ...osts] = await Promise.all([this.mdc.statfs(), ...this.ostClients().map((o) => o.statfs().catch(() => undefined))]);
    const live = osts.filter((s): s is StatFs => s !== undefined);
    const bsize = 4096;
    const sum = (f: (s: StatFs) => number) => live.reduce((a, s) => a + Math.floor((f(s) * s.bsize) / bsize), 0);
    return { bsize, blocks: sum((s) => s.blocks), bfree: sum((s) => s.bfree), bavail: sum((s) => s.bavail), files: mdt.files, ffree: mdt.ffree };
  }

  async pingMgs(): Promise<void> {
    await this.mgc.imp.ping();
  }

  async unmount(): Promise<void> {
    this.restores.close();
    this.statahead.close();
    // cached writes go out while the locks that cover them are still held
    await this.dataCache.close().catch((e) => this.log.warn({ err: toStriaError(e).message }, 'flushing cached writes at unmount failed'));
    this.openCache.close();
    await this.dlm.close().catch(() => undefined);
    await this.rpc.close();
  }

  /**
   * Lustre's data version: changes whenever the file's data may have changed. Derived from
   * each object's size and ctime (which the OST's filesystem sets on every write and
   * truncate); a released file answers the version its archive copy was made from.
   */
  async dataVersion(fid: Fid): Promise<string> {
    const inode = await this.mdc.getattr(fid);
    return this.dataVersionOf(inode);
  }

  async dataVersionOf(inode: Pick<Inode, 'fid' | 'type' | 'layout' | 'hsm'>): Promise<string> {
    const l = inode.layout;
    if (inode.type !== 'reg') throw err('EINVAL', `${fidKey(inode.fid)} is not a regular file`, 'NOT_REGULAR');
    if (!l || l.pattern === 'released') {
      if (inode.hsm?.archVer) return inode.hsm.archVer;
      return `empty:${l?.layoutGen ?? 0}`;
    }
    await this.ensureOsts(l);
    // Lustre's LL_DV_RD_FLUSH: cached writes anywhere reach the OSTs before the version is read
    const held = await this.dlm.lockRange(inode.fid, l, LockMode.PR, 0, 0, true);
    let attrs;
    try {
      await this.flushCached(l);
      attrs = await Promise.all(l.objects.map((o) => this.osc(o.ostIdx).getattr(o.seq, o.oid)));
    } finally {
      held.release();
    }
    const h = createHash('sha256');
    l.objects.forEach((o, i) => {
      const a = attrs[i]!;
      h.update(`${o.ostIdx}:${o.seq}:${o.oid}:${a.size}:${a.ctime.sec}.${a.ctime.nsec};`);
    });
    return `v1:${h.digest('hex').slice(0, 32)}`;
  }

  /**
   * HSM restore: writes archived data into objects the coordinator allocated for the file
   * (not yet its layout), under PW locks on them like any write.
   */
  async writeObjects(fid: Fid, layout: Raid0Layout, offset: number, data: Buffer): Promise<void> {
    checkRange(offset, data.length);
    await this.ensureOsts(layout);
    const held = await this.dlm.lockRange(fid, layout, LockMode.PW, offset, data.length);
    try {
      this.dataCache.markWritten(held);
      await this.io.write(layout, offset, data);
    } finally {
      held.release();
    }
  }

  /** HSM restore, last step: the objects get the file's size and times, then reach disk. */
  async finishObjects(fid: Fid, layout: Raid0Layout, attrs: { size: number; atime: Timestamp; mtime: Timestamp }): Promise<void> {
    await this.ensureOsts(layout);
    const held = await this.dlm.lockRange(fid, layout, LockMode.PW, 0, 0, true);
    try {
      this.dataCache.markWritten(held);
      await this.io.truncate(layout, attrs.size);
      await this.io.setTimes(layout, { atime: attrs.atime, mtime: attrs.mtime });
      await this.io.sync(layout);
    } finally {
      held.release();
    }
  }

  /**
   * Copytools: action lists the coordinator pushes to this client (after `hsm.register`).
   * The handler should only queue the work: the coordinator waits for its answer.
   */
  onHsmActions(handler: (hal: HsmActionList) => void | Promise<void>): void {
    this.rpc.onCallback(Opc.LDLM_SET_INFO, async (ctx: CallbackContext) => {
      const b = ctx.body as { key?: unknown; hal?: unknown } | undefined;
      if (b?.key !== HSM_ACTIONS_KEY || typeof b.hal !== 'object' || b.hal === null) {
        throw err('EINVAL', `unknown set_info key ${String(b?.key)}`, 'BAD_SET_INFO');
      }
      await handler(b.hal as HsmActionList);
      return { body: {} };
    });
  }

  /** Called with `evicted` when the MDT connection was re-established to a new export (MDS restart, eviction). */
  onMdtReconnect(fn: (evicted: boolean) => void): void {
    this.mdc.imp.on('new-export', (o: { evicted?: boolean } | undefined) => fn(o?.evicted === true));
  }

  /** Lustre's fid2path: the path from the root of each name of `fid` ('' for the root). */
  fid2path(fid: Fid): Promise<string[]> {
    return this.mdc.fid2path(fid);
  }

  /** The (parent FID, name) of each name of `fid`, as path2fid --parents prints them. */
  async parents(fid: Fid): Promise<Array<{ parent: Fid; name: string }>> {
    return (await this.mdc.links(fid)).links;
  }
}

const FLOCK_INTERRUPT_POLL_MS = 100;
/** as many as the inode cache keeps (md-attr-cache.ts): a name is worth keeping while its inode is */
const MAX_REMEMBERED_CHILDREN = 65_536;

/** A name this client found, and the lock that keeps the finding true while granted. */
interface KnownChild {
  fid: Fid;
  nameLock?: ClientLock;
}

/** The key of a name in the remembered-children map. */
function childKey(parent: Fid, name: string): string {
  return `${fidKey(parent)}/${name}`;
}

function flockBody(fid: Fid, l: FileLockSpec) {
  return { res: fidKey(fid), kind: l.kind, owner: l.owner.toString(), pid: l.pid, lock: l.type, start: l.start, end: Math.min(l.end, EXTENT_EOF) };
}

/** Our own writes are what a glimpse of our PW locks must report (the client's KMS). */
function noteKnownSizes(held: HeldLocks, layout: Raid0Layout, fileEnd: number, truncated = false): void {
  const n = layout.objects.length;
  for (const lock of held.locks) {
    const i = layout.objects.findIndex((o) => objectResource(o.seq, o.oid) === lock.res);
    if (i < 0) continue;
    const objSize = objectSizeForFileSize(fileEnd, i, layout.stripeSize, n);
    lock.knownSize = truncated ? objSize : Math.max(lock.knownSize ?? 0, objSize);
    // the size at grant no longer bounds the object from below
    if (truncated && lock.lvb && lock.lvb.size > objSize) lock.lvb = { ...lock.lvb, size: objSize };
  }
}

/** An object of the layout does not exist (any more) on its OST. */
function isMissingObject(e: unknown): boolean {
  return toStriaError(e).errno === Errno.ENOENT;
}

function sameObjects(a: Raid0Layout | undefined, b: Raid0Layout): boolean {
  if (!a || a.pattern !== b.pattern || a.layoutGen !== b.layoutGen || a.objects.length !== b.objects.length) return false;
  return a.objects.every((o, i) => o.ostIdx === b.objects[i]!.ostIdx && o.seq === b.objects[i]!.seq && o.oid === b.objects[i]!.oid);
}

function latest(a: Timestamp, b: Timestamp | undefined): Timestamp {
  if (!b) return a;
  return b.sec > a.sec || (b.sec === a.sec && b.nsec > a.nsec) ? b : a;
}

const MAX_FILE_BYTES = 2 ** 53 - 1;
function checkRange(offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0 || offset + length > MAX_FILE_BYTES) {
    throw err('EINVAL', `invalid range offset=${offset} length=${length}`, 'BAD_RANGE');
  }
}

/** A name that does not exist. */
function isNotFound(e: unknown): boolean {
  return toStriaError(e).errno === Errno.ENOENT;
}
