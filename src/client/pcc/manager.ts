/**
 * Persistent Client Cache of one mount (reference §6): whole-file copies in local
 * directories ("backends"), read-only or read-write, with Lustre's semantics.
 *
 * Read-only (RO-PCC): the copy is served while this client holds a PR lock over [0, EOF] on
 * every object of the file, taken at attach and left in the lock LRU. A write or truncate on
 * any client needs PW, which revokes that lock: the copy is dropped before the lock goes
 * (dataRevokeListeners), so the writer waits for reads in flight and nobody reads stale data.
 * A lock the LRU let go without a conflict only marks the copy stale: the next read takes the
 * locks again and keeps the copy when the file's data version is still the one copied.
 *
 * Read-write (RW-PCC): an HSM archive of its own (`rwid`). Attach asks the coordinator to
 * archive the file into this mount's agent, which copies it into the backend, then releases
 * it (objects freed, the MDT keeps a stub). Reads, writes, truncates and fsyncs of this mount
 * then go to the copy; stat shows its size. Any other client's I/O finds a released file and
 * asks for a RESTORE, which the coordinator hands to this mount's agent: it holds back local
 * I/O, writes the copy into fresh objects and detaches (`lfs pcc detach` asks for the same
 * restore). The file's HSM state is cleared afterwards: the copy is no archive to rely on.
 */
import { join, resolve } from 'node:path';
import { stat } from 'node:fs/promises';
import type { Logger } from '../../common/log.js';
import { Errno, err, toStriaError, type StriaError } from '../../common/errno.js';
import { fidKey, fidToString, type Fid } from '../../common/fid.js';
import { compareTime, now, type Timestamp } from '../../common/time.js';
import type { Raid0Layout } from '../../common/layout.js';
import { LockMode } from '../../ldlm/modes.js';
import { Opc } from '../../ptlrpc/opcodes.js';
import { HS } from '../../hsm/flags.js';
import type { FileAttr, OpenFile, StriaClient } from '../client.js';
import type { DataRevoke } from '../dlm.js';
import { isReleasedInode } from '../restore.js';
import { PccAgent, type AgentTask, type Copied } from './agent.js';
import { pccCachePath } from './cache-path.js';
import type { PccCaller, PccHook } from './hook.js';
import { LocalCopy, removeCopy, writeCopy } from './local-copy.js';
import { parseBackendSpec, ruleMatches, type BackendSpec, type RuleSubject } from './rules.js';

export type PccType = 'readonly' | 'readwrite';

export interface PccBackend {
  /** absolute path of the backend directory */
  path: string;
  /** "RULE PARAMS" as given to lctl pcc add */
  text: string;
  spec: BackendSpec;
}

export interface PccState {
  type: 'none' | PccType;
  /** the copy's path relative to the backend directory */
  pccFile?: string;
  /** the backend directory */
  pccPath?: string;
  openCount: number;
  flags: number;
}

/** lu_pcc_state flags as `lfs pcc state` prints them */
export const PCC_STATE_FL_ATTR_VALID = 0x1;
export const PCC_STATE_FL_ATTACHING = 0x2;

const O_ACCMODE = 0o3;
const O_RDONLY = 0;
const O_CREAT = 0o100;
const O_EXCL = 0o200;
const O_TRUNC = 0o1000;
const CHUNK = 4 << 20;
/** how long an RW attach or detach waits for the coordinator to run its action here */
const HSM_WAIT_MS = 600_000;
const SETTLE_LOOPS = 1000;

interface Deferred<T> {
  promise: Promise<T>;
  resolve(v: T): void;
  reject(e: unknown): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

interface Entry {
  fid: Fid;
  key: string;
  type: PccType;
  backend: PccBackend;
  /** relative copy path (V1 layout) */
  rel: string;
  state: 'attaching' | 'attached' | 'detaching';
  /** settles when the state leaves attaching/detaching (RW I/O waits on it) */
  gate: Deferred<void>;
  copy?: LocalCopy;
  /** RW: the file's size and mtime as the copy has them */
  size: number;
  mtime: Timestamp;
  /** RO: what the copy was made from, for revalidation after the LRU dropped the lock */
  layout?: Raid0Layout;
  dataVersion?: string;
  stale: boolean;
  revalidating?: Promise<boolean>;
  /** RO: a conflicting lock was revoked while the attach copied */
  revoked: boolean;
  inflight: number;
  drained: Array<() => void>;
  /** RW: size or mtime changed since the MDT was last told */
  sizeDirty: boolean;
  /** RW: keep the copy when the restore detaches it */
  keep: boolean;
  /** RW: settles when a restore of this file finished here */
  detached?: Deferred<void>;
}

/** An RW attach waiting for its ARCHIVE to run on this mount's agent. */
interface PendingArchive {
  entry: Entry;
  done: Deferred<Copied>;
  copied?: Copied;
}

export class PccManager implements PccHook {
  private readonly backends: PccBackend[] = [];
  private readonly entries = new Map<string, Entry>();
  private readonly archives = new Map<string, PendingArchive>();
  private readonly opens = new Map<string, number>();
  private readonly agent: PccAgent;
  private readonly onRevoke = (ev: DataRevoke) => this.dataRevoked(ev);
  private readonly onAttrRevoke = (fid: Fid) => this.attrsRevoked(fid);
  private closed = false;

