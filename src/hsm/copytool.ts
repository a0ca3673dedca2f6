/**
 * The HSM copytool (Lustre's lhsmtool_posix, with an S3 or POSIX backend): a client that
 * registers with the MDT's coordinator as the agent for some archive ids, receives action
 * lists on its MDC connection, and moves file data between the OSTs and the archive with a
 * few workers in parallel, reporting begin / progress / end for each action.
 *
 * - ARCHIVE reads the file (4 MiB reads) into the backend between two data versions; when
 *   they differ the file changed meanwhile and the action ends with EBUSY (no retry: the
 *   file is DIRTY again and gets archived by a later request).
 * - RESTORE streams the copy into the objects the coordinator allocated for it, verifying
 *   the checksum recorded at archive time, then gives them the file's size and times.
 * - REMOVE deletes the copy. CANCEL aborts the running action with that cookie, which then
 *   ends with ECANCELED.
 * A lost MDT connection that comes back to a new export means the coordinator forgot this
 * agent: it registers again.
 */
import type { Logger } from '../common/log.js';
import { silentLogger } from '../common/log.js';
import { Errno, err, StriaError, toStriaError } from '../common/errno.js';
import { fidToString, type Fid } from '../common/fid.js';
import type { StriaClient } from '../client/client.js';
import type { HsmActionItem, HsmActionList, HsmProgressBody } from './protocol.js';
import { HS } from './flags.js';
import { archiveKey } from './archive-key.js';
import { DEFAULT_CHUNK_SIZE, type ArchiveBackend } from './archive-backend.js';

export interface CopytoolOptions {
  /** a mounted client of its own: the copytool registers through its MDC export, and unmounts it on stop */
  client: StriaClient;
  /** archive ids served (empty: all) */
  archiveIds: number[];
  /** closed on stop */
  backend: ArchiveBackend;
  /** actions run at once (default 4) */
  workers?: number;
  /** bytes per read from the OSTs and per write into restored objects (default 4 MiB) */
  chunkSize?: number;
  /** time between two progress reports of a running action (default 1 s) */
  progressIntervalMs?: number;
  /** how long stop() lets running actions finish before aborting them (default 5 s) */
  stopGraceMs?: number;
  log?: Logger;
}

export interface CopytoolStats {
  /** actions that ended, by kind and outcome */
  done: Record<'ARCHIVE' | 'RESTORE' | 'REMOVE', { ok: number; failed: number }>;
  canceled: number;
  /** bytes moved by actions that succeeded */
  bytes: number;
  queued: number;
  running: number;
}

interface Task {
  item: HsmActionItem;
  archiveId: number;
  abort: AbortController;
  running: boolean;
  bytes: number;
  reporting: Promise<void> | undefined;
}

type Outcome = Pick<HsmProgressBody, 'errval' | 'retry' | 'archived'>;

const DEFAULT_WORKERS = 4;
const MAX_WORKERS = 256;
/** after the grace period, how long aborted actions get to report their end */
const ABORT_GRACE_MS = 2_000;
const REREGISTER_RETRY_MS = 5_000;
const MIB = 1 << 20;

/** why an action's AbortController fired */
const STOP = 'stop';
const CANCEL = 'cancel';
const LOST = 'lost';
/** progress answers meaning the coordinator no longer runs this action here */
const LOST_CODES = new Set(['HSM_NO_ACTION', 'HSM_NOT_STARTED', 'HSM_NOT_YOUR_ACTION', 'HSM_WRONG_FID']);

export class Copytool {
  private readonly client: StriaClient;
  private readonly backend: ArchiveBackend;
  private readonly log: Logger;
  private readonly workers: number;
  private readonly chunkSize: number;
  private readonly progressIntervalMs: number;
  private readonly stopGraceMs: number;
  readonly archiveIds: readonly number[];
  /** cookie -> queued or running action */
  private readonly tasks = new Map<number, Task>();
  private readonly queue: Task[] = [];
  private running = 0;
  private idleWaiters: Array<() => void> = [];
  private stopping: Promise<void> | undefined;
  private reregisterTimer: NodeJS.Timeout | undefined;
  private readonly stats: CopytoolStats = {
    done: { ARCHIVE: { ok: 0, failed: 0 }, RESTORE: { ok: 0, failed: 0 }, REMOVE: { ok: 0, failed: 0 } },
    canceled: 0,
    bytes: 0,
    queued: 0,
    running: 0,
  };

