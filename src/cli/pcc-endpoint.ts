/**
 * `lfs pcc` and `lctl pcc` talk to the mount daemon that serves a path: its mountpoint from
 * the kernel's mount table, then the daemon's control socket (role client) whose
 * `pcc.mountpoint` command names that mountpoint.
 */
import { realpath } from 'node:fs/promises';
import { resolve } from 'node:path';
import { err } from '../common/errno.js';
import { call, findEndpoints, type Endpoint } from '../ctl/control-client.js';
import { mountOf, pathInMount, readMountTable, striaMounts } from './mount-table.js';

/** attach and detach copy whole files: let them take their time */
export const PCC_CALL_TIMEOUT_MS = 3_600_000;

export interface PccTarget {
  endpoint: Endpoint;
  mountpoint: string;
  /** the file's components below the mount's root */
  path: string[];
}

/** The control endpoint of the daemon serving `mountpoint`. */
export async function pccEndpoint(mountpoint: string): Promise<Endpoint> {
  const want = resolve(mountpoint);
  for (const ep of await findEndpoints()) {
    if (ep.role !== 'client') continue;
    const r = (await call(ep, 'pcc.mountpoint', {}, 10_000).catch(() => undefined)) as { mountpoint?: unknown } | undefined;
    // the mount table holds canonical paths; the daemon says what it was given
    if (typeof r?.mountpoint === 'string' && (r.mountpoint === want || (await realpath(r.mountpoint).catch(() => r.mountpoint)) === want)) return ep;
  }
  throw err('ENODEV', `no Stria mount daemon with PCC serves ${want} on this node`, 'NO_PCC_MOUNT');
}

/** The mount a file is on (ENODEV for a file outside Stria). */
export async function pccTarget(file: string): Promise<PccTarget> {
  const abs = resolve(file);
  const mounts = await readMountTable();
  const m = mountOf(mounts, abs);
  if (!m || !striaMounts(mounts).includes(m)) throw err('ENODEV', `${file} is not on a Stria mount`, 'NOT_STRIA');
  return { endpoint: await pccEndpoint(m.mountpoint), mountpoint: m.mountpoint, path: pathInMount(m, abs) };
}

/** The mountpoint a path given as MNT is (or is inside). */
export async function pccMountOf(mnt: string): Promise<string> {
  const abs = resolve(mnt);
  const mounts = await readMountTable();
  const m = mountOf(mounts, abs);
  if (!m || !striaMounts(mounts).includes(m)) throw err('ENODEV', `${mnt} is not a Stria mount`, 'NOT_STRIA');
  return m.mountpoint;
}
