/**
 * `lfs getstripe`, walking as Lustre's llapi_getstripe does: a file prints its
 * layout; a directory prints its default layout, then (down to the maximum
 * depth: 1, 0 with -d or a single-field option, unlimited with -r) each entry.
 */
import type { Fid } from '../common/fid.js';
import type { Inode } from '../common/inode.js';
import type { StriaClient } from '../client/client.js';
import type { FsSpec } from '../client/fs-spec.js';
import { V, V_DEFAULT, dirLovView, fileLovView, formatLov, formatMdtIndex } from './lfs-format.js';
import { splitArgs, UsageError, type OptSpec } from './lfs-getopt.js';
import { childPath, type LfsSession } from './lfs-session.js';
import type { Output } from './lfs-output.js';
import { describeLookupError } from './lfs-errors.js';

export const GETSTRIPE_USAGE = `usage: getstripe [--stripe-count|-c] [--stripe-size|-S] [--stripe-index|-i]
                 [--pool|-p] [--generation|-g] [--fid|-F] [--mdt-index|-m]
                 [--layout|-L] [--directory|-d] [--default|-D] [--recursive|-r]
                 [--raw|-R] [--quiet|-q] [--verbose|-v] [--yaml|-y] [--no-follow]
                 <directory|filename|MGSNID:/FSNAME[/PATH]> ...`;

const OPTIONS: OptSpec[] = [
  { name: 'c', short: 'c', long: ['stripe-count', 'stripe_count', 'count'] },
  { name: 'S', short: 'S', long: ['stripe-size', 'stripe_size', 'size'] },
  { name: 'i', short: 'i', long: ['stripe-index', 'stripe_index', 'index', 'offset'] },
  { name: 'p', short: 'p', long: ['pool'] },
  { name: 'g', short: 'g', long: ['generation'] },
  { name: 'F', short: 'F', long: ['fid'] },
  { name: 'm', short: 'm', long: ['mdt-index', 'mdt_index', 'mdt'] },
  { name: 'L', short: 'L', long: ['layout'] },
  { name: 'd', short: 'd', long: ['directory'] },
  { name: 'D', short: 'D', long: ['default'] },
  { name: 'r', short: 'r', long: ['recursive'] },
  { name: 'R', short: 'R', long: ['raw'] },
  { name: 'q', short: 'q', long: ['quiet'] },
  { name: 'v', short: 'v', long: ['verbose'] },
  { name: 'y', short: 'y', long: ['yaml'] },
  { name: 'no-follow', long: ['no-follow'] },
  { name: 'h', short: 'h', long: ['help'] },
];

const FIELD_BITS: Record<string, number> = { c: V.COUNT, S: V.SIZE, i: V.OFFSET, p: V.POOL, g: V.GENERATION, F: V.DFID, L: V.PATTERN };

export interface GetstripeParams {
  verbose: number;
  /** -1: no limit */
  maxDepth: number;
  raw: boolean;
  yaml: boolean;
  follow: boolean;
}

/** Options to parameters exactly as lfs_getstripe_internal combines them (order matters for -v). */
export function parseGetstripe(argv: string[]): { params: GetstripeParams; paths: string[]; help: boolean } {
  const { opts, operands } = splitArgs(argv, OPTIONS);
  let verbose = 0;
  let maxDepth = 1;
  let recursive = false;
  let quiet = false;
  const p = { raw: false, yaml: false, follow: true };
  let help = false;
  for (const o of opts) {
    const bit = FIELD_BITS[o.name];
    if (bit !== undefined) {
      if (!(verbose & V.DETAIL)) {
        verbose |= bit;
        maxDepth = 0;
      }
      continue;
    }
    switch (o.name) {
      case 'm':
        if (!(verbose & V.DETAIL)) maxDepth = 0;
        verbose |= V.MDTINDEX;
        break;
      case 'd':
      case 'D':
        maxDepth = 0;
        break;
      case 'r':
        recursive = true;
        break;
      case 'R':
        p.raw = true;
        break;
      case 'q':
        quiet = true;
        break;
      case 'v':
        verbose = V_DEFAULT | V.DETAIL;
        break;
      case 'y':
        p.yaml = true;
        break;
      case 'no-follow':
        p.follow = false;
        break;
      case 'h':
        help = true;
        break;
    }
  }
  if (!help && operands.length === 0) throw new UsageError('getstripe: no file or directory given');
  if (recursive) maxDepth = -1;
  else if (verbose & V.DETAIL) maxDepth = 1;
  if (!verbose) verbose = V_DEFAULT;
  if (quiet) verbose = V.OBJID;
  return { params: { verbose, maxDepth, ...p }, paths: operands, help };
}