  constructor(
    private readonly client: StriaClient,
    readonly mountpoint: string,
    private readonly log: Logger,
  ) {
    this.agent = new PccAgent(client, {
      archive: (t) => this.agentArchive(t),
      restore: (t) => this.agentRestore(t),
      remove: (t) => this.agentRemove(t),
      ended: (t, failure) => this.agentEnded(t, failure),
    }, log);
    client.dlm.dataRevokeListeners.add(this.onRevoke);
    client.dlm.attrRevokeListeners.add(this.onAttrRevoke);
  }

  // ---- backends ------------------------------------------------------------------------

  list(): readonly PccBackend[] {
    return this.backends;
  }

  /** lctl pcc add MNT PCCPATH "RULE PARAMS" */
  async add(path: string, text: string): Promise<PccBackend> {
    const dir = resolve(path);
    const spec = parseBackendSpec(text);
    const st = await stat(dir).catch(() => undefined);
    if (!st) throw err('ENOENT', `PCC backend ${dir} does not exist`, 'NO_PCC_DIR');
    if (!st.isDirectory()) throw err('ENOTDIR', `PCC backend ${dir} is not a directory`, 'NO_PCC_DIR');
    if (dir === this.mountpoint || dir.startsWith(`${this.mountpoint}/`)) throw err('EINVAL', `PCC backend ${dir} is inside the mount ${this.mountpoint}`, 'PCC_IN_MOUNT');
    if (this.backends.some((b) => b.path === dir)) throw err('EEXIST', `PCC backend ${dir} already exists on ${this.mountpoint}`, 'PCC_EXISTS');
    const { rwid, roid } = spec.params;
    const clash = this.backends.find((b) => (rwid > 0 && b.spec.params.rwid === rwid) || (roid > 0 && b.spec.params.roid === roid));
    if (clash) throw err('EEXIST', `PCC backend ${clash.path} already uses ${rwid > 0 && clash.spec.params.rwid === rwid ? `rwid ${rwid}` : `roid ${roid}`}`, 'PCC_ID_IN_USE');
    const b: PccBackend = { path: dir, text, spec };
    this.backends.push(b);
    try {
      await this.agent.serve(this.rwids());
    } catch (e) {
      this.backends.splice(this.backends.indexOf(b), 1);
      throw e;
    }
    this.log.info({ mountpoint: this.mountpoint, pccpath: dir, spec: text }, 'pcc: backend added');
    return b;
  }

  /** lctl pcc del [-k] MNT PCCPATH: its files are detached first (-k keeps their copies) */
  async del(path: string, keep: boolean): Promise<void> {
    const dir = resolve(path);
    const b = this.backends.find((x) => x.path === dir);
    if (!b) throw err('ENOENT', `no PCC backend ${dir} on ${this.mountpoint}`, 'NO_PCC_BACKEND');
    await this.detachAll((e) => e.backend === b, keep);
    this.backends.splice(this.backends.indexOf(b), 1);
    await this.agent.serve(this.rwids());
    this.log.info({ mountpoint: this.mountpoint, pccpath: dir }, 'pcc: backend deleted');
  }

  /** lctl pcc clear [-k] MNT */
  async clear(keep: boolean): Promise<void> {
    for (const b of [...this.backends]) await this.del(b.path, keep);
  }

  private rwids(): number[] {
    return this.backends.map((b) => b.spec.params.rwid).filter((id) => id > 0);
  }

  private async detachAll(which: (e: Entry) => boolean, keep: boolean): Promise<void> {
    const failures: string[] = [];
    for (const e of [...this.entries.values()].filter(which)) {
      try {
        await this.detachEntry(e, keep);
      } catch (x) {
        failures.push(`${fidToString(e.fid)}: ${toStriaError(x).message}`);
      }
    }
    if (failures.length > 0) throw err('EBUSY', `could not detach ${failures.join('; ')}`, 'PCC_DETACH_FAILED');
  }

