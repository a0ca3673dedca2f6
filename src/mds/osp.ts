/**
 * The MDS's proxy for one OST (Lustre's OSP): keeps a pool of precreated
 * objects so a file create never waits on an OST round trip, tracks the OST's
 * free space, and destroys objects of deleted files.
 */
import type { Logger } from '../common/log.js';
import { err, toStriaError } from '../common/errno.js';
import { Opc } from '../ptlrpc/opcodes.js';
import type { Import } from '../ptlrpc/import.js';

export interface OspPersistence {
  /** highest oid that may have been handed out; persisted before any oid above the old mark is used */
  reserveUpTo(ostIdx: number, seq: number, oid: number): Promise<void>;
}

const CREATE_COUNT_MIN = 32;
const CREATE_COUNT_MAX = 10000;
/** oids are reserved durably in chunks so most creates need no extra write */
const RESERVE_CHUNK = 64;
const STATFS_MAX_AGE_MS = 2000;

export class OstProxy {
  private next = 0;
  private last = -1;
  private reservedUpTo: number;
  private createCount = CREATE_COUNT_MIN;
  private refilling: Promise<void> | undefined;
  private ready = false;
  private statfsAt = 0;
  private freeBytes = Number.POSITIVE_INFINITY;
  private readonly waiters: Array<() => void> = [];
  private closed = false;
  private reserving: Promise<void> | undefined;

  constructor(
    readonly index: number,
    readonly seq: number,
    readonly imp: Import,
    lastUsed: number,
    private readonly persist: OspPersistence,
    private readonly log: Logger,
  ) {
    this.reservedUpTo = lastUsed;
  }

  get active(): boolean {
    return this.ready && this.imp.state === 'FULL';
  }

  get available(): number {
    return Math.max(0, this.last - this.next + 1);
  }

  /** Out of space: fewer than 64 MiB free. */
  get full(): boolean {
    return this.freeBytes < 64 * 1024 * 1024;
  }

  /** Connects, removes orphans above the durable mark, precreates the first batch. */
  async start(): Promise<void> {
    await this.imp.connect();
    const reply = await this.imp.request(Opc.OST_CREATE, {
      seq: this.seq,
      count: this.createCount,
      deleteOrphansAbove: this.reservedUpTo,
    });
    this.accept(reply.body);
    this.ready = true;
    await this.refreshStatfs(true).catch(() => undefined);
    this.log.info({ ost: this.index, seq: this.seq, next: this.next, last: this.last }, 'OST precreate pool ready');
  }

  /** Takes one precreated oid, or undefined when the pool is empty right now. */
  async take(): Promise<number | undefined> {
    if (this.available === 0) {
      this.refill();
      return undefined;
    }
    const oid = this.next++;
    if (oid > this.reservedUpTo) {
      const mark = Math.min(this.last, oid + RESERVE_CHUNK - 1);
      this.reservedUpTo = mark;
      this.reserving = this.persist.reserveUpTo(this.index, this.seq, mark);
    }
    // Every taker waits for the mark covering its oid to be durable.
    if (this.reserving) await this.reserving;
    if (this.available < this.createCount / 2) this.refill();
    return oid;
  }

  /** Waits until the pool has objects or `ms` pass. */
  async waitForObjects(ms: number): Promise<boolean> {
    if (this.available > 0) return true;
    this.refill();
    return new Promise<boolean>((resolve) => {
      const t = setTimeout(() => {
        const i = this.waiters.indexOf(wake);
        if (i >= 0) this.waiters.splice(i, 1);
        resolve(this.available > 0);
      }, ms);
      const wake = () => {
        clearTimeout(t);
        resolve(this.available > 0);
      };
      this.waiters.push(wake);
    });
  }

  async refreshStatfs(force = false): Promise<void> {
    if (!force && Date.now() - this.statfsAt < STATFS_MAX_AGE_MS) return;
    this.statfsAt = Date.now();
    const r = await this.imp.request(Opc.OST_STATFS, {}, { timeoutMs: 5000 });
    const s = r.body as { bsize: number; bavail: number };
    this.freeBytes = s.bsize * s.bavail;
  }

  /** Best effort: a failure leaves an orphan object, logged. */
  async destroy(oid: number): Promise<void> {
    try {
      await this.imp.request(Opc.OST_DESTROY, { seq: this.seq, oid });
    } catch (e) {
      const se = toStriaError(e);
      if (se.code !== 'NO_SUCH_OBJECT') this.log.warn({ ost: this.index, oid, code: se.code, err: se.message }, 'object destroy failed');
    }
  }

  close(): void {
    this.closed = true;
    for (const w of this.waiters.splice(0)) w();
  }

  private refill(): void {
    if (this.refilling || this.closed || !this.ready) return;
    this.refilling = (async () => {
      try {
        const reply = await this.imp.request(Opc.OST_CREATE, { seq: this.seq, count: this.createCount });
        this.accept(reply.body);
        // Busy OSTs get bigger batches, like Lustre's adaptive create_count.
        this.createCount = Math.min(CREATE_COUNT_MAX, this.createCount * 2);
      } catch (e) {
        this.log.warn({ ost: this.index, err: toStriaError(e).message }, 'precreate failed');
      } finally {
        this.refilling = undefined;
        for (const w of this.waiters.splice(0)) w();
      }
    })();
  }

  private accept(body: unknown): void {
    const b = body as { seq: number; first: number; last: number };
    if (b.seq !== this.seq || !Number.isInteger(b.first) || !Number.isInteger(b.last) || b.last < b.first) {
      throw err('EPROTO', `OST${this.index} answered a precreate with an invalid range`, 'BAD_PRECREATE');
    }
    if (this.available === 0 || b.first !== this.last + 1) this.next = b.first;
    this.last = b.last;
  }
}
