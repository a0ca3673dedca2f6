/** Building request/reply headers and turning reply frames into results or errors. */
import { Errno, err, errnoName, StriaError, toStriaError } from '../common/errno.js';
import type { Logger } from '../common/log.js';
import { bulkChecksum, bulkChecksumMatches } from './checksum.js';
import { MsgType, opcodeName } from './opcodes.js';
import { PROTOCOL_VERSION, type MsgHeader, type ReplyMessage, type ReplyPayload, type RequestOptions } from './types.js';

export interface Frame {
  header: MsgHeader;
  bulk: Buffer | undefined;
}

const processUid = typeof process.getuid === 'function' ? process.getuid() : 0;
const processGid = typeof process.getgid === 'function' ? process.getgid() : 0;

/** Bulk as a list of non-empty buffers, or undefined when there is none. */
export function normalizeBulk(bulk: Buffer | Buffer[] | undefined): Buffer[] | undefined {
  if (bulk === undefined) return undefined;
  const list = (Array.isArray(bulk) ? bulk : [bulk]).filter((b) => b.length > 0);
  return list.length > 0 ? list : undefined;
}

export function bulkLength(bulk: readonly Buffer[] | undefined): number {
  let n = 0;
  if (bulk) for (const b of bulk) n += b.length;
  return n;
}

const isU32 = (v: unknown): boolean => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff;

/**
 * Rejects request arguments the peer's decoder would refuse: sent anyway, they would get
 * the whole connection closed (and every request on it resent).
 */
export function checkRequestArgs(opc: unknown, opts: RequestOptions): void {
  const bad = (what: string): StriaError => err('EINVAL', `invalid request: ${what}`, 'BAD_REQUEST');
  if (!isU32(opc)) throw bad(`opcode ${String(opc)}`);
  if (opts.uid !== undefined && !isU32(opts.uid)) throw bad(`uid ${String(opts.uid)}`);
  if (opts.gid !== undefined && !isU32(opts.gid)) throw bad(`gid ${String(opts.gid)}`);
  if (opts.jobid !== undefined && typeof opts.jobid !== 'string') throw bad('jobid must be a string');
  if (opts.timeoutMs !== undefined && !(typeof opts.timeoutMs === 'number' && opts.timeoutMs > 0 && Number.isFinite(opts.timeoutMs))) {
    throw bad(`timeoutMs ${String(opts.timeoutMs)}`);
  }
  const bulk = opts.bulk;
  if (bulk !== undefined && !Buffer.isBuffer(bulk) && !(Array.isArray(bulk) && bulk.every((b) => Buffer.isBuffer(b)))) {
    throw bad('bulk must be a Buffer or an array of Buffers');
  }
}

export interface RequestHeaderExtra {
  h?: number;
  cc?: number;
  fl?: number;
  timeoutMs: number;
  /** precomputed checksum of the bulk (when opts.checksum) */
  ck?: number;
}

export function requestHeader(opc: number, xid: number, body: unknown, opts: RequestOptions, extra: RequestHeaderExtra): MsgHeader {
  const h: MsgHeader = { v: PROTOCOL_VERSION, t: MsgType.REQUEST, opc, xid };
  if (extra.h !== undefined) h.h = extra.h;
  if (extra.cc !== undefined) h.cc = extra.cc;
  if (extra.fl) h.fl = extra.fl;
  h.to = extra.timeoutMs;
  h.uid = opts.uid ?? processUid;
  h.gid = opts.gid ?? processGid;
  if (opts.jobid) h.job = opts.jobid;
  if (opts.checksum) {
    h.ckr = true;
    if (extra.ck !== undefined) h.ck = extra.ck;
  }
  if (body !== undefined) h.b = body;
  return h;
}

export interface ReplyHeaderExtra {
  lc?: number;
  svcMs: number;
}

export function replyHeader(req: MsgHeader, body: unknown, transno: number | undefined, extra: ReplyHeaderExtra): MsgHeader {
  const h: MsgHeader = { v: PROTOCOL_VERSION, t: MsgType.REPLY, opc: req.opc, xid: req.xid, st: 0 };
  if (transno) h.tn = transno;
  if (extra.lc !== undefined) h.lc = extra.lc;
  h.svc = extra.svcMs;
  if (body !== undefined) h.b = body;
  return h;
}

