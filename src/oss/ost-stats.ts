/**
 * Per-OST counters, as `lctl get_param obdfilter.*.stats` prints them:
 * `NAME COUNT samples [unit] min max sum sumsq`.
 */
import { now, type Timestamp } from '../common/time.js';

export interface StatCounter {
  readonly unit: 'bytes' | 'usecs';
  samples: number;
  min: number;
  max: number;
  sum: number;
  sumsq: number;
}

export const OST_COUNTERS = [
  'read_bytes',
  'write_bytes',
  'read',
  'write',
  'getattr',
  'setattr',
  'punch',
  'sync',
  'destroy',
  'create',
  'statfs',
] as const;
export type OstCounterName = (typeof OST_COUNTERS)[number];

export interface OstStats {
  start_time: Timestamp;
  counters: Record<OstCounterName, StatCounter>;
}

export function newOstStats(): OstStats {
  const counters = {} as Record<OstCounterName, StatCounter>;
  for (const name of OST_COUNTERS) {
    counters[name] = { unit: name.endsWith('_bytes') ? 'bytes' : 'usecs', samples: 0, min: 0, max: 0, sum: 0, sumsq: 0 };
  }
  return { start_time: now(), counters };
}

export function addSample(c: StatCounter, value: number): void {
  c.min = c.samples === 0 ? value : Math.min(c.min, value);
  c.max = c.samples === 0 ? value : Math.max(c.max, value);
  c.samples++;
  c.sum += value;
  c.sumsq += value * value;
}

/** Zeroes every counter (lctl set_param obdfilter.*.stats=clear). */
export function clearOstStats(s: OstStats): void {
  const fresh = newOstStats();
  s.start_time = fresh.start_time;
  s.counters = fresh.counters;
}
