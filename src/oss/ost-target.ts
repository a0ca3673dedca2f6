/**
 * The OST request handlers (Lustre's ofd): every body is validated before the
 * object store is touched, so a bad request never changes stored data.
 */
import { StriaError, err } from '../common/errno.js';
import type { Logger } from '../common/log.js';
import { Opc, opcodeName } from '../ptlrpc/opcodes.js';
import type { ReplyPayload, RequestContext, RequestHandler, ServerExport, TargetService } from '../ptlrpc/types.js';
import type { ObjectStore } from './objstore.js';
import type { BulkSource } from '../lnet/bulk-pool.js';
import { LdlmServer } from '../ldlm/server.js';
import { CancelRequest, EnqueueRequest, objectResource } from '../ldlm/protocol.js';
import { EXTENT_EOF } from '../ldlm/extent.js';
import { LockMode } from '../ldlm/modes.js';
import { parseBody } from '../common/validate.js';
import { addSample, newOstStats, type OstCounterName, type OstStats } from './ost-stats.js';
import { ObjectVersions } from './object-version.js';
import { OstGrants } from './grant.js';
import type { StatFs } from '../common/statfs.js';
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
  type OstWriteReply,
} from './protocol.js';

export interface OstTarget extends TargetService {
  readonly store: ObjectStore;
  /** the OST's extent lock namespace (filter-<target>_UUID) */
  readonly ldlm: LdlmServer;
  /** live counters for `lctl get_param obdfilter.<name>.stats` */
  readonly stats: OstStats;
  /** data versions of the objects (cache keys of clients) */
  readonly versions: ObjectVersions;
  /** space granted to the exports for their write-back caches */
  readonly grants: OstGrants;
  /** the OST's statfs as clients see it: granted space is not available */
  statfs(): Promise<StatFs>;
}

export interface OstTargetOptions {
  /** how long a client has to give a lock back before it is evicted */
  ldlmTimeoutMs: number;
  /** the RPC server's eviction (drops the export, closes the connection) */
  evict(exp: ServerExport, reason: string): void;
  /** where read reply buffers come from: the RPC server's pool, which takes them back once sent */
  replyBulks?: BulkSource;
  /** object version table (tests give a small or fixed-epoch one); a fresh random epoch by default */
  versions?: ObjectVersions;
}

/** Without an RPC server to evict through (unit tests), an unresponsive client just loses its locks. */
const STANDALONE: OstTargetOptions = { ldlmTimeoutMs: 20_000, evict: () => undefined };

