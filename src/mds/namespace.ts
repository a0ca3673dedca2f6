/**
 * The MDT namespace: inodes, directory entries, xattrs, orphans and counters
 * over a MetadataStore (key schema in keys.ts). Pure logic: the RPC layer
 * calls it and turns its StriaErrors into replies.
 *
 * Every mutation is one store transaction, so a crash leaves each operation
 * done or not done. Transaction functions may be re-run by a backend
 * (optimistic retry): they only read the store and the in-memory open counts
 * and take `now` from outside.
 */
import { err } from '../common/errno.js';
import { FID_SEQ_NORMAL, ROOT_FID, fidEquals, fidFromKey, fidKey, fidToString, isValidFid, type Fid } from '../common/fid.js';
import { S_IFMT, typeBits, type DirEntry, type FileType, type HsmAttrs, type Inode } from '../common/inode.js';
import type { LayoutTemplate, OstObject, Raid0Layout } from '../common/layout.js';
import { compareTime, isTimestamp, now, type Timestamp } from '../common/time.js';
import { HS, HS_ALL, HS_USER_MASK } from '../hsm/flags.js';
import { isWellFormedKey } from './store/key-order.js';
import type { MetadataStore, StoreTxn } from './store/types.js';
import {
  DENTRY_SLOTS,
  K,
  LINKEA_MAX_LINKS,
  MAX_COOKIE,
  SCHEMA_VERSION,
  cookieOfPos,
  dentryPos,
  nameHash,
  posFromDentryKey,
  slotOfPos,
  type LinkEntry,
  type LinkRecord,
} from './keys.js';
import {
  compareObjectIds,
  highestObjects,
  isEmptyTemplate,
  normalizeTemplate,
  resolveTemplate,
  templateForNewDir,
  validateFsDefault,
  validateLayout,
  type EffectiveTemplate,
  type FsDefault,
} from './layout-policy.js';
import { decodeLovUser, encodeLovEA, encodeLovTemplate } from './lov-xattr.js';

export const NAME_MAX = 255;
/** symlink targets, like PATH_MAX including the NUL */
export const SYMLINK_MAX = 4095;
/** hard links per non-directory (ldiskfs EXT4_LINK_MAX) */
export const LINK_MAX = 65000;
export const XATTR_NAME_MAX = 255;
export const XATTR_SIZE_MAX = 65536;
/** the NUL-separated name list must fit listxattr's XATTR_LIST_MAX with room for lustre.lov */
export const XATTR_LIST_MAX = 65536 - 64;
/** total xattr value bytes per inode */
export const XATTR_TOTAL_MAX = 1 << 20;
export const READDIR_MAX = 10_000;
/** deepest directory walk when checking a rename target's ancestry */
export const MAX_DEPTH = 4096;
/** longest path fid2path returns, in bytes (Linux PATH_MAX, NUL included) */
export const PATH_MAX = 4096;

const S_ISGID = 0o2000;
const PERM_BITS = 0o7777;
const FILE_TYPES: readonly FileType[] = ['reg', 'dir', 'lnk', 'chr', 'blk', 'fifo', 'sock'];
const LOV_NAMES = new Set(['lustre.lov', 'trusted.lov']);
const WRITABLE_XATTR_NAMESPACES = ['user.', 'trusted.', 'security.'];
const READABLE_XATTR_NAMESPACES = [...WRITABLE_XATTR_NAMESPACES, 'system.', 'lustre.'];
const PAGE = 1000;

export interface NamespaceOptions {
  fsDefault: FsDefault;
}

export interface CreateSpec {
  fid: Fid;
  type: FileType;
  /** permission bits; type bits optional (must match `type` when present) */
  mode: number;
  uid: number;
  gid: number;
  rdev?: number;
  target?: string;
  layout?: Raid0Layout;
  dirDefault?: LayoutTemplate;
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

/** What the releasing client saw of the file (reference §7.2). */
export interface ReleaseSpec {
  dataVersion: string;
  size: number;
  atime: Timestamp;
  mtime: Timestamp;
  ctime: Timestamp;
}

/** What a copytool reported at the end of an archive. */
export interface ArchivedCopy {
  dataVersion: string;
  size: number;
  checksum: string;
}

/** Who asks for an HSM state change: root may change anything, others only HS_USER_MASK on their own files. */
export interface HsmCred {
  uid: number;
  gid: number;
}

export interface FsRecord {
  name: string;
  /** this MDT's target uuid */
  uuid: string;
  created: Timestamp;
  /** the filesystem's UUID, learnt from the MGS at first registration */
  fsUuid?: string;
}

interface StoredDentry {
  name: string;
  fid: Fid;
  type: FileType;
}

interface FoundDentry {
  key: string;
  pos: number;
  entry: StoredDentry;
}

interface XattrList {
  names: string[];
  bytes: number;
}

export class Namespace {
  private readonly fsDefault: FsDefault;
  /** open handles per inode, this process only: none survive a restart */
  private readonly opens = new Map<string, number>();
  /** of those, the handles opened for write (release refuses such files) */
  private readonly writers = new Map<string, number>();

  constructor(
    private readonly store: MetadataStore,
    opts: NamespaceOptions,
  ) {
    this.fsDefault = validateFsDefault(opts?.fsDefault);
  }

  async init(): Promise<void> {
    const t = now();
    let oldSchema: number | undefined;
    await this.store.transact(async (tx) => {
      const schema = await tx.get<{ version: number }>(K.schema);
      if (schema && !(schema.version <= SCHEMA_VERSION)) {
        throw err('EPROTO', `metadata schema version ${schema.version} is newer than this Stria supports (${SCHEMA_VERSION})`, 'SCHEMA_TOO_NEW');
      }
      oldSchema = schema && schema.version < SCHEMA_VERSION ? schema.version : undefined;
      if (!schema) tx.put(K.schema, { version: SCHEMA_VERSION });
      if (await tx.get(K.inode(ROOT_FID))) return;
      const root: Inode = {
        fid: { ...ROOT_FID },
        type: 'dir',
        mode: typeBits('dir') | 0o755,
        uid: 0,
        gid: 0,
        nlink: 2,
        size: 4096,
        rdev: 0,
        atime: t,
        mtime: t,
        ctime: t,
        btime: t,
        parent: { ...ROOT_FID },
      };
      tx.put(K.inode(ROOT_FID), root);
      await addToCounter(tx, K.inodeCount, 1);
    });
    if (oldSchema !== undefined) await this.upgradeSchema();
  }

  /** Version 1 stores kept no names per inode: rebuild them from the directory entries. */
  private async upgradeSchema(): Promise<void> {
    let after: string | undefined;
    for (;;) {
      const page = await this.store.scan<StoredDentry>('d:', after, PAGE);
      if (page.length === 0) break;
      after = page[page.length - 1]![0];
      // re-running a page adds nothing twice, so a crash here only means redoing the rebuild
      await this.store.transact(async (tx) => {
        for (const [key, e] of page) await addLink(tx, e.fid, fidFromKey(key.slice(2, key.lastIndexOf(':'))), e.name);
      });
      if (page.length < PAGE) break;
    }
    await this.store.transact(async (tx) => {
      tx.put(K.schema, { version: SCHEMA_VERSION });
    });
  }

  // --- reads ---

  async getattr(fid: Fid): Promise<Inode> {
    checkFid(fid);
    const ino = await this.store.get<Inode>(K.inode(fid));
    if (!ino) throw err('ENOENT', `no inode ${fidToString(fid)}`);
    return ino;
  }

  async lookup(parent: Fid, name: string): Promise<Inode> {
    checkFid(parent);
    const dir = await this.getattr(parent);
    if (dir.type !== 'dir') throw err('ENOTDIR', `${fidToString(parent)} is not a directory`);
    if (name === '.') return dir;
    if (dir.nlink === 0) throw err('ENOENT', `directory ${fidToString(parent)} has been removed`);
    if (name === '..') return this.getattr(dir.parent ?? ROOT_FID);
    checkName(name);
    const found = await findEntry(this.store, parent, name);
    if (!found) throw err('ENOENT', `no entry '${name}' in ${fidToString(parent)}`);
    return this.getattr(found.entry.fid);
  }