  /** The backend an attach uses: by id when given, else the first of the right kind. */
  private pick(type: PccType, id: number | undefined): PccBackend {
    const fits = (b: PccBackend) => {
      const p = b.spec.params;
      if (type === 'readwrite') return p.rwid > 0 && (id === undefined || p.rwid === id);
      return id === undefined || p.roid === id || p.rwid === id;
    };
    const b = (type === 'readonly' ? this.backends.filter((x) => x.spec.params.roid > 0 && fits(x)) : []).concat(this.backends.filter(fits))[0];
    if (!b) {
      const what = id === undefined ? `a ${type === 'readwrite' ? 'read-write (rwid)' : 'PCC'} backend` : `a PCC backend with ${type === 'readwrite' ? 'rwid' : 'id'} ${id}`;
      throw err('ENOENT', `${this.mountpoint} has no ${what} (lctl pcc add)`, 'NO_PCC_BACKEND');
    }
    return b;
  }

  // ---- attach / detach / state -----------------------------------------------------------

  async attach(fid: Fid, type: PccType, id?: number): Promise<void> {
    if (this.closed) throw err('ESHUTDOWN', 'the mount is going away', 'PCC_CLOSED');
    if (this.entries.has(fidKey(fid))) throw err('EEXIST', `${fidToString(fid)} is already attached in PCC`, 'PCC_ATTACHED');
    const b = this.pick(type, id);
    if (type === 'readonly') await this.attachRo(fid, b);
    else await this.attachRw(fid, b);
  }

  async detach(fid: Fid, keep: boolean): Promise<void> {
    const e = this.entries.get(fidKey(fid));
    // Lustre: detaching a file that is not cached succeeds
    if (!e) return;
    await this.detachEntry(e, keep);
  }

  state(fid: Fid): PccState {
    const key = fidKey(fid);
    const openCount = this.opens.get(key) ?? 0;
    const e = this.entries.get(key);
    if (!e || (e.state !== 'attached' && e.type === 'readonly')) return { type: 'none', openCount, flags: e ? PCC_STATE_FL_ATTACHING : 0 };
    const flags = (e.type === 'readwrite' ? PCC_STATE_FL_ATTR_VALID : 0) | (e.state === 'attaching' ? PCC_STATE_FL_ATTACHING : 0);
    if (e.state === 'attaching') return { type: 'none', openCount, flags };
    return { type: e.type, pccFile: e.rel, pccPath: e.backend.path, openCount, flags };
  }

  private newEntry(fid: Fid, type: PccType, backend: PccBackend): Entry {
    const key = fidKey(fid);
    if (this.entries.has(key)) throw err('EEXIST', `${fidToString(fid)} is already attached in PCC`, 'PCC_ATTACHED');
    const e: Entry = {
      fid, key, type, backend, rel: pccCachePath(fid), state: 'attaching', gate: deferred(), size: 0, mtime: now(),
      stale: false, revoked: false, inflight: 0, drained: [], keep: false, sizeDirty: false,
    };
    this.entries.set(key, e);
    return e;
  }

  private pathOf(e: { backend: PccBackend; rel: string }): string {
    return join(e.backend.path, e.rel);
  }

  /**
   * Opens the file for reading, restored first when released and with this client's
   * unwritten data flushed: the copy is made from what the OSTs hold.
   */
  private async openData(fid: Fid): Promise<OpenFile> {
    const f = await this.client.open(fid, O_RDONLY);
    try {
      if (f.inode.type !== 'reg') throw err('EINVAL', `${fidToString(fid)} is not a regular file`, 'NOT_REGULAR');
      if (isReleasedInode(f.inode)) await this.client.read(f, 0, 1);
      await this.client.fsync(f);
      return f;
    } catch (e) {
      await this.client.close(f).catch(() => undefined);
      throw e;
    }
  }

  private async *readAll(f: OpenFile, size: number, onBytes?: (n: number) => void): AsyncGenerator<Buffer> {
    for (let off = 0; off < size; ) {
      const buf = await this.client.read(f, off, Math.min(CHUNK, size - off));
      if (buf.length === 0) return;
      off += buf.length;
      onBytes?.(off);
      yield buf;
    }
  }

