/**
 * `lfs pcc` and `lctl pcc` talk to the mount daemon that serves a path, found as
 * `stria warmup` finds it (mount-endpoint.ts): the mount table, then the control socket
 * whose `mount.info` names that mountpoint.
 */
import { resolve } from 'node:path';
import { err, toStriaError } from '../common/errno.js';
import type { Endpoint } from '../ctl/control-client.js';
import { MountEndpoints } from './mount-endpoint.js';

/** attach and detach copy whole files: let them take their time */
export const PCC_CALL_TIMEOUT_MS = 3_600_000;

export interface PccTarget {
  endpoint: Endpoint;
  mountpoint: string;
  /** the file's components below the mount's root */
  path: string[];
}

/** The mount a file is on (ENODEV for a file outside Stria or a mount without a daemon). */
export async function pccTarget(file: string): Promise<PccTarget> {
  try {
    const { client, path } = await new MountEndpoints().forPath(resolve(file));
    return { endpoint: client.endpoint, mountpoint: client.mount.mountpoint, path };
  } catch (e) {
    const se = toStriaError(e);
    if (se.code === 'NOT_STRIA') throw err('ENODEV', `${file} is not on a Stria mount`, 'NOT_STRIA');
    throw se;
  }
}

/** The control endpoint of the daemon serving the mount MNT is (or is inside). */
export async function pccEndpoint(mnt: string): Promise<Endpoint> {
  return (await pccTarget(mnt)).endpoint;
}
