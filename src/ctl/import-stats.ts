/**
 * Client-side RPC statistics of one import, gathered from the import's request
 * events: the ptlrpc counters Lustre shows in `osc.*.stats` / `mdc.*.stats`
 * (req_waittime, req_active, read_bytes, write_bytes, one counter per opcode), the
 * `osc.*.rpc_stats` histograms, and the `*.import` YAML.
 */
import { formatNid } from '../lnet/nid.js';
import type { Import, RpcEventInfo, RpcOutcome } from '../ptlrpc/import.js';
import { Opc, opcodeName } from '../ptlrpc/opcodes.js';
import { now, type Timestamp } from '../common/time.js';
import { formatRwHistogram, formatStatsHeader, Histogram, StatsSet, type CounterDef } from './stats.js';

const PAGE = 4096;

/** Lustre's ll_opcode2str names. */
export function lustreOpcodeName(opc: number): string {
  if (opc === Opc.MDS_GETATTR_NAME) return 'mds_getattr_lock';
  return opcodeName(opc).toLowerCase();
}

export const OSC_OPCODES = [Opc.OST_READ, Opc.OST_WRITE, Opc.OST_GETATTR, Opc.OST_SETATTR, Opc.OST_PUNCH, Opc.OST_SYNC, Opc.OST_STATFS] as const;
export const MDC_OPCODES = [
  Opc.MDS_GETATTR, Opc.MDS_GETATTR_NAME, Opc.MDS_CLOSE, Opc.MDS_REINT, Opc.MDS_READPAGE, Opc.MDS_STATFS,
  Opc.MDS_SYNC, Opc.MDS_GETXATTR, Opc.MDS_SET_INFO, Opc.MDS_GET_INFO, Opc.SEQ_QUERY,
] as const;

function pagesOf(bytes: number): number {
  return Math.ceil(bytes / PAGE);
}

