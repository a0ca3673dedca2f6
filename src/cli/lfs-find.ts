/**
 * `lfs find DIR... [options]`: walks the namespace through the MDS (readdir
 * and getattr, never the kernel) and prints each path that passes every test,
 * named from the DIR as given. Tests follow Lustre's find_value_cmp: sizes
 * and times round up to their unit, as find(1) does; "!" negates the next test.
 */
import { Errno, toStriaError } from '../common/errno.js';
import { fidToString } from '../common/fid.js';
import type { FileType, Inode } from '../common/inode.js';
import type { FileAttr, StriaClient } from '../client/client.js';
import { getopt, UsageError, type OptSpec } from './lfs-getopt.js';
import { childPath, type LfsSession } from './lfs-session.js';
import type { Output } from './lfs-output.js';
import { parseOstList } from './ost-list.js';
import { describeLookupError } from './lfs-errors.js';

export const FIND_USAGE = `usage: find <directory|filename|MGSNID:/FSNAME[/PATH]> ...
     [[!] --name|-n PATTERN] [[!] --type|-t {b,c,d,f,l,p,s}]
     [[!] --size|-s [+-]N[bkMGTPE]] [[!] --mtime|-M [+-]N[smhdwy]]
     [[!] --atime|-A [+-]N[smhdwy]] [[!] --ctime|-C [+-]N[smhdwy]]
     [[!] --stripe-count|-c [+-]N] [[!] --stripe-size|-S [+-]N[kMG]]
     [[!] --ost|-O INDEX|UUID[,...]] [[!] --pool POOL]
     [--maxdepth|-D N] [--mindepth N] [--print|-P] [--print0|-0]
     (options may also be written -name, -type, -size, -mtime...)`;

const OPTIONS: OptSpec[] = [
  { name: 'name', short: 'n', long: ['name'], arg: 'required' },
  { name: 'type', short: 't', long: ['type'], arg: 'required' },
  { name: 'size', short: 's', long: ['size'], arg: 'required' },
  { name: 'mtime', short: 'M', long: ['mtime'], arg: 'required' },
  { name: 'atime', short: 'A', long: ['atime'], arg: 'required' },
  { name: 'ctime', short: 'C', long: ['ctime'], arg: 'required' },
  { name: 'stripe-count', short: 'c', long: ['stripe-count', 'stripe_count'], arg: 'required' },
  { name: 'stripe-size', short: 'S', long: ['stripe-size', 'stripe_size'], arg: 'required' },
  { name: 'ost', short: 'O', long: ['ost', 'obd'], arg: 'required' },
  { name: 'pool', long: ['pool'], arg: 'required' },
  { name: 'maxdepth', short: 'D', long: ['maxdepth'], arg: 'required' },
  { name: 'mindepth', long: ['mindepth'], arg: 'required' },
  { name: 'print', short: 'P', long: ['print'] },
  { name: 'print0', short: '0', long: ['print0'] },
  { name: 'help', short: 'h', long: ['help'] },
];

const NOT_NEGATABLE = new Set(['maxdepth', 'mindepth', 'print', 'print0', 'help']);

const TYPES: Record<string, FileType> = { b: 'blk', c: 'chr', d: 'dir', f: 'reg', l: 'lnk', p: 'fifo', s: 'sock' };

/** What a test may look at; attributes are fetched once, and only when a test asks. */
export interface Candidate {
  name: string;
  type: FileType;
  /** what a directory template leaves unset stands for, on this filesystem */
  fsDefault: { stripeCount: number; stripeSize: number };
  inode(): Promise<Inode>;
  /** stat(2) attributes: size and times of striped files come from their objects */
  attr(): Promise<FileAttr>;
}

export interface FindTest {
  what: string;
  negated: boolean;
  test(c: Candidate): Promise<boolean>;
}

export interface FindParams {
  tests: FindTest[];
  maxDepth: number;
  minDepth: number;
  terminator: string;
  paths: string[];
  help: boolean;
}