  async readdir(dir: Fid, cookie: number, limit: number): Promise<{ entries: DirEntry[]; eof: boolean }> {
    checkFid(dir);
    if (!Number.isSafeInteger(cookie) || cookie < 0 || cookie > MAX_COOKIE) throw err('EINVAL', `bad readdir cookie ${String(cookie)}`, 'BAD_COOKIE');
    if (!Number.isInteger(limit) || limit < 1) throw err('EINVAL', `readdir limit must be a positive integer`, 'BAD_LIMIT');
    const n = Math.min(limit, READDIR_MAX);
    const ino = await this.getattr(dir);
    if (ino.type !== 'dir') throw err('ENOTDIR', `${fidToString(dir)} is not a directory`);
    const after = cookie === 0 ? undefined : K.dentry(dir, cookie - 1);
    const rows = await this.store.scan<StoredDentry>(K.dirPrefix(dir), after, n + 1);
    const entries = rows.slice(0, n).map(([key, e]): DirEntry => ({
      name: e.name,
      fid: e.fid,
      type: e.type,
      cookie: cookieOfPos(posFromDentryKey(key)),
    }));
    return { entries, eof: rows.length <= n };
  }

  async effectiveLayoutTemplate(dir: Fid): Promise<EffectiveTemplate> {
    const ino = await this.getattr(dir);
    if (ino.type !== 'dir') throw err('ENOTDIR', `${fidToString(dir)} is not a directory`);
    const root = fidEquals(dir, ROOT_FID) ? ino : await this.getattr(ROOT_FID);
    return resolveTemplate(ino.dirDefault, root.dirDefault, this.fsDefault);
  }

  async counts(): Promise<{ inodes: number }> {
    return { inodes: (await this.store.get<number>(K.inodeCount)) ?? 0 };
  }

  /** The names of an inode as (parent FID, name), oldest first (Lustre's linkEA); the root has none. */
  async links(fid: Fid): Promise<{ links: LinkEntry[]; overflow: boolean }> {
    checkFid(fid);
    await this.getattr(fid);
    const rec = await readLinks(this.store, fid);
    return { links: rec.links.map((l) => ({ parent: { ...l.parent }, name: l.name })), overflow: rec.overflow === true };
  }

  /**
   * Lustre's fid2path: the path from the root of each name of an inode, without
   * a leading '/' ('' for the root itself). Starts at link `from`, and stops
   * before `maxBytes` of paths once it has one; `next` is where to go on.
   */
  async fid2path(fid: Fid, opts: { from?: number; maxBytes?: number } = {}): Promise<{ paths: string[]; next?: number }> {
    checkFid(fid);
    const from = opts?.from ?? 0;
    if (!Number.isSafeInteger(from) || from < 0) throw err('EINVAL', `bad link number ${String(from)}`, 'BAD_LINKNO');
    const maxBytes = opts?.maxBytes ?? Number.MAX_SAFE_INTEGER;
    const ino = await this.getattr(fid);
    if (fidEquals(fid, ROOT_FID)) return { paths: from === 0 ? [''] : [] };
    if (ino.nlink === 0) throw err('ENOENT', `${fidToString(fid)} has been unlinked`);
    const rec = await readLinks(this.store, fid);
    if (rec.links.length === 0) throw err('ENODATA', `the names of ${fidToString(fid)} are not recorded`, 'NO_LINKS');
    const dirPaths = new Map<string, string>();
    const paths: string[] = [];
    let bytes = 0;
    for (let i = from; i < rec.links.length; i++) {
      const l = rec.links[i]!;
      const dir = await this.dirPath(l.parent, dirPaths);
      const path = dir === '' ? l.name : `${dir}/${l.name}`;
      const size = Buffer.byteLength(path, 'utf8') + 1;
      if (size > PATH_MAX) throw err('EOVERFLOW', `a path of ${fidToString(fid)} is longer than ${PATH_MAX} bytes`, 'PATH_TOO_LONG');
      if (paths.length > 0 && bytes + size > maxBytes) return { paths, next: i };
      paths.push(path);
      bytes += size;
    }
    return { paths };
  }

  /** A directory's path from the root, by the names recorded for it and its ancestors. */
  private async dirPath(dir: Fid, cache: Map<string, string>): Promise<string> {
    const cached = cache.get(fidKey(dir));
    if (cached !== undefined) return cached;
    const names: string[] = [];
    let cur = dir;
    for (let depth = 0; !fidEquals(cur, ROOT_FID); depth++) {
      if (depth >= MAX_DEPTH) throw err('ELOOP', `directory tree deeper than ${MAX_DEPTH}`);
      const ino = await this.getattr(cur);
      if (ino.type !== 'dir') throw err('EIO', `parent ${fidToString(cur)} is not a directory`, 'BAD_LINK');
      const up = (await readLinks(this.store, cur)).links[0];
      if (!up) throw err('EIO', `directory ${fidToString(cur)} has no recorded name`, 'NO_LINKS');
      names.push(up.name);
      cur = up.parent;
    }
    const path = names.reverse().join('/');
    cache.set(fidKey(dir), path);
    return path;
  }

  // --- namespace changes ---

  async create(parent: Fid, name: string, spec: CreateSpec): Promise<Inode> {
    checkFid(parent);
    checkName(name);
    const s = checkCreateSpec(spec);
    const t = now();
    return this.store.transact(async (tx) => {
      const c = new InodeCache(tx);
      const dir = await c.dir(parent);
      const probe = await probeName(tx, parent, name);
      const existing = probe.found;
      if (existing) {
        // a resent create finds its own entry: answer as the first time
        if (fidEquals(existing.entry.fid, s.fid)) return c.must(s.fid);
        throw err('EEXIST', `'${name}' exists in ${fidToString(parent)}`);
      }
      if (await c.get(s.fid)) throw err('EEXIST', `FID ${fidToString(s.fid)} is already in use`, 'FID_IN_USE');
      let mode = typeBits(s.type) | s.perm;
      let gid = s.gid;
      if (dir.mode & S_ISGID) {
        gid = dir.gid;
        if (s.type === 'dir') mode |= S_ISGID;
      }
      const ino: Inode = {
        fid: s.fid,
        type: s.type,
        mode,
        uid: s.uid,
        gid,
        nlink: s.type === 'dir' ? 2 : 1,
        size: s.type === 'dir' ? 4096 : s.type === 'lnk' ? Buffer.byteLength(s.target!, 'utf8') : 0,
        rdev: s.rdev,
        atime: t,
        mtime: t,
        ctime: t,
        btime: t,
      };
      if (s.type === 'dir') {
        ino.parent = { ...parent };
        const tpl = templateForNewDir(fidEquals(parent, ROOT_FID), dir.dirDefault, s.dirDefault);
        if (tpl) ino.dirDefault = tpl;
        dir.nlink++;
      }
      if (s.type === 'lnk') ino.target = s.target!;
      if (s.layout) {
        ino.layout = s.layout;
        await noteObjectsUsed(tx, s.layout.objects);
      }
      dir.mtime = t;
      dir.ctime = t;
      c.put(ino);
      c.put(dir);
      putNewEntry(tx, probe, parent, { name, fid: s.fid, type: s.type });
      writeLinks(tx, s.fid, { links: [{ parent: { ...parent }, name }] });
      await addToCounter(tx, K.inodeCount, 1);
      c.flush();
      return ino;
    });
  }

  async link(fid: Fid, parent: Fid, name: string): Promise<Inode> {
    checkFid(fid);
    checkFid(parent);
    checkName(name);
    const t = now();
    return this.store.transact(async (tx) => {
      const c = new InodeCache(tx);
      const ino = await c.must(fid);
      if (ino.type === 'dir') throw err('EPERM', 'hard links to directories are not allowed');
      if (ino.nlink === 0) throw err('ENOENT', `${fidToString(fid)} has been unlinked`);
      if (ino.nlink >= LINK_MAX) throw err('EMLINK', `${fidToString(fid)} already has ${ino.nlink} links`);
      const dir = await c.dir(parent);
      const probe = await probeName(tx, parent, name);
      if (probe.found) throw err('EEXIST', `'${name}' exists in ${fidToString(parent)}`);
      putNewEntry(tx, probe, parent, { name, fid: ino.fid, type: ino.type });
      await addLink(tx, ino.fid, parent, name);
      ino.nlink++;
      ino.ctime = t;
      dir.mtime = t;
      dir.ctime = t;
      c.put(ino);
      c.put(dir);
      c.flush();
      return ino;
    });
  }

