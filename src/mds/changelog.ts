/**
 * The MDT changelog (reference §8.5): every namespace change and HSM event as a
 * numbered record, kept in the MDT's MetadataStore while at least one consumer
 * ("changelog user") is registered, and purged once every user has cleared it.
 *
 * Store keys (all under "cl:", beside the namespace's keys):
 *   cl:index               number            highest record index ever written
 *   cl:mask                number            record types recorded (CLM bits)
 *   cl:nextuser            number            the next user gets cl<nextuser>
 *   cl:u:<n 8 hex>         StoredUser        one registered user and its cleared index
 *   cl:r:<index 14 hex>    ChangelogRecord   one record (fixed width: keys sort by index)
 *
 * Appends are cheap: the index is taken synchronously (so records are numbered in
 * the order the MDT appends them) and queued; one writer drains the queue, many
 * records per store transaction, one transaction at a time, so the store always
 * holds a prefix of the numbered sequence. Readers see durable records only, and
 * "clear up to 0" means up to the newest durable record, never one still queued.
 */
import { z } from 'zod';
import { err } from '../common/errno.js';
import type { Logger } from '../common/log.js';
import { now } from '../common/time.js';
import { parseBody, zFid, zSafeUint } from '../common/validate.js';
import { Opc } from '../ptlrpc/opcodes.js';
import type { RequestContext, RequestHandler } from '../ptlrpc/types.js';
import { CL, type ChangelogInput, type ChangelogRecord, type ChangelogSink } from './changelog-types.js';
import type { MetadataStore } from './store/types.js';

/** Record type names as Lustre's changelog_type2str (index = type number). */
export const CHANGELOG_TYPE_NAMES = [
  'MARK', 'CREAT', 'MKDIR', 'HLINK', 'SLINK', 'MKNOD', 'UNLNK', 'RMDIR', 'RENME', 'RNMTO',
  'OPEN', 'CLOSE', 'LYOUT', 'TRUNC', 'SATTR', 'XATTR', 'HSM', 'MTIME', 'CTIME', 'ATIME',
  'MIGRT', 'FLRW', 'RESYNC', 'GXATR', 'NOPEN',
] as const;
export const CL_GXATR = 23;
export const CL_NOPEN = 24;
export const CL_LAST = CHANGELOG_TYPE_NAMES.length;
export const CHANGELOG_ALL_MASK = 2 ** CL_LAST - 1;
/** MARK is always recorded (Lustre's CHANGELOG_MINMASK) */
export const CHANGELOG_MIN_MASK = 1 << CL.MARK;
/** Lustre's CHANGELOG_DEFMASK: everything but the audit-only types */
export const CHANGELOG_DEFAULT_MASK = CHANGELOG_ALL_MASK & ~((1 << CL.OPEN) | (1 << CL.ATIME) | (1 << CL_GXATR) | (1 << CL_NOPEN));

export function changelogTypeName(type: number): string {
  return CHANGELOG_TYPE_NAMES[type] ?? `T${type}`;
}

/** "MARK CREAT ... " as mdd.*.changelog_mask reads (each name followed by a space). */
export function formatChangelogMask(mask: number): string {
  let s = '';
  for (let t = 0; t < CL_LAST; t++) if (mask & (1 << t)) s += `${CHANGELOG_TYPE_NAMES[t]} `;
  return s;
}

/**
 * A changelog_mask write as Lustre's cfs_str2mask reads it: names separated by spaces
 * or commas, each optionally prefixed by '+' (add) or '-' (remove); when the first
 * token has no prefix the mask is replaced rather than edited. ALL and DEFAULT name
 * the full and the default sets. MARK always stays in.
 */
