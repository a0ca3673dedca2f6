/**
 * ldlm.namespaces.<name>.* (reference §3.5): the lock cache of a client namespace, and
 * the lock counts of a server namespace, with a `stats` file of lock traffic counters.
 *
 *   client: lock_count, lock_unused_count, resource_count, lru_size (rw), lru_max_age (rw),
 *           early_lock_cancel, stats
 *   server: lock_count, resource_count, lock_timeout (ldlm_timeout, s), stats
 */
import type { LdlmClientNamespace } from '../ldlm/client.js';
import type { LdlmServer } from '../ldlm/server.js';
import { err } from '../common/errno.js';
import { ro } from './common-params.js';
import type { Param } from './params.js';
import { parseUint } from './values.js';

/** Lustre prints counters as "name  count samples [unit]" lines under a snapshot_time. */
function formatCounters(counters: object): string {
  const t = Date.now() / 1000;
  const lines = [`snapshot_time             ${t.toFixed(9)} secs.nsecs`];
  for (const [name, value] of Object.entries(counters)) {
    if (typeof value === 'number' && value > 0) lines.push(`${name.padEnd(25)} ${value} samples [locks]`);
  }
  return `${lines.join('\n')}\n`;
}

function clearCounters(counters: Record<string, number>): void {
  for (const k of Object.keys(counters)) counters[k] = 0;
}

/** lru_max_age takes milliseconds, or a number with an "s" or "ms" suffix (Lustre 2.16). */
export function parseLruMaxAge(v: string): number {
  const m = /^\s*(\d+)\s*(ms|s)?\s*$/.exec(v);
  if (!m) throw err('EINVAL', `lru_max_age: '${v.trim()}' is not a duration (N, Ns or Nms)`, 'BAD_PARAM');
  const n = Number(m[1]);
  return m[2] === 's' ? n * 1000 : n;
}

export function clientNamespaceParams(name: string, ns: LdlmClientNamespace): Array<[string, Param]> {
  const p = `ldlm.namespaces.${name}`;
  return [
    [`${p}.lock_count`, ro(() => ns.lockCount)],
    [`${p}.lock_unused_count`, ro(() => ns.unusedCount)],
    [`${p}.resource_count`, ro(() => ns.resourceCount)],
    [
      `${p}.lru_size`,
      {
        get: () => String(ns.lruSize),
        set: (v: string) => ns.setLruSize(v.trim() === 'clear' ? 'clear' : parseUint(v, 'lru_size')),
      },
    ],
    [`${p}.lru_max_age`, { get: () => String(ns.lruMaxAgeMs), set: (v: string) => ns.setLruMaxAgeMs(parseLruMaxAge(v)) }],
    [`${p}.early_lock_cancel`, ro(() => 1)],
    [`${p}.stats`, { get: () => formatCounters(ns.stats), set: () => clearCounters(ns.stats as unknown as Record<string, number>) }],
  ];
}

export function serverNamespaceParams(ns: LdlmServer): Array<[string, Param]> {
  const p = `ldlm.namespaces.${ns.name}`;
  return [
    [`${p}.lock_count`, ro(() => ns.lockCount)],
    [`${p}.resource_count`, ro(() => ns.resourceCount)],
    [`${p}.lock_timeout`, ro(() => Math.round(ns.callbackTimeoutMs / 1000))],
    [`${p}.stats`, { get: () => formatCounters(ns.stats), set: () => clearCounters(ns.stats as unknown as Record<string, number>) }],
  ];
}
