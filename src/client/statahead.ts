/**
 * Statahead for numbered names, as Lustre 2.16's file-name-pattern statahead does for
 * mdtest and for datasets of numbered samples: once three lookups in one directory found
 * names that differ only in a number advancing by a constant stride (e000001, e000002,
 * e000003; img_0050.jpg, img_0100.jpg, img_0150.jpg), the next names of the run are
 * looked up ahead, a few at a time, through the ordinary lookup. What they find stays
 * under the locks that lookup takes, so the application's own lookups of those names are
 * answered by the client, and stay coherent like any other cached lookup.
 *
 * A name found missing ends the run: nothing past it is asked for. A lookup that finds
 * nothing (a create's lookup) forgets the directory's run, so a series of creates never
 * triggers lookups of names that do not exist yet.
 */
import type { Fid } from '../common/fid.js';
import { fidKey } from '../common/fid.js';

/** Lustre's llite.*.statahead_max: names looked up ahead of the application at most */
export const DEFAULT_STATAHEAD_MAX = 32;
export const STATAHEAD_MAX_LIMIT = 8192;
/** lookups ahead in flight at once, over all directories */
export const STATAHEAD_PARALLEL = 8;
/** directories whose runs are followed at once (oldest forgotten first) */
const MAX_STREAMS = 64;
/** names fetched ahead remembered for the hit count */
const MAX_FETCHED = 16384;
/** the largest number a name may carry (beyond it, arithmetic on it would not be exact) */
const MAX_NUMBER = Number.MAX_SAFE_INTEGER;

export interface NumberedName {
  prefix: string;
  /** the digits as written */
  digits: string;
  value: number;
  suffix: string;
}

/** The last run of digits in a name and what surrounds it; undefined for a name with none. */
export function parseNumberedName(name: string): NumberedName | undefined {
  const m = /^(.*?)(\d{1,15})(\D*)$/.exec(name);
  if (!m) return undefined;
  const value = Number(m[2]);
  if (!Number.isSafeInteger(value)) return undefined;
  return { prefix: m[1]!, digits: m[2]!, value, suffix: m[3]! };
}

/** The digits of `value` written as `like` writes its number: zero-padded to its width when it has leading zeros. */
export function formatLike(value: number, width: number): string {
  const s = String(value);
  return s.length < width ? s.padStart(width, '0') : s;
}

/** Width of zero-padding of a number as written (0: no padding). */
function paddedWidth(digits: string): number {
  return digits.length > 1 && digits.startsWith('0') ? digits.length : 0;
}

interface Run {
  prefix: string;
  suffix: string;
  /** zero-padded width; 0: not padded */
  width: number;
  last: number;
  stride: number;
  /** consecutive lookups at this stride */
  hits: number;
  /** the next number not yet asked for ahead */
  next: number | undefined;
  /** a number found missing: the run ends there */
  end: number | undefined;
}

export interface StataheadCounters {
  /** runs recognised (a window started) */
  runs: number;
  /** names looked up ahead */
  fetched: number;
  /** names looked up ahead that did not exist */
  missing: number;
  /** application lookups of a name looked up ahead */
  hits: number;
  /** application lookups that waited for the lookup ahead of the same name */
  waits: number;
}

/** Looks one name up ahead; resolves true when it exists, false when it does not. */
export type LookAhead = (parent: Fid, name: string) => Promise<boolean>;
/** Whether a lookup of the name would be answered from the client's caches already. */
export type Cached = (parent: Fid, name: string) => boolean;

export class Statahead {
  /** llite.*.statahead_max; 0 turns statahead off */
  max = DEFAULT_STATAHEAD_MAX;
  readonly counters: StataheadCounters = { runs: 0, fetched: 0, missing: 0, hits: 0, waits: 0 };
  private readonly runs = new Map<string, Run>();
  private readonly inflight = new Map<string, Promise<void>>();
  private readonly fetched = new Set<string>();
  private readonly queue: Array<{ parent: Fid; name: string; run: Run; value: number }> = [];
  private running = 0;
  private closed = false;

