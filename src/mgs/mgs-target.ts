/** The MGS target: targets register, clients and servers read the configuration. */
import type { Logger } from '../common/log.js';
import { err } from '../common/errno.js';
import { MGS_TARGET } from '../common/targets.js';
import { Opc } from '../ptlrpc/opcodes.js';
import type { RequestHandler, TargetService } from '../ptlrpc/types.js';
import { ConfigReadBody, PoolOpBody, TargetRegBody, parseBody } from './protocol.js';
import type { MgsConfigDb } from './config-db.js';

export function createMgsTarget(db: MgsConfigDb, log: Logger): TargetService {
  const handlers = new Map<number, RequestHandler>();

  handlers.set(Opc.MGS_TARGET_REG, async (ctx) => {
    const reg = parseBody(TargetRegBody, ctx.body);
    const fs = await db.register(reg);
    log.info({ fsname: reg.fsname, kind: reg.kind, index: reg.index, nids: reg.nids }, 'target registered');
    return { body: fs };
  });

  handlers.set(Opc.MGS_CONFIG_READ, (ctx) => {
    const { fsname } = parseBody(ConfigReadBody, ctx.body);
    const fs = db.get(fsname);
    if (!fs) throw err('ENOENT', `filesystem ${fsname} is not known to this MGS`, 'NO_SUCH_FS');
    return { body: fs };
  });

  handlers.set(Opc.MGS_SET_INFO, async (ctx) => {
    const op = parseBody(PoolOpBody, ctx.body);
    const fs = await db.poolOp(op);
    log.info({ fsname: op.fsname, op: op.op, pool: op.pool, osts: op.osts }, 'pool changed');
    return { body: fs };
  });

  return { name: MGS_TARGET, handlers };
}
