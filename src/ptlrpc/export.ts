/** Server-side state of one client of one target (Lustre's export). */
import type { RpcChannel } from './channel.js';
import { ReplyCache } from './reply-cache.js';
import type { ReplyMessage, RequestOptions, ServerExport } from './types.js';

/** One accepted TCP connection and the exports currently bound to it. */
export interface ServerLink {
  readonly channel: RpcChannel;
  readonly peer: string;
  readonly exports: Set<RpcExport>;
}

export type CallbackSender = (exp: RpcExport, opc: number, body: unknown, opts: RequestOptions) => Promise<ReplyMessage>;

export class RpcExport implements ServerExport {
  readonly target: string;
  readonly clientUuid: string;
  readonly handle: number;
  readonly data = new Map<string, unknown>();
  readonly replies: ReplyCache;
  peer: string;
  connCnt = 0;
  /** the connection the client is reachable on; undefined while it is disconnected */
  link: ServerLink | undefined;
  private readonly sender: CallbackSender;

  constructor(init: { target: string; clientUuid: string; handle: number; peer: string; replyCacheSize: number }, sender: CallbackSender) {
    this.target = init.target;
    this.clientUuid = init.clientUuid;
    this.handle = init.handle;
    this.peer = init.peer;
    this.replies = new ReplyCache(init.replyCacheSize);
    this.sender = sender;
  }

  get connected(): boolean {
    return this.link !== undefined && this.link.channel.isOpen;
  }

  bind(link: ServerLink): void {
    if (this.link && this.link !== link) this.link.exports.delete(this);
    this.link = link;
    this.peer = link.peer;
    link.exports.add(this);
  }

  unbind(): void {
    this.link?.exports.delete(this);
    this.link = undefined;
  }

  request(opc: number, body: unknown, opts?: RequestOptions): Promise<ReplyMessage> {
    return this.sender(this, opc, body, opts ?? {});
  }
}