  constructor(
    private readonly lookAhead: LookAhead,
    private readonly cached: Cached,
    private readonly onError: (name: string, e: unknown) => void = () => undefined,
  ) {}

  /** The lookup ahead of this name, while it runs: the application's lookup waits for it and then finds it cached. */
  pending(parent: Fid, name: string): Promise<void> | undefined {
    const p = this.inflight.get(key(parent, name));
    if (p) this.counters.waits++;
    return p;
  }

  /** The application looked `name` up in `parent`, and found it or not. */
  observe(parent: Fid, name: string, found: boolean): void {
    const pk = fidKey(parent);
    if (!found) {
      this.runs.delete(pk);
      return;
    }
    const k = key(parent, name);
    if (this.fetched.delete(k)) this.counters.hits++;
    if (this.max === 0 || this.closed) return;
    const n = parseNumberedName(name);
    if (!n) return;
    let run = this.runs.get(pk);
    if (run && run.prefix === n.prefix && run.suffix === n.suffix && formatLike(n.value, run.width) === n.digits) {
      const stride = n.value - run.last;
      if (stride !== 0 && stride === run.stride) {
        run.hits++;
      } else {
        run.stride = stride;
        run.hits = 1;
        run.next = undefined;
        run.end = undefined;
      }
      run.last = n.value;
      // most recently used last, so the oldest run is the first to go
      this.runs.delete(pk);
      this.runs.set(pk, run);
    } else {
      run = { prefix: n.prefix, suffix: n.suffix, width: paddedWidth(n.digits), last: n.value, stride: 0, hits: 0, next: undefined, end: undefined };
      this.runs.delete(pk);
      this.runs.set(pk, run);
      while (this.runs.size > MAX_STREAMS) this.runs.delete(this.runs.keys().next().value as string);
    }
    if (run.hits >= 2) this.plan(parent, run);
  }

  /** Stops taking new work; lookups already running finish. */
  close(): void {
    this.closed = true;
    this.queue.length = 0;
    this.runs.clear();
  }

  /** Queues the names of the run up to `max` strides past the last one looked up. */
  private plan(parent: Fid, run: Run): void {
    const first = run.next === undefined || !ahead(run, run.next, run.last) ? run.last + run.stride : run.next;
    const limit = run.last + run.stride * this.max;
    if (run.next === undefined) this.counters.runs++;
    let v = first;
    for (; ahead(run, limit + run.stride, v); v += run.stride) {
      if (v < 0 || v > MAX_NUMBER) break;
      if (run.end !== undefined && !ahead(run, run.end, v)) break;
      const name = `${run.prefix}${formatLike(v, run.width)}${run.suffix}`;
      this.queue.push({ parent, name, run, value: v });
    }
    run.next = v;
    this.pump();
  }

  private pump(): void {
    while (this.running < STATAHEAD_PARALLEL && this.queue.length > 0) {
      const job = this.queue.shift()!;
      const k = key(job.parent, job.name);
      // the run ended at a missing name, or this name is being looked up already
      if (job.run.end !== undefined && !ahead(job.run, job.run.end, job.value)) continue;
      if (this.inflight.has(k)) continue;
      // known already: asking again would only spend the client's time
      if (this.cached(job.parent, job.name)) continue;
      this.running++;
      this.counters.fetched++;
      const p = this.lookAhead(job.parent, job.name)
        .then((found) => {
          if (found) {
            this.fetched.add(k);
            while (this.fetched.size > MAX_FETCHED) this.fetched.delete(this.fetched.values().next().value as string);
          } else {
            this.counters.missing++;
            if (job.run.end === undefined || ahead(job.run, job.run.end, job.value)) job.run.end = job.value;
          }
        })
        .catch((e: unknown) => this.onError(job.name, e))
        .finally(() => {
          this.inflight.delete(k);
          this.running--;
          this.pump();
        });
      this.inflight.set(k, p);
    }
  }
}

/** True when `b` comes before `a` in the run's direction (b is still ahead of nothing past a). */
function ahead(run: Run, a: number, b: number): boolean {
  return run.stride > 0 ? b < a : b > a;
}

function key(parent: Fid, name: string): string {
  return `${fidKey(parent)}/${name}`;
}