export function parseChangelogMask(text: string, current: number): number {
  const tokens = text.split(/[\s,]+/).filter((t) => t.length > 0);
  if (tokens.length === 0) throw err('EINVAL', 'changelog_mask: empty mask', 'BAD_VALUE');
  let mask = /^[+-]/.test(tokens[0]!) ? current : 0;
  for (const tok of tokens) {
    const op = tok[0] === '+' || tok[0] === '-' ? tok[0] : '+';
    const name = (op === tok[0] ? tok.slice(1) : tok).toUpperCase();
    let bits: number;
    if (name === 'ALL') bits = CHANGELOG_ALL_MASK;
    else if (name === 'DEFAULT') bits = CHANGELOG_DEFAULT_MASK;
    else {
      const t = (CHANGELOG_TYPE_NAMES as readonly string[]).indexOf(name);
      if (t < 0) throw err('EINVAL', `changelog_mask: unknown record type '${tok}' (one of ${CHANGELOG_TYPE_NAMES.join(' ')}, ALL, DEFAULT)`, 'BAD_VALUE');
      bits = 1 << t;
    }
    mask = op === '+' ? mask | bits : mask & ~bits;
  }
  return (mask | CHANGELOG_MIN_MASK) & CHANGELOG_ALL_MASK;
}

/** "cl3" -> 3 */
export function parseChangelogUserId(id: string): number {
  const m = /^cl([1-9]\d{0,8})$/.exec(id);
  if (!m) throw err('EINVAL', `'${id}' is not a changelog user id (cl1, cl2, ...)`, 'BAD_CHANGELOG_USER');
  return Number(m[1]);
}

export interface ChangelogUser {
  id: string;
  /** the last record this user has cleared */
  endrec: number;
  /** seconds since the user registered or last cleared */
  idle: number;
}

interface StoredUser {
  n: number;
  endrec: number;
  /** ms since the epoch of registration or last clear */
  time: number;
}

const K = {
  index: 'cl:index',
  mask: 'cl:mask',
  nextUser: 'cl:nextuser',
  userPrefix: 'cl:u:',
  user: (n: number) => `cl:u:${n.toString(16).padStart(8, '0')}`,
  recPrefix: 'cl:r:',
  rec: (index: number) => `cl:r:${index.toString(16).padStart(14, '0')}`,
} as const;

/** records written per store transaction */
const APPEND_BATCH = 512;
/** records deleted per purge transaction */
const PURGE_BATCH = 1024;
/** most records one read answers */
export const CHANGELOG_READ_MAX = 1024;
/** a read reply must fit in one message header (64 KiB): later records wait for the next read */
export const CHANGELOG_READ_BUDGET = 40 * 1024;
/** fids, times, numbers and msgpack framing of one record, generously */
const RECORD_OVERHEAD = 192;

export function recordWireBytes(r: ChangelogRecord): number {
  let n = RECORD_OVERHEAD;
  for (const s of [r.name, r.sname, r.jobid, r.nid]) if (s) n += Buffer.byteLength(s);
  return n;
}

export interface ChangelogOptions {
  /** the MDT's name, e.g. testfs-MDT0000 (for logs and lctl) */
  mdtName: string;
  log: Logger;
}

