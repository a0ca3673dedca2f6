/**
 * `lfs check` as Lustre answers it: from the state of the mounted client's own imports
 * (FULL = active), read through the mount's control socket, so a client that lost its own
 * link reports its targets inactive instead of failing to connect. Only when no local
 * mount of the filesystem is found are the targets pinged from a fresh connection.
 */
import { findEndpoints, ask } from '../ctl/control-client.js';

export interface ImportState {
  /** e.g. "testfs-OST0001-osc" */
  name: string;
  active: boolean;
}

const STATE_PARAMS = [
  { pattern: (fs: string) => `mdc.${fs}-MDT*-mdc-*.mds_server_uuid`, suffix: '-mdc', kind: 'mdts' as const },
  { pattern: (fs: string) => `osc.${fs}-OST*-osc-*.ost_server_uuid`, suffix: '-osc', kind: 'osts' as const },
];

/**
 * The import states of the local mounts of `fsname`, per target (a target is active when
 * every mount has it FULL); undefined when no mount of it answers on this host.
 */
export async function mountedImportStates(fsname: string, which: 'mdts' | 'osts' | 'all', runDir?: string): Promise<ImportState[] | undefined> {
  const clients = (await findEndpoints(runDir)).filter((e) => e.role === 'client');
  const states = new Map<string, boolean>();
  let found = false;
  for (const ep of clients) {
    for (const p of STATE_PARAMS) {
      if (which !== 'all' && which !== p.kind) continue;
      const r = await ask(ep, { op: 'get', pattern: p.pattern(fsname) }, 5_000).catch(() => undefined);
      if (!r || !r.ok || !('values' in r)) continue;
      for (const v of r.values) {
        if (v.value === undefined) continue;
        found = true;
        // "<target>_UUID\t<STATE>"
        const [uuid, state] = v.value.trim().split(/\s+/);
        const target = (uuid ?? '').replace(/_UUID$/, '');
        const name = `${target}${p.suffix}`;
        states.set(name, (states.get(name) ?? true) && state === 'FULL');
      }
    }
  }
  if (!found) return undefined;
  return [...states].map(([name, active]) => ({ name, active })).sort((a, b) => order(a.name) - order(b.name) || a.name.localeCompare(b.name));
}

function order(name: string): number {
  return name.endsWith('-mdc') ? 0 : 1;
}
