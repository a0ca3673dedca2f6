/**
 * What one lfs invocation shares: the mount table, one client per filesystem,
 * and the resolution of arguments. An argument is either a filesystem spec
 * (MGSNID:/FSNAME[/PATH]) or an ordinary path, which is resolved like
 * realpath(3) and mapped through the longest fuse.stria mount containing it
 * to that mount's spec. Inside a filesystem, names are looked up through the
 * MDS, following symbolic links as the kernel would.
 */
import { realpath } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { getSystemErrorMap } from 'node:util';
import { err, StriaError, toStriaError } from '../common/errno.js';
import type { Fid } from '../common/fid.js';
import type { Inode } from '../common/inode.js';
import { silentLogger } from '../common/log.js';
import { StriaClient } from '../client/client.js';
import { fsKey, looksLikeFsSpec, parseFsSpec, sameFilesystem, type FsSpec } from '../client/fs-spec.js';
import { MOUNTINFO, STRIA_FSTYPE, mountOf, pathInMount, readMountTable, striaMounts, type MountEntry } from './mount-table.js';

/** Symbolic links followed in one lookup before ELOOP (the kernel's limit). */
export const SYMLOOP_MAX = 40;

/** glibc's wording where libuv's differs */
const GLIBC_TEXT: Record<string, string> = {
  ELOOP: 'Too many levels of symbolic links',
  EXDEV: 'Invalid cross-device link',
  ENOTCONN: 'Transport endpoint is not connected',
};

/** strerror(3) text for an errno, as Lustre's tools print it. */
export function strerror(errno: number): string {
  const entry = getSystemErrorMap().get(-errno);
  const glibc = entry ? GLIBC_TEXT[entry[0]] : undefined;
  if (glibc) return glibc;
  const text = entry?.[1];
  return text ? text[0]!.toUpperCase() + text.slice(1) : `Unknown error ${errno}`;
}

/** An argument resolved to a filesystem and a path inside it. */
export interface Target {
  /** the argument as given */
  arg: string;
  /** how the target is printed, and the prefix of what lies below it */
  display: string;
  /** the filesystem, with `path` the components down to the target */
  spec: FsSpec;
  /** the mount a path argument was found on */
  mount?: MountEntry;
}

/** A name looked up inside a filesystem. */
export interface FsNode {
  inode: Inode;
  /** the directory holding the name, when there is one */
  parent?: Fid;
  name?: string;
}

/** How a child of a shown path is shown: `dir/name`, or `/name` under the root "/". */
export function childPath(display: string, name: string): string {
  return display.endsWith('/') ? `${display}${name}` : `${display}/${name}`;
}

export interface SessionOptions {
  /** the mount table to read; STRIA_MOUNTINFO or /proc/self/mountinfo by default */
  mountinfo?: string;
}

export class LfsSession {
  private mountTable: Promise<MountEntry[]> | undefined;
  private readonly clients = new Map<string, Promise<StriaClient>>();
  private readonly roots = new Map<StriaClient, Promise<Inode>>();
  private readonly mountinfo: string;

  constructor(opts: SessionOptions = {}) {
    this.mountinfo = opts.mountinfo ?? process.env.STRIA_MOUNTINFO ?? MOUNTINFO;
  }

  mounts(): Promise<MountEntry[]> {
    this.mountTable ??= readMountTable(this.mountinfo).catch((e: unknown) => {
      throw err('EIO', `cannot read the mount table ${this.mountinfo}: ${toStriaError(e).message}`, 'NO_MOUNT_TABLE');
    });
    return this.mountTable;
  }

  /** Every Stria filesystem mounted here, one entry per mountpoint. */
  async striaMounts(): Promise<MountEntry[]> {
    return striaMounts(await this.mounts());
  }

  /** One client per filesystem for the whole command. */
  client(spec: FsSpec): Promise<StriaClient> {
    const key = fsKey(spec);
    let c = this.clients.get(key);
    if (!c) {
      c = StriaClient.mount({ mgsNids: spec.mgsNids, fsname: spec.fsname, timeoutMs: 10_000, recoveryWaitMs: 10_000 }, silentLogger());
      this.clients.set(key, c);
    }
    return c;
  }

  async close(): Promise<void> {
    const all = [...this.clients.values()];
    this.clients.clear();
    await Promise.all(all.map((p) => p.then((c) => c.unmount(), () => undefined)));
  }