  private constructor(opts: CopytoolOptions) {
    this.client = opts.client;
    this.backend = opts.backend;
    this.log = opts.log ?? silentLogger();
    this.archiveIds = [...opts.archiveIds];
    this.workers = opts.workers ?? DEFAULT_WORKERS;
    this.chunkSize = opts.chunkSize ?? DEFAULT_CHUNK_SIZE;
    this.progressIntervalMs = opts.progressIntervalMs ?? 1000;
    this.stopGraceMs = opts.stopGraceMs ?? 5_000;
    if (!Number.isInteger(this.workers) || this.workers < 1 || this.workers > MAX_WORKERS) {
      throw err('EINVAL', `workers ${this.workers}: must be 1..${MAX_WORKERS}`, 'BAD_WORKERS');
    }
    if (!Number.isSafeInteger(this.chunkSize) || this.chunkSize < 4096 || this.chunkSize > 64 * MIB) {
      throw err('EINVAL', `chunk size ${this.chunkSize}: must be 4 KiB..64 MiB`, 'BAD_CHUNK_SIZE');
    }
  }

  /** Listens for action lists, then registers with the coordinator. */
  static async start(opts: CopytoolOptions): Promise<Copytool> {
    const ct = new Copytool(opts);
    ct.client.onHsmActions((hal) => ct.receive(hal));
    // Not from inside the event: the import announces the new export before it is ready
    // for requests (a request sent then makes it connect once more and wedges it).
    ct.client.onMdtReconnect((evicted) => setImmediate(() => ct.reregister(evicted)));
    await ct.client.hsm.register(ct.archiveIds.slice());
    return ct;
  }

  get statistics(): CopytoolStats {
    return { ...this.stats, done: structuredClone(this.stats.done), queued: this.queue.length, running: this.running };
  }

  /** The push handler: queues the items and answers at once. */
  private receive(hal: HsmActionList): void {
    if (!hal || !Array.isArray(hal.items)) throw err('EINVAL', 'malformed action list', 'BAD_HAL');
    if (this.stopping) throw err('ESHUTDOWN', 'copytool is stopping', 'CT_STOPPING');
    for (const item of hal.items) {
      if (item.action === 'CANCEL') {
        this.cancel(item);
        continue;
      }
      if (item.action !== 'ARCHIVE' && item.action !== 'RESTORE' && item.action !== 'REMOVE') {
        this.log.warn({ action: item.action, cookie: item.cookie }, 'hsm action of unknown kind ignored');
        continue;
      }
      if (this.tasks.has(item.cookie)) {
        // sent again after a reconnect while we still work on it: the running copy reports
        this.log.debug({ cookie: item.cookie, fid: fidToString(item.fid) }, 'hsm action already queued or running');
        continue;
      }
      const task: Task = { item, archiveId: hal.archiveId, abort: new AbortController(), running: false, bytes: 0, reporting: undefined };
      this.tasks.set(item.cookie, task);
      this.queue.push(task);
    }
    this.pump();
  }

  private cancel(item: HsmActionItem): void {
    const task = this.tasks.get(item.cookie);
    if (!task) {
      this.log.debug({ cookie: item.cookie, fid: fidToString(item.fid) }, 'cancel of an action not here');
      return;
    }
    this.log.info({ cookie: item.cookie, fid: fidToString(task.item.fid), action: task.item.action }, 'hsm action cancel');
    if (task.running) {
      task.abort.abort(CANCEL);
      return;
    }
    this.queue.splice(this.queue.indexOf(task), 1);
    this.tasks.delete(item.cookie);
    this.stats.canceled++;
    void this.report(task, { phase: 'end', errval: Errno.ECANCELED });
  }

  private pump(): void {
    while (this.running < this.workers && this.queue.length > 0 && !this.stopping) {
      const task = this.queue.shift()!;
      task.running = true;
      this.running++;
      void this.run(task).finally(() => {
        this.running--;
        this.tasks.delete(task.item.cookie);
        if (this.running === 0 && this.queue.length === 0) for (const w of this.idleWaiters.splice(0)) w();
        this.pump();
      });
    }
  }