  private async attachRo(fid: Fid, backend: PccBackend): Promise<void> {
    const f = await this.openData(fid);
    let e: Entry | undefined;
    try {
      const layout = f.inode.layout;
      if (!layout || layout.pattern !== 'raid0' || layout.objects.length === 0) {
        throw err('ENODATA', `${fidToString(fid)} has no objects to cache`, 'NO_OBJECTS');
      }
      e = this.newEntry(fid, 'readonly', backend);
      // PR over the whole of every object: no write can happen anywhere while we copy, and
      // the first one after that revokes it, which drops the copy.
      const held = await this.client.dlm.lockRange(fid, layout, LockMode.PR, 0, 0, true);
      try {
        const attr = await this.client.getattr(fid);
        e.dataVersion = await this.client.dataVersionOf(f.inode);
        const copied = await writeCopy(this.pathOf(e), this.readAll(f, attr.size), { atime: attr.atime, mtime: attr.mtime });
        e.size = copied.size;
        e.mtime = attr.mtime;
      } finally {
        held.release();
      }
      e.layout = layout;
      e.copy = await LocalCopy.open(this.pathOf(e));
      // checked after the last await: a revocation from here on finds the copy attached
      if (e.revoked) throw err('EAGAIN', `${fidToString(fid)} was written to while it was being attached`, 'PCC_ATTACH_RACED');
      e.state = 'attached';
      e.gate.resolve();
      this.log.info({ fid: fidToString(fid), pccpath: backend.path, size: e.size }, 'pcc: attached read-only');
    } catch (x) {
      if (e) {
        this.entries.delete(e.key);
        e.gate.resolve();
        await e.copy?.close().catch(() => undefined);
        await removeCopy(this.pathOf(e)).catch(() => undefined);
      }
      throw x;
    } finally {
      await this.client.close(f).catch(() => undefined);
    }
  }

  /**
   * Archive into this mount's agent, then release: the MDT then holds a stub whose data
   * only this client has. Local I/O on the file waits meanwhile; other clients' I/O goes to
   * the OSTs until the release, then asks for a restore.
   */
  private async attachRw(fid: Fid, backend: PccBackend): Promise<void> {
    const rwid = backend.spec.params.rwid;
    // a released file comes back first; its HSM copy is elsewhere
    const f = await this.openData(fid);
    await this.client.close(f).catch(() => undefined);
    const e = this.newEntry(fid, 'readwrite', backend);
    const pending: PendingArchive = { entry: e, done: deferred() };
    this.archives.set(e.key, pending);
    let archived = false;
    try {
      const r = await this.client.hsm.request({ action: 'archive', archiveId: rwid, fids: [fid] });
      if ((r.cookies[0] ?? 0) === 0) {
        throw err('EBUSY', `${fidToString(fid)} already has a current HSM copy: PCC-RW attach needs a file that is not archived`, 'PCC_ALREADY_ARCHIVED');
      }
      const copied = await withTimeout(pending.done.promise, HSM_WAIT_MS, () => err('ETIMEDOUT', `the coordinator did not run the attach of ${fidToString(fid)} on this mount`, 'PCC_ATTACH_TIMEOUT'));
      archived = true;
      const attr = await this.client.getattr(fid);
      const dataVersion = await this.client.dataVersionOf(attr);
      if (dataVersion !== copied.dataVersion) throw err('EBUSY', `${fidToString(fid)} changed while it was being attached`, 'PCC_ATTACH_RACED');
      await this.client.hsm.release({ fid, dataVersion, size: attr.size, atime: attr.atime, mtime: attr.mtime, ctime: attr.ctime });
      e.copy = await LocalCopy.open(this.pathOf(e));
      e.size = copied.size;
      e.mtime = attr.mtime;
      e.state = 'attached';
      e.gate.resolve();
      this.log.info({ fid: fidToString(fid), pccpath: backend.path, rwid, size: e.size }, 'pcc: attached read-write');
    } catch (x) {
      this.entries.delete(e.key);
      e.gate.resolve();
      await e.copy?.close().catch(() => undefined);
      await removeCopy(this.pathOf(e)).catch(() => undefined);
      // the file keeps its data on the OSTs: an archive record pointing here would lie
      if (archived) await this.clearHsm(fid);
      throw x;
    } finally {
      this.archives.delete(e.key);
    }
  }

  /** The HSM state left by an attach or a detach names a copy that is no archive: cleared. */
  private async clearHsm(fid: Fid): Promise<void> {
    await this.client.hsm.setState({ fid, set: 0, clear: HS.EXISTS | HS.ARCHIVED | HS.DIRTY, archiveId: 0 }).catch((x: unknown) => {
      this.log.warn({ fid: fidToString(fid), err: toStriaError(x).message }, 'pcc: clearing the HSM state failed');
    });
  }

