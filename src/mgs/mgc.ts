/** The MGS client (Lustre's MGC): registers targets and fetches the configuration. */
import { MGS_TARGET, type TargetKind } from '../common/targets.js';
import type { Nid } from '../lnet/nid.js';
import { Opc } from '../ptlrpc/opcodes.js';
import type { RpcClient } from '../ptlrpc/client.js';
import type { Import } from '../ptlrpc/import.js';
import type { FsConfig, PoolOpBody } from './protocol.js';

export class MgsClient {
  readonly imp: Import;

  constructor(rpc: RpcClient, mgsNids: Nid[], opts: { timeoutMs?: number; recoveryWaitMs?: number } = {}) {
    this.imp = rpc.import({
      nids: mgsNids,
      target: MGS_TARGET,
      connectOpc: Opc.MGS_CONNECT,
      timeoutMs: opts.timeoutMs,
      recoveryWaitMs: opts.recoveryWaitMs,
    });
  }

  async connect(): Promise<void> {
    await this.imp.connect();
  }

  async register(fsname: string, kind: TargetKind, index: number, uuid: string, nids: string[], fsUuid?: string): Promise<FsConfig> {
    const r = await this.imp.request(Opc.MGS_TARGET_REG, fsUuid ? { fsname, kind, index, uuid, nids, fsUuid } : { fsname, kind, index, uuid, nids });
    return r.body as FsConfig;
  }

  async config(fsname: string): Promise<FsConfig> {
    const r = await this.imp.request(Opc.MGS_CONFIG_READ, { fsname });
    return r.body as FsConfig;
  }

  async poolOp(op: PoolOpBody): Promise<FsConfig> {
    const r = await this.imp.request(Opc.MGS_SET_INFO, op);
    return r.body as FsConfig;
  }

  close(): Promise<void> {
    return this.imp.close();
  }
}
