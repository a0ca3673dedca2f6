/**
 * The contract of the RPC layer (PtlRPC over our LNet-like TCP transport).
 *
 * Frame on the wire (all integers big-endian):
 *   u32 magic 0x0BD00BD3 | u32 headerLen | u32 bulkLen | header (MessagePack) | bulk (raw bytes)
 * The header is a MessagePack map (see MsgHeader); the bulk is never MessagePack-encoded.
 */
import type { Nid } from '../lnet/nid.js';

export const FRAME_MAGIC = 0x0bd00bd3;
export const FRAME_PREFIX_BYTES = 12;
export const PROTOCOL_VERSION = 1;

/** Decoded message header. Short keys keep every frame small. */
export interface MsgHeader {
  v: number; // protocol version
  t: number; // MsgType: 4711 request, 4712 error, 4713 reply
  opc: number; // opcode
  xid: number; // per-sender increasing request id; replies echo it
  h?: number; // export handle (server-issued at connect), on requests after connect
  st?: number; // status: 0 or negative errno (error replies)
  code?: string; // stable error code (error replies)
  msg?: string; // error message (error replies)
  fl?: number; // MsgFlag bits (RESENT, REPLAY)
  cc?: number; // conn_cnt of the connection the request was sent on
  tn?: number; // transno of a modifying request (replies)
  lc?: number; // last_committed (replies)
  to?: number; // request timeout, ms
  svc?: number; // service time, ms (replies)
  job?: string; // jobid
  uid?: number;
  gid?: number;
  ck?: number; // crc32c of the bulk, when checksums are on
  ckr?: boolean; // request: "checksum the reply bulk"
  b?: unknown; // opcode-specific body, UNTRUSTED until validated by the handler
}

export interface RequestOptions {
  /** raw bulk payload, sent without copying (several buffers are sent back to back) */
  bulk?: Buffer | Buffer[];
  /** per-request timeout; default from the import/peer */
  timeoutMs?: number;
  /** checksum the request bulk and ask for a checksummed reply bulk */
  checksum?: boolean;
  uid?: number;
  gid?: number;
  jobid?: string;
  /**
   * send at once even when every credit is taken (LDLM_CANCEL: the requests holding the
   * credits may be waiting on the server for exactly this cancel)
   */
  urgent?: boolean;
}

export interface ReplyMessage {
  body: unknown;
  bulk: Buffer | undefined;
  transno: number;
  lastCommitted: number;
}

/** What a handler returns; bulk buffers are sent as they are. */
export interface ReplyPayload {
  body?: unknown;
  bulk?: Buffer | Buffer[];
  transno?: number;
}

/** Server-side view of one connected client of one target (Lustre's "export"). */
export interface ServerExport {
  readonly target: string;
  readonly clientUuid: string;
  /** remote address, e.g. "127.0.0.1:51000" */
  readonly peer: string;
  readonly handle: number;
  readonly connCnt: number;
  /** false while the client's connection is down (it may reconnect to this export) */
  readonly connected: boolean;
  /** per-target state attached by the service (open handles, ...) */
  readonly data: Map<string, unknown>;
  /** send a request to the client over the same connection (lock callbacks) */
  request(opc: number, body: unknown, opts?: RequestOptions): Promise<ReplyMessage>;
}

export interface RequestContext {
  opc: number;
  xid: number;
  flags: number;
  /** opcode-specific body: validate before use */
  body: unknown;
  /** request bulk, checksum already verified when one was sent */
  bulk: Buffer | undefined;
  uid: number;
  gid: number;
  jobid: string;
  /** undefined only for CONNECT and OBD_PING sent before a connect */
  export: ServerExport | undefined;
}

export type RequestHandler = (ctx: RequestContext) => Promise<ReplyPayload | void> | ReplyPayload | void;

/**
 * A target served by an RpcServer (MGS, one MDT, one OST). CONNECT requests name
 * it in their body: { target, uuid, data }.
 */
export interface TargetService {
  readonly name: string; // e.g. "MGS", "testfs-MDT0000", "testfs-OST0001"
  /** validate a connecting client; the result is returned to it as connect data */
  onConnect?(exp: ServerExport, data: unknown): Promise<unknown> | unknown;
  onDisconnect?(exp: ServerExport): void;
  handlers: ReadonlyMap<number, RequestHandler>;
}

export interface RpcServerOptions {
  /** where to listen */
  nid: Nid;
  /** largest accepted header, bytes (default 64 KiB) */
  maxHeaderBytes?: number;
  /** largest accepted bulk, bytes (default 64 MiB + 1 MiB) */
  maxBulkBytes?: number;
  /** requests of one connection served at once; reading pauses beyond (default 16) */
  credits?: number;
  /** replies remembered per export to answer resent requests (default 64) */
  replyCacheSize?: number;
}

export interface ImportOptions {
  /** the target's NIDs; more than one = failover, tried round-robin */
  nids: Nid[];
  /** target name, e.g. "testfs-OST0002" */
  target: string;
  /** CONNECT opcode of that target type (OST_CONNECT, MDS_CONNECT, MGS_CONNECT) */
  connectOpc: number;
  /** data sent with CONNECT (and resent on every reconnect) */
  connectData?: unknown;
  /** default per-request timeout, ms (default 30 s) */
  timeoutMs?: number;
  /** requests in flight at once (peer credits, default 8) */
  credits?: number;
  /** idle ping interval, ms (default 25 s; 0 = off) */
  pingIntervalMs?: number;
  /** how long a request waits for a reconnect before failing (default 300 s) */
  recoveryWaitMs?: number;
}

export type ImportState = 'NEW' | 'CONNECTING' | 'FULL' | 'DISCONN' | 'CLOSED';
