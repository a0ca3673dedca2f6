/** Client side of one MDT (Lustre's MDC): typed namespace requests. */
import type { Fid } from '../common/fid.js';
import type { DirEntry, FileType, Inode } from '../common/inode.js';
import type { LayoutTemplate } from '../common/layout.js';
import type { Timestamp } from '../common/time.js';
import { Opc, ReintOp } from '../ptlrpc/opcodes.js';
import type { Import } from '../ptlrpc/import.js';
import type { RequestOptions } from '../ptlrpc/types.js';
import type { MdtStatfs } from '../mds/protocol.js';
import type { LockMode } from '../ldlm/modes.js';

export interface Cred {
  uid: number;
  gid: number;
}

export interface CreateSpec {
  fid: Fid;
  type: FileType;
  mode: number;
  uid: number;
  gid: number;
  rdev?: number;
  target?: string;
  layout?: LayoutTemplate;
  open?: boolean;
}

export interface SetattrSpec {
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  atime?: Timestamp;
  mtime?: Timestamp;
  ctime?: Timestamp;
}

export class MdtClient {
  constructor(readonly imp: Import) {}

  private async call<T>(opc: number, body: unknown, cred?: Cred): Promise<T> {
    const opts: RequestOptions | undefined = cred ? { uid: cred.uid, gid: cred.gid } : undefined;
    return (await this.imp.request(opc, body, opts)).body as T;
  }

  async allocSequence(): Promise<{ seq: number; width: number }> {
    return this.call(Opc.SEQ_QUERY, {});
  }

  async getattr(fid: Fid): Promise<Inode> {
    return (await this.call<{ inode: Inode }>(Opc.MDS_GETATTR, { fid })).inode;
  }

  async lookup(parent: Fid, name: string): Promise<Inode> {
    return (await this.call<{ inode: Inode }>(Opc.MDS_GETATTR_NAME, { parent, name })).inode;
  }

  /** getattr that also asks for a PR inodebits lock on the inode (IT_GETATTR). */
  async getattrIntent(fid: Fid, cookie: number): Promise<IntentReply> {
    return this.call(Opc.MDS_GETATTR, { fid, lock: { cookie } });
  }

  /** lookup that also asks for a PR inodebits lock on the child (IT_LOOKUP). */
  async lookupIntent(parent: Fid, name: string, cookie: number): Promise<IntentReply> {
    return this.call(Opc.MDS_GETATTR_NAME, { parent, name, lock: { cookie } });
  }

  /** fcntl/flock request to the MDT's flock service. */
  async flock(body: FlockBody): Promise<FlockReply> {
    return this.call(Opc.LDLM_ENQUEUE, { type: 'flock', ...body });
  }

  async flockRelease(res: string, kind: 'posix' | 'bsd', owner: string): Promise<void> {
    await this.call(Opc.LDLM_ENQUEUE, { type: 'flock-release', res, kind, owner });
  }

  async cancelLocks(handles: number[]): Promise<void> {
    await this.imp.request(Opc.LDLM_CANCEL, { handles }, { urgent: true });
  }

  /**
   * `locks`: cookies of the intent locks to be granted with the reply (the new inode's name
   * and attribute locks, the parent's attribute lock); the reply then carries them.
   */
  async create<R extends { inode: Inode; handle?: number } = { inode: Inode; handle?: number }>(
    parent: Fid, name: string, spec: CreateSpec, cancels?: number[], locks?: { name?: number; attrs?: number; parentAttrs?: number },
  ): Promise<R> {
    const body: Record<string, unknown> = { op: ReintOp.CREATE, parent, name, ...spec };
    if (locks) body.locks = locks;
    return this.call(Opc.MDS_REINT, withCancels(body, cancels), spec);
  }

  async open(fid: Fid, flags: number): Promise<{ inode: Inode; handle: number }> {
    return this.call(Opc.MDS_REINT, { op: ReintOp.OPEN, fid, flags });
  }

  async close(fid: Fid, handle: number, modified = false): Promise<void> {
    await this.call(Opc.MDS_CLOSE, modified ? { fid, handle, modified } : { fid, handle });
  }

  async link(fid: Fid, parent: Fid, name: string, cancels?: number[]): Promise<Inode> {
    return (await this.call<{ inode: Inode }>(Opc.MDS_REINT, withCancels({ op: ReintOp.LINK, fid, parent, name }, cancels))).inode;
  }

  async unlink(parent: Fid, name: string, dir: boolean, cancels?: number[]): Promise<Inode> {
    return (await this.unlinkIntent(parent, name, dir, cancels)).inode;
  }

