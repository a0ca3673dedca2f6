/** `stria oss`: one or more OSTs served by one process, registered with the MGS. */
import type { Logger } from '../common/log.js';
import { ostName } from '../common/targets.js';
import { advertisedAddress } from '../common/host.js';
import { formatNid, type Nid } from '../lnet/nid.js';
import { RpcClient } from '../ptlrpc/client.js';
import { RpcServer } from '../ptlrpc/server.js';
import { MgsClient } from '../mgs/mgc.js';
import { ObjectStore } from './objstore.js';
import { recordFsUuid } from './target-dir.js';
import { createOstTarget } from './ost-target.js';
import { serveParams } from '../ctl/daemon-control.js';
import { registerOssParams } from '../ctl/oss-params.js';

export interface OssOptions {
  fsname: string;
  targets: Array<{ index: number; dir: string }>;
  mgsNids: Nid[];
  listen: Nid;
  /** ldlm_timeout: how long a client has to give back a lock (default 20 s) */
  ldlmTimeoutMs?: number;
}

export const DEFAULT_LDLM_TIMEOUT_MS = 20_000;

export interface RunningOss {
  server: RpcServer;
  stores: ObjectStore[];
  nid: Nid;
  close(): Promise<void>;
}

export async function startOss(opts: OssOptions, log: Logger): Promise<RunningOss> {
  const stores: ObjectStore[] = [];
  const cleanup: Array<() => Promise<void>> = [];
  const closeAll = async () => {
    for (const c of cleanup.reverse()) await c().catch(() => undefined);
  };
  try {
    for (const t of opts.targets) {
      const store = await ObjectStore.open(t.dir, { fsname: opts.fsname, index: t.index });
      stores.push(store);
      cleanup.push(() => store.close());
    }
    const server = new RpcServer({ nid: opts.listen }, log);
    const ldlmTimeoutMs = opts.ldlmTimeoutMs ?? DEFAULT_LDLM_TIMEOUT_MS;
    const targets = stores.map((store) => createOstTarget(store, log, { ldlmTimeoutMs, evict: (exp, why) => server.evict(exp, why), replyBulks: server.replyBulks }));
    cleanup.push(async () => targets.forEach((t) => t.ldlm.close()));
    for (const t of targets) server.addTarget(t);
    await server.listen();
    cleanup.push(() => server.close());
    const ctl = await serveParams('oss', (reg) => registerOssParams(reg, { server, targets }), log);
    cleanup.push(() => ctl.close());
    const nid: Nid = { ...opts.listen, addr: advertisedAddress(opts.listen.addr), port: server.port };

    const rpc = new RpcClient({ uuid: `${opts.fsname}-oss-${formatNid(nid)}` }, log);
    cleanup.push(() => rpc.close());
    const mgc = new MgsClient(rpc, opts.mgsNids);
    await mgc.connect();
    for (const store of stores) {
      const cfg = await mgc.register(opts.fsname, 'ost', store.index, store.uuid, [formatNid(nid)], store.fsUuid);
      if (cfg.uuid && !store.fsUuid) {
        await recordFsUuid(store.dir, cfg.uuid);
        store.fsUuid = cfg.uuid;
      }
      log.info({ target: ostName(opts.fsname, store.index), nid: formatNid(nid), dir: store.dir }, 'OST started');
    }
    // The MGS connection is only needed to register.
    await mgc.close();
    return { server, stores, nid, close: closeAll };
  } catch (e) {
    await closeAll();
    throw e;
  }
}