  private async detachEntry(e: Entry, keep: boolean): Promise<void> {
    if (e.type === 'readonly') return this.dropRo(e, keep);
    if (e.state === 'attaching') await e.gate.promise;
    if (this.entries.get(e.key) !== e) return;
    e.keep = keep;
    e.detached ??= deferred();
    const done = e.detached;
    const r = await this.client.hsm.request({ action: 'restore', fids: [e.fid] });
    if ((r.cookies[0] ?? 0) === 0 && e.state === 'attached') {
      // not released (any more): nothing to bring back, the copy is just dropped
      await this.finishDetach(e);
    }
    await withTimeout(done.promise, HSM_WAIT_MS, () => err('ETIMEDOUT', `the restore detaching ${fidToString(e.fid)} did not run`, 'PCC_DETACH_TIMEOUT'));
  }

  /** Drops a read-only copy: new reads go to Lustre at once, reads in flight finish first. */
  private async dropRo(e: Entry, keep: boolean): Promise<void> {
    if (e.state === 'attaching') {
      e.revoked = true;
      return;
    }
    if (this.entries.get(e.key) !== e) return e.gate.promise;
    this.entries.delete(e.key);
    e.state = 'detaching';
    e.gate = deferred();
    await this.drain(e);
    this.client.dlm.invalidator?.data(e.fid);
    await e.copy?.close().catch(() => undefined);
    if (!keep) await removeCopy(this.pathOf(e)).catch(() => undefined);
    e.gate.resolve();
    this.log.info({ fid: fidToString(e.fid), keep }, 'pcc: read-only copy dropped');
  }

  private async finishDetach(e: Entry): Promise<void> {
    if (this.entries.get(e.key) === e) this.entries.delete(e.key);
    // pages the kernel took from the copy are under no lock: later writes elsewhere would not drop them
    this.client.dlm.invalidator?.data(e.fid);
    await e.copy?.close().catch(() => undefined);
    if (!e.keep) await removeCopy(this.pathOf(e)).catch(() => undefined);
    e.gate.resolve();
    e.detached?.resolve();
    this.log.info({ fid: fidToString(e.fid), keep: e.keep }, 'pcc: read-write copy detached');
  }

  private drain(e: Entry): Promise<void> {
    if (e.inflight === 0) return Promise.resolve();
    return new Promise((r) => e.drained.push(r));
  }

  private leave(e: Entry): void {
    if (--e.inflight === 0) for (const w of e.drained.splice(0)) w();
  }

  // ---- lock revocation -----------------------------------------------------------------

  private async dataRevoked(ev: DataRevoke): Promise<void> {
    const e = this.entries.get(fidKey(ev.fid));
    if (!e || e.type !== 'readonly') return;
    if (ev.why === 'lru' && e.state === 'attached') {
      // nobody wants to write: keep the copy, check it against the data version at next use
      e.stale = true;
      return;
    }
    await this.dropRo(e, false);
  }

  /**
   * The layout lock went (a release, a restore into new objects, or just the LRU): the copy
   * is only good for the objects it was made from. The next read checks.
   */
  private attrsRevoked(fid: Fid): void {
    const e = this.entries.get(fidKey(fid));
    if (e?.type === 'readonly') e.stale = true;
  }

  /**
   * After a lock went without a conflict: the copy stays if the file still has the objects
   * it was copied from and, under PR locks on them again, the same data version.
   */
  private revalidate(e: Entry): Promise<boolean> {
    e.revalidating ??= (async () => {
      try {
        const inode = await this.client.getattr(e.fid);
        if (!sameObjects(inode.layout, e.layout)) return false;
        const held = await this.client.dlm.lockRange(e.fid, inode.layout!, LockMode.PR, 0, 0, true);
        try {
          const same = (await this.client.dataVersionOf(inode)) === e.dataVersion;
          if (same) e.stale = false;
          return same;
        } finally {
          held.release();
        }
      } catch (x) {
        this.log.debug({ fid: fidToString(e.fid), err: toStriaError(x).message }, 'pcc: revalidation failed');
        return false;
      } finally {
        e.revalidating = undefined;
      }
    })();
    return e.revalidating.then(async (ok) => {
      if (!ok && this.entries.get(e.key) === e) await this.dropRo(e, false);
      return ok;
    });
  }

  // ---- the FUSE hook -------------------------------------------------------------------