  private async run(task: Task): Promise<void> {
    const { item } = task;
    const fid = fidToString(item.fid);
    const t0 = performance.now();
    this.log.info({ action: item.action, fid, cookie: item.cookie, archiveId: task.archiveId }, 'hsm action start');
    try {
      await this.client.hsm.progress({ cookie: item.cookie, fid: item.fid, phase: 'begin' });
    } catch (e) {
      // the coordinator no longer has this action for us (canceled, timed out, given to another agent)
      const se = toStriaError(e);
      this.log.warn({ action: item.action, fid, cookie: item.cookie, err: se.message, code: se.code }, 'hsm action refused at begin: dropped');
      return;
    }
    let outcome: Outcome;
    let failure: StriaError | undefined;
    // periodic, not per chunk: a transfer stalled in the backend still tells the coordinator it is alive
    const ticker = setInterval(() => this.progressTick(task), this.progressIntervalMs);
    ticker.unref();
    try {
      outcome = await this.perform(task);
    } catch (e) {
      failure = this.failureOf(task, e);
      outcome = { errval: failure.errno, ...(task.abort.signal.reason === STOP ? { retry: true } : {}) };
    } finally {
      clearInterval(ticker);
    }
    await task.reporting;
    await this.report(task, { phase: 'end', bytes: task.bytes, ...outcome });
    const seconds = (performance.now() - t0) / 1000;
    const fields = {
      action: item.action, fid, cookie: item.cookie, errval: outcome.errval ?? 0, bytes: task.bytes,
      seconds: round(seconds, 3), mibps: seconds > 0 ? round(task.bytes / MIB / seconds, 1) : 0,
      ...(failure ? { err: failure.message, code: failure.code } : {}),
      ...(outcome.retry ? { retry: true } : {}),
    };
    const kind = item.action as 'ARCHIVE' | 'RESTORE' | 'REMOVE';
    if (!failure) {
      this.stats.done[kind].ok++;
      this.stats.bytes += task.bytes;
      this.log.info(fields, 'hsm action end');
    } else if (failure.errno === Errno.ECANCELED) {
      this.stats.canceled++;
      this.log.info(fields, 'hsm action end');
    } else {
      this.stats.done[kind].failed++;
      this.log.warn(fields, 'hsm action end');
    }
  }

  private failureOf(task: Task, e: unknown): StriaError {
    if (task.abort.signal.aborted) {
      const why = { [STOP]: 'the copytool is stopping', [CANCEL]: 'canceled by request', [LOST]: 'the coordinator no longer runs it here' }[String(task.abort.signal.reason)];
      return err('ECANCELED', why ?? 'aborted', 'CANCELED');
    }
    if (e instanceof StriaError) return e;
    const se = toStriaError(e);
    // anything that is not one of ours (SDK, network) fails the action as an I/O error
    return se.errno > 0 ? se : err('EIO', se.message, 'COPYTOOL_ERROR');
  }

  private perform(task: Task): Promise<Outcome> {
    switch (task.item.action) {
      case 'ARCHIVE':
        return this.archive(task);
      case 'RESTORE':
        return this.restore(task);
      case 'REMOVE':
        return this.remove(task);
      default:
        throw err('EINVAL', `unexpected action ${task.item.action}`, 'BAD_ACTION');
    }
  }

  private async archive(task: Task): Promise<Outcome> {
    const fid = task.item.fid;
    const signal = task.abort.signal;
    const attr = await this.client.getattr(fid);
    if (attr.type !== 'reg') throw err('EINVAL', `${fidToString(fid)} is not a regular file`, 'NOT_REGULAR');
    if ((attr.hsm?.flags ?? 0) & HS.RELEASED || attr.layout?.pattern === 'released') {
      throw err('ENODATA', `${fidToString(fid)} is released: its data is only in the archive`, 'RELEASED');
    }
    const v1 = await this.client.dataVersionOf(attr);
    const size = attr.size;
    let checksum: string;
    try {
      const f = await this.client.open(fid, 0);
      try {
        ({ checksum } = await this.backend.put(archiveKey(fid), this.readFile(task, f, size), size, { signal }));
      } finally {
        await this.client.close(f).catch((e: unknown) => this.log.debug({ fid: fidToString(fid), err: toStriaError(e).message }, 'close after archive failed'));
      }
    } catch (e) {
      // a short read or a size mismatch usually means the file changed: say so
      if (!signal.aborted && (await this.changed(fid, v1))) throw fileChanged(fid);
      throw e;
    }
    if (await this.changed(fid, v1)) throw fileChanged(fid);
    return { archived: { dataVersion: v1, size, checksum } };
  }

  private async changed(fid: Fid, v1: string): Promise<boolean> {
    try {
      return (await this.client.dataVersion(fid)) !== v1;
    } catch {
      return true;
    }
  }

  private async *readFile(task: Task, f: Awaited<ReturnType<StriaClient['open']>>, size: number): AsyncGenerator<Buffer> {
    for (let off = 0; off < size; ) {
      if (task.abort.signal.aborted) return;
      const want = Math.min(this.chunkSize, size - off);
      const buf = await this.client.read(f, off, want);
      if (buf.length === 0) return;
      off += buf.length;
      task.bytes = off;
      yield buf;
      if (buf.length < want) return;
    }
  }

