/**
 * The parameters of an MDS process:
 *
 *   mdt.<target>.{md_stats,uuid,num_exports}
 *   mdt.<target>.hsm_control, mdt.<target>.hsm.*   (the coordinator's, reference §7.3)
 *   lod.<target>-mdtlov.{stripesize,stripecount,numobd}
 *   osp.<fs>-OSTxxxx-osc-MDTxxxx.{import,stats}
 *   mgc.MGC<nid>.import
 *
 * md_stats counts each successful metadata request under Lustre's names, timed in
 * microseconds, by wrapping the MDT's request handlers.
 */
import { fidKey, type Fid } from '../common/fid.js';
import { ostName } from '../common/targets.js';
import { formatNid } from '../lnet/nid.js';
import type { Import } from '../ptlrpc/import.js';
import { Opc, ReintOp } from '../ptlrpc/opcodes.js';
import type { RequestHandler } from '../ptlrpc/types.js';
import type { RpcServer } from '../ptlrpc/server.js';
import type { MdtTarget } from '../mds/mdt-target.js';
import type { ObjectAllocator } from '../mds/lod.js';
import type { OstProxy } from '../mds/osp.js';
import type { Coordinator } from '../hsm/coordinator.js';
import { hsmParams } from '../hsm/hsm-params.js';
import { ro, statsParam } from './common-params.js';
import { formatImport, ImportStats } from './import-stats.js';
import type { DeviceInfo, ParamRegistry, Param } from './params.js';
import { serverNamespaceParams } from './ldlm-params.js';
import { StatsSet } from './stats.js';

/** Lustre's mdt_stats[] names, in its order. */
export const MD_STATS = [
  'open', 'close', 'mknod', 'link', 'unlink', 'mkdir', 'rmdir', 'rename', 'getattr', 'setattr',
  'getxattr', 'setxattr', 'statfs', 'sync', 'samedir_rename', 'crossdir_rename',
] as const;
export type MdStat = (typeof MD_STATS)[number];

function field(body: unknown, key: string): unknown {
  return body && typeof body === 'object' ? (body as Record<string, unknown>)[key] : undefined;
}

function sameFid(a: unknown, b: unknown): boolean {
  const ok = (f: unknown): f is Fid => !!f && typeof f === 'object' && typeof (f as Fid).seq === 'number';
  return ok(a) && ok(b) && fidKey(a) === fidKey(b);
}

/** The md_stats counters a request that succeeded counts under. */
export function mdStatsOf(opc: number, body: unknown): MdStat[] {
  switch (opc) {
    case Opc.MDS_GETATTR:
    case Opc.MDS_GETATTR_NAME:
      return ['getattr'];
    case Opc.MDS_CLOSE:
      return ['close'];
    case Opc.MDS_STATFS:
      return ['statfs'];
    case Opc.MDS_SYNC:
      return ['sync'];
    case Opc.MDS_GETXATTR:
      return ['getxattr'];
    case Opc.MDS_SET_INFO:
      // a directory's default layout: Lustre sets it with setxattr("lustre.lov")
      return ['setxattr'];
    case Opc.MDS_REINT:
      switch (field(body, 'op')) {
        case ReintOp.CREATE:
          if (field(body, 'type') === 'dir') return ['mkdir'];
          return field(body, 'open') === true ? ['open'] : ['mknod'];
        case ReintOp.OPEN:
          return ['open'];
        case ReintOp.LINK:
          return ['link'];
        case ReintOp.UNLINK:
          return field(body, 'dir') === true ? ['rmdir'] : ['unlink'];
        case ReintOp.RENAME:
          return ['rename', sameFid(field(body, 'srcParent'), field(body, 'dstParent')) ? 'samedir_rename' : 'crossdir_rename'];
        case ReintOp.SETATTR:
          return ['setattr'];
        case ReintOp.SETXATTR:
          return ['setxattr'];
      }
      return [];
    default:
      return [];
  }
}

/**
 * Wraps the MDT's handlers so every successful request is counted in `stats`;
 * `restore` puts the original handlers back.
 */
export function instrumentMdt(target: MdtTarget): { stats: StatsSet; restore(): void } {
  const stats = new StatsSet(MD_STATS.map((name) => ({ name, unit: 'usecs' as const })));
  const original = [...target.handlers];
  for (const [opc, handler] of original) {
    const timed: RequestHandler = async (ctx) => {
      const t0 = process.hrtime.bigint();
      const reply = await handler(ctx);
      const usec = Number((process.hrtime.bigint() - t0) / 1000n);
      for (const name of mdStatsOf(opc, ctx.body)) stats.add(name, usec);
      return reply;
    };
    target.handlers.set(opc, timed);
  }
  return {
    stats,
    restore: () => {
      for (const [opc, handler] of original) target.handlers.set(opc, handler);
    },
  };
}