  /** The attached entry that serves I/O on `fid` now, counted in flight; undefined: use Lustre. */
  private async enter(fid: Fid): Promise<Entry | undefined> {
    const key = fidKey(fid);
    for (let i = 0; i < SETTLE_LOOPS; i++) {
      const e = this.entries.get(key);
      if (!e) return undefined;
      if (e.state === 'attached') {
        if (e.type === 'readonly' && e.stale && !(await this.revalidate(e))) return undefined;
        if (e.state !== 'attached' || this.entries.get(key) !== e) continue;
        e.inflight++;
        return e;
      }
      // a read-only copy being made or dropped: the OSTs serve meanwhile
      if (e.type === 'readonly') return undefined;
      await e.gate.promise;
    }
    throw err('EAGAIN', `PCC state of ${fidToString(fid)} keeps changing`, 'PCC_BUSY');
  }

  async opened(f: OpenFile, flags: number, who: PccCaller): Promise<void> {
    this.opens.set(fidKey(f.fid), (this.opens.get(fidKey(f.fid)) ?? 0) + 1);
    if ((flags & O_ACCMODE) !== O_RDONLY || f.inode.type !== 'reg' || this.entries.has(fidKey(f.fid))) return;
    const candidates = this.backends.filter((b) => b.spec.rule && b.spec.params.roid > 0 && b.spec.params.openAttach);
    if (candidates.length === 0) return;
    // like Lustre's asynchronous RO attach: the open does not wait for the copy
    void (async () => {
      const a = await this.client.getattr(f.fid);
      const subject = subjectOf(a, who.name ?? '');
      const b = candidates.find((x) => ruleMatches(x.spec.rule!, subject));
      if (b && !this.entries.has(fidKey(f.fid))) await this.attachRo(f.fid, b);
    })().catch((x: unknown) => this.log.debug({ fid: fidToString(f.fid), err: toStriaError(x).message }, 'pcc: auto attach at open failed'));
  }

  async created(f: OpenFile, flags: number, who: PccCaller): Promise<OpenFile> {
    this.opens.set(fidKey(f.fid), (this.opens.get(fidKey(f.fid)) ?? 0) + 1);
    const subject = subjectOf(f.inode, who.name ?? '');
    const b = this.backends.find((x) => x.spec.rule && x.spec.params.rwid > 0 && x.spec.params.autoAttach && ruleMatches(x.spec.rule, subject));
    if (!b) return f;
    // the create's MDT handle is open for write, which a release refuses: attach between
    // two opens (nobody else can have the new file open for write yet)
    await this.client.close(f);
    try {
      await this.attachRw(f.fid, b);
    } catch (x) {
      this.log.warn({ fid: fidToString(f.fid), err: toStriaError(x).message }, 'pcc: auto attach at create failed');
    }
    return this.client.open(f.fid, flags & ~(O_CREAT | O_EXCL | O_TRUNC));
  }

  released(f: OpenFile): void {
    const key = fidKey(f.fid);
    const n = (this.opens.get(key) ?? 0) - 1;
    if (n > 0) this.opens.set(key, n);
    else this.opens.delete(key);
  }

  async flushed(f: OpenFile): Promise<void> {
    const e = this.entries.get(fidKey(f.fid));
    if (e?.type === 'readwrite' && e.sizeDirty) await this.pushSize(e);
  }

  /**
   * Tells the MDT the size and mtime of the copy (Lustre's lazy size at close): other
   * clients then see them on the released file before they restore it.
   */
  private async pushSize(e: Entry): Promise<void> {
    if (e.state !== 'attached') return;
    e.sizeDirty = false;
    try {
      await this.client.mdc.imp.request(Opc.MDS_HSM_REQUEST, { action: 'pcc_size', fid: e.fid, size: e.size, mtime: e.mtime });
    } catch (x) {
      e.sizeDirty = true;
      this.log.warn({ fid: fidToString(e.fid), err: toStriaError(x).message }, 'pcc: reporting the size to the MDT failed');
    }
  }

  async read(f: OpenFile, offset: number, length: number): Promise<Buffer | undefined> {
    const e = await this.enter(f.fid);
    if (!e) return undefined;
    try {
      return await e.copy!.read(offset, length);
    } finally {
      this.leave(e);
    }
  }

