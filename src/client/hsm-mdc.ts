/** Client side of the MDT's HSM requests (reference §7.3): typed calls over the MDC import. */
import type { Fid } from '../common/fid.js';
import { Opc } from '../ptlrpc/opcodes.js';
import type { Import } from '../ptlrpc/import.js';
import type { RequestOptions } from '../ptlrpc/types.js';
import type { Cred } from './mdc.js';
import type {
  HsmActionReply, HsmProgressBody, HsmReleaseBody, HsmReleaseReply, HsmRequestBody, HsmRequestReply, HsmStateReply, HsmStateSetBody,
} from '../hsm/protocol.js';

export class HsmMdc {
  constructor(private readonly imp: Import) {}

  private async call<T>(opc: number, body: unknown, cred?: Cred): Promise<T> {
    const opts: RequestOptions | undefined = cred ? { uid: cred.uid, gid: cred.gid } : undefined;
    return (await this.imp.request(opc, body, opts)).body as T;
  }

  /** archive, restore, remove or cancel: queued by the coordinator; one cookie per fid */
  request(body: HsmRequestBody, cred?: Cred): Promise<HsmRequestReply> {
    return this.call(Opc.MDS_HSM_REQUEST, body, cred);
  }

  /** synchronous release of an archived, clean file */
  release(body: Omit<HsmReleaseBody, 'action'>, cred?: Cred): Promise<HsmReleaseReply> {
    return this.call(Opc.MDS_HSM_REQUEST, { action: 'release', ...body }, cred);
  }

  state(fid: Fid, cred?: Cred): Promise<HsmStateReply> {
    return this.call(Opc.MDS_HSM_STATE_GET, { fid }, cred);
  }

  setState(body: HsmStateSetBody, cred?: Cred): Promise<HsmStateReply> {
    return this.call(Opc.MDS_HSM_STATE_SET, body, cred);
  }

  action(fid: Fid, cred?: Cred): Promise<HsmActionReply> {
    return this.call(Opc.MDS_HSM_ACTION, { fid }, cred);
  }

  /** copytools: serve these archive ids (empty: all) through this client's MDT export */
  async register(archiveIds: number[]): Promise<void> {
    await this.call(Opc.MDS_HSM_CT_REGISTER, { archiveIds });
  }

  async unregister(): Promise<void> {
    await this.call(Opc.MDS_HSM_CT_UNREGISTER, {});
  }

  async progress(body: HsmProgressBody): Promise<void> {
    await this.call(Opc.MDS_HSM_PROGRESS, body);
  }
}