/**
 * Lustre's find_value_cmp: `sign` > 0 is "less than" (value + margin <= limit),
 * 0 is "in the unit ending at limit", < 0 is "more than" (value > limit).
 */
export function valueCmp(value: number, limit: number, sign: number, margin: number): boolean {
  if (sign > 0) return value + margin <= limit;
  if (sign === 0) return value <= limit && value + margin > limit;
  return value > limit;
}

function splitSign(text: string): { sign: '+' | '-' | ''; rest: string } {
  if (text.startsWith('+') || text.startsWith('-')) return { sign: text[0] as '+' | '-', rest: text.slice(1) };
  return { sign: '', rest: text };
}

const SIZE_UNITS: Record<string, number> = { '': 1, b: 512, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40, p: 2 ** 50, e: 2 ** 60 };

/** llapi_parse_size: N[.F][bkMGTPE] (b = 512-byte blocks, none = bytes) → value and unit. */
export function parseFindSize(text: string, what: string): { sign: number; value: number; unit: number } {
  const { sign, rest } = splitSign(text);
  const m = /^(\d+(?:\.\d+)?)([bkmgtpe]?)$/i.exec(rest);
  if (!m) throw new UsageError(`bad ${what} '${text}'`);
  const unit = SIZE_UNITS[m[2]!.toLowerCase()]!;
  const value = Math.round(Number(m[1]) * unit);
  if (!Number.isSafeInteger(value)) throw new UsageError(`${what} '${text}' is too large`);
  return { sign: sign === '+' ? -1 : sign === '-' ? 1 : 0, value, unit };
}

const TIME_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 7 * 86400, y: 365 * 86400 };

/**
 * Lustre's set_time: [+-]N[smhdwy]..., e.g. "+2", "-90m", "1d12h"; a bare number
 * is days. The limit is now minus the duration; the margin is the smallest unit used.
 */
export function parseFindTime(text: string, nowSec: number): { sign: number; limit: number; margin: number } {
  const { sign, rest } = splitSign(text);
  const parts = [...rest.matchAll(/(\d+)([smhdwy]?)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== rest) throw new UsageError(`bad time '${text}'`);
  let total = 0;
  let margin = 0;
  parts.forEach((p, i) => {
    if (p[2] === '' && i !== parts.length - 1) throw new UsageError(`bad time '${text}'`);
    const unit = TIME_UNITS[p[2] || 'd']!;
    total += Number(p[1]) * unit;
    if (margin === 0 || unit < margin) margin = unit;
  });
  if (!Number.isSafeInteger(total) || total > nowSec) throw new UsageError(`bad time '${text}': too large`);
  // find_value_cmp reads a "+" time (older) as "less than" the limit
  return { sign: sign === '+' ? 1 : sign === '-' ? -1 : 0, limit: nowSec - total, margin };
}

function parseCount(text: string, what: string): { sign: number; value: number } {
  const { sign, rest } = splitSign(text);
  if (!/^\d+$/.test(rest)) throw new UsageError(`bad ${what} '${text}'`);
  return { sign: sign === '+' ? -1 : sign === '-' ? 1 : 0, value: Number(rest) };
}

function parseDepth(text: string, what: string): number {
  if (!/^\d+$/.test(text)) throw new UsageError(`bad ${what} '${text}'`);
  return Number(text);
}

/** OST lists as lfs find takes them: indexes, ranges A-B, OST0003, testfs-OST0003_UUID. */
function parseOsts(text: string): Set<number> {
  const out = new Set<number>();
  for (const part of text.split(',').filter((p) => p.length > 0)) {
    const range = /^(\d+)-(\d+)$/.exec(part);
    if (range) {
      const [a, b] = [Number(range[1]), Number(range[2])];
      if (b < a || b > 0xffff) throw new UsageError(`bad OST range '${part}'`);
      for (let i = a; i <= b; i++) out.add(i);
      continue;
    }
    try {
      for (const i of parseOstList([part])) out.add(i);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  }
  if (out.size === 0) throw new UsageError(`bad OST list '${text}'`);
  return out;
}

/** fnmatch(3) without flags: *, ?, [...] (with ! or ^), and \ quoting; '*' matches a leading dot. */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const ch = glob[i]!;
    if (ch === '*') re += '.*';
    else if (ch === '?') re += '.';
    else if (ch === '\\' && i + 1 < glob.length) re += escapeRe(glob[++i]!);
    else if (ch === '[') {
      const end = glob.indexOf(']', i + (glob[i + 1] === '!' || glob[i + 1] === '^' ? 3 : 2));
      if (end < 0) {
        re += '\\[';
        continue;
      }
      let body = glob.slice(i + 1, end);
      const neg = body[0] === '!' || body[0] === '^';
      if (neg) body = body.slice(1);
      re += `[${neg ? '^' : ''}${body.replace(/[\\\]^]/g, (c) => `\\${c}`)}]`;
      i = end;
    } else re += escapeRe(ch);
  }
  return new RegExp(`^${re}$`, 's');
}