  async write(f: OpenFile, offset: number, data: Buffer, append: boolean): Promise<{ written: number; offset: number } | undefined> {
    const ro = this.entries.get(fidKey(f.fid));
    // a write anywhere ends read-only caching; here it starts by dropping our copy
    if (ro?.type === 'readonly') await this.dropRo(ro, false);
    const e = await this.enter(f.fid);
    if (!e) return undefined;
    try {
      const at = append ? e.size : offset;
      await e.copy!.write(at, data);
      e.size = Math.max(e.size, at + data.length);
      e.mtime = now();
      e.sizeDirty = true;
      return { written: data.length, offset: at };
    } finally {
      this.leave(e);
    }
  }

  async fsync(f: OpenFile): Promise<boolean> {
    const e = this.entries.get(fidKey(f.fid));
    if (e?.type !== 'readwrite') return false;
    const a = await this.enter(f.fid);
    if (!a) return false;
    try {
      await a.copy!.sync();
      if (a.sizeDirty) await this.pushSize(a);
      return true;
    } finally {
      this.leave(a);
    }
  }

  async truncate(fid: Fid, size: number): Promise<boolean> {
    const ro = this.entries.get(fidKey(fid));
    if (ro?.type === 'readonly') await this.dropRo(ro, false);
    const e = await this.enter(fid);
    if (!e) return false;
    try {
      await e.copy!.truncate(size);
      e.size = size;
      e.mtime = now();
      e.sizeDirty = true;
      return true;
    } finally {
      this.leave(e);
    }
  }

  attrs(a: FileAttr): FileAttr {
    const e = this.entries.get(fidKey(a.fid));
    if (!e || e.type !== 'readwrite' || e.state === 'attaching') return a;
    return { ...a, size: e.size, blocks: Math.ceil(e.size / 512), mtime: compareTime(e.mtime, a.mtime) > 0 ? e.mtime : a.mtime };
  }

  // ---- the HSM agent's work --------------------------------------------------------------

  /** Only the archive of an attach this mount started: the copy goes into the backend. */
  private async agentArchive(t: AgentTask): Promise<Copied> {
    const fid = t.item.fid;
    const p = this.archives.get(fidKey(fid));
    if (!p || p.entry.backend.spec.params.rwid !== t.archiveId) {
      throw err('EINVAL', `PCC archive ${t.archiveId} of ${this.mountpoint} only takes files being attached there`, 'PCC_NOT_ATTACHING');
    }
    const attr = await this.client.getattr(fid);
    const v1 = await this.client.dataVersionOf(attr);
    const f = await this.client.open(fid, O_RDONLY);
    let copied;
    try {
      copied = await writeCopy(this.pathOf(p.entry), this.readAll(f, attr.size, (n) => (t.bytes = n)), { atime: attr.atime, mtime: attr.mtime });
    } finally {
      await this.client.close(f).catch(() => undefined);
    }
    if (copied.size !== attr.size || (await this.client.dataVersion(fid)) !== v1) {
      throw err('EBUSY', `${fidToString(fid)} changed during the attach copy`, 'FILE_CHANGED');
    }
    p.copied = { dataVersion: v1, size: copied.size, checksum: copied.checksum };
    return p.copied;
  }

  /**
   * Brings the copy back into the objects the coordinator allocated: local I/O on the file
   * waits until the restore is over (then goes to Lustre, or to the copy again if it failed).
   */
  private async agentRestore(t: AgentTask): Promise<Copied> {
    const { item } = t;
    const target = item.restore;
    if (!target || target.layout.pattern !== 'raid0') throw err('EINVAL', `RESTORE of ${fidToString(item.fid)} without objects to restore into`, 'NO_RESTORE_LAYOUT');
    const key = fidKey(item.fid);
    let e = this.entries.get(key);
    if (e?.type === 'readwrite' && e.state === 'attaching') {
      await e.gate.promise;
      e = this.entries.get(key);
    }
    let copy: LocalCopy;
    let own = false;
    if (e?.type === 'readwrite' && e.state === 'attached') {
      e.state = 'detaching';
      e.gate = deferred();
      await this.drain(e);
      copy = e.copy!;
      await copy.sync();
    } else {
      // a copy this client made before (the mount restarted since): restore it from disk
      const b = this.backends.find((x) => x.spec.params.rwid === t.archiveId);
      if (!b) throw err('ENOENT', `no PCC backend with rwid ${t.archiveId} on ${this.mountpoint}`, 'NO_PCC_BACKEND');
      copy = await LocalCopy.open(join(b.path, pccCachePath(item.fid))).catch((x: unknown) => {
        throw err('ENOENT', `no PCC copy of ${fidToString(item.fid)} in ${b.path}: ${toStriaError(x).message}`, 'NO_PCC_COPY');
      });
      own = true;
    }
    try {
      const st = await copy.stat();
      const digest: { checksum?: string } = {};
      for await (const { offset, data } of copy.chunks(CHUNK, digest)) {
        if (t.signal.aborted) throw err('ECANCELED', 'canceled', 'CANCELED');
        await this.client.writeObjects(item.fid, target.layout, offset, data);
        t.bytes = offset + data.length;
      }
      const mtime = compareTime(st.mtime, target.mtime) > 0 ? st.mtime : target.mtime;
      await this.client.finishObjects(item.fid, target.layout, { size: st.size, atime: target.atime, mtime });
      t.bytes = st.size;
      const dataVersion = await this.client.dataVersionOf({ fid: item.fid, type: 'reg', layout: target.layout });
      return { dataVersion, size: st.size, checksum: digest.checksum! };
    } finally {
      if (own) await copy.close().catch(() => undefined);
    }
  }