export interface MdsParamSources {
  server: RpcServer;
  target: MdtTarget;
  allocator: ObjectAllocator;
  fsname: string;
  fsDefault: { stripeSize: number; stripeCount: number };
  /** the MDS's own connection to the MGS */
  mgcImport?: Import;
  /** the MDT's HSM coordinator: hsm_control and hsm.* */
  coordinator?: Coordinator;
}

export function registerMdsParams(reg: ParamRegistry, mds: MdsParamSources): () => void {
  const mdt = mds.target.name;
  const md = instrumentMdt(mds.target);
  const mdStats = md.stats;
  const lodDev = `${mdt}-mdtlov`;
  const lodUuid = `${lodDev}_UUID`;
  const ospStats = new Map<OstProxy, ImportStats>();
  const osps = () =>
    mds.allocator.allOsts().map((osp) => {
      let stats = ospStats.get(osp);
      if (!stats) {
        stats = new ImportStats(osp.imp, [Opc.OST_CREATE, Opc.OST_DESTROY, Opc.OST_STATFS]);
        ospStats.set(osp, stats);
      }
      // Lustre names the MDT's proxies "<fs>-OST0000-osc-MDT0000"
      return { osp, stats, dev: `${ostName(mds.fsname, osp.index)}-osc-${mdt.slice(mds.fsname.length + 1)}` };
    });
  osps();
  const mgc = mds.mgcImport;
  const mgcDev = mgc?.connection.nids[0] ? `MGC${formatNid(mgc.connection.nids[0])}` : undefined;
  const mgcStats = mgc ? new ImportStats(mgc, [Opc.MGS_CONFIG_READ, Opc.MGS_TARGET_REG]) : undefined;

  const fixed: Array<[string, Param]> = [
    ...serverNamespaceParams(mds.target.ldlm),
    [`mdt.${mdt}.flock_count`, ro(() => mds.target.flocks.lockCount)],
    [`mdt.${mdt}.md_stats`, statsParam(() => mdStats)],
    [`mdt.${mdt}.uuid`, ro(() => `${mdt}_UUID`)],
    [`mdt.${mdt}.num_exports`, ro(() => mds.server.exports(mdt).length)],
    [`lod.${lodDev}.stripesize`, ro(() => mds.fsDefault.stripeSize)],
    [`lod.${lodDev}.stripecount`, ro(() => mds.fsDefault.stripeCount)],
    [`lod.${lodDev}.numobd`, ro(() => mds.allocator.allOsts().length)],
    [`lod.${lodDev}.uuid`, ro(() => lodUuid)],
  ];
  if (mds.coordinator) for (const [name, p] of hsmParams(mds.coordinator)) fixed.push([`mdt.${mdt}.${name}`, p]);
  if (mgc && mgcDev) {
    fixed.push([`mgc.${mgcDev}.import`, ro(() => formatImport(mgcDev, mgc, mgcStats))]);
    fixed.push([`mgc.${mgcDev}.uuid`, ro(() => mgc.clientUuid)]);
  }
  const undo = fixed.map(([name, p]) => reg.register(name, p));
  undo.push(
    reg.provide(function* () {
      for (const { osp, stats, dev } of osps()) {
        yield [`osp.${dev}.import`, ro(() => formatImport(dev, osp.imp, stats))] as const;
        yield [`osp.${dev}.stats`, statsParam(() => stats.stats)] as const;
        yield [`osp.${dev}.active`, ro(() => (osp.active ? 1 : 0))] as const;
        yield [`osp.${dev}.prealloc_status`, ro(() => (osp.full ? -28 : 0))] as const;
      }
    }),
  );
  undo.push(
    reg.addDevices((): DeviceInfo[] => [
      ...(mgc && mgcDev
        ? [{ type: 'mgc', name: mgcDev, uuid: mgc.clientUuid, status: mgc.state === 'CLOSED' ? 'ST' : 'UP', refcount: 1 + mgc.stats.inFlight, conn: mgc.connection.current ? formatNid(mgc.connection.current) : '' }]
        : []),
      { type: 'mdt', name: mdt, uuid: `${mdt}_UUID`, status: 'UP', refcount: mds.server.exports(mdt).length },
      { type: 'lod', name: lodDev, uuid: lodUuid, status: 'UP', refcount: 1 },
      ...osps().map(({ osp, dev }) => ({
        type: 'osp',
        name: dev,
        uuid: lodUuid,
        status: osp.imp.state === 'CLOSED' ? 'ST' : 'UP',
        refcount: 1 + osp.imp.stats.inFlight,
        conn: osp.imp.connection.current ? formatNid(osp.imp.connection.current) : '',
      })),
    ]),
  );
  return () => {
    for (const u of undo) u();
    md.restore();
    for (const s of ospStats.values()) s.detach();
    mgcStats?.detach();
  };
}
