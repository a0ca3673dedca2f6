/** Routes lock callbacks (BL/CP/GL ASTs) from any target to that target's client namespace. */
import { err } from '../common/errno.js';
import { Opc } from '../ptlrpc/opcodes.js';
import type { RpcClient } from '../ptlrpc/client.js';
import type { LdlmClientNamespace } from './client.js';

export class LdlmCallbackRouter {
  private readonly namespaces = new Map<string, LdlmClientNamespace>();

  constructor(rpc: RpcClient) {
    rpc.onCallback(Opc.LDLM_BL_CALLBACK, (ctx) => this.ns(ctx.target).onBlockingAst(ctx.body));
    rpc.onCallback(Opc.LDLM_CP_CALLBACK, (ctx) => this.ns(ctx.target).onCompletionAst(ctx.body));
    rpc.onCallback(Opc.LDLM_GL_CALLBACK, (ctx) => this.ns(ctx.target).onGlimpseAst(ctx.body));
  }

  /** `target` is the name the server's export carries, e.g. "testfs-OST0001". */
  add(target: string, ns: LdlmClientNamespace): void {
    this.namespaces.set(target, ns);
  }

  all(): LdlmClientNamespace[] {
    return [...this.namespaces.values()];
  }

  private ns(target: string): LdlmClientNamespace {
    const ns = this.namespaces.get(target);
    if (!ns) throw err('ENOENT', `no lock namespace for target '${target}'`, 'NO_NAMESPACE');
    return ns;
  }
}