  async unlink(parent: Fid, name: string, opts: { dir: boolean }): Promise<{ inode: Inode; destroy: OstObject[] }> {
    checkFid(parent);
    const rmdir = opts?.dir === true;
    if (name === '.') throw rmdir ? err('EINVAL', "cannot remove '.'") : err('EISDIR', "'.' is a directory");
    if (name === '..') throw rmdir ? err('ENOTEMPTY', "cannot remove '..'") : err('EISDIR', "'..' is a directory");
    checkName(name);
    const t = now();
    return this.store.transact(async (tx) => {
      const c = new InodeCache(tx);
      const dir = await c.dir(parent, true);
      const found = await findEntry(tx, parent, name);
      if (!found) throw err('ENOENT', `no entry '${name}' in ${fidToString(parent)}`);
      const ino = await c.mustForEntry(found.entry);
      if (rmdir) {
        if (ino.type !== 'dir') throw err('ENOTDIR', `'${name}' is not a directory`);
        if (fidEquals(ino.fid, ROOT_FID)) throw err('EBUSY', 'cannot remove the root directory');
        if (!(await dirIsEmpty(tx, ino.fid))) throw err('ENOTEMPTY', `directory '${name}' is not empty`);
        dir.nlink--;
      } else if (ino.type === 'dir') {
        throw err('EISDIR', `'${name}' is a directory`);
      }
      tx.del(found.key);
      await removeLink(tx, ino.fid, parent, name);
      dir.mtime = t;
      dir.ctime = t;
      c.put(dir);
      const destroy = await this.dropLink(c, tx, ino, t);
      c.flush();
      return { inode: ino, destroy };
    });
  }

  async rename(
    srcParent: Fid,
    srcName: string,
    dstParent: Fid,
    dstName: string,
    flags: { noReplace?: boolean; exchange?: boolean } = {},
  ): Promise<{ replaced?: Inode; destroy: OstObject[]; moved?: Fid }> {
    checkFid(srcParent);
    checkFid(dstParent);
    for (const n of [srcName, dstName]) {
      if (n === '.' || n === '..') throw err('EBUSY', `cannot rename '${n}'`);
      checkName(n);
    }
    if (flags?.noReplace && flags?.exchange) throw err('EINVAL', 'RENAME_NOREPLACE and RENAME_EXCHANGE together');
    const t = now();
    return this.store.transact(async (tx) => {
      const c = new InodeCache(tx);
      const sdir = await c.dir(srcParent, true);
      const ddir = await c.dir(dstParent);
      const se = await findEntry(tx, srcParent, srcName);
      if (!se) throw err('ENOENT', `no entry '${srcName}' in ${fidToString(srcParent)}`);
      const de = await findEntry(tx, dstParent, dstName);
      const src = await c.mustForEntry(se.entry);
      const crossDir = !fidEquals(srcParent, dstParent);

      if (flags?.exchange) {
        if (!de) throw err('ENOENT', `no entry '${dstName}' in ${fidToString(dstParent)}`);
        if (fidEquals(se.entry.fid, de.entry.fid)) return { destroy: [] };
        const dst = await c.mustForEntry(de.entry);
        if (crossDir && src.type === 'dir') await assertNotAncestor(c, src.fid, dstParent);
        if (crossDir && dst.type === 'dir') await assertNotAncestor(c, dst.fid, srcParent);
        tx.put(se.key, { name: srcName, fid: dst.fid, type: dst.type } satisfies StoredDentry);
        tx.put(de.key, { name: dstName, fid: src.fid, type: src.type } satisfies StoredDentry);
        await moveLink(tx, src.fid, { parent: srcParent, name: srcName }, { parent: dstParent, name: dstName });
        await moveLink(tx, dst.fid, { parent: dstParent, name: dstName }, { parent: srcParent, name: srcName });
        if (crossDir) {
          if (src.type === 'dir') moveDir(src, sdir, ddir);
          if (dst.type === 'dir') moveDir(dst, ddir, sdir);
        }
        for (const i of [src, dst]) i.ctime = t;
        for (const d of [sdir, ddir]) {
          d.mtime = t;
          d.ctime = t;
        }
        for (const i of [src, dst, sdir, ddir]) c.put(i);
        c.flush();
        return { destroy: [] };
      }

      let dst: Inode | undefined;
      if (de) {
        if (flags?.noReplace) throw err('EEXIST', `'${dstName}' exists in ${fidToString(dstParent)}`);
        // two names of one inode: POSIX says do nothing
        if (fidEquals(de.entry.fid, se.entry.fid)) return { destroy: [] };
        dst = await c.mustForEntry(de.entry);
        if (src.type === 'dir' && dst.type !== 'dir') throw err('ENOTDIR', `'${dstName}' is not a directory`);
        if (src.type !== 'dir' && dst.type === 'dir') throw err('EISDIR', `'${dstName}' is a directory`);
      }
      if (src.type === 'dir' && crossDir) await assertNotAncestor(c, src.fid, dstParent);
      if (dst?.type === 'dir' && !(await dirIsEmpty(tx, dst.fid))) throw err('ENOTEMPTY', `directory '${dstName}' is not empty`);

      tx.del(se.key);
      const entry: StoredDentry = { name: dstName, fid: src.fid, type: src.type };
      if (de) tx.put(de.key, entry);
      else await addEntry(tx, dstParent, entry);
      await moveLink(tx, src.fid, { parent: srcParent, name: srcName }, { parent: dstParent, name: dstName });
      let destroy: OstObject[] = [];
      if (dst) {
        if (dst.type === 'dir') ddir.nlink--;
        await removeLink(tx, dst.fid, dstParent, dstName);
        destroy = await this.dropLink(c, tx, dst, t);
      }
      if (crossDir && src.type === 'dir') moveDir(src, sdir, ddir);
      src.ctime = t;
      for (const d of [sdir, ddir]) {
        d.mtime = t;
        d.ctime = t;
      }
      for (const i of [src, sdir, ddir]) c.put(i);
      c.flush();
      return dst ? { replaced: dst, destroy, moved: src.fid } : { destroy, moved: src.fid };
    });
  }

  // --- attributes and layouts ---

  async setattr(fid: Fid, attrs: SetattrSpec): Promise<Inode> {
    return (await this.setattrHsm(fid, attrs)).inode;
  }

  /**
   * setattr that also says whether it made the file HSM-dirty: a truncate of a file with
   * an archive copy does. A released file's size cannot change here: its data is only in
   * the archive, so the client restores it first (ENODATA, as Lustre's released-layout
   * I/O answers when a truncate needs a restore).
   */
  async setattrHsm(fid: Fid, attrs: SetattrSpec): Promise<{ inode: Inode; dirtied: boolean }> {
    checkFid(fid);
    const a = checkSetattr(attrs);
    const t = now();
    return this.store.transact(async (tx) => {
      const c = new InodeCache(tx);
      const ino = await c.must(fid);
      let dirtied = false;
      let changed = false;
      if (a.mode !== undefined) {
        ino.mode = (ino.mode & S_IFMT) | (a.mode & PERM_BITS);
        changed = true;
      }
      if (a.uid !== undefined) {
        ino.uid = a.uid;
        changed = true;
      }
      if (a.gid !== undefined) {
        ino.gid = a.gid;
        changed = true;
      }
      if (a.size !== undefined) {
        if (ino.type === 'dir') throw err('EISDIR', 'cannot set the size of a directory');
        if (ino.type !== 'reg') throw err('EINVAL', `cannot set the size of a ${ino.type}`);
        if (hsmFlagsOf(ino) & HS.RELEASED) throw err('ENODATA', `${fidToString(fid)} is released: restore it before truncating`, 'RELEASED');
        dirtied = markDirty(ino);
        ino.size = a.size;
        changed = true;
      }
      if (a.atime) {
        ino.atime = a.atime;
        changed = true;
      }
      if (a.mtime) {
        ino.mtime = a.mtime;
        changed = true;
      }
      if (a.ctime) ino.ctime = a.ctime;
      else if (changed) ino.ctime = t;
      if (changed || a.ctime) {
        c.put(ino);
        c.flush();
      }
      return { inode: ino, dirtied };
    });
  }

  async setLayout(fid: Fid, layout: Raid0Layout): Promise<Inode> {
    checkFid(fid);
    const l = validateLayout(layout);
    const t = now();
    return this.store.transact(async (tx) => {
      const c = new InodeCache(tx);
      const ino = await c.must(fid);
      if (ino.type === 'dir') throw err('EISDIR', 'directories take a default layout, not a layout');
      if (ino.type !== 'reg') throw err('EINVAL', `a ${ino.type} has no layout`);
      ino.layout = l;
      ino.ctime = t;
      await noteObjectsUsed(tx, l.objects);
      c.put(ino);
      c.flush();
      return ino;
    });
  }

  async setDirDefault(dir: Fid, tpl: LayoutTemplate | undefined): Promise<Inode> {
    checkFid(dir);
    const clean = tpl === undefined ? undefined : normalizeTemplate(tpl);
    const t = now();
    return this.store.transact(async (tx) => {
      const c = new InodeCache(tx);
      const ino = await c.must(dir);
      if (ino.type !== 'dir') throw err('ENOTDIR', `${fidToString(dir)} is not a directory`);
      applyDirDefault(ino, clean);
      ino.ctime = t;
      c.put(ino);
      c.flush();
      return ino;
    });
  }

  // --- extended attributes ---