/** Every inode is served by MDT0000: it is the only MDT a Stria filesystem has. */
const MDT_INDEX = 0;

class Getstripe {
  constructor(
    private readonly session: LfsSession,
    private readonly c: StriaClient,
    private readonly spec: FsSpec,
    private readonly p: GetstripeParams,
    private readonly out: Output,
  ) {}

  async visit(inode: Inode, path: string, depth: number): Promise<void> {
    if (this.p.verbose & V.MDTINDEX) this.out.write(formatMdtIndex(MDT_INDEX, path, (this.p.verbose & V.DETAIL) !== 0));
    else if (inode.type === 'dir') this.out.write(await this.dirLayout(inode, path));
    else this.out.write(this.fileLayout(inode, path));
    if (inode.type !== 'dir' || depth === this.p.maxDepth) return;
    for await (const e of this.c.listDir(inode.fid)) {
      const child = childPath(path, e.name);
      const ino = await this.c.mdc.getattr(e.fid).catch(() => undefined);
      if (!ino) continue; // removed while we listed
      if (ino.type === 'dir') await this.visit(ino, child, depth + 1);
      else await this.entry(inode.fid, ino, child);
    }
  }

  /** A non-directory met inside a directory: a symbolic link shows what it leads to. */
  private async entry(dir: Fid, ino: Inode, path: string): Promise<void> {
    if (this.p.verbose & V.MDTINDEX) {
      this.out.write(formatMdtIndex(MDT_INDEX, path, (this.p.verbose & V.DETAIL) !== 0));
      return;
    }
    if (ino.type === 'lnk' && this.p.follow) {
      // like opening the link: a dangling or outside link is passed over in silence
      const target = await this.session.followLink(this.c, this.spec, dir, ino).catch(() => undefined);
      if (!target) return;
      this.out.write(target.inode.type === 'dir' ? await this.dirLayout(target.inode, path) : this.fileLayout(target.inode, path));
      return;
    }
    this.out.write(this.fileLayout(ino, path));
  }

  private fileLayout(ino: Inode, path: string): string {
    if (ino.type !== 'reg' || !ino.layout) return `${path} has no stripe info\n`;
    return formatLov(fileLovView(ino.fid, ino.layout), path, this.p.verbose, { depth: this.p.maxDepth, yaml: this.p.yaml });
  }

  /** A directory's own default; without one, the root's (the filesystem default), marked inherited. */
  private async dirLayout(ino: Inode, path: string): Promise<string> {
    const fsDefault = this.c.fsDefault;
    let view;
    if (ino.dirDefault) view = dirLovView(ino.fid, ino.dirDefault, fsDefault, { raw: this.p.raw });
    else if (this.p.raw) view = dirLovView(ino.fid, {}, fsDefault, { raw: true });
    else view = dirLovView(ino.fid, (await this.session.root(this.c)).dirDefault ?? {}, fsDefault, { inherited: true });
    return formatLov(view, path, this.p.verbose, { depth: this.p.maxDepth, yaml: this.p.yaml });
  }
}

/** Runs getstripe on each path in turn; the first failure stops it, as in Lustre. */
export async function getstripe(session: LfsSession, out: Output, p: GetstripeParams, paths: string[]): Promise<void> {
  for (const arg of paths) {
    const t = await session.target(arg, p.follow);
    const c = await session.client(t.spec);
    const node = await session.lookup(c, t.spec, t.spec.path, p.follow).catch((e: unknown) => {
      throw describeLookupError(arg, e);
    });
    await new Getstripe(session, c, t.spec, p, out).visit(node.inode, t.display, 0);
  }
}