export class Changelog implements ChangelogSink {
  readonly mdtName: string;
  private readonly log: Logger;
  /** index of the newest record numbered (durable or queued) */
  private index = 0;
  /** index of the newest durable record */
  private durable = 0;
  private maskBits = CHANGELOG_DEFAULT_MASK;
  private nextUser = 1;
  private readonly users = new Map<number, StoredUser>();
  private queue: ChangelogRecord[] = [];
  private waiters: Array<() => void> = [];
  private writing = false;
  private idle: Promise<void> = Promise.resolve();
  private markIdle: () => void = () => undefined;
  /** records up to here are known gone from the store */
  private purgedUpTo = 0;
  /** serialises user changes and purges (store transactions are serialisable, this keeps the in-memory view in step) */
  private admin: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly store: MetadataStore,
    opts: ChangelogOptions,
  ) {
    this.mdtName = opts.mdtName;
    this.log = opts.log;
  }

  async init(): Promise<void> {
    const [index, mask, nextUser, users] = await Promise.all([
      this.store.get<number>(K.index),
      this.store.get<number>(K.mask),
      this.store.get<number>(K.nextUser),
      this.scanAll<StoredUser>(K.userPrefix),
    ]);
    this.maskBits = typeof mask === 'number' ? mask : CHANGELOG_DEFAULT_MASK;
    this.nextUser = typeof nextUser === 'number' ? nextUser : 1;
    for (const [, u] of users) this.users.set(u.n, u);
    // cl:index is written with the records it covers; a user registered just before a crash
    // may hold an index whose records never reached the store: never number below it
    const top = Math.max(index ?? 0, ...[...this.users.values()].map((u) => u.endrec));
    this.index = top;
    this.durable = top;
    // a purge cut short by a crash left records behind: finish it
    await this.purge();
    if (this.users.size > 0) this.log.info({ mdt: this.mdtName, index: top, users: this.users.size }, 'changelog enabled');
  }

  /** Waits for queued records to be written; later appends are dropped. */
  async close(): Promise<void> {
    this.closed = true;
    await this.flushed();
    await this.admin.catch(() => undefined);
  }

  /** Resolves once every record appended so far is durable (or was lost to a store failure). */
  flushed(): Promise<void> {
    return this.writing || this.queue.length > 0 ? this.idle : Promise.resolve();
  }

  get mask(): number {
    return this.maskBits;
  }

  /** index of the newest durable record */
  get currentIndex(): number {
    return this.durable;
  }

  /** whether records are kept at all (some user is registered) */
  get enabled(): boolean {
    return this.users.size > 0;
  }

  append(rec: ChangelogInput): Promise<void> {
    if (this.closed || this.users.size === 0 || !(this.maskBits & (1 << rec.type))) return Promise.resolve();
    const full: ChangelogRecord = { ...stripUndefined(rec), index: ++this.index, time: now() };
    this.queue.push(full);
    const done = new Promise<void>((resolve) => this.waiters.push(resolve));
    if (!this.writing) void this.drain();
    return done;
  }

  private async drain(): Promise<void> {
    this.writing = true;
    this.idle = new Promise((resolve) => (this.markIdle = resolve));
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, APPEND_BATCH);
        const waiters = this.waiters.splice(0, batch.length);
        const top = batch[batch.length - 1]!.index;
        try {
          await this.store.transact(async (tx) => {
            for (const r of batch) tx.put(K.rec(r.index), r);
            tx.put(K.index, top);
          });
          this.durable = top;
        } catch (e) {
          // The operations these records describe are done: they must not fail for it.
          this.log.error({ mdt: this.mdtName, err: (e as Error).message, first: batch[0]!.index, last: top }, 'changelog records lost');
        }
        for (const w of waiters) w();
      }
    } finally {
      this.writing = false;
      this.markIdle();
    }
  }

  /** Runs user/purge changes one at a time. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.admin.then(fn, fn);
    this.admin = run.catch(() => undefined);
    return run;
  }

  async setMask(text: string): Promise<void> {
    const mask = parseChangelogMask(text, this.maskBits);
    await this.serial(async () => {
      await this.store.transact(async (tx) => tx.put(K.mask, mask));
      this.maskBits = mask;
    });
    this.log.info({ mdt: this.mdtName, mask: formatChangelogMask(mask).trim() }, 'changelog mask set');
  }

  /** Registers a new user; it sees records appended from now on. */
  register(): Promise<string> {
    return this.serial(async () => {
      const n = this.nextUser;
      // records already numbered are not this user's: start after them
      const user: StoredUser = { n, endrec: this.index, time: Date.now() };
      await this.store.transact(async (tx) => {
        tx.put(K.user(n), user);
        tx.put(K.nextUser, n + 1);
      });
      this.nextUser = n + 1;
      this.users.set(n, user);
      if (this.users.size === 1) this.purgedUpTo = user.endrec;
      this.log.info({ mdt: this.mdtName, user: `cl${n}`, endrec: user.endrec }, 'changelog user registered');
      return `cl${n}`;
    });
  }

  /** Removes a user, then purges what only it still held. */
  async deregister(id: string): Promise<void> {
    const n = parseChangelogUserId(id);
    await this.serial(async () => {
      if (!this.users.has(n)) throw err('ENOENT', `changelog user ${id} not found on ${this.mdtName}`, 'NO_CHANGELOG_USER');
      await this.store.transact(async (tx) => tx.del(K.user(n)));
      this.users.delete(n);
      this.log.info({ mdt: this.mdtName, user: id }, 'changelog user deregistered');
    });
    await this.purge();
  }

  /**
   * The user has processed every record up to `endrec` (0: the newest). Records go once
   * every user has cleared them. Clearing backwards is a no-op, as in Lustre.
   */
  async clear(id: string, endrec: number): Promise<void> {
    const n = parseChangelogUserId(id);
    await this.serial(async () => {
      const u = this.users.get(n);
      if (!u) throw err('ENOENT', `no changelog user ${id} on ${this.mdtName}`, 'NO_CHANGELOG_USER');
      const target = endrec === 0 ? this.durable : endrec;
      if (target > this.durable) throw err('EINVAL', `record out of range: ${endrec} (current index ${this.durable})`, 'CHANGELOG_RANGE');
      const next: StoredUser = { n, endrec: Math.max(u.endrec, target), time: Date.now() };
      await this.store.transact(async (tx) => tx.put(K.user(n), next));
      this.users.set(n, next);
    });
    await this.purge();
  }

  /** Records with index > `after`, oldest first, at most `limit` and what fits one reply. */
  async read(after: number, limit = CHANGELOG_READ_MAX): Promise<{ records: ChangelogRecord[]; current: number; eof: boolean }> {
    const current = this.durable;
    const want = Math.max(1, Math.min(limit, CHANGELOG_READ_MAX));
    const start = Math.max(after, this.purgedUpTo);
    const rows = start >= current ? [] : await this.store.scan<ChangelogRecord>(K.recPrefix, start > 0 ? K.rec(start) : undefined, want);
    const records: ChangelogRecord[] = [];
    let bytes = 0;
    for (const [, r] of rows) {
      if (r.index > current) break;
      bytes += recordWireBytes(r);
      if (bytes > CHANGELOG_READ_BUDGET && records.length > 0) break;
      records.push(r);
    }
    const last = records.length > 0 ? records[records.length - 1]!.index : start;
    return { records, current, eof: last >= current };
  }

  listUsers(): ChangelogUser[] {
    const t = Date.now();
    return [...this.users.values()]
      .sort((a, b) => a.n - b.n)
      .map((u) => ({ id: `cl${u.n}`, endrec: u.endrec, idle: Math.max(0, Math.floor((t - u.time) / 1000)) }));
  }

  /** mdd.*.changelog_users as Lustre prints it */
  formatUsers(): string {
    let s = `current index: ${this.durable}\n${'ID'.padEnd(5)} index (idle seconds)\n`;
    for (const u of this.listUsers()) s += `${`cl${u.id.slice(2).padEnd(3)}`} ${u.endrec} (${u.idle})\n`;
    return s;
  }

  private minCleared(): number {
    let min = Infinity;
    for (const u of this.users.values()) min = Math.min(min, u.endrec);
    return min;
  }

  /** Deletes the records every user has cleared (all of them when no user is left). */
  private purge(): Promise<void> {
    return this.serial(async () => {
      // records still queued when the last user went must not land after the purge
      if (this.users.size === 0) await this.flushed();
      const upTo = this.users.size === 0 ? this.index : this.minCleared();
      if (upTo <= this.purgedUpTo && this.purgedUpTo > 0) return;
      for (let round = 0; ; round++) {
        const rows = await this.store.scan<ChangelogRecord>(K.recPrefix, undefined, PURGE_BATCH);
        const doomed = rows.filter(([, r]) => r.index <= upTo).map(([k]) => k);
        if (doomed.length > 0) await this.store.transact(async (tx) => doomed.forEach((k) => tx.del(k)));
        if (doomed.length < PURGE_BATCH) break;
        if (round % 64 === 63) this.log.debug({ mdt: this.mdtName, upTo, rounds: round + 1 }, 'changelog purge in progress');
      }
      this.purgedUpTo = Math.max(this.purgedUpTo, upTo);
    });
  }

  private async scanAll<T>(prefix: string): Promise<Array<[string, T]>> {
    const out: Array<[string, T]> = [];
    let after: string | undefined;
    for (;;) {
      const rows = await this.store.scan<T>(prefix, after, 1000);
      out.push(...rows);
      if (rows.length < 1000) return out;
      after = rows[rows.length - 1]![0];
    }
  }

  /** Registers the LLOG_CHANGELOG handler in an MDT's handler map. */
  registerHandlers(handlers: Map<number, RequestHandler>): void {
    handlers.set(Opc.LLOG_CHANGELOG, (ctx) => this.handle(ctx));
  }

  private async handle(ctx: RequestContext): Promise<{ body: ChangelogReply }> {
    const b = parseBody(ChangelogRequest, ctx.body);
    if (b.op !== 'users' && ctx.uid !== 0) {
      throw err('EPERM', `changelog ${b.op} on ${this.mdtName} is reserved to root`, 'CHANGELOG_PERM');
    }
    switch (b.op) {
      case 'register':
        return { body: { id: await this.register() } };
      case 'deregister':
        await this.deregister(b.id);
        return { body: {} };
      case 'read':
        return { body: await this.read(b.after, b.limit) };
      case 'clear':
        await this.clear(b.id, b.endrec);
        return { body: {} };
      case 'users':
        return { body: { current: this.durable, users: this.listUsers().map((u) => ({ id: u.id, endrec: u.endrec, idle: u.idle })) } };
    }
  }
}