  async getxattr(fid: Fid, name: string): Promise<Buffer> {
    checkFid(fid);
    checkXattrName(name);
    const ino = await this.getattr(fid);
    if (LOV_NAMES.has(name)) {
      const lov = lovOf(ino);
      if (!lov) throw err('ENODATA', `${fidToString(fid)} has no ${name}`);
      return lov;
    }
    if (!isReadableXattr(name)) throw err('EOPNOTSUPP', `xattr namespace of '${name}' is not supported`);
    const v = await this.store.get<Uint8Array>(K.xattr(fid, name));
    if (v === undefined) throw err('ENODATA', `no xattr '${name}' on ${fidToString(fid)}`);
    return Buffer.from(v);
  }

  async listxattr(fid: Fid): Promise<string[]> {
    checkFid(fid);
    const ino = await this.getattr(fid);
    const list = await this.store.get<XattrList>(K.xattrList(fid));
    const names = lovOf(ino) ? ['lustre.lov'] : [];
    return names.concat(list?.names ?? []);
  }

  async setxattr(fid: Fid, name: string, value: Buffer, flags: { create?: boolean; replace?: boolean }): Promise<void> {
    checkFid(fid);
    checkXattrName(name);
    if (!(value instanceof Uint8Array)) throw err('EINVAL', 'xattr value must be bytes');
    if (value.length > XATTR_SIZE_MAX) throw err('E2BIG', `xattr value of ${value.length} bytes exceeds ${XATTR_SIZE_MAX}`);
    if (flags?.create && flags?.replace) throw err('EINVAL', 'XATTR_CREATE and XATTR_REPLACE together');
    const bytes = Buffer.from(value);
    const t = now();
    if (LOV_NAMES.has(name)) return this.setLovXattr(fid, name, bytes, flags ?? {}, t);
    if (!WRITABLE_XATTR_NAMESPACES.some((p) => name.startsWith(p))) {
      throw err('EOPNOTSUPP', `xattr namespace of '${name}' is not supported (user., trusted., security.)`);
    }
    await this.store.transact(async (tx) => {
      const c = new InodeCache(tx);
      const ino = await c.must(fid);
      if (name.startsWith('user.') && ino.type !== 'reg' && ino.type !== 'dir') {
        throw err('EPERM', `user xattrs are not permitted on a ${ino.type}`);
      }
      const key = K.xattr(fid, name);
      const old = await tx.get<Uint8Array>(key);
      if (old !== undefined && flags?.create) throw err('EEXIST', `xattr '${name}' exists`);
      if (old === undefined && flags?.replace) throw err('ENODATA', `no xattr '${name}' to replace`);
      const list = (await tx.get<XattrList>(K.xattrList(fid))) ?? { names: [], bytes: 0 };
      if (old === undefined) list.names.push(name);
      list.bytes += bytes.length - (old?.length ?? 0);
      if (listBytes(list.names) > XATTR_LIST_MAX) throw err('ENOSPC', `too many xattr names on ${fidToString(fid)}`);
      if (list.bytes > XATTR_TOTAL_MAX) throw err('ENOSPC', `xattr space of ${fidToString(fid)} is full`);
      tx.put(key, bytes);
      tx.put(K.xattrList(fid), list);
      ino.ctime = t;
      c.put(ino);
      c.flush();
    });
  }

  async removexattr(fid: Fid, name: string): Promise<void> {
    checkFid(fid);
    checkXattrName(name);
    const t = now();
    await this.store.transact(async (tx) => {
      const c = new InodeCache(tx);
      const ino = await c.must(fid);
      if (LOV_NAMES.has(name)) {
        if (ino.type === 'dir' && ino.dirDefault) {
          delete ino.dirDefault;
        } else if (ino.type === 'reg' && ino.layout) {
          throw err('EPERM', 'the layout of a file cannot be removed');
        } else {
          throw err('ENODATA', `${fidToString(fid)} has no ${name}`);
        }
      } else {
        if (!WRITABLE_XATTR_NAMESPACES.some((p) => name.startsWith(p))) throw err('EOPNOTSUPP', `xattr namespace of '${name}' is not supported`);
        const key = K.xattr(fid, name);
        const old = await tx.get<Uint8Array>(key);
        if (old === undefined) throw err('ENODATA', `no xattr '${name}' on ${fidToString(fid)}`);
        const list = (await tx.get<XattrList>(K.xattrList(fid))) ?? { names: [name], bytes: old.length };
        list.names = list.names.filter((n) => n !== name);
        list.bytes = Math.max(0, list.bytes - old.length);
        tx.del(key);
        if (list.names.length === 0) tx.del(K.xattrList(fid));
        else tx.put(K.xattrList(fid), list);
      }
      ino.ctime = t;
      c.put(ino);
      c.flush();
    });
  }

  private async setLovXattr(fid: Fid, name: string, value: Buffer, flags: { create?: boolean; replace?: boolean }, t: Timestamp): Promise<void> {
    const { template } = decodeLovUser(value);
    await this.store.transact(async (tx) => {
      const c = new InodeCache(tx);
      const ino = await c.must(fid);
      if (ino.type === 'reg') {
        // Lustre ignores a layout set on a file that has one, so tar/rsync can restore xattrs
        if (ino.layout) return;
        throw err('EOPNOTSUPP', `${name} on a file without objects: instantiate its layout through the MDS allocator`);
      }
      if (ino.type !== 'dir') throw err('EINVAL', `a ${ino.type} takes no ${name}`);
      if (flags.create && ino.dirDefault) throw err('EEXIST', `${fidToString(fid)} already has a default layout`);
      if (flags.replace && !ino.dirDefault) throw err('ENODATA', `${fidToString(fid)} has no default layout`);
      // an all-default template is how `lfs setstripe -d` asks for removal
      applyDirDefault(ino, isEmptyTemplate(template) ? undefined : template);
      ino.ctime = t;
      c.put(ino);
      c.flush();
    });
  }

  // --- open files and orphans ---

  async open(fid: Fid, opts: { write?: boolean } = {}): Promise<Inode> {
    return (await this.openHsm(fid, opts)).inode;
  }

  /**
   * Opens a file; an open for write of a file with an archive copy makes it HSM-dirty
   * (`dirtied`), in the same transaction, so no archive can complete in between unseen.
   */
  async openHsm(fid: Fid, opts: { write?: boolean } = {}): Promise<{ inode: Inode; dirtied: boolean }> {
    checkFid(fid);
    const write = opts?.write === true;
    // count first: an unlink that runs meanwhile then sees the file open and keeps it
    const k = fidKey(fid);
    this.opens.set(k, (this.opens.get(k) ?? 0) + 1);
    if (write) this.writers.set(k, (this.writers.get(k) ?? 0) + 1);
    try {
      // through a transaction: an unlink deciding right now must be seen, not the older durable state
      // An open for write alone changes no data (touch opens O_WRONLY): the close that
      // follows writes says whether the archive copy went stale (Lustre's MDS_DATA_MODIFIED).
      const ino = await this.store.transact((tx) => tx.get<Inode>(K.inode(fid)));
      if (!ino) throw err('ENOENT', `no inode ${fidToString(fid)}`);
      return { inode: ino, dirtied: false };
    } catch (e) {
      this.decOpen(k);
      if (write) decCount(this.writers, k);
      throw e;
    }
  }

  /** Whether some handle of this MDT has the file open for write right now. */
  isOpenForWrite(fid: Fid): boolean {
    return (this.writers.get(fidKey(fid)) ?? 0) > 0;
  }

  async close(fid: Fid, opts: { write?: boolean } = {}): Promise<{ destroy: OstObject[] }> {
    checkFid(fid);
    const k = fidKey(fid);
    if (!this.opens.get(k)) throw err('EBADF', `${fidToString(fid)} is not open`);
    this.decOpen(k);
    if (opts?.write === true) decCount(this.writers, k);
    if (this.isOpen(fid)) return { destroy: [] };
    // in a transaction: the unlink that made it an orphan may not be durable yet
    const destroy = await this.store.transact(async (tx) => (this.isOpen(fid) ? [] : this.reapOrphan(tx, fid)));
    return { destroy };
  }

  async cleanupOrphans(): Promise<OstObject[]> {
    const destroy: OstObject[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await this.store.scan<{ fid: Fid }>(K.orphanPrefix, after, PAGE);
      if (page.length === 0) break;
      after = page[page.length - 1]![0];
      const fids = page.map(([, o]) => o.fid).filter((f) => isValidFid(f) && !this.isOpen(f));
      const objs = await this.store.transact(async (tx) => {
        const out: OstObject[] = [];
        for (const f of fids) if (!this.isOpen(f)) out.push(...(await this.reapOrphan(tx, f)));
        return out;
      });
      destroy.push(...objs);
    }
    return destroy;
  }