  /** unlink whose reply brings the parent's attributes under a new lock named by `parentAttrs`. */
  async unlinkIntent(parent: Fid, name: string, dir: boolean, cancels?: number[], parentAttrs?: number): Promise<{ inode: Inode; parent?: Inode; parentLock?: { handle: number; mode: LockMode; bits: number } }> {
    const body: Record<string, unknown> = { op: ReintOp.UNLINK, parent, name, dir };
    if (parentAttrs !== undefined) body.locks = { parentAttrs };
    return this.call(Opc.MDS_REINT, withCancels(body, cancels));
  }

  async rename(srcParent: Fid, srcName: string, dstParent: Fid, dstName: string, flags: { noReplace?: boolean; exchange?: boolean } = {}, cancels?: number[]): Promise<void> {
    await this.call(Opc.MDS_REINT, withCancels({ op: ReintOp.RENAME, srcParent, srcName, dstParent, dstName, ...flags }, cancels));
  }

  async setattr(fid: Fid, attrs: SetattrSpec, cancels?: number[]): Promise<Inode> {
    return (await this.call<{ inode: Inode }>(Opc.MDS_REINT, withCancels({ op: ReintOp.SETATTR, fid, attrs }, cancels))).inode;
  }

  async readdir(fid: Fid, cookie: number, limit: number): Promise<{ entries: DirEntry[]; eof: boolean }> {
    return this.call(Opc.MDS_READPAGE, { fid, cookie, limit });
  }

  async getxattr(fid: Fid, name: string): Promise<Buffer> {
    const v = (await this.call<{ value: Uint8Array }>(Opc.MDS_GETXATTR, { fid, name })).value;
    return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  }

  async listxattr(fid: Fid): Promise<string[]> {
    return (await this.call<{ names: string[] }>(Opc.MDS_GETXATTR, { fid, list: true })).names;
  }

  async setxattr(fid: Fid, name: string, value: Buffer | undefined, flags: { create?: boolean; replace?: boolean } = {}, cancels?: number[]): Promise<void> {
    await this.call(Opc.MDS_REINT, withCancels({ op: ReintOp.SETXATTR, fid, name, value, ...flags }, cancels));
  }

  async setDirDefault(fid: Fid, template: LayoutTemplate | null): Promise<Inode> {
    return (await this.call<{ inode: Inode }>(Opc.MDS_SET_INFO, { key: 'dir_default', fid, template })).inode;
  }

  async statfs(): Promise<MdtStatfs> {
    return this.call(Opc.MDS_STATFS, {});
  }

  /** Paths from the root of every recorded name of `fid` (no leading '/'; '' for the root). */
  async fid2path(fid: Fid): Promise<string[]> {
    const paths: string[] = [];
    let link: number | undefined = 0;
    // every page holds at least one path, so this ends after at most one page per name
    for (let page = 0; link !== undefined && page <= MAX_NAMES_PER_INODE; page++) {
      const r: { paths: string[]; next?: number } = await this.call(Opc.MDS_GET_INFO, { key: 'fid2path', fid, link });
      paths.push(...r.paths);
      link = r.next !== undefined && r.next > link ? r.next : undefined;
    }
    return paths;
  }

  /** The (parent FID, name) pairs of `fid`, oldest first; `overflow` when some were not kept. */
  async links(fid: Fid): Promise<{ links: Array<{ parent: Fid; name: string }>; overflow: boolean }> {
    return this.call(Opc.MDS_GET_INFO, { key: 'links', fid });
  }
}

export interface IntentReply {
  inode: Inode;
  /** the PR inodebits lock granted with the reply */
  lock?: { handle: number; mode: LockMode; bits: number };
}

export interface FlockBody {
  res: string;
  kind: 'posix' | 'bsd';
  owner: string;
  pid: number;
  lock: 'read' | 'write' | 'unlock';
  start: number;
  end: number;
  test?: boolean;
  wait?: boolean;
  cookie: number;
}

export interface FlockReply {
  status: 'granted' | 'waiting' | 'conflict';
  handle?: number;
  conflict?: { lock: 'read' | 'write'; start: number; end: number; pid: number };
}

function withCancels<T extends object>(body: T, cancels: number[] | undefined): T {
  return cancels && cancels.length > 0 ? { ...body, cancels } : body;
}

/** The MDS keeps at most this many names per inode (LINKEA_MAX_LINKS). */
const MAX_NAMES_PER_INODE = 64;