export function createOstTarget(store: ObjectStore, log: Logger, opts: OstTargetOptions = STANDALONE): OstTarget {
  const stats = newOstStats();
  const handlers = new Map<number, RequestHandler>();
  const versions = opts.versions ?? new ObjectVersions();
  const grants = new OstGrants(() => store.statfs());
  /** Attributes with the data version; the version is taken first, so it is never newer than the attributes. */
  const attrWithVersion = async (seq: number, oid: number) => {
    const ver = versions.of(seq, oid);
    return { ...(await store.getattr(seq, oid)), ver };
  };
  /**
   * Runs a change of the object's data or size and bumps its version once it landed; also
   * when it failed, as it may have landed in part, unless nothing was touched (no such
   * object, refused arguments).
   */
  const modifying = async <T>(seq: number, oid: number, fn: () => Promise<T>): Promise<{ result: T; ver: string }> => {
    try {
      const result = await fn();
      return { result, ver: versions.bump(seq, oid) };
    } catch (e) {
      const code = e instanceof StriaError ? e.code : undefined;
      if (code !== 'NO_SUCH_OBJECT' && code !== 'BAD_REQUEST') versions.bump(seq, oid);
      throw e;
    }
  };
  const ldlm = new LdlmServer({
    name: `filter-${store.name}_UUID`,
    callbackTimeoutMs: opts.ldlmTimeoutMs,
    log,
    evict: opts.evict,
    lvb: async (res) => {
      const [seq, oid] = res.split(':').map(Number);
      try {
        return await attrWithVersion(seq!, oid!);
      } catch {
        return undefined; // destroyed or never created: no attributes to report
      }
    },
  });

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
    // Objects created anew (again, after orphan cleanup) must not report a version of their previous life.
    for (let oid = r.first; oid <= r.last; oid++) versions.bump(r.seq, oid);
    const body: OstCreateReply = orphansDeleted === undefined ? r : { ...r, orphansDeleted };
    return { body };
  });

  on(Opc.OST_READ, 'read', async (ctx, op) => {
    const b = parseRequest(OstReadRequest, ctx.body, op);
    const data = await store.read(b.seq, b.oid, b.offset, b.length, opts.replyBulks);
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
    const segments = b.segs ? checkSegments(b.segs, data.length, op) : [{ offset: b.offset, length: data.length }];
    const { result: n, ver } = await modifying(b.seq, b.oid, () => store.writeSegments(b.seq, b.oid, segments, data, b.sync ?? false, b.mtime));
    addSample(stats.counters.write_bytes, n);
    const grant = ctx.export ? await grants.write(ctx.export, n, b.grantUsed ?? 0, b.grantWant ?? 0) : 0;
    const body: OstWriteReply = { n, ver, grant };
    return { body };
  });

  on(Opc.OST_GETATTR, 'getattr', async (ctx, op) => {
    const b = parseRequest(OstObjectRequest, ctx.body, op);
    return { body: await attrWithVersion(b.seq, b.oid) };
  });

  on(Opc.OST_SETATTR, 'setattr', async (ctx, op) => {
    const b = parseRequest(OstSetattrRequest, ctx.body, op);
    // Times only: the data version stays.
    const ver = versions.of(b.seq, b.oid);
    return { body: { ...(await store.setattr(b.seq, b.oid, { atime: b.atime, mtime: b.mtime })), ver } };
  });

  on(Opc.OST_PUNCH, 'punch', async (ctx, op) => {
    const b = parseRequest(OstPunchRequest, ctx.body, op);
    const { result: attr, ver } = await modifying(b.seq, b.oid, () => store.punch(b.seq, b.oid, b.size));
    return { body: { ...attr, ver } };
  });

  on(Opc.OST_DESTROY, 'destroy', async (ctx, op) => {
    const b = parseRequest(OstObjectRequest, ctx.body, op);
    // Clients caching the object's pages or size must drop them first.
    const lock = await ldlm.lockLocal(objectResource(b.seq, b.oid), 'extent', LockMode.PW, { extent: { start: 0, end: EXTENT_EOF } });
    try {
      await store.destroy(b.seq, b.oid);
      versions.forget(b.seq, b.oid);
    } finally {
      lock.release();
    }
    return { body: {} };
  });

  const statfs = async (): Promise<StatFs> => {
    const st = await store.statfs();
    return { ...st, bavail: grants.availableBlocks(st) };
  };

  on(Opc.OST_STATFS, 'statfs', async (ctx, op) => {
    parseRequest(OstStatfsRequest, ctx.body ?? {}, op);
    return { body: await statfs() };
  });

  on(Opc.OST_SYNC, 'sync', async (ctx, op) => {
    const b = parseRequest(OstSyncRequest, ctx.body ?? {}, op);
    await store.sync(b.seq, b.oid);
    return { body: {} };
  });

  handlers.set(Opc.LDLM_ENQUEUE, async (ctx) => {
    const b = parseBody(EnqueueRequest, ctx.body);
    if (b.type !== 'extent') throw err('EINVAL', `bad request: an OST grants extent locks, not ${b.type}`, 'BAD_REQUEST');
    if (!/^\d+:\d+$/.test(b.res)) throw err('EINVAL', `bad request: res: not an object name: ${b.res}`, 'BAD_REQUEST');
    return { body: await ldlm.enqueue(ctx.export!, b) };
  });
  handlers.set(Opc.LDLM_CANCEL, (ctx) => {
    ldlm.cancel(ctx.export!, parseBody(CancelRequest, ctx.body).handles);
    return { body: {} };
  });

  return {
    name: store.name,
    store,
    stats,
    ldlm,
    versions,
    grants,
    statfs,
    handlers,
    async onConnect(exp: ServerExport, data: unknown): Promise<OstConnectReply> {
      const d = parseRequest(OstConnectData, data, 'OST_CONNECT');
      if (d.fsname !== store.fsname) {
        throw err('EINVAL', `${store.name} belongs to filesystem ${store.fsname}, not ${d.fsname}`, 'WRONG_FILESYSTEM');
      }
      const grant = await grants.connect(exp);
      log.info({ target: store.name, client: exp.clientUuid, peer: exp.peer, grant }, 'client connected');
      return { index: store.index, fsname: store.fsname, uuid: store.uuid, grant };
    },
    onDisconnect(exp: ServerExport): void {
      ldlm.dropExport(exp);
      grants.release(exp);
      log.info({ target: store.name, client: exp.clientUuid, peer: exp.peer }, 'client disconnected');
    },
  };
}

/** An OST_WRITE's niobufs: in increasing order, apart, inside 2^53, and exactly the bulk's bytes. */
function checkSegments(segs: Array<[number, number]>, bulkBytes: number, op: string): Array<{ offset: number; length: number }> {
  let total = 0;
  let end = 0;
  const out: Array<{ offset: number; length: number }> = [];
  for (const [offset, length] of segs) {
    if (offset < end) throw err('EINVAL', `${op}: bad request: segments overlap or are out of order at offset ${offset}`, 'BAD_REQUEST');
    if (offset > MAX_OBJECT_BYTES - length) throw err('EINVAL', `${op}: bad request: segment at ${offset} of ${length} bytes is beyond 2^53`, 'BAD_REQUEST');
    end = offset + length;
    total += length;
    out.push({ offset, length });
  }
  if (total !== bulkBytes) throw err('EINVAL', `${op}: bad request: segments cover ${total} bytes, the bulk holds ${bulkBytes}`, 'BAD_REQUEST');
  return out;
}