function stripUndefined<T extends object>(o: T): T {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return out as T;
}

const zUserId = z.string().regex(/^cl[1-9]\d{0,8}$/, 'a changelog user id (cl1, cl2, ...)');

/**
 * LLOG_CHANGELOG bodies (Lustre reads changelogs through llog handles; one opcode with
 * an `op` here). Everything but `users` is root only.
 *   register                 -> { id: 'cl1' }
 *   deregister { id }        -> {}
 *   read { after, limit? }   -> { records, current, eof }   records with index > after
 *   clear { id, endrec }     -> {}                          endrec 0: the newest record
 *   users                    -> { current, users: [{ id, endrec, idle }] }
 */
export const ChangelogRequest = z.discriminatedUnion('op', [
  z.object({ op: z.literal('register') }),
  z.object({ op: z.literal('deregister'), id: zUserId }),
  z.object({ op: z.literal('read'), after: zSafeUint, limit: z.number().int().min(1).max(CHANGELOG_READ_MAX).optional() }),
  z.object({ op: z.literal('clear'), id: zUserId, endrec: zSafeUint }),
  z.object({ op: z.literal('users') }),
]);
export type ChangelogRequest = z.infer<typeof ChangelogRequest>;

export type ChangelogReply =
  | { id: string }
  | Record<string, never>
  | ChangelogReadReply
  | ChangelogUsersReply;

export interface ChangelogReadReply {
  records: ChangelogRecord[];
  /** the newest durable record when the read was served */
  current: number;
  /** nothing after the last record returned (yet) */
  eof: boolean;
}

export interface ChangelogUsersReply {
  current: number;
  users: Array<{ id: string; endrec: number; idle: number }>;
}

/** Validates a record read off the wire (consumers treat replies as untrusted too). */
export const zChangelogRecord = z.object({
  index: zSafeUint,
  type: z.number().int().min(0).max(255),
  time: z.object({ sec: z.number().int(), nsec: z.number().int().min(0).max(999_999_999) }),
  tfid: zFid,
  pfid: zFid.optional(),
  name: z.string().optional(),
  flags: z.number().int().optional(),
  uid: z.number().int().optional(),
  gid: z.number().int().optional(),
  sfid: zFid.optional(),
  spfid: zFid.optional(),
  sname: z.string().optional(),
  jobid: z.string().optional(),
  nid: z.string().optional(),
});
