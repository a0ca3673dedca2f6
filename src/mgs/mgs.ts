/** `stria mgs`: the configuration server in its own process (or inside an MDS). */
import type { Logger } from '../common/log.js';
import { formatNid, type Nid } from '../lnet/nid.js';
import { RpcServer } from '../ptlrpc/server.js';
import { MgsConfigDb } from './config-db.js';
import { createMgsTarget } from './mgs-target.js';

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
  log.info({ nid: formatNid(nid), dir: opts.dir }, 'MGS started');
  return { server, db, nid, close: () => server.close() };
}