  // --- HSM state (reference §7) ---

  /** The file's HSM attributes; no flags and archive 0 when it never had any. */
  async hsmState(fid: Fid): Promise<HsmAttrs> {
    return { ...emptyHsm(), ...(await this.getattr(fid)).hsm };
  }

  /**
   * lfs hsm_set / hsm_clear: sets then clears bits, and sets the archive id when given.
   * With `cred` of a user other than root, only HS_USER_MASK bits of the user's own files
   * may change (EPERM). RELEASED only moves through release and restore (EINVAL), and the
   * result must be a consistent state (DIRTY needs EXISTS, as Lustre checks).
   */
  async hsmSetState(fid: Fid, set: number, clear: number, archiveId?: number, cred?: HsmCred): Promise<Inode> {
    checkFid(fid);
    if (!isU32(set) || !isU32(clear) || ((set | clear) & ~HS_ALL) !== 0) throw err('EINVAL', 'unknown HSM flags', 'BAD_HSM_FLAGS');
    if (((set | clear) & HS.RELEASED) !== 0) throw err('EINVAL', 'RELEASED is set by hsm_release and cleared by restore only', 'BAD_HSM_FLAGS');
    if (archiveId !== undefined && !isU32(archiveId)) throw err('EINVAL', `bad archive id ${String(archiveId)}`, 'BAD_ARCHIVE_ID');
    const root = cred === undefined || cred.uid === 0;
    if (!root && ((set | clear) & ~HS_USER_MASK) !== 0) throw err('EPERM', 'only root may change HSM flags other than norelease, noarchive and dirty');
    if (!root && archiveId !== undefined) throw err('EPERM', 'only root may change the archive id of a file');
    return this.store.transact(async (tx) => {
      const c = new InodeCache(tx);
      const ino = await c.must(fid);
      if (ino.type !== 'reg') throw err('EINVAL', `a ${ino.type} has no HSM state`, 'NOT_REGULAR');
      if (!root && ino.uid !== cred!.uid) throw err('EPERM', `only the owner or root may change the HSM flags of ${fidToString(fid)}`);
      const h: HsmAttrs = { ...emptyHsm(), ...ino.hsm };
      h.flags = (h.flags | set) & ~clear;
      if (archiveId !== undefined) h.archiveId = archiveId;
      checkHsmConsistent(h.flags);
      ino.hsm = h;
      c.put(ino);
      c.flush();
      return ino;
    });
  }

  /**
   * A times-only change of the objects moved the data version from `from` to `to` without
   * touching the data: an archived, clean copy recorded at `from` is still current.
   * Answers whether the recorded version moved.
   */
  async hsmRebaseVersion(fid: Fid, from: string, to: string): Promise<boolean> {
    checkFid(fid);
    return this.store.transact(async (tx) => {
      const c = new InodeCache(tx);
      const ino = await c.get(fid);
      const h = ino?.hsm;
      if (!ino || !h || h.archVer !== from) return false;
      if ((h.flags & (HS.EXISTS | HS.ARCHIVED | HS.DIRTY | HS.RELEASED)) !== (HS.EXISTS | HS.ARCHIVED)) return false;
      ino.hsm = { ...h, archVer: to };
      c.put(ino);
      c.flush();
      return true;
    });
  }

  /** Sets DIRTY when the file has an archive copy (and is not released); answers whether it did. */
  async hsmMarkDirty(fid: Fid): Promise<boolean> {
    checkFid(fid);
    return this.store.transact(async (tx) => {
      const c = new InodeCache(tx);
      const ino = await c.get(fid);
      if (!ino || ino.type !== 'reg' || !markDirty(ino)) return false;
      c.put(ino);
      c.flush();
      return true;
    });
  }

  /**
   * Synchronous release: checks that the archive copy is current and complete, installs
   * the released stub layout, keeps the size and times the client saw, and answers the
   * objects to destroy. Already released: nothing to do. Refused with EPERM for a state
   * that forbids it (Lustre's mdt_hsm_release) and EBUSY while open for write.
   * `released` says whether this call released it.
   */
  async hsmRelease(fid: Fid, spec: ReleaseSpec): Promise<{ inode: Inode; destroy: OstObject[]; released: boolean }> {
    checkFid(fid);
    const r = checkReleaseSpec(spec);
    return this.store.transact(async (tx) => {
      const c = new InodeCache(tx);
      const ino = await c.must(fid);
      if (ino.type !== 'reg') throw err('EINVAL', `a ${ino.type} cannot be released`, 'NOT_REGULAR');
      const h: HsmAttrs = { ...emptyHsm(), ...ino.hsm };
      if (h.flags & HS.RELEASED) return { inode: ino, destroy: [], released: false };
      if (this.isOpenForWrite(fid)) throw err('EBUSY', `${fidToString(fid)} is open for write`, 'OPEN_FOR_WRITE');
      const need = HS.EXISTS | HS.ARCHIVED;
      if ((h.flags & need) !== need) throw err('EPERM', `${fidToString(fid)} has no current archive copy`, 'NOT_ARCHIVED');
      if (h.flags & HS.DIRTY) throw err('EPERM', `${fidToString(fid)} changed since it was archived`, 'DIRTY');
      if (h.flags & HS.NORELEASE) throw err('EPERM', `${fidToString(fid)} is marked never_release`, 'NORELEASE');
      if (h.flags & HS.LOST) throw err('EPERM', `the archive copy of ${fidToString(fid)} is lost`, 'LOST');
      if (h.archVer !== r.dataVersion) throw err('EPERM', `the data of ${fidToString(fid)} is not the archived version`, 'DATA_VERSION');
      if (h.archSize !== undefined && h.archSize !== r.size) {
        throw err('EPERM', `${fidToString(fid)} is ${r.size} bytes, its archive copy ${h.archSize}`, 'ARCHIVE_SIZE');
      }
      const old = ino.layout;
      if (!old) throw err('EINVAL', `${fidToString(fid)} has no layout to release`, 'NO_LAYOUT');
      const stub: Raid0Layout = {
        pattern: 'released',
        stripeSize: old.stripeSize,
        stripeCount: old.stripeCount,
        stripeOffset: old.stripeOffset,
        layoutGen: old.layoutGen + 1,
        objects: [],
      };
      if (old.pool !== undefined) stub.pool = old.pool;
      ino.layout = stub;
      ino.size = r.size;
      ino.atime = r.atime;
      ino.mtime = r.mtime;
      ino.ctime = r.ctime;
      ino.hsm = { ...h, flags: h.flags | HS.RELEASED };
      c.put(ino);
      c.flush();
      return { inode: ino, destroy: old.pattern === 'raid0' ? old.objects.map((o) => ({ ...o })) : [], released: true };
    });
  }

  /**
   * An archive finished: the copy exists and is current (DIRTY cleared), unless the file is
   * still open for write, which may change it again any moment (then DIRTY stays set).
   */
  async hsmCompleteArchive(fid: Fid, archiveId: number, copy: ArchivedCopy, stillOpenForWrite: boolean): Promise<Inode> {
    checkFid(fid);
    if (!isU32(archiveId) || archiveId === 0) throw err('EINVAL', `bad archive id ${String(archiveId)}`, 'BAD_ARCHIVE_ID');
    const a = checkArchivedCopy(copy);
    return this.store.transact(async (tx) => {
      const c = new InodeCache(tx);
      const ino = await c.must(fid);
      if (ino.type !== 'reg') throw err('EINVAL', `a ${ino.type} cannot be archived`, 'NOT_REGULAR');
      const old: HsmAttrs = { ...emptyHsm(), ...ino.hsm };
      if (old.flags & HS.RELEASED) throw err('EINVAL', `${fidToString(fid)} is released: its data is only in the archive`, 'RELEASED');
      let flags = (old.flags | HS.EXISTS | HS.ARCHIVED) & ~(HS.DIRTY | HS.LOST);
      if (stillOpenForWrite || this.isOpenForWrite(fid)) flags |= HS.DIRTY;
      ino.hsm = { flags, archiveId, archVer: a.dataVersion, archSize: a.size, archChecksum: a.checksum };
      c.put(ino);
      c.flush();
      return ino;
    });
  }

