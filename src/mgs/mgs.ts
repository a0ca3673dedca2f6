/** `stria mgs`: the configuration server in its own process (or inside an MDS). */
import type { Logger } from '../common/log.js';
import { formatNid, type Nid } from '../lnet/nid.js';
import { RpcServer } from '../ptlrpc/server.js';
import { MgsConfigDb } from './config-db.js';
import { createMgsTarget } from './mgs-target.js';
import { serveParams } from '../ctl/daemon-control.js';
import { registerMgsParams } from '../ctl/mgs-params.js';

export interface MgsOptions {
  dir: string;
  listen: Nid;
}

export interface RunningMgs {
  server: RpcServer;
  db: MgsConfigDb;
  nid: Nid;
  close(): Promise<void>;
}

export async function startMgs(opts: MgsOptions, log: Logger): Promise<RunningMgs> {
  const db = await MgsConfigDb.open(opts.dir);
  const server = new RpcServer({ nid: opts.listen }, log);
  server.addTarget(createMgsTarget(db, log));
  await server.listen();
  const nid = { ...opts.listen, port: server.port };
  const ctl = await serveParams('mgs', (reg) => registerMgsParams(reg, { server, db }), log);
  log.info({ nid: formatNid(nid), dir: opts.dir }, 'MGS started');
  const close = async () => {
    await ctl.close();
    await server.close();
  };
  return { server, db, nid, close };
}
