/**
 * The client core (Lustre's llite without the VFS glue): mounts a filesystem
 * through the MGS, then offers inode-based operations that the FUSE adapter
 * and tools call. File data is striped over the OSTs by StripedIo.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from '../common/log.js';
import { silentLogger } from '../common/log.js';
import { err } from '../common/errno.js';
import { fidKey, type Fid } from '../common/fid.js';
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
import { MdtClient, type Cred, type SetattrSpec } from './mdc.js';
import { OstClient } from './osc.js';
import type { StatFs } from '../common/statfs.js';
import { StripedIo } from './lov.js';
import { FidAllocator } from './fid-alloc.js';

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
}

/** Attributes as stat(2) sees them: for striped files size/blocks/times come from the objects. */
export interface FileAttr extends Inode {
  blocks: number;
}

export interface OpenFile {
  fid: Fid;
  handle: number;
  inode: Inode;
}

export type { StatFs as FsStatfs } from '../common/statfs.js';

export class StriaClient {
  readonly root: Fid;
  /** the filesystem's default layout, from the MDT at connect */
  readonly fsDefault: { stripeSize: number; stripeCount: number };
  private readonly osts = new Map<number, OstClient>();
  private readonly io: StripedIo;
  private readonly fids: FidAllocator;

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

  private async withObjects(inode: Inode): Promise<FileAttr> {
    if (inode.type !== 'reg' || !inode.layout || inode.layout.pattern !== 'raid0' || inode.layout.objects.length === 0) {
      return { ...inode, blocks: Math.ceil(inode.size / 512) };
    }
    await this.ensureOsts(inode.layout);
    const m = await this.io.glimpse(inode.layout);
    return {
      ...inode,
      size: m.size,
      blocks: m.blocks,
      mtime: latest(inode.mtime, m.mtime),
      ctime: latest(inode.ctime, m.ctime),
      atime: latest(inode.atime, m.atime),
    };
  }

  async getattr(fid: Fid): Promise<FileAttr> {
    return this.withObjects(await this.mdc.getattr(fid));
  }

  async lookup(parent: Fid, name: string): Promise<FileAttr> {
    return this.withObjects(await this.mdc.lookup(parent, name));
  }

  /** Creates and opens a regular file; `layout` is the setstripe request for it. */
  async create(parent: Fid, name: string, spec: { mode: number; cred: Cred; layout?: LayoutTemplate }): Promise<OpenFile> {
    const fid = await this.fids.next();
    const r = await this.mdc.create(parent, name, {
      fid, type: 'reg', mode: spec.mode, uid: spec.cred.uid, gid: spec.cred.gid, layout: spec.layout, open: true,
    });
    await this.ensureOsts(r.inode.layout);
    return { fid: r.inode.fid, handle: r.handle!, inode: r.inode };
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
    const fid = await this.fids.next();
    const r = await this.mdc.create(parent, name, { fid, type, mode, uid: cred.uid, gid: cred.gid, ...extra });
    return this.withObjects(r.inode);
  }

  async readlink(fid: Fid): Promise<string> {
    const inode = await this.mdc.getattr(fid);
    if (inode.type !== 'lnk' || inode.target === undefined) throw err('EINVAL', 'not a symbolic link', 'NOT_SYMLINK');
    return inode.target;
  }

  async link(fid: Fid, parent: Fid, name: string): Promise<FileAttr> {
    return this.withObjects(await this.mdc.link(fid, parent, name));
  }

  async unlink(parent: Fid, name: string): Promise<void> {
    await this.mdc.unlink(parent, name, false);
  }

  async rmdir(parent: Fid, name: string): Promise<void> {
    await this.mdc.unlink(parent, name, true);
  }

  async rename(srcParent: Fid, srcName: string, dstParent: Fid, dstName: string, flags: { noReplace?: boolean; exchange?: boolean } = {}): Promise<void> {
    await this.mdc.rename(srcParent, srcName, dstParent, dstName, flags);
  }

  /** setattr; a size change punches the objects first (truncate), then records it on the MDT. */
  async setattr(fid: Fid, attrs: SetattrSpec): Promise<FileAttr> {
    let inode = await this.mdc.getattr(fid);
    const layout = inode.type === 'reg' && inode.layout?.pattern === 'raid0' ? inode.layout : undefined;
    const mdtAttrs: SetattrSpec = { ...attrs };
    if (attrs.size !== undefined) {
      if (inode.type === 'dir') throw err('EISDIR', 'cannot truncate a directory', 'IS_DIR');
      if (inode.type !== 'reg') throw err('EINVAL', 'cannot truncate a special file', 'NOT_REGULAR');
      if (layout) {
        await this.ensureOsts(layout);
        await this.io.truncate(layout, attrs.size);
      }
      const t = now();
      mdtAttrs.mtime ??= t;
      mdtAttrs.ctime ??= t;
    }
    if (layout && (attrs.mtime || attrs.atime || mdtAttrs.mtime)) {
      // Object times feed stat's merged times: keep them from overriding explicit ones.
      await this.io.setTimes(layout, { mtime: mdtAttrs.mtime, atime: attrs.atime });
    }
    inode = await this.mdc.setattr(fid, mdtAttrs);
    return this.withObjects(inode);
  }

  async open(fid: Fid, flags = 0): Promise<OpenFile> {
    const r = await this.mdc.open(fid, flags);
    await this.ensureOsts(r.inode.layout);
    return { fid: r.inode.fid, handle: r.handle, inode: r.inode };
  }

  async close(f: OpenFile): Promise<void> {
    await this.mdc.close(f.fid, f.handle);
  }

  private dataLayout(f: OpenFile): Raid0Layout | undefined {
    if (f.inode.type === 'dir') throw err('EISDIR', 'is a directory', 'IS_DIR');
    const l = f.inode.layout;
    return l && l.pattern === 'raid0' && l.objects.length > 0 ? l : undefined;
  }

  async read(f: OpenFile, offset: number, length: number): Promise<Buffer> {
    checkRange(offset, length);
    const layout = this.dataLayout(f);
    if (!layout) return Buffer.alloc(0);
    return this.io.read(layout, offset, length);
  }

  async write(f: OpenFile, offset: number, data: Buffer, opts: { sync?: boolean } = {}): Promise<number> {
    checkRange(offset, data.length);
    const layout = this.dataLayout(f);
    if (!layout) throw err('EIO', `file ${fidKey(f.fid)} has no objects`, 'NO_OBJECTS');
    await this.io.write(layout, offset, data, opts.sync);
    return data.length;
  }

  async fsync(f: OpenFile): Promise<void> {
    const layout = this.dataLayout(f);
    if (layout) await this.io.sync(layout);
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

  getxattr(fid: Fid, name: string): Promise<Buffer> {
    return this.mdc.getxattr(fid, name);
  }

  listxattr(fid: Fid): Promise<string[]> {
    return this.mdc.listxattr(fid);
  }

  setxattr(fid: Fid, name: string, value: Buffer, flags: { create?: boolean; replace?: boolean } = {}): Promise<void> {
    return this.mdc.setxattr(fid, name, value, flags);
  }

  removexattr(fid: Fid, name: string): Promise<void> {
    return this.mdc.setxattr(fid, name, undefined);
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
    await this.rpc.close();
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
