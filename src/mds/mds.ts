/**
 * `stria mds`: one MDT in its own process. Opens the metadata store, serves
 * the namespace, registers with the MGS and keeps a precreating proxy for
 * every OST the MGS knows.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from '../common/log.js';
import { err, toStriaError } from '../common/errno.js';
import { idifSeq } from '../common/fid.js';
import type { OstObject } from '../common/layout.js';
import { mdtName, ostName } from '../common/targets.js';
import { advertisedAddress } from '../common/host.js';
import { formatNid, parseNid, type Nid } from '../lnet/nid.js';
import { Opc } from '../ptlrpc/opcodes.js';
import { RpcClient } from '../ptlrpc/client.js';
import { RpcServer } from '../ptlrpc/server.js';
import { MgsClient } from '../mgs/mgc.js';
import type { FsConfig } from '../mgs/protocol.js';
import { describeStore, openMetadataStore } from './store/open.js';
import type { MetadataStore } from './store/types.js';
import { Namespace } from './namespace.js';
import { ObjectAllocator } from './lod.js';
import { OstProxy } from './osp.js';
import { MdtTarget } from './mdt-target.js';
import { serveParams } from '../ctl/daemon-control.js';
import { registerMdsParams } from '../ctl/mds-params.js';
import { Coordinator, type HsmControl } from '../hsm/coordinator.js';
import type { ChangelogSink } from './changelog-types.js';
import { Changelog } from './changelog.js';
import { registerMddParams } from '../ctl/mdd-params.js';

export interface MdsOptions {
  fsname: string;
  index: number;
  storeDir: string;
  mgsNids: Nid[];
  listen: Nid;
  fsDefault: { stripeSize: number; stripeCount: number };
  /** ldlm_timeout: how long a client has to give back a lock (default 20 s) */
  ldlmTimeoutMs?: number;
  /** how often the MGS configuration is re-read for new OSTs and pools */
  configPollMs?: number;
  // The HSM coordinator's tunables (reference §7.3), also settable with lctl set_param mdt.*.hsm.*
  /** hsm.max_requests: actions running at once (coordinator default 3) */
  hsmMaxRequests?: number;
  /** hsm.active_request_timeout: an action running longer fails (default 3600 s) */
  hsmActiveRequestTimeoutMs?: number;
  /** hsm.grace_delay: how long finished actions stay listed (default 60 s) */
  hsmGraceDelayMs?: number;
  /** hsm.loop_period: how often the coordinator scans its queue (default 10 s) */
  hsmLoopPeriodMs?: number;
  /** hsm.default_archive_id: archive of requests that name none (default 1) */
  hsmDefaultArchiveId?: number;
  /** how long an agent's lost connection is waited for before its actions go to another agent */
  hsmAgentLostMs?: number;
  /** hsm_control at start-up (the coordinator's default when absent) */
  hsmControl?: HsmControl;
  /** where the MDT appends its changelog records (absent: none are kept) */
  changelog?: ChangelogSink;
}

export interface RunningMds {
  server: RpcServer;
  target: MdtTarget;
  namespace: Namespace;
  coordinator: Coordinator;
  allocator: ObjectAllocator;
  nid: Nid;
  close(): Promise<void>;
}