function escapeRe(c: string): string {
  return /[.*+?^${}()|[\]\\/]/.test(c) ? `\\${c}` : c;
}

/** A directory's own default layout, fields left unset filled from the filesystem default. */
function dirTemplate(ino: Inode, fsDefault: { stripeCount: number; stripeSize: number }) {
  const t = ino.dirDefault;
  if (!t) return undefined;
  return { stripeCount: t.stripeCount || fsDefault.stripeCount, stripeSize: t.stripeSize || fsDefault.stripeSize, pool: t.pool };
}

/** The tests and walk limits of a find command line; times are relative to `nowSec`. */
export function parseFind(argv: string[], nowSec: number): FindParams {
  const tokens = getopt(argv, OPTIONS, { longOnly: true, bang: true });
  const p: FindParams = { tests: [], maxDepth: -1, minDepth: 0, terminator: '\n', paths: [], help: false };
  let seenOption = false;
  for (const t of tokens) {
    if (t.kind === 'operand') {
      if (seenOption) throw new UsageError(`path '${t.value}' must come before the options`);
      p.paths.push(t.value);
      continue;
    }
    seenOption = true;
    const v = t.value ?? '';
    if (t.negated && NOT_NEGATABLE.has(t.name)) throw new UsageError(`'!' cannot negate ${t.text}`);
    const add = (test: (c: Candidate) => Promise<boolean>) => p.tests.push({ what: t.text, negated: t.negated, test });
    switch (t.name) {
      case 'name': {
        const re = globToRegExp(v);
        add(async (c) => re.test(c.name));
        break;
      }
      case 'type': {
        const type = TYPES[v];
        if (!type) throw new UsageError(`bad type '${v}' (one of b, c, d, f, l, p, s)`);
        add(async (c) => c.type === type);
        break;
      }
      case 'size': {
        const s = parseFindSize(v, 'size');
        add(async (c) => valueCmp((await c.attr()).size, s.value, s.sign, s.unit));
        break;
      }
      case 'mtime':
      case 'atime':
      case 'ctime': {
        const tm = parseFindTime(v, nowSec);
        const field = t.name;
        add(async (c) => valueCmp((await c.attr())[field].sec, tm.limit, tm.sign, tm.margin));
        break;
      }
      case 'stripe-count': {
        const n = parseCount(v, 'stripe count');
        add(async (c) => {
          const count = await layoutField(c, 'stripeCount');
          return typeof count === 'number' && valueCmp(count, n.value, n.sign, 1);
        });
        break;
      }
      case 'stripe-size': {
        const s = parseFindSize(v, 'stripe size');
        add(async (c) => {
          const size = await layoutField(c, 'stripeSize');
          return typeof size === 'number' && valueCmp(size, s.value, s.sign, s.unit);
        });
        break;
      }
      case 'ost': {
        const osts = parseOsts(v);
        add(async (c) => {
          if (c.type !== 'reg') return false;
          const l = (await c.inode()).layout;
          return l !== undefined && l.pattern === 'raid0' && l.objects.some((o) => osts.has(o.ostIdx));
        });
        break;
      }
      case 'pool': {
        add(async (c) => (await layoutField(c, 'pool')) === v);
        break;
      }
      case 'maxdepth':
        p.maxDepth = parseDepth(v, 'maxdepth');
        break;
      case 'mindepth':
        p.minDepth = parseDepth(v, 'mindepth');
        break;
      case 'print':
        p.terminator = '\n';
        break;
      case 'print0':
        p.terminator = '\0';
        break;
      case 'help':
        p.help = true;
        break;
    }
  }
  if (!p.help && p.paths.length === 0) throw new UsageError('find: no directory given');
  return p;
}

