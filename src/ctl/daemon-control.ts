/**
 * Publishes a daemon's parameters to lctl. A daemon whose control socket cannot be
 * created (no permission on the run directory...) keeps serving its clients: lctl
 * just cannot see it, and the log says why.
 */
import { toStriaError } from '../common/errno.js';
import type { Logger } from '../common/log.js';
import { ControlServer } from './control-server.js';
import { ParamRegistry } from './params.js';
import type { Role } from './protocol.js';

export interface ServedParams {
  readonly registry: ParamRegistry;
  /** the control socket, undefined when it could not be created */
  readonly socketPath: string | undefined;
  close(): Promise<void>;
}

export async function serveParams(role: Role, register: (reg: ParamRegistry) => () => void, log: Logger, dir?: string): Promise<ServedParams> {
  const registry = new ParamRegistry();
  const unregister = register(registry);
  let server: ControlServer | undefined;
  try {
    server = await ControlServer.start(registry, { role, log, dir });
  } catch (e) {
    const se = toStriaError(e);
    log.warn({ err: se.message, code: se.code }, 'no control socket: lctl get_param/set_param will not see this process');
  }
  return {
    registry,
    socketPath: server?.path,
    close: async () => {
      await server?.close();
      unregister();
    },
  };
}