export function errorHeader(req: MsgHeader, e: StriaError, extra: ReplyHeaderExtra): MsgHeader {
  // a malformed errno would make the peer reject the whole frame (and drop the connection)
  const errno = Number.isInteger(e.errno) && e.errno > 0 && e.errno <= 0xffff ? e.errno : Errno.EIO;
  const h: MsgHeader = {
    v: PROTOCOL_VERSION,
    t: MsgType.ERROR,
    opc: req.opc,
    xid: req.xid,
    st: -errno,
    code: typeof e.code === 'string' ? e.code : errnoName(errno),
    msg: String(e.message),
  };
  if (extra.lc !== undefined) h.lc = extra.lc;
  h.svc = extra.svcMs;
  return h;
}

/**
 * The StriaError an error reply stands for. It carries no stack: where the reply was decoded
 * says nothing about the failure, and capturing one cost more than the rest of the reply
 * (ENODATA from getxattr answers every write through the mount).
 */
export function errorFromReply(h: MsgHeader): StriaError {
  const errno = h.st !== undefined && h.st < 0 ? -h.st : Errno.EPROTO;
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return new StriaError(errno, h.msg ?? `${opcodeName(h.opc)} failed: ${errnoName(errno)}`, h.code);
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/** Converts a reply frame to a ReplyMessage; throws the StriaError of an error reply or a bad checksum. */
export function toReplyMessage(frame: Frame, what: string): ReplyMessage {
  const h = frame.header;
  if (h.t === MsgType.ERROR) throw errorFromReply(h);
  if (h.t !== MsgType.REPLY) throw err('EPROTO', `${what}: unexpected message type ${h.t} in reply`, 'BAD_REPLY');
  if (!bulkChecksumMatches(h, frame.bulk)) {
    throw err('EBADMSG', `${what}: reply bulk checksum mismatch`, 'BULK_CHECKSUM');
  }
  return { body: h.b, bulk: frame.bulk, transno: h.tn ?? 0, lastCommitted: h.lc ?? 0 };
}

export type HandlerOutcome = { ok: true; payload: ReplyPayload | undefined } | { ok: false; error: StriaError };

/**
 * Runs a request handler: a StriaError becomes an error reply, anything else EIO and an
 * error log line. Never throws.
 */
export async function runHandler<C>(
  fn: (ctx: C) => Promise<ReplyPayload | void> | ReplyPayload | void,
  ctx: C,
  log: Logger,
  what: string,
): Promise<HandlerOutcome> {
  try {
    const payload = await fn(ctx);
    if (payload !== undefined && payload !== null && typeof payload !== 'object') {
      log.error({ what }, 'handler returned a non-object reply payload');
      return { ok: false, error: err('EIO', `${what}: handler returned an invalid reply`, 'EIO') };
    }
    return { ok: true, payload: payload ?? undefined };
  } catch (e) {
    if (e instanceof StriaError) return { ok: false, error: e };
    log.error({ err: e, what }, 'request handler failed');
    return { ok: false, error: toUnexpectedError(e) };
  }
}

function toUnexpectedError(e: unknown): StriaError {
  const se = toStriaError(e);
  return new StriaError(Errno.EIO, se.message, 'EIO');
}

/**
 * Builds the reply frame of an outcome. A reply bulk is checksummed when the request asked
 * for it (ckr).
 */
export function outcomeFrame(
  req: MsgHeader,
  outcome: HandlerOutcome,
  extra: ReplyHeaderExtra,
): { header: MsgHeader; bulk: Buffer[] | undefined } {
  if (!outcome.ok) return { header: errorHeader(req, outcome.error, extra), bulk: undefined };
  const payload = outcome.payload;
  const bulk = normalizeBulk(payload?.bulk);
  const header = replyHeader(req, payload?.body, validTransno(payload?.transno), extra);
  if (req.ckr && bulk) header.ck = bulkChecksum(bulk);
  return { header, bulk };
}

export function validTransno(t: unknown): number | undefined {
  return typeof t === 'number' && Number.isSafeInteger(t) && t > 0 ? t : undefined;
}

export function checksumError(what: string): StriaError {
  return err('EBADMSG', `${what}: request bulk checksum mismatch`, 'BULK_CHECKSUM');
}

export function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x) && !Buffer.isBuffer(x);
}