  /**
   * Resolves an argument. `follow`: a final symbolic link is followed (getstripe),
   * otherwise the link itself is the target (path2fid), and the final name need
   * not exist (setstripe creating a file).
   */
  async target(arg: string, follow: boolean): Promise<Target> {
    if (looksLikeFsSpec(arg)) {
      const spec = parseFsSpec(arg);
      return { arg, display: `/${spec.path.join('/')}`, spec };
    }
    if (arg.length === 0) throw err('ENOENT', "cannot access '': No such file or directory");
    const real = await realPath(arg, follow);
    const mount = mountOf(await this.mounts(), real);
    if (!mount || mount.fstype !== STRIA_FSTYPE) throw err('EINVAL', `${arg} is not on a Stria filesystem`, 'NOT_STRIA');
    let base: FsSpec;
    try {
      base = parseFsSpec(mount.source);
    } catch (e) {
      throw err('EINVAL', `${arg}: the mount source '${mount.source}' of ${mount.mountpoint} is not MGSNID:/FSNAME: ${toStriaError(e).message}`, 'BAD_MOUNT_SOURCE');
    }
    return { arg, display: arg, spec: { ...base, path: [...base.path, ...pathInMount(mount, real)], text: mount.source }, mount };
  }

  async root(c: StriaClient): Promise<Inode> {
    let r = this.roots.get(c);
    if (!r) {
      r = c.mdc.getattr(c.root);
      this.roots.set(c, r);
    }
    return r;
  }

  /**
   * Looks up `components` from the filesystem root through the MDS.
   * Symbolic links on the way are followed; the last one only if `follow`.
   */
  async lookup(c: StriaClient, spec: FsSpec, components: string[], follow: boolean): Promise<FsNode> {
    return this.walk(c, spec, await this.root(c), components, follow, { links: 0 });
  }

  /** Where a symbolic link found in directory `dir` leads (links in its target followed too). */
  async followLink(c: StriaClient, spec: FsSpec, dir: Fid, link: Inode): Promise<FsNode> {
    const budget = { links: 0 };
    return this.walk(c, spec, await c.mdc.getattr(dir), await this.linkTarget(c, spec, link, budget), true, budget);
  }

  private async walk(c: StriaClient, spec: FsSpec, start: Inode, components: string[], follow: boolean, budget: { links: number }): Promise<FsNode> {
    let node: FsNode = { inode: start };
    const queue = components.filter((p) => p.length > 0 && p !== '.');
    while (queue.length > 0) {
      const part = queue.shift()!;
      if (part === '.') continue;
      if (node.inode.type !== 'dir') throw err('ENOTDIR', `'${node.name ?? '/'}' is not a directory`);
      const next = await c.mdc.lookup(node.inode.fid, part);
      if (next.type === 'lnk' && (queue.length > 0 || follow)) {
        const target = await this.linkTarget(c, spec, next, budget);
        if (target[0] === '/') node = { inode: await this.root(c) };
        queue.unshift(...target.filter((p) => p !== '/' && p.length > 0));
        continue;
      }
      node = part === '..' ? { inode: next } : { inode: next, parent: node.inode.fid, name: part };
    }
    return node;
  }

  /**
   * A link's target as components; an absolute target becomes ['/', ...] from the
   * filesystem root when it lies under a mount of this same filesystem.
   */
  private async linkTarget(c: StriaClient, spec: FsSpec, link: Inode, budget: { links: number }): Promise<string[]> {
    if (++budget.links > SYMLOOP_MAX) throw err('ELOOP', 'too many levels of symbolic links');
    const target = link.target ?? (await c.readlink(link.fid));
    if (!target.startsWith('/')) return target.split('/');
    const abs = resolve(target);
    const mount = mountOf(await this.mounts(), abs);
    if (mount && mount.fstype === STRIA_FSTYPE) {
      try {
        const base = parseFsSpec(mount.source);
        if (sameFilesystem(base, spec)) return ['/', ...base.path, ...pathInMount(mount, abs)];
      } catch {
        // not a spec we can read: treated as outside
      }
    }
    throw err('EXDEV', `symbolic link to ${target} leads out of filesystem ${spec.fsname}`, 'LINK_OUTSIDE');
  }
}

/** realpath(3) of the whole path, or (not following) of its directory plus its last name. */
async function realPath(arg: string, follow: boolean): Promise<string> {
  const abs = resolve(arg);
  const name = basename(arg);
  try {
    if (follow || arg.endsWith('/') || name === '.' || name === '..' || abs === '/') return await realpath(arg);
    return join(await realpath(dirname(arg)), name);
  } catch (e) {
    const se = toStriaError(e);
    throw new StriaError(se.errno, `cannot access '${arg}': ${strerror(se.errno)}`, se.code);
  }
}
