/**
 * Counters in Lustre's lprocfs form: a set of named counters printed as
 *
 *   snapshot_time             1700000000.123456789 secs.nsecs
 *   start_time                1699999990.000000000 secs.nsecs
 *   elapsed_time              10.123456789 secs.nsecs
 *   read_bytes                17 samples [bytes] 4096 1048576 5246976 1117090299904
 *
 * (reference §8.6). Counters with no samples are not printed, as in Lustre.
 */
import { now, toNs, type Timestamp } from '../common/time.js';

/**
 * Units as Lustre spells them: the client stacks (llite, osc, mdc) print "usec",
 * the servers (obdfilter, mdt) "usecs".
 */
export type StatUnit = 'reqs' | 'bytes' | 'pages' | 'usec' | 'usecs';

export interface CounterDef {
  name: string;
  unit: StatUnit;
  /** keep min/max/sum/sumsq (Lustre's AVGMINMAX|STDDEV); plain event counts have none */
  minmax?: boolean;
}

export interface CounterSnapshot {
  readonly name: string;
  readonly unit: StatUnit;
  readonly minmax: boolean;
  readonly samples: number;
  readonly min: number;
  readonly max: number;
  readonly sum: number;
  readonly sumsq: bigint;
}

interface Counter {
  def: Required<CounterDef>;
  samples: number;
  min: number;
  max: number;
  sum: number;
  sumsq: bigint;
}

export class StatsSet {
  private readonly counters = new Map<string, Counter>();
  private startedAt: Timestamp = now();

  constructor(defs: readonly CounterDef[]) {
    for (const d of defs) {
      if (this.counters.has(d.name)) throw new Error(`counter ${d.name} defined twice`);
      this.counters.set(d.name, { def: { minmax: true, ...d }, samples: 0, min: 0, max: 0, sum: 0, sumsq: 0n });
    }
  }

  get startTime(): Timestamp {
    return this.startedAt;
  }

  has(name: string): boolean {
    return this.counters.has(name);
  }

  /** One sample of `value` (microseconds, bytes...); for plain event counters the value is ignored. */
  add(name: string, value = 1): void {
    const c = this.counters.get(name);
    if (!c) throw new Error(`no counter ${name}`);
    const v = Number.isFinite(value) && value > 0 ? Math.round(value) : 0;
    if (c.samples === 0) {
      c.min = v;
      c.max = v;
    } else {
      if (v < c.min) c.min = v;
      if (v > c.max) c.max = v;
    }
    c.samples++;
    c.sum += v;
    c.sumsq += BigInt(v) * BigInt(v);
  }

  get(name: string): CounterSnapshot {
    const c = this.counters.get(name);
    if (!c) throw new Error(`no counter ${name}`);
    return snapshot(c);
  }

  all(): CounterSnapshot[] {
    return [...this.counters.values()].map(snapshot);
  }

  /** Zeroes every counter and restarts the clock (any write to a Lustre stats file). */
  clear(): void {
    for (const c of this.counters.values()) {
      c.samples = 0;
      c.min = 0;
      c.max = 0;
      c.sum = 0;
      c.sumsq = 0n;
    }
    this.startedAt = now();
  }

  format(at: Timestamp = now()): string {
    return formatStats(this.startedAt, this.all(), at);
  }
}

function snapshot(c: Counter): CounterSnapshot {
  return { name: c.def.name, unit: c.def.unit, minmax: c.def.minmax, samples: c.samples, min: c.min, max: c.max, sum: c.sum, sumsq: c.sumsq };
}

/** secs.nsecs with nine digits of nanoseconds */
export function formatTime(t: Timestamp): string {
  return `${t.sec}.${String(t.nsec).padStart(9, '0')}`;
}

function elapsed(from: Timestamp, to: Timestamp): Timestamp {
  let ns = toNs(to) - toNs(from);
  if (ns < 0n) ns = 0n;
  return { sec: Number(ns / 1_000_000_000n), nsec: Number(ns % 1_000_000_000n) };
}

/**
 * Lustre's lprocfs_stats_header(): snapshot_time, start_time, elapsed_time. `colon`
 * is ":" for the files that print "snapshot_time:" (rpc_stats), "" for stats files.
 */
export function formatStatsHeader(start: Timestamp, at: Timestamp = now(), colon = ''): string {
  const line = (field: string, t: Timestamp) => `${`${field}${colon}`.padEnd(25)} ${formatTime(t)} secs.nsecs\n`;
  return line('snapshot_time', at) + line('start_time', start) + line('elapsed_time', elapsed(start, at));
}

/** A number that may have lost precision beyond 2^53 still prints as an integer. */
function integer(v: number | bigint): string {
  return typeof v === 'bigint' ? v.toString() : Number.isSafeInteger(v) ? String(v) : BigInt(Math.trunc(v)).toString();
}

export function formatCounterLine(c: CounterSnapshot): string {
  let line = `${c.name.padEnd(25)} ${c.samples} samples [${c.unit}]`;
  if (c.minmax && c.samples > 0) line += ` ${integer(c.min)} ${integer(c.max)} ${integer(c.sum)} ${integer(c.sumsq)}`;
  return `${line}\n`;
}

export function formatStats(start: Timestamp, counters: readonly CounterSnapshot[], at: Timestamp = now()): string {
  let out = formatStatsHeader(start, at);
  for (const c of counters) if (c.samples > 0) out += formatCounterLine(c);
  return out;
}

/** Lustre's obd_histogram: OBD_HIST_MAX buckets, larger values land in the last one. */
export const HIST_BUCKETS = 32;

export class Histogram {
  readonly buckets = new Array<number>(HIST_BUCKETS).fill(0);

  /** lprocfs_oh_tally: bucket = value */
  tally(value: number): void {
    this.buckets[Math.max(0, Math.min(HIST_BUCKETS - 1, Math.floor(value)))]!++;
  }

  /** lprocfs_oh_tally_log2: bucket = the smallest i with 2^i >= value */
  tallyLog2(value: number): void {
    let i = 0;
    while (2 ** i < value && i < HIST_BUCKETS - 1) i++;
    this.buckets[i]!++;
  }

  get total(): number {
    return this.buckets.reduce((a, b) => a + b, 0);
  }

  clear(): void {
    this.buckets.fill(0);
  }
}

const pct = (a: number, b: number) => (b ? Math.floor((a * 100) / b) : 0);

/**
 * One read|write table of osc rpc_stats, rows until both sides are complete:
 *   `pages per rpc         rpcs   % cum % |       rpcs   % cum %`
 */
export function formatRwHistogram(title: string, read: Histogram, write: Histogram, label: (i: number) => number): string {
  let out = `\n\t\t\tread\t\t\twrite\n${title.padEnd(22)}rpcs   % cum % |       rpcs   % cum %\n`;
  const rt = read.total;
  const wt = write.total;
  let rc = 0;
  let wc = 0;
  for (let i = 0; i < HIST_BUCKETS; i++) {
    const r = read.buckets[i]!;
    const w = write.buckets[i]!;
    rc += r;
    wc += w;
    out += `${label(i)}:\t\t${String(r).padStart(10)} ${String(pct(r, rt)).padStart(3)} ${String(pct(rc, rt)).padStart(3)}   | ${String(w).padStart(10)} ${String(pct(w, wt)).padStart(3)} ${String(pct(wc, wt)).padStart(3)}\n`;
    if (rc === rt && wc === wt) break;
  }
  return out;
}
