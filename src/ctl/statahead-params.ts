/**
 * llite.*.statahead_max (names looked up ahead at most, 0 = off; Lustre's range 0..8192)
 * and llite.*.statahead_stats (what statahead did; `clear` starts the counts over).
 */
import type { Statahead, StataheadCounters } from '../client/statahead.js';
import { STATAHEAD_MAX_LIMIT } from '../client/statahead.js';
import { err } from '../common/errno.js';
import type { Param } from './params.js';
import { checkRange, parseUint } from './values.js';

export function formatStataheadStats(c: StataheadCounters): string {
  return [
    `statahead total: ${c.runs}`,
    `statahead wrong: ${c.missing}`,
    `fname_total: ${c.runs}`,
    `fetched_total: ${c.fetched}`,
    `hit_total: ${c.hits}`,
    `wait_total: ${c.waits}`,
  ].join('\n');
}

export function stataheadParams(llite: string, sa: Statahead): Array<[string, Param]> {
  return [
    [
      `${llite}.statahead_max`,
      {
        get: () => String(sa.max),
        set: (v: string) => {
          sa.max = checkRange(parseUint(v, 'statahead_max'), 0, STATAHEAD_MAX_LIMIT, 'statahead_max');
        },
      },
    ],
    [
      `${llite}.statahead_stats`,
      {
        get: () => formatStataheadStats(sa.counters),
        set: (v: string) => {
          if (v !== 'clear' && v !== '0') throw err('EINVAL', `statahead_stats: write 'clear' to start the counts over, not '${v}'`, 'BAD_PARAM_VALUE');
          for (const k of Object.keys(sa.counters) as Array<keyof StataheadCounters>) sa.counters[k] = 0;
        },
      },
    ],
  ];
}
