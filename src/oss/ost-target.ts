/**
 * The OST request handlers (Lustre's ofd): every body is validated before the
 * object store is touched, so a bad request never changes stored data.
 */
import { err } from '../common/errno.js';
import type { Logger } from '../common/log.js';
import { Opc, opcodeName } from '../ptlrpc/opcodes.js';
import type { ReplyPayload, RequestContext, RequestHandler, ServerExport, TargetService } from '../ptlrpc/types.js';
import type { ObjectStore } from './objstore.js';
import { addSample, newOstStats, type OstCounterName, type OstStats } from './ost-stats.js';
import {
  MAX_IO_BYTES,
  MAX_OBJECT_BYTES,
  OstConnectData,
  OstCreateRequest,
  OstObjectRequest,
  OstPunchRequest,
  OstReadRequest,
  OstSetattrRequest,
  OstStatfsRequest,
  OstSyncRequest,
  OstWriteRequest,
  parseRequest,
  type OstConnectReply,
  type OstCreateReply,
} from './protocol.js';

export interface OstTarget extends TargetService {
  readonly store: ObjectStore;
  /** live counters for `lctl get_param obdfilter.<name>.stats` */
  readonly stats: OstStats;
}

export function createOstTarget(store: ObjectStore, log: Logger): OstTarget {
  const stats = newOstStats();
  const handlers = new Map<number, RequestHandler>();

  /** Registers a handler whose successful runs are timed into `counter`. */
  const on = (opc: number, counter: OstCounterName, fn: (ctx: RequestContext, op: string) => Promise<ReplyPayload>) => {
    const op = opcodeName(opc);
    handlers.set(opc, async (ctx) => {
      const t0 = process.hrtime.bigint();
      const reply = await fn(ctx, op);
      addSample(stats.counters[counter], Number((process.hrtime.bigint() - t0) / 1000n));
      return reply;
    });
  };

  on(Opc.OST_CREATE, 'create', async (ctx, op) => {
    const b = parseRequest(OstCreateRequest, ctx.body, op);
    let orphansDeleted: number | undefined;
    if (b.deleteOrphansAbove !== undefined) orphansDeleted = await store.deleteOrphans(b.seq, b.deleteOrphansAbove);
    const r = await store.precreate(b.seq, b.count);
    const body: OstCreateReply = orphansDeleted === undefined ? r : { ...r, orphansDeleted };
    return { body };
  });

  on(Opc.OST_READ, 'read', async (ctx, op) => {
    const b = parseRequest(OstReadRequest, ctx.body, op);
    const data = await store.read(b.seq, b.oid, b.offset, b.length);
    addSample(stats.counters.read_bytes, data.length);
    return { body: { n: data.length }, bulk: data };
  });

  on(Opc.OST_WRITE, 'write', async (ctx, op) => {
    const b = parseRequest(OstWriteRequest, ctx.body, op);
    const data = ctx.bulk;
    if (!Buffer.isBuffer(data)) throw err('EINVAL', `${op}: bad request: the data bulk is missing`, 'BAD_REQUEST');
    if (data.length > MAX_IO_BYTES) throw err('EINVAL', `${op}: bad request: bulk of ${data.length} bytes exceeds ${MAX_IO_BYTES}`, 'BAD_REQUEST');
    if (b.offset > MAX_OBJECT_BYTES - data.length) {
      throw err('EINVAL', `${op}: bad request: offset: ${b.offset} + ${data.length} bytes is beyond 2^53`, 'BAD_REQUEST');
    }
    const n = await store.write(b.seq, b.oid, b.offset, data, b.sync ?? false);
    addSample(stats.counters.write_bytes, n);
    return { body: { n } };
  });

  on(Opc.OST_GETATTR, 'getattr', async (ctx, op) => {
    const b = parseRequest(OstObjectRequest, ctx.body, op);
    return { body: await store.getattr(b.seq, b.oid) };
  });

  on(Opc.OST_SETATTR, 'setattr', async (ctx, op) => {
    const b = parseRequest(OstSetattrRequest, ctx.body, op);
    return { body: await store.setattr(b.seq, b.oid, { atime: b.atime, mtime: b.mtime }) };
  });

  on(Opc.OST_PUNCH, 'punch', async (ctx, op) => {
    const b = parseRequest(OstPunchRequest, ctx.body, op);
    return { body: await store.punch(b.seq, b.oid, b.size) };
  });

  on(Opc.OST_DESTROY, 'destroy', async (ctx, op) => {
    const b = parseRequest(OstObjectRequest, ctx.body, op);
    await store.destroy(b.seq, b.oid);
    return { body: {} };
  });

  on(Opc.OST_STATFS, 'statfs', async (ctx, op) => {
    parseRequest(OstStatfsRequest, ctx.body ?? {}, op);
    return { body: await store.statfs() };
  });

  on(Opc.OST_SYNC, 'sync', async (ctx, op) => {
    const b = parseRequest(OstSyncRequest, ctx.body ?? {}, op);
    await store.sync(b.seq, b.oid);
    return { body: {} };
  });

  return {
    name: store.name,
    store,
    stats,
    handlers,
    onConnect(exp: ServerExport, data: unknown): OstConnectReply {
      const d = parseRequest(OstConnectData, data, 'OST_CONNECT');
      if (d.fsname !== store.fsname) {
        throw err('EINVAL', `${store.name} belongs to filesystem ${store.fsname}, not ${d.fsname}`, 'WRONG_FILESYSTEM');
      }
      log.info({ target: store.name, client: exp.clientUuid, peer: exp.peer }, 'client connected');
      return { index: store.index, fsname: store.fsname, uuid: store.uuid };
    },
    onDisconnect(exp: ServerExport): void {
      log.info({ target: store.name, client: exp.clientUuid, peer: exp.peer }, 'client disconnected');
    },
  };
}
