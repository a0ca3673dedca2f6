/**
 * `lfs fid2path` and `lfs path2fid`: FIDs and names, through the names the
 * MDS keeps for every inode (Lustre's linkEA).
 */
import { Errno, StriaError, err, toStriaError } from '../common/errno.js';
import { fidToString, parseFid } from '../common/fid.js';
import { looksLikeFsSpec, parseFsSpec, type FsSpec } from '../client/fs-spec.js';
import { splitArgs, UsageError, type OptSpec } from './lfs-getopt.js';
import { strerror, type LfsSession } from './lfs-session.js';
import type { Output } from './lfs-output.js';
import { describeLookupError } from './lfs-errors.js';
import { pathInMount } from './mount-table.js';

export const FID2PATH_USAGE = `usage: fid2path [--print0|-0] [--print-fid|-f] [--print-link|-c] [--link|-l LINKNO]
                <fsname|root|MGSNID:/FSNAME[/PATH]> <fid>...`;
export const PATH2FID_USAGE = 'usage: path2fid [--parents|-p] <file|MGSNID:/FSNAME/PATH>...';

const FID2PATH_OPTIONS: OptSpec[] = [
  { name: '0', short: '0', long: ['print0'] },
  { name: 'f', short: 'f', long: ['print-fid'] },
  { name: 'c', short: 'c', long: ['print-link', 'cur', 'current'] },
  { name: 'l', short: 'l', long: ['link'], arg: 'required' },
  { name: 'h', short: 'h', long: ['help'] },
];

const PATH2FID_OPTIONS: OptSpec[] = [
  { name: 'p', short: 'p', long: ['parents'] },
  { name: 'h', short: 'h', long: ['help'] },
];

/** Where fid2path looks and how it prints: under a mountpoint, or relative to the filesystem. */
interface Fid2pathBase {
  spec: FsSpec;
  /** printed before each path ("/mnt/testfs"); none for a filesystem name or spec */
  mountDir?: string;
  /** components of the directory the paths are shown from (a subdirectory mount) */
  within: string[];
}

async function fid2pathBase(session: LfsSession, arg: string): Promise<Fid2pathBase> {
  if (looksLikeFsSpec(arg)) {
    const spec = parseFsSpec(arg);
    return { spec, within: spec.path };
  }
  if (arg.startsWith('/')) {
    const t = await session.target(arg, true);
    const m = t.mount!;
    const spec = parseFsSpec(m.source);
    return { spec, mountDir: m.mountpoint, within: [...spec.path, ...pathInMount(m, m.mountpoint)] };
  }
  for (const m of await session.striaMounts()) {
    let spec: FsSpec;
    try {
      spec = parseFsSpec(m.source);
    } catch {
      continue;
    }
    if (spec.fsname === arg) return { spec, within: [...spec.path, ...pathInMount(m, m.mountpoint)] };
  }
  throw err('ENODEV', `cannot resolve mount point for '${arg}': ${strerror(Errno.ENODEV)}`);
}

/** A path from the filesystem root seen from `within`, or undefined when it lies outside. */
function relativeTo(path: string, within: string[]): string | undefined {
  if (within.length === 0) return path;
  const parts = path === '' ? [] : path.split('/');
  if (parts.length < within.length || within.some((w, i) => parts[i] !== w)) return undefined;
  return parts.slice(within.length).join('/');
}

/** Returns false when some FID could not be resolved (each failure printed to stderr). */
export async function fid2path(session: LfsSession, out: Output, argv: string[], warn: (s: string) => void): Promise<boolean> {
  const { opts, operands } = splitArgs(argv, FID2PATH_OPTIONS);
  if (opts.some((o) => o.name === 'h')) {
    out.write(`${FID2PATH_USAGE}\n`);
    return true;
  }
  let linkno: number | undefined;
  for (const o of opts) {
    if (o.name === 'l') {
      if (!/^\d+$/.test(o.value ?? '')) throw new UsageError(`invalid linkno '${o.value}'`);
      linkno = Number(o.value);
    }
  }
  const has = (n: string) => opts.some((o) => o.name === n);
  if (operands.length < 2) throw new UsageError('fid2path needs a filesystem name, mountpoint or spec and at least one FID');
  const base = await fid2pathBase(session, operands[0]!);
  const c = await session.client(base.spec);
  const end = has('0') ? '\0' : '\n';
  let ok = true;
  for (const fidText of operands.slice(1)) {
    let fid;
    try {
      fid = parseFid(fidText);
    } catch {
      warn(`invalid FID '${fidText}'`);
      ok = false;
      continue;
    }
    try {
      const all = await c.fid2path(fid);
      const shown: Array<{ link: number; path: string }> = [];
      all.forEach((p, link) => {
        const rel = relativeTo(p, base.within);
        if (rel !== undefined && (linkno === undefined || linkno === link)) shown.push({ link, path: rel });
      });
      if (shown.length === 0) throw err('ENOENT', 'no name of it is visible here');
      for (const { link, path } of shown) {
        // Lustre's quirks: a filesystem name prints "dir/f" (the root as "/"), a mountpoint "/mnt/fs/dir/f"
        const prefix = (has('f') ? `${fidText} ` : '') + (has('c') ? `${link} ` : '');
        out.write(`${prefix}${base.mountDir ?? ''}${base.mountDir !== undefined || path === '' ? '/' : ''}${path}${end}`);
      }
    } catch (e) {
      const se = toStriaError(e);
      warn(`cannot find ${operands[0]} ${fidText}: ${strerror(se.errno)}`);
      ok = false;
    }
  }
  return ok;
}

/** Returns false when some path failed (each failure printed to stderr). */
export async function path2fid(session: LfsSession, out: Output, argv: string[], warn: (s: string) => void): Promise<boolean> {
  const { opts, operands } = splitArgs(argv, PATH2FID_OPTIONS);
  if (opts.some((o) => o.name === 'h')) {
    out.write(`${PATH2FID_USAGE}\n`);
    return true;
  }
  if (operands.length === 0) throw new UsageError('path2fid: FILE... must be specified');
  const parents = opts.some((o) => o.name === 'p');
  const named = operands.length > 1;
  let ok = true;
  for (const arg of operands) {
    try {
      const t = await session.target(arg, false);
      const c = await session.client(t.spec);
      const node = await session.lookup(c, t.spec, t.spec.path, false).catch((e: unknown) => {
        throw describeLookupError(arg, e);
      });
      const head = named ? `${arg}: ` : '';
      if (!parents) {
        out.write(`${head}${fidToString(node.inode.fid)}\n`);
        continue;
      }
      const links = await c.parents(node.inode.fid);
      if (links.length === 0) throw new StriaError(Errno.ENODATA, `cannot get parent fid for '${arg}': ${strerror(Errno.ENODATA)}`);
      out.write(`${head}${links.map((l) => `${fidToString(l.parent)}/${l.name}`).join('\t')}\n`);
    } catch (e) {
      warn(toStriaError(e).message);
      ok = false;
    }
  }
  return ok;
}
