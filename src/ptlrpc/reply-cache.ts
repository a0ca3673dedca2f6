/**
 * Per-export memory of executed requests, keyed by xid, so a resent request is answered
 * with the saved reply instead of running twice (Lustre's reply reconstruction).
 */
import type { HandlerOutcome } from './message.js';
import { bulkLength, normalizeBulk, validTransno } from './message.js';

/** Replies with more bulk than this are kept only when they carry a transno (modifying requests). */
export const MAX_SAVED_UNMODIFYING_BULK = 64 * 1024;

export class ReplyCache {
  private readonly capacity: number;
  private readonly saved = new Map<number, HandlerOutcome>();
  private readonly running = new Map<number, Promise<void>>();

  constructor(capacity: number) {
    this.capacity = Math.max(0, capacity);
  }

  get size(): number {
    return this.saved.size;
  }

  /** Marks xid as executing; call the returned function once its outcome is saved (or not). */
  begin(xid: number): () => void {
    let done!: () => void;
    const p = new Promise<void>((resolve) => (done = resolve));
    this.running.set(xid, p);
    return () => {
      if (this.running.get(xid) === p) this.running.delete(xid);
      done();
    };
  }

  /** The saved outcome of xid, waiting first for an execution still in progress. */
  async lookup(xid: number): Promise<HandlerOutcome | undefined> {
    for (let i = 0; i < 16; i++) {
      const running = this.running.get(xid);
      if (!running) break;
      await running;
    }
    const hit = this.saved.get(xid);
    if (hit) {
      this.saved.delete(xid);
      this.saved.set(xid, hit);
    }
    return hit;
  }

  /**
   * Saves an outcome; returns whether it was kept. A large reply bulk of a request that
   * changed nothing (no transno) is not kept: running such a request again is harmless and
   * cheaper than holding the data.
   */
  save(xid: number, outcome: HandlerOutcome): boolean {
    if (this.capacity === 0) return false;
    if (outcome.ok) {
      const bulk = normalizeBulk(outcome.payload?.bulk);
      if (bulkLength(bulk) > MAX_SAVED_UNMODIFYING_BULK && validTransno(outcome.payload?.transno) === undefined) return false;
    }
    this.saved.delete(xid);
    this.saved.set(xid, outcome);
    while (this.saved.size > this.capacity) {
      const oldest = this.saved.keys().next().value as number;
      this.saved.delete(oldest);
    }
    return true;
  }
}