  private async agentRemove(t: AgentTask): Promise<void> {
    const e = this.entries.get(fidKey(t.item.fid));
    if (e) {
      // the coordinator removes copies of deleted files: then the attach is over
      const gone = await this.client.getattr(t.item.fid).then(() => false, (x: unknown) => toStriaError(x).errno === Errno.ENOENT);
      if (!gone) throw err('EBUSY', `${fidToString(t.item.fid)} is attached in PCC here`, 'PCC_ATTACHED');
      e.keep = false;
      e.state = 'detaching';
      e.gate = deferred();
      await this.drain(e);
      await this.finishDetach(e);
      return;
    }
    const b = this.backends.find((x) => x.spec.params.rwid === t.archiveId);
    if (b) await removeCopy(join(b.path, pccCachePath(t.item.fid)));
  }

  private async agentEnded(t: AgentTask, failure: StriaError | undefined): Promise<void> {
    const { item } = t;
    const key = fidKey(item.fid);
    if (item.action === 'ARCHIVE') {
      const p = this.archives.get(key);
      if (!p) return;
      if (failure || !p.copied) p.done.reject(failure ?? err('EIO', 'archive ended without a copy', 'PCC_NO_COPY'));
      else p.done.resolve(p.copied);
      return;
    }
    if (item.action !== 'RESTORE') return;
    const released = await this.client.hsm.state(item.fid).then((s) => (s.flags & HS.RELEASED) !== 0, () => true);
    const e = this.entries.get(key);
    if (!released) await this.clearHsm(item.fid);
    if (!e || e.type !== 'readwrite' || e.state !== 'detaching') {
      // restored from a copy on disk only: it has done its job
      if (!released) {
        const b = this.backends.find((x) => x.spec.params.rwid === t.archiveId);
        if (b) await removeCopy(join(b.path, pccCachePath(item.fid))).catch(() => undefined);
      }
      return;
    }
    if (!released) {
      await this.finishDetach(e);
      return;
    }
    // the restore did not take: the copy still holds the only data
    e.state = 'attached';
    e.gate.resolve();
    e.detached?.reject(failure ?? err('EIO', `restore of ${fidToString(item.fid)} failed`, 'PCC_RESTORE_FAILED'));
    e.detached = undefined;
  }

  /**
   * Unmount: read-only copies are dropped; read-write copies stay on disk with the file
   * released (its data is only here), to be restored by this client's next agent.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.client.dlm.dataRevokeListeners.delete(this.onRevoke);
    this.client.dlm.attrRevokeListeners.delete(this.onAttrRevoke);
    for (const e of [...this.entries.values()]) {
      if (e.type === 'readonly') await this.dropRo(e, false).catch(() => undefined);
      else {
        this.entries.delete(e.key);
        await e.copy?.close().catch(() => undefined);
      }
    }
    await this.agent.close();
  }
}

function sameObjects(a: Raid0Layout | undefined, b: Raid0Layout | undefined): boolean {
  if (!a || !b || a.pattern !== 'raid0' || b.pattern !== 'raid0' || a.objects.length !== b.objects.length) return false;
  return a.objects.every((o, i) => o.ostIdx === b.objects[i]!.ostIdx && o.seq === b.objects[i]!.seq && o.oid === b.objects[i]!.oid);
}

function subjectOf(a: { uid: number; gid: number; size: number; mtime: Timestamp }, name: string): RuleSubject {
  return { uid: a.uid, gid: a.gid, projid: 0, name, size: a.size, mtimeSec: a.mtime.sec };
}

function withTimeout<T>(p: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
    timer.unref();
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}