  /**
   * A restore finished: `layout` (fresh objects holding the archived data) replaces the
   * released stub, one generation later. The size and times stay. `dataVersion`, when
   * known, is the restored objects' data version: the archive copy is current for it, so
   * the file can be released again without a new archive. Completing the same restore
   * twice (a replay) is a no-op.
   */
  async hsmCompleteRestore(fid: Fid, layout: Raid0Layout, dataVersion?: string): Promise<Inode> {
    checkFid(fid);
    const l = validateLayout(layout);
    if (l.pattern !== 'raid0') throw err('EINVAL', 'a restore installs a raid0 layout', 'BAD_LAYOUT');
    if (dataVersion !== undefined && (typeof dataVersion !== 'string' || dataVersion.length === 0)) throw err('EINVAL', 'bad data version', 'BAD_DATA_VERSION');
    return this.store.transact(async (tx) => {
      const c = new InodeCache(tx);
      const ino = await c.must(fid);
      const h: HsmAttrs = { ...emptyHsm(), ...ino.hsm };
      if (!(h.flags & HS.RELEASED)) {
        if (ino.layout && sameObjects(ino.layout.objects, l.objects)) return ino;
        throw err('EINVAL', `${fidToString(fid)} is not released`, 'NOT_RELEASED');
      }
      ino.layout = { ...l, layoutGen: (ino.layout?.layoutGen ?? 0) + 1 };
      h.flags &= ~HS.RELEASED;
      if (dataVersion !== undefined) h.archVer = dataVersion;
      ino.hsm = h;
      await noteObjectsUsed(tx, l.objects);
      c.put(ino);
      c.flush();
      return ino;
    });
  }

  /**
   * PCC (reference §6): the client whose read-write cache holds a released file's data
   * reports the size and mtime it has there at close (Lustre's lazy size on MDT), so other
   * clients see them before they restore it. Only for a released file; the mtime never
   * goes back.
   */
  async hsmPccSize(fid: Fid, size: number, mtime: Timestamp): Promise<Inode> {
    checkFid(fid);
    if (!Number.isSafeInteger(size) || size < 0) throw err('EINVAL', `bad size ${String(size)}`, 'BAD_SIZE');
    return this.store.transact(async (tx) => {
      const c = new InodeCache(tx);
      const ino = await c.must(fid);
      if (ino.type !== 'reg' || !(hsmFlagsOf(ino) & HS.RELEASED)) throw err('EINVAL', `${fidToString(fid)} is not released`, 'NOT_RELEASED');
      ino.size = size;
      if (compareTime(mtime, ino.mtime) > 0) ino.mtime = mtime;
      ino.ctime = now();
      c.put(ino);
      c.flush();
      return ino;
    });
  }

  /**
   * The archive copy was removed: the file no longer has one. A FID whose inode is gone
   * (the policy engine removing copies of deleted files) has nothing to update: undefined.
   */
  async hsmCompleteRemove(fid: Fid): Promise<Inode | undefined> {
    checkFid(fid);
    return this.store.transact(async (tx) => {
      const c = new InodeCache(tx);
      const ino = await c.get(fid);
      if (!ino) return undefined;
      const h: HsmAttrs = { ...emptyHsm(), ...ino.hsm };
      if (h.flags & HS.RELEASED) throw err('EBUSY', `${fidToString(fid)} is released: the archive holds its only copy`, 'RELEASED');
      h.flags &= ~(HS.EXISTS | HS.ARCHIVED | HS.DIRTY);
      delete h.archVer;
      delete h.archSize;
      delete h.archChecksum;
      ino.hsm = h;
      c.put(ino);
      c.flush();
      return ino;
    });
  }

  // --- counters and records ---

  async allocSequence(): Promise<number> {
    return this.store.transact(async (tx) => {
      const last = (await tx.get<number>(K.lastSeq)) ?? FID_SEQ_NORMAL - 1;
      const next = Math.max(last + 1, FID_SEQ_NORMAL);
      tx.put(K.lastSeq, next);
      return next;
    });
  }

  async recordObjectsUsed(ostIdx: number, seq: number, lastOid: number): Promise<void> {
    if (!Number.isInteger(ostIdx) || ostIdx < 0 || ostIdx > 0xffff) throw err('EINVAL', `bad OST index ${String(ostIdx)}`);
    if (!isValidFid({ seq, oid: lastOid, ver: 0 })) throw err('EINVAL', `bad object id ${String(seq)}:${String(lastOid)}`);
    await this.store.transact((tx) => noteObjectsUsed(tx, [{ ostIdx, seq, oid: lastOid }]));
  }

  async lastObjectsUsed(): Promise<Map<number, { seq: number; oid: number }>> {
    const out = new Map<number, { seq: number; oid: number }>();
    let after: string | undefined;
    for (;;) {
      const page = await this.store.scan<{ seq: number; oid: number }>(K.ostLastUsedPrefix, after, PAGE);
      for (const [key, v] of page) out.set(parseInt(key.slice(K.ostLastUsedPrefix.length), 16), { seq: v.seq, oid: v.oid });
      if (page.length < PAGE) break;
      after = page[page.length - 1]![0];
    }
    return out;
  }

  async fsRecord(): Promise<FsRecord | undefined> {
    return this.store.get<FsRecord>(K.fs);
  }

  async setFsRecord(r: { name: string; uuid: string; fsUuid?: string }): Promise<void> {
    if (!r || typeof r.name !== 'string' || !/^[A-Za-z0-9_-]{1,8}$/.test(r.name)) {
      throw err('EINVAL', `filesystem name must be 1-8 characters of [A-Za-z0-9_-]`, 'BAD_FSNAME');
    }
    if (typeof r.uuid !== 'string' || !/^[\x21-\x7e]{1,64}$/.test(r.uuid)) throw err('EINVAL', 'filesystem uuid must be 1-64 printable characters', 'BAD_UUID');
    const t = now();
    await this.store.transact(async (tx) => {
      const old = await tx.get<FsRecord>(K.fs);
      const fsUuid = r.fsUuid ?? old?.fsUuid;
      tx.put(K.fs, { name: r.name, uuid: r.uuid, created: old?.created ?? t, ...(fsUuid ? { fsUuid } : {}) } satisfies FsRecord);
    });
  }

  // --- internals ---

  private isOpen(fid: Fid): boolean {
    return (this.opens.get(fidKey(fid)) ?? 0) > 0;
  }

  private decOpen(k: string): void {
    decCount(this.opens, k);
  }

  /** One name of `ino` is gone: drop the link and, at zero, orphan or delete it. */
  private async dropLink(c: InodeCache, tx: StoreTxn, ino: Inode, t: Timestamp): Promise<OstObject[]> {
    ino.nlink = ino.type === 'dir' ? 0 : Math.max(0, ino.nlink - 1);
    ino.ctime = t;
    if (ino.nlink > 0) {
      c.put(ino);
      return [];
    }
    if (this.isOpen(ino.fid)) {
      c.put(ino);
      tx.put(K.orphan(ino.fid), { fid: ino.fid, since: t });
      return [];
    }
    return destroyInode(c, tx, ino);
  }

  private async reapOrphan(tx: StoreTxn, fid: Fid): Promise<OstObject[]> {
    if (!(await tx.get(K.orphan(fid)))) return [];
    const c = new InodeCache(tx);
    const ino = await c.get(fid);
    if (!ino || ino.nlink > 0) {
      tx.del(K.orphan(fid));
      return [];
    }
    const objs = await destroyInode(c, tx, ino);
    c.flush();
    return objs;
  }
}

// --- transaction helpers ---

/** Inodes read in one transaction, so each is loaded once and written once. */
class InodeCache {
  private readonly loaded = new Map<string, Inode | null>();
  private readonly dirty = new Map<string, Inode | null>();

  constructor(private readonly tx: StoreTxn) {}

  async get(fid: Fid): Promise<Inode | undefined> {
    const k = fidKey(fid);
    if (!this.loaded.has(k)) this.loaded.set(k, (await this.tx.get<Inode>(K.inode(fid))) ?? null);
    return this.loaded.get(k) ?? undefined;
  }

  async must(fid: Fid): Promise<Inode> {
    const ino = await this.get(fid);
    if (!ino) throw err('ENOENT', `no inode ${fidToString(fid)}`);
    return ino;
  }

  /** The inode an entry names; a missing one means a damaged store. */
  async mustForEntry(e: StoredDentry): Promise<Inode> {
    const ino = await this.get(e.fid);
    if (!ino) throw err('EIO', `entry '${e.name}' points to missing inode ${fidToString(e.fid)}`, 'DANGLING_ENTRY');
    return ino;
  }

  /** A live directory; a removed one that is still open takes no changes. */
  async dir(fid: Fid, allowRemoved = false): Promise<Inode> {
    const ino = await this.must(fid);
    if (ino.type !== 'dir') throw err('ENOTDIR', `${fidToString(fid)} is not a directory`);
    if (ino.nlink === 0 && !allowRemoved) throw err('ENOENT', `directory ${fidToString(fid)} has been removed`);
    return ino;
  }

  put(ino: Inode): void {
    const k = fidKey(ino.fid);
    this.loaded.set(k, ino);
    this.dirty.set(k, ino);
  }