/** A file's layout field, or a directory's default; others have none. */
async function layoutField(c: Candidate, field: 'stripeCount' | 'stripeSize' | 'pool'): Promise<number | string | undefined> {
  if (c.type !== 'reg' && c.type !== 'dir') return undefined;
  const ino = await c.inode();
  if (ino.type === 'dir') return dirTemplate(ino, c.fsDefault)?.[field];
  if (!ino.layout) return undefined;
  if (field === 'stripeCount') return ino.layout.pattern === 'released' ? ino.layout.stripeCount : ino.layout.objects.length;
  return ino.layout[field];
}

class Walk {
  warnings = 0;

  constructor(
    private readonly c: StriaClient,
    private readonly p: FindParams,
    private readonly out: Output,
    private readonly warn: (s: string) => void,
  ) {}

  private candidate(name: string, type: FileType, fid: Inode['fid'], known?: Inode): Candidate {
    let ino: Promise<Inode> | undefined = known ? Promise.resolve(known) : undefined;
    let attr: Promise<FileAttr> | undefined;
    return {
      name,
      type,
      fsDefault: this.c.fsDefault,
      inode: () => (ino ??= this.c.mdc.getattr(fid)),
      attr: () => (attr ??= this.c.getattr(fid)),
    };
  }

  private async matches(cand: Candidate): Promise<boolean> {
    for (const t of this.p.tests) if ((await t.test(cand)) === t.negated) return false;
    return true;
  }

  async visit(name: string, type: FileType, fid: Inode['fid'], path: string, depth: number, known?: Inode): Promise<void> {
    const cand = this.candidate(name, type, fid, known);
    try {
      if (depth >= this.p.minDepth && (await this.matches(cand))) this.out.write(path + this.p.terminator);
    } catch (e) {
      this.vanished(e, path, fid);
      return;
    }
    if (type !== 'dir' || (this.p.maxDepth >= 0 && depth >= this.p.maxDepth)) return;
    try {
      for await (const e of this.c.listDir(fid)) await this.visit(e.name, e.type, e.fid, childPath(path, e.name), depth + 1);
    } catch (e) {
      this.vanished(e, path, fid);
    }
  }

  /** A file removed while we walk is passed over with a warning, as Lustre does; other errors stop the walk. */
  private vanished(e: unknown, path: string, fid: Inode['fid']): void {
    const se = toStriaError(e);
    if (se.errno !== Errno.ENOENT) throw se;
    this.warnings++;
    this.warn(`warning: ${path} (${fidToString(fid)}) does not exist`);
  }
}

/** The last name of a path as find(1) names its starting points. */
function startName(display: string): string {
  const trimmed = display.replace(/\/+$/, '');
  return trimmed === '' ? '/' : trimmed.slice(trimmed.lastIndexOf('/') + 1);
}

/** Walks each starting point in turn; returns how many warnings were printed. */
export async function find(session: LfsSession, out: Output, p: FindParams, warn: (s: string) => void): Promise<number> {
  let warnings = 0;
  for (const arg of p.paths) {
    const t = await session.target(arg, true);
    const c = await session.client(t.spec);
    const node = await session.lookup(c, t.spec, t.spec.path, true).catch((e: unknown) => {
      throw describeLookupError(arg, e);
    });
    const walk = new Walk(c, p, out, warn);
    await walk.visit(startName(t.display), node.inode.type, node.inode.fid, t.display, 0, node.inode);
    warnings += walk.warnings;
  }
  return warnings;
}