  private async restore(task: Task): Promise<Outcome> {
    const { item } = task;
    const target = item.restore;
    if (!target || target.layout.pattern !== 'raid0') throw err('EINVAL', `RESTORE of ${fidToString(item.fid)} without objects to restore into`, 'NO_RESTORE_LAYOUT');
    const got = await this.backend.get(
      archiveKey(item.fid),
      async (chunk, offset) => {
        if (task.abort.signal.aborted) throw err('ECANCELED', 'canceled', 'CANCELED');
        await this.client.writeObjects(item.fid, target.layout, offset, chunk);
        task.bytes = offset + chunk.length;
      },
      { expectedChecksum: target.checksum, signal: task.abort.signal, chunkSize: this.chunkSize },
    );
    if (got.size !== target.size) {
      throw err('EIO', `archive copy of ${fidToString(item.fid)} has ${got.size} bytes, the file had ${target.size}`, 'SIZE_MISMATCH');
    }
    await this.client.finishObjects(item.fid, target.layout, { size: target.size, atime: target.atime, mtime: target.mtime });
    task.bytes = got.size;
    // The restored objects have a data version of their own: the archive copy matches it now,
    // so the file can be released again without a new archive.
    const dataVersion = await this.client.dataVersionOf({ fid: item.fid, type: 'reg', layout: target.layout });
    return { archived: { dataVersion, size: got.size, checksum: got.checksum } };
  }

  private async remove(task: Task): Promise<Outcome> {
    await this.backend.remove(archiveKey(task.item.fid));
    return {};
  }

  /** One progress report with the bytes moved so far, unless the previous one is still in flight. */
  private progressTick(task: Task): void {
    if (task.reporting || task.abort.signal.aborted) return;
    task.reporting = this.report(task, { phase: 'progress', bytes: task.bytes }).finally(() => {
      task.reporting = undefined;
    });
  }

  private async report(task: Task, body: Omit<HsmProgressBody, 'cookie' | 'fid'>): Promise<void> {
    try {
      await this.client.hsm.progress({ cookie: task.item.cookie, fid: task.item.fid, ...body });
    } catch (e) {
      const se = toStriaError(e);
      this.log.warn({ cookie: task.item.cookie, fid: fidToString(task.item.fid), phase: body.phase, err: se.message, code: se.code }, 'hsm progress report failed');
      // requeued to another agent, canceled or timed out meanwhile: stop working on it
      if (body.phase === 'progress' && LOST_CODES.has(se.code)) task.abort.abort(LOST);
    }
  }

  /** A new MDT export knows nothing of this agent. */
  private reregister(evicted: boolean): void {
    if (this.stopping) return;
    clearTimeout(this.reregisterTimer);
    this.client.hsm.register(this.archiveIds.slice()).then(
      () => this.log.info({ archiveIds: this.archiveIds, evicted }, 'copytool registered again after reconnect'),
      (e: unknown) => {
        const se = toStriaError(e);
        this.log.warn({ err: se.message, code: se.code }, 'copytool registration after reconnect failed: retrying');
        if (this.stopping) return;
        this.reregisterTimer = setTimeout(() => this.reregister(evicted), REREGISTER_RETRY_MS);
        this.reregisterTimer.unref();
      },
    );
  }

  private waitIdle(ms: number): Promise<boolean> {
    if (this.running === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.idleWaiters = this.idleWaiters.filter((w) => w !== done);
        resolve(false);
      }, ms);
      this.idleWaiters.push(done);
    });
  }

  /**
   * Stops taking work: queued actions go back to the coordinator (end, retry), running ones
   * get `stopGraceMs` to finish, then are aborted and handed back the same way; then the
   * copytool unregisters, unmounts its client and closes the backend.
   */
  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    clearTimeout(this.reregisterTimer);
    const queued = this.queue.splice(0);
    for (const task of queued) this.tasks.delete(task.item.cookie);
    await Promise.all(queued.map((task) => this.report(task, { phase: 'end', errval: Errno.ECANCELED, retry: true })));
    if (!(await this.waitIdle(this.stopGraceMs))) {
      const running = [...this.tasks.values()].filter((t) => t.running);
      this.log.info({ actions: running.map((t) => t.item.cookie) }, 'copytool stopping: aborting running actions');
      for (const t of running) t.abort.abort(STOP);
      if (!(await this.waitIdle(ABORT_GRACE_MS))) this.log.warn({ running: this.running }, 'copytool stopping with actions still running');
    }
    await this.client.hsm.unregister().catch((e: unknown) => this.log.debug({ err: toStriaError(e).message }, 'unregister failed'));
    await this.client.unmount().catch(() => undefined);
    await this.backend.close().catch(() => undefined);
  }
}

function fileChanged(fid: Fid): StriaError {
  return err('EBUSY', `${fidToString(fid)} changed during the archive`, 'FILE_CHANGED');
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