  remove(fid: Fid): void {
    const k = fidKey(fid);
    this.loaded.set(k, null);
    this.dirty.set(k, null);
  }

  flush(): void {
    for (const [k, ino] of this.dirty) {
      const key = `i:${k}`;
      if (ino) this.tx.put(key, ino);
      else this.tx.del(key);
    }
    this.dirty.clear();
  }
}

type Reader = Pick<StoreTxn, 'scan'>;

interface NameProbe {
  found?: FoundDentry;
  /** key of the lowest free slot for the name's hash, if any is free */
  freeKey?: string;
}

/** One scan of the name's hash slots answers both "is it there" and "where would it go". */
async function probeName(r: Reader, dir: Fid, name: string): Promise<NameProbe> {
  const hash = nameHash(name);
  const rows = await r.scan<StoredDentry>(K.dentryHashPrefix(dir, hash), undefined, DENTRY_SLOTS);
  const out: NameProbe = {};
  const used = new Set<number>();
  for (const [key, entry] of rows) {
    const pos = posFromDentryKey(key);
    used.add(slotOfPos(pos));
    if (entry.name === name) out.found = { key, pos, entry };
  }
  for (let slot = 0; slot < DENTRY_SLOTS; slot++) {
    if (!used.has(slot)) {
      out.freeKey = K.dentry(dir, dentryPos(hash, slot));
      break;
    }
  }
  return out;
}

async function findEntry(r: Reader, dir: Fid, name: string): Promise<FoundDentry | undefined> {
  return (await probeName(r, dir, name)).found;
}

function putNewEntry(tx: StoreTxn, probe: NameProbe, dir: Fid, entry: StoredDentry): void {
  if (!probe.freeKey) throw err('ENOSPC', `too many names in ${fidToString(dir)} share the hash of '${entry.name}'`, 'DIR_HASH_FULL');
  tx.put(probe.freeKey, entry);
}

async function addEntry(tx: StoreTxn, dir: Fid, entry: StoredDentry): Promise<void> {
  putNewEntry(tx, await probeName(tx, dir, entry.name), dir, entry);
}

async function dirIsEmpty(r: Reader, dir: Fid): Promise<boolean> {
  return (await r.scan(K.dirPrefix(dir), undefined, 1)).length === 0;
}

function moveDir(child: Inode, from: Inode, to: Inode): void {
  child.parent = { ...to.fid };
  from.nlink--;
  to.nlink++;
}

/** Refuses to move directory `moving` under `target` if `target` lies inside it. */
async function assertNotAncestor(c: InodeCache, moving: Fid, target: Fid): Promise<void> {
  let cur = target;
  for (let depth = 0; depth < MAX_DEPTH; depth++) {
    if (fidEquals(cur, moving)) throw err('EINVAL', 'cannot move a directory into its own subtree');
    if (fidEquals(cur, ROOT_FID)) return;
    const ino = await c.must(cur);
    if (!ino.parent) throw err('EIO', `directory ${fidToString(cur)} has no parent`, 'NO_PARENT');
    cur = ino.parent;
  }
  throw err('ELOOP', `directory tree deeper than ${MAX_DEPTH}`);
}

async function destroyInode(c: InodeCache, tx: StoreTxn, ino: Inode): Promise<OstObject[]> {
  const list = await tx.get<XattrList>(K.xattrList(ino.fid));
  for (const name of list?.names ?? []) tx.del(K.xattr(ino.fid, name));
  tx.del(K.xattrList(ino.fid));
  tx.del(K.orphan(ino.fid));
  tx.del(K.links(ino.fid));
  c.remove(ino.fid);
  await addToCounter(tx, K.inodeCount, -1);
  return ino.layout && ino.layout.pattern === 'raid0' ? ino.layout.objects.map((o) => ({ ...o })) : [];
}

// --- the names of an inode (linkEA), kept in the transactions that change them ---

async function readLinks(r: Pick<StoreTxn, 'get'>, fid: Fid): Promise<LinkRecord> {
  return (await r.get<LinkRecord>(K.links(fid))) ?? { links: [] };
}

function writeLinks(tx: StoreTxn, fid: Fid, rec: LinkRecord): void {
  if (rec.links.length === 0 && !rec.overflow) tx.del(K.links(fid));
  else tx.put(K.links(fid), rec.overflow ? { links: rec.links, overflow: true } : { links: rec.links });
}

function isLink(l: LinkEntry, parent: Fid, name: string): boolean {
  return l.name === name && fidEquals(l.parent, parent);
}

/** Appends a name; past LINKEA_MAX_LINKS the oldest go, as Lustre shrinks a full linkEA. */
function appendLink(rec: LinkRecord, parent: Fid, name: string): void {
  if (rec.links.some((l) => isLink(l, parent, name))) return;
  rec.links.push({ parent: { seq: parent.seq, oid: parent.oid, ver: parent.ver }, name });
  if (rec.links.length > LINKEA_MAX_LINKS) {
    rec.links.splice(0, rec.links.length - LINKEA_MAX_LINKS);
    rec.overflow = true;
  }
}

async function addLink(tx: StoreTxn, fid: Fid, parent: Fid, name: string): Promise<void> {
  const rec = await readLinks(tx, fid);
  appendLink(rec, parent, name);
  writeLinks(tx, fid, rec);
}

async function removeLink(tx: StoreTxn, fid: Fid, parent: Fid, name: string): Promise<void> {
  const rec = await readLinks(tx, fid);
  const i = rec.links.findIndex((l) => isLink(l, parent, name));
  if (i < 0) return;
  rec.links.splice(i, 1);
  writeLinks(tx, fid, rec);
}

/** A rename: the old name goes, the new one is the newest (a name lost to overflow is simply added). */
async function moveLink(tx: StoreTxn, fid: Fid, from: LinkEntry, to: LinkEntry): Promise<void> {
  const rec = await readLinks(tx, fid);
  const i = rec.links.findIndex((l) => isLink(l, from.parent, from.name));
  if (i >= 0) rec.links.splice(i, 1);
  appendLink(rec, to.parent, to.name);
  writeLinks(tx, fid, rec);
}

async function addToCounter(tx: StoreTxn, key: string, delta: number): Promise<void> {
  tx.put(key, Math.max(0, ((await tx.get<number>(key)) ?? 0) + delta));
}

/** Raises each OST's last-used record to cover `objects` (never lowers it). */
async function noteObjectsUsed(tx: StoreTxn, objects: OstObject[]): Promise<void> {
  for (const [ostIdx, id] of highestObjects(objects)) {
    const key = K.ostLastUsed(ostIdx);
    const cur = await tx.get<{ seq: number; oid: number }>(key);
    if (!cur || compareObjectIds(id, cur) > 0) tx.put(key, { seq: id.seq, oid: id.oid });
  }
}

function decCount(m: Map<string, number>, k: string): void {
  const n = (m.get(k) ?? 0) - 1;
  if (n > 0) m.set(k, n);
  else m.delete(k);
}

function sameObjects(a: OstObject[], b: OstObject[]): boolean {
  return a.length === b.length && a.every((o, i) => o.ostIdx === b[i]!.ostIdx && o.seq === b[i]!.seq && o.oid === b[i]!.oid);
}

// --- HSM state helpers ---

function emptyHsm(): HsmAttrs {
  return { flags: 0, archiveId: 0 };
}

function hsmFlagsOf(ino: Inode): number {
  return ino.hsm?.flags ?? 0;
}

/** A modification of a file with a current archive copy makes the copy stale: DIRTY. */
function markDirty(ino: Inode): boolean {
  const f = hsmFlagsOf(ino);
  if (!(f & HS.EXISTS) || f & (HS.DIRTY | HS.RELEASED)) return false;
  ino.hsm = { ...emptyHsm(), ...ino.hsm, flags: f | HS.DIRTY };
  return true;
}

/** Lustre's mdt_hsm_state_set consistency rules. */
function checkHsmConsistent(flags: number): void {
  if (flags & HS.DIRTY && !(flags & HS.EXISTS)) throw err('EINVAL', 'dirty needs exists: no archive copy can be stale', 'BAD_HSM_FLAGS');
  if (flags & HS.RELEASED && (flags & (HS.EXISTS | HS.ARCHIVED)) !== (HS.EXISTS | HS.ARCHIVED)) {
    throw err('EINVAL', 'a released file must keep exists and archived: the archive holds its data', 'BAD_HSM_FLAGS');
  }
  if (flags & HS.RELEASED && flags & HS.DIRTY) throw err('EINVAL', 'a released file cannot be dirty', 'BAD_HSM_FLAGS');
}

function checkReleaseSpec(spec: ReleaseSpec): ReleaseSpec {
  if (!spec || typeof spec !== 'object') throw err('EINVAL', 'missing release spec');
  if (typeof spec.dataVersion !== 'string' || spec.dataVersion.length === 0) throw err('EINVAL', 'bad data version', 'BAD_DATA_VERSION');
  if (!Number.isSafeInteger(spec.size) || spec.size < 0) throw err('EINVAL', `bad size ${String(spec.size)}`, 'BAD_SIZE');
  for (const f of ['atime', 'mtime', 'ctime'] as const) if (!isTimestamp(spec[f])) throw err('EINVAL', `bad ${f}`, 'BAD_TIME');
  return {
    dataVersion: spec.dataVersion,
    size: spec.size,
    atime: { sec: spec.atime.sec, nsec: spec.atime.nsec },
    mtime: { sec: spec.mtime.sec, nsec: spec.mtime.nsec },
    ctime: { sec: spec.ctime.sec, nsec: spec.ctime.nsec },
  };
}

function checkArchivedCopy(copy: ArchivedCopy): ArchivedCopy {
  if (!copy || typeof copy !== 'object') throw err('EINVAL', 'missing archive result');
  if (typeof copy.dataVersion !== 'string' || copy.dataVersion.length === 0) throw err('EINVAL', 'bad data version', 'BAD_DATA_VERSION');
  if (!Number.isSafeInteger(copy.size) || copy.size < 0) throw err('EINVAL', `bad archived size ${String(copy.size)}`, 'BAD_SIZE');
  if (typeof copy.checksum !== 'string' || copy.checksum.length === 0) throw err('EINVAL', 'bad checksum', 'BAD_CHECKSUM');
  return { dataVersion: copy.dataVersion, size: copy.size, checksum: copy.checksum };
}

function applyDirDefault(ino: Inode, tpl: LayoutTemplate | undefined): void {
  if (tpl) ino.dirDefault = tpl;
  else delete ino.dirDefault;
}

function lovOf(ino: Inode): Buffer | undefined {
  if (ino.type === 'reg' && ino.layout) return encodeLovEA(ino.layout, ino.fid);
  if (ino.type === 'dir' && ino.dirDefault) return encodeLovTemplate(ino.dirDefault);
  return undefined;
}

function listBytes(names: string[]): number {
  let n = 0;
  for (const name of names) n += Buffer.byteLength(name, 'utf8') + 1;
  return n;
}

// --- validation of untrusted input ---

function checkFid(fid: unknown): asserts fid is Fid {
  if (!isValidFid(fid)) throw err('EINVAL', 'malformed FID', 'BAD_FID');
}

function checkName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || name.length === 0) throw err('EINVAL', 'empty file name', 'BAD_NAME');
  if (name === '.' || name === '..') throw err('EINVAL', `'${name}' cannot be used as a name`, 'BAD_NAME');
  if (name.includes('/') || name.includes('\0')) throw err('EINVAL', 'file names cannot contain / or NUL', 'BAD_NAME');
  if (!isWellFormedKey(name)) throw err('EINVAL', 'file name is not valid UTF-8', 'BAD_NAME');
  if (Buffer.byteLength(name, 'utf8') > NAME_MAX) throw err('ENAMETOOLONG', `file name longer than ${NAME_MAX} bytes`);
}