function numberField(body: unknown, key: string): number | undefined {
  if (!body || typeof body !== 'object') return undefined;
  const v = (body as Record<string, unknown>)[key];
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

/** Lustre's osc rpc_stats: RPC size, concurrency and offset histograms, read | write. */
export class RpcHistograms {
  readonly readPages = new Histogram();
  readonly writePages = new Histogram();
  readonly readInFlight = new Histogram();
  readonly writeInFlight = new Histogram();
  readonly readOffset = new Histogram();
  readonly writeOffset = new Histogram();
  startTime: Timestamp = now();

  clear(): void {
    for (const h of [this.readPages, this.writePages, this.readInFlight, this.writeInFlight, this.readOffset, this.writeOffset]) h.clear();
    this.startTime = now();
  }
}

export class ImportStats {
  readonly stats: StatsSet;
  readonly rpc = new RpcHistograms();
  private readonly opcodes: ReadonlySet<number>;
  private readonly sentReads = new Set<RpcEventInfo>();
  private readonly sentWrites = new Set<RpcEventInfo>();
  /** bulk RPCs built but waiting for a credit, with their pages */
  private readonly pending = new Map<RpcEventInfo, number>();
  private pendingReadPages = 0;
  private pendingWritePages = 0;
  private readonly tallied = new WeakSet<RpcEventInfo>();
  private readonly onQueued = (info: RpcEventInfo) => this.queued(info);
  private readonly onSent = (info: RpcEventInfo, inFlight: number) => this.sent(info, inFlight);
  private readonly onDone = (info: RpcEventInfo, o: RpcOutcome) => this.done(info, o);

  constructor(
    readonly imp: Import,
    opcodes: readonly number[],
  ) {
    this.opcodes = new Set(opcodes);
    const defs: CounterDef[] = [
      { name: 'req_waittime', unit: 'usec' },
      { name: 'req_active', unit: 'reqs' },
      { name: 'read_bytes', unit: 'bytes' },
      { name: 'write_bytes', unit: 'bytes' },
      ...opcodes.map((o): CounterDef => ({ name: lustreOpcodeName(o), unit: 'usec' })),
    ];
    this.stats = new StatsSet(defs);
    imp.on('rpc-queued', this.onQueued);
    imp.on('rpc-sent', this.onSent);
    imp.on('rpc-done', this.onDone);
  }

  detach(): void {
    this.imp.off('rpc-queued', this.onQueued);
    this.imp.off('rpc-sent', this.onSent);
    this.imp.off('rpc-done', this.onDone);
  }

  get readsInFlight(): number {
    return this.sentReads.size;
  }

  get writesInFlight(): number {
    return this.sentWrites.size;
  }

  private bulkPages(info: RpcEventInfo): number {
    return info.opc === Opc.OST_READ ? pagesOf(numberField(info.body, 'length') ?? 0) : pagesOf(info.bulkBytes);
  }

  private queued(info: RpcEventInfo): void {
    if (info.opc !== Opc.OST_READ && info.opc !== Opc.OST_WRITE) return;
    const pages = this.bulkPages(info);
    this.pending.set(info, pages);
    if (info.opc === Opc.OST_READ) this.pendingReadPages += pages;
    else this.pendingWritePages += pages;
  }

  private unpend(info: RpcEventInfo): void {
    const pages = this.pending.get(info);
    if (pages === undefined) return;
    this.pending.delete(info);
    if (info.opc === Opc.OST_READ) this.pendingReadPages -= pages;
    else this.pendingWritePages -= pages;
  }

  private sent(info: RpcEventInfo, inFlight: number): void {
    this.stats.add('req_active', inFlight);
    this.unpend(info);
    if (info.opc !== Opc.OST_READ && info.opc !== Opc.OST_WRITE) return;
    const read = info.opc === Opc.OST_READ;
    const set = read ? this.sentReads : this.sentWrites;
    set.add(info);
    if (this.tallied.has(info)) return;
    this.tallied.add(info);
    const offsetPages = Math.floor((numberField(info.body, 'offset') ?? 0) / PAGE);
    (read ? this.rpc.readPages : this.rpc.writePages).tallyLog2(this.bulkPages(info));
    (read ? this.rpc.readInFlight : this.rpc.writeInFlight).tally(set.size);
    (read ? this.rpc.readOffset : this.rpc.writeOffset).tallyLog2(offsetPages + 1);
  }

  private done(info: RpcEventInfo, o: RpcOutcome): void {
    this.unpend(info);
    this.sentReads.delete(info);
    this.sentWrites.delete(info);
    if (o.waitUsec !== undefined) {
      this.stats.add('req_waittime', o.waitUsec);
      if (this.opcodes.has(info.opc)) this.stats.add(lustreOpcodeName(info.opc), o.waitUsec);
    }
    if (!o.ok) return;
    if (info.opc === Opc.OST_READ) this.stats.add('read_bytes', o.replyBulkBytes);
    else if (info.opc === Opc.OST_WRITE) this.stats.add('write_bytes', info.bulkBytes);
  }

  /** `osc.*.rpc_stats` */
  formatRpcStats(at: Timestamp = now()): string {
    let out = formatStatsHeader(this.rpc.startTime, at, ':');
    out += `read RPCs in flight:  ${this.sentReads.size}\n`;
    out += `write RPCs in flight: ${this.sentWrites.size}\n`;
    out += `pending write pages:  ${this.pendingWritePages}\n`;
    out += `pending read pages:   ${this.pendingReadPages}\n`;
    out += formatRwHistogram('pages per rpc', this.rpc.readPages, this.rpc.writePages, (i) => 2 ** i);
    out += formatRwHistogram('rpcs in flight', this.rpc.readInFlight, this.rpc.writeInFlight, (i) => i);
    out += formatRwHistogram('offset', this.rpc.readOffset, this.rpc.writeOffset, (i) => (i === 0 ? 0 : 2 ** (i - 1)));
    return out;
  }
}

/**
 * `*.import`, in Lustre's YAML layout. Only what Stria really tracks is shown:
 * no connect flags, adaptive-timeout estimates or replay state.
 */
export function formatImport(deviceName: string, imp: Import, stats: ImportStats | undefined): string {
  const c = imp.connection;
  const cur = c.current ? formatNid(c.current) : '<none>';
  let out = 'import:\n';
  out += `    name: ${deviceName}\n`;
  out += `    target: ${imp.target}_UUID\n`;
  out += `    state: ${imp.state}\n`;
  out += '    connection:\n';
  out += `       failover_nids: [ ${c.nids.map((n) => `"${formatNid(n)}"`).join(', ')} ]\n`;
  out += `       current_connection: "${cur}"\n`;
  out += `       connection_attempts: ${c.connCnt}\n`;
  out += `       generation: ${c.generation}\n`;
  out += `       idle: ${c.lastActivity > 0 ? Math.max(0, Math.floor((Date.now() - c.lastActivity) / 1000)) : 0} sec\n`;
  const wait = stats?.stats.get('req_waittime');
  out += '    rpcs:\n';
  out += `       inflight: ${imp.stats.inFlight}\n`;
  out += `       timeouts: ${c.timeouts}\n`;
  out += `       avg_waittime: ${wait && wait.samples > 0 ? Math.floor(wait.sum / wait.samples) : 0} usec\n`;
  out += '    transactions:\n';
  out += `       peer_committed: ${imp.lastCommitted}\n`;
  if (stats) {
    for (const rw of ['read', 'write'] as const) {
      const bytes = stats.stats.get(`${rw}_bytes`);
      if (bytes.samples === 0 || bytes.sum === 0) continue;
      const perRpc = Math.floor(bytes.sum / bytes.samples);
      out += `    ${rw}_data_averages:\n       bytes_per_rpc: ${perRpc}\n`;
      const op = stats.stats.has(`ost_${rw}`) ? stats.stats.get(`ost_${rw}`) : undefined;
      if (op && op.samples > 0 && op.sum > 0) {
        const usec = Math.floor(op.sum / op.samples);
        out += `       usec_per_rpc: ${usec}\n`;
        // bytes per microsecond is MB per second
        if (usec > 0) out += `       MB_per_sec: ${Math.floor(perRpc / usec)}.${String(Math.floor((100 * perRpc) / usec) % 100).padStart(2, '0')}\n`;
      }
    }
  }
  return out;
}
