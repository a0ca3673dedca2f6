/**
 * The parameters of an OSS process: per OST `obdfilter.<target>.{stats,uuid,
 * num_exports,brw_size,tot_granted,blocksize,kbytes*,files*}` and one `obdfilter` device each.
 */
import type { RpcServer } from '../ptlrpc/server.js';
import { MAX_IO_BYTES } from '../oss/limits.js';
import { clearOstStats, OST_COUNTERS, type OstStats } from '../oss/ost-stats.js';
import type { OstTarget } from '../oss/ost-target.js';
import { ro, statfsParams } from './common-params.js';
import type { ParamRegistry, Param } from './params.js';
import { serverNamespaceParams } from './ldlm-params.js';
import { formatStats, type CounterSnapshot } from './stats.js';

/** obdfilter.*.stats from the counters the OST handlers keep. */
export function formatOstStats(s: OstStats): string {
  const counters: CounterSnapshot[] = OST_COUNTERS.map((name) => {
    const c = s.counters[name];
    return { name, unit: c.unit, minmax: true, samples: c.samples, min: c.min, max: c.max, sum: c.sum, sumsq: BigInt(Math.trunc(c.sumsq)) };
  });
  return formatStats(s.start_time, counters);
}

export function registerOssParams(reg: ParamRegistry, oss: { server: RpcServer; targets: readonly OstTarget[] }): () => void {
  const undo: Array<() => void> = [];
  for (const t of oss.targets) {
    const p = `obdfilter.${t.name}`;
    const params: Array<[string, Param]> = [
      [`${p}.stats`, { get: () => formatOstStats(t.stats), set: () => clearOstStats(t.stats) }],
      [`${p}.uuid`, ro(() => `${t.name}_UUID`)],
      [`${p}.num_exports`, ro(() => oss.server.exports(t.name).length)],
      [`${p}.brw_size`, ro(() => MAX_IO_BYTES >> 20)],
      [`${p}.tot_granted`, ro(() => t.grants.totGranted)],
      ...statfsParams(p, () => t.statfs()),
      ...serverNamespaceParams(t.ldlm),
    ];
    for (const [name, param] of params) undo.push(reg.register(name, param));
  }
  undo.push(
    reg.addDevices(() =>
      oss.targets.map((t) => ({ type: 'obdfilter', name: t.name, uuid: `${t.name}_UUID`, status: 'UP', refcount: oss.server.exports(t.name).length })),
    ),
  );
  return () => {
    for (const u of undo) u();
  };
}