function checkXattrName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || name.length === 0) throw err('EINVAL', 'empty xattr name', 'BAD_XATTR_NAME');
  if (name.includes('\0') || !isWellFormedKey(name)) throw err('EINVAL', 'xattr name must be valid UTF-8 without NUL', 'BAD_XATTR_NAME');
  if (Buffer.byteLength(name, 'utf8') > XATTR_NAME_MAX) throw err('ERANGE', `xattr name longer than ${XATTR_NAME_MAX} bytes`);
  const dot = name.indexOf('.');
  if (dot <= 0 || dot === name.length - 1) throw err('EINVAL', `xattr name '${name}' needs a namespace and a name`, 'BAD_XATTR_NAME');
}

/** Namespaces that exist; reading one with nothing stored answers ENODATA (no ACLs are kept). */
function isReadableXattr(name: string): boolean {
  return READABLE_XATTR_NAMESPACES.some((p) => name.startsWith(p));
}

function isU32(x: unknown): x is number {
  return Number.isInteger(x) && (x as number) >= 0 && (x as number) <= 0xffffffff;
}

interface CheckedSpec {
  fid: Fid;
  type: FileType;
  perm: number;
  uid: number;
  gid: number;
  rdev: number;
  target?: string;
  layout?: Raid0Layout;
  dirDefault?: LayoutTemplate;
}

function checkCreateSpec(spec: CreateSpec): CheckedSpec {
  if (!spec || typeof spec !== 'object') throw err('EINVAL', 'missing create spec');
  checkFid(spec.fid);
  if (!FILE_TYPES.includes(spec.type)) throw err('EINVAL', `unknown file type ${String(spec.type)}`, 'BAD_TYPE');
  if (!Number.isInteger(spec.mode) || spec.mode < 0 || spec.mode > 0o177777) throw err('EINVAL', `bad mode ${String(spec.mode)}`, 'BAD_MODE');
  const typeInMode = spec.mode & S_IFMT;
  if (typeInMode !== 0 && typeInMode !== typeBits(spec.type)) throw err('EINVAL', `mode 0${spec.mode.toString(8)} is not a ${spec.type}`, 'BAD_MODE');
  if (!isU32(spec.uid) || !isU32(spec.gid)) throw err('EINVAL', 'uid and gid must be 32-bit unsigned integers', 'BAD_ID');
  const out: CheckedSpec = {
    fid: { seq: spec.fid.seq, oid: spec.fid.oid, ver: spec.fid.ver },
    type: spec.type,
    perm: spec.mode & PERM_BITS,
    uid: spec.uid,
    gid: spec.gid,
    rdev: 0,
  };
  if (spec.type === 'chr' || spec.type === 'blk') {
    if (spec.rdev !== undefined && !isU32(spec.rdev)) throw err('EINVAL', 'rdev must be a 32-bit unsigned integer', 'BAD_RDEV');
    out.rdev = spec.rdev ?? 0;
  }
  if (spec.type === 'lnk') {
    if (typeof spec.target !== 'string' || spec.target.length === 0) throw err('ENOENT', 'a symlink needs a non-empty target');
    if (spec.target.includes('\0') || !isWellFormedKey(spec.target)) throw err('EINVAL', 'symlink target must be valid UTF-8 without NUL', 'BAD_TARGET');
    if (Buffer.byteLength(spec.target, 'utf8') > SYMLINK_MAX) throw err('ENAMETOOLONG', `symlink target longer than ${SYMLINK_MAX} bytes`);
    out.target = spec.target;
  } else if (spec.target !== undefined) {
    throw err('EINVAL', 'only symlinks have a target', 'BAD_TARGET');
  }
  if (spec.layout !== undefined) {
    if (spec.type !== 'reg') throw err('EINVAL', 'only regular files have a layout', 'BAD_LAYOUT');
    out.layout = validateLayout(spec.layout);
  }
  if (spec.dirDefault !== undefined) {
    if (spec.type !== 'dir') throw err('EINVAL', 'only directories have a default layout', 'BAD_TEMPLATE');
    const tpl = normalizeTemplate(spec.dirDefault);
    if (!isEmptyTemplate(tpl)) out.dirDefault = tpl;
  }
  return out;
}

function checkSetattr(attrs: SetattrSpec): SetattrSpec {
  if (!attrs || typeof attrs !== 'object') throw err('EINVAL', 'missing attributes');
  const out: SetattrSpec = {};
  if (attrs.mode !== undefined) {
    if (!Number.isInteger(attrs.mode) || attrs.mode < 0 || attrs.mode > 0o177777) throw err('EINVAL', `bad mode ${String(attrs.mode)}`, 'BAD_MODE');
    out.mode = attrs.mode;
  }
  for (const f of ['uid', 'gid'] as const) {
    if (attrs[f] !== undefined) {
      if (!isU32(attrs[f])) throw err('EINVAL', `${f} must be a 32-bit unsigned integer`, 'BAD_ID');
      out[f] = attrs[f];
    }
  }
  if (attrs.size !== undefined) {
    if (!Number.isSafeInteger(attrs.size) || attrs.size < 0) throw err('EINVAL', `bad size ${String(attrs.size)}`, 'BAD_SIZE');
    out.size = attrs.size;
  }
  for (const f of ['atime', 'mtime', 'ctime'] as const) {
    const v = attrs[f];
    if (v !== undefined) {
      if (!isTimestamp(v)) throw err('EINVAL', `bad ${f}`, 'BAD_TIME');
      out[f] = { sec: v.sec, nsec: v.nsec };
    }
  }
  return out;
}