export async function startMds(opts: MdsOptions, log: Logger): Promise<RunningMds> {
  const store: MetadataStore = await openMetadataStore(opts.storeDir, log);
  const cleanup: Array<() => Promise<void> | void> = [() => store.close()];
  const closeAll = async () => {
    for (const c of cleanup.reverse()) await Promise.resolve(c()).catch(() => undefined);
  };
  try {
    const ns = new Namespace(store, { fsDefault: opts.fsDefault });
    const rec = await ns.fsRecord();
    if (rec && rec.name !== opts.fsname) {
      throw err('EINVAL', `store ${describeStore(opts.storeDir)} holds filesystem ${rec.name}, not ${opts.fsname}`, 'FOREIGN_TARGET');
    }
    const uuid = rec?.uuid ?? randomUUID();
    if (!rec) await ns.setFsRecord({ name: opts.fsname, uuid });
    await ns.init();
    const orphans = await ns.cleanupOrphans();

    const name = mdtName(opts.fsname, opts.index);
    const rpc = new RpcClient({ uuid: `${name}-mdtlov_UUID` }, log);
    cleanup.push(() => rpc.close());
    const lod = new ObjectAllocator();
    const changelog = new Changelog(store, { mdtName: name, log });
    await changelog.init();
    cleanup.push(() => changelog.close());
    const target = new MdtTarget(
      ns, lod, { fsname: opts.fsname, index: opts.index, storeDir: opts.storeDir, fsDefault: opts.fsDefault, ldlmTimeoutMs: opts.ldlmTimeoutMs, changelog: opts.changelog ?? changelog }, log,
    );
    // its queue lives in the MDT's store: queued actions survive a restart
    const coordinator = new Coordinator({
      store, host: target.hsmHost, log,
      maxRequests: opts.hsmMaxRequests,
      activeRequestTimeoutMs: opts.hsmActiveRequestTimeoutMs,
      graceDelayMs: opts.hsmGraceDelayMs,
      loopPeriodMs: opts.hsmLoopPeriodMs,
      defaultArchiveId: opts.hsmDefaultArchiveId,
      agentLostMs: opts.hsmAgentLostMs,
    });
    if (opts.hsmControl !== undefined) await coordinator.setControl(opts.hsmControl);
    target.coordinator = coordinator;
    // before the first request can arrive; it dispatches only to agents, which come later
    await coordinator.start();
    cleanup.push(() => coordinator.stop());
    const server = new RpcServer({ nid: opts.listen }, log);
    target.evictor = (exp, why) => server.evict(exp, why);
    cleanup.push(() => target.ldlm.close());
    changelog.registerHandlers(target.handlers);
    server.addTarget(target);
    await server.listen();
    cleanup.push(() => server.close());
    const nid: Nid = { ...opts.listen, addr: advertisedAddress(opts.listen.addr), port: server.port };

    const mgc = new MgsClient(rpc, opts.mgsNids);
    await mgc.connect();
    let config = await mgc.register(opts.fsname, 'mdt', opts.index, uuid, [formatNid(nid)], rec?.fsUuid);
    if (config.uuid && config.uuid !== rec?.fsUuid) await ns.setFsRecord({ name: opts.fsname, uuid, fsUuid: config.uuid });
    log.info({ target: name, nid: formatNid(nid), store: describeStore(opts.storeDir), backend: store.kind }, 'MDT started');

    const lastUsed = await ns.lastObjectsUsed();
    const pendingDestroy = new Map<number, OstObject[]>();
    for (const o of orphans) {
      const list = pendingDestroy.get(o.ostIdx) ?? [];
      list.push(o);
      pendingDestroy.set(o.ostIdx, list);
    }
    const persist = { reserveUpTo: (ost: number, seq: number, oid: number) => ns.recordObjectsUsed(ost, seq, oid) };

    const adopt = (cfg: FsConfig) => {
      lod.setPools(cfg.pools);
      for (const ost of cfg.osts) {
        if (lod.getOst(ost.index)) continue;
        const imp = rpc.import({
          nids: ost.nids.map((n) => parseNid(n)),
          target: ostName(opts.fsname, ost.index),
          connectOpc: Opc.OST_CONNECT,
          connectData: { fsname: opts.fsname },
        });
        const seq = idifSeq(ost.index);
        const used = lastUsed.get(ost.index);
        const osp = new OstProxy(ost.index, seq, imp, used && used.seq === seq ? used.oid : 0, persist, log);
        lod.addOst(osp);
        void startOsp(osp, pendingDestroy.get(ost.index) ?? [], log);
      }
    };
    adopt(config);
    const ctl = await serveParams(
      'mds',
      (reg) => { const a = registerMdsParams(reg, { server, target, allocator: lod, fsname: opts.fsname, fsDefault: opts.fsDefault, mgcImport: mgc.imp, coordinator }); const b = registerMddParams(reg, changelog); return () => { b(); a(); }; },
      log,
    );
    cleanup.push(() => ctl.close());

    let polling = true;
    const pollMs = opts.configPollMs ?? 2000;
    const poll = async () => {
      while (polling) {
        await new Promise((r) => setTimeout(r, pollMs).unref());
        if (!polling) break;
        try {
          const next = await mgc.config(opts.fsname);
          if (next.generation !== config.generation) {
            config = next;
            adopt(config);
          }
        } catch (e) {
          log.debug({ err: toStriaError(e).message }, 'MGS config poll failed');
        }
      }
    };
    void poll();
    cleanup.push(() => {
      polling = false;
      for (const osp of lod.allOsts()) osp.close();
    });

    return { server, target, namespace: ns, coordinator, allocator: lod, nid, close: closeAll };
  } catch (e) {
    await closeAll();
    throw e;
  }
}

/** Keeps trying to bring an OST proxy up: an OST may start after the MDS. */
async function startOsp(osp: OstProxy, orphans: OstObject[], log: Logger): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await osp.start();
      break;
    } catch (e) {
      if (attempt % 10 === 0) log.warn({ ost: osp.index, err: toStriaError(e).message }, 'OST not reachable yet, retrying');
      await new Promise((r) => setTimeout(r, Math.min(5000, 200 * 2 ** Math.min(attempt, 5))).unref());
      if (osp.imp.state === 'CLOSED') return;
    }
  }
  for (const o of orphans) await osp.destroy(o.oid);
}
