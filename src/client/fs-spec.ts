/**
 * Filesystem specs as mount takes them, MGSNID[,NID][:FAILOVER]:/fsname[/path],
 * so admin tools can reach a filesystem and a path inside it without a mount.
 */
import { err } from '../common/errno.js';
import { validateFsname } from '../common/targets.js';
import { parseNidList, type Nid } from '../lnet/nid.js';
import type { Fid } from '../common/fid.js';
import type { StriaClient, FileAttr } from './client.js';

export interface FsSpec {
  mgsNids: Nid[];
  fsname: string;
  /** path components inside the filesystem */
  path: string[];
  text: string;
}

export function parseFsSpec(text: string): FsSpec {
  const i = text.indexOf(':/');
  if (i <= 0) throw err('EINVAL', `'${text}' is not MGSNID:/FSNAME[/PATH]`, 'BAD_FS_SPEC');
  // ':' separates failover nodes, but also precedes a port inside a NID: split only after '@net'.
  const nids = text.slice(0, i).split(/(?<=@(?:tcp|lo)\d*):/).flatMap((n) => parseNidList(n));
  const [fsname, ...path] = text.slice(i + 2).split('/').filter((p) => p.length > 0);
  if (!fsname) throw err('EINVAL', `'${text}' names no filesystem`, 'BAD_FS_SPEC');
  validateFsname(fsname);
  return { mgsNids: nids, fsname, path, text };
}

/**
 * Whether an lfs argument is a filesystem spec rather than a path: specs have
 * a NID (ADDR@NET) before ':/', paths never start that way in practice.
 */
export function looksLikeFsSpec(text: string): boolean {
  return /^[^/]*@[^/]*:\//.test(text);
}

/** The filesystem a spec names, without its path: one key per (MGS, fsname). */
export function fsKey(spec: FsSpec): string {
  return `${spec.mgsNids.map((n) => `${n.addr}:${n.port}@${n.net}`).sort().join(',')}:/${spec.fsname}`;
}

/** Whether two specs name the same filesystem: same name, and an MGS NID in common. */
export function sameFilesystem(a: FsSpec, b: FsSpec): boolean {
  if (a.fsname !== b.fsname) return false;
  const nids = new Set(a.mgsNids.map((n) => `${n.addr}:${n.port}@${n.net}`));
  return b.mgsNids.some((n) => nids.has(`${n.addr}:${n.port}@${n.net}`));
}

/** Looks up a path component by component from the root. */
export async function resolvePath(client: StriaClient, path: string[]): Promise<{ attr: FileAttr; parent: Fid | undefined; name: string | undefined }> {
  let attr = await client.getattr(client.root);
  let parent: Fid | undefined;
  for (const name of path) {
    parent = attr.fid;
    attr = await client.lookup(attr.fid, name);
  }
  return { attr, parent, name: path[path.length - 1] };
}
