/**
 * `lctl get_param`, `set_param`, `list_param` and `dl` over every control socket
 * of this machine, printed as Lustre's lctl prints them (lustre/utils/lustre_cfg.c):
 *
 *   name=value               one-line values
 *   name=                    multi-line values (stats, import...), then the lines
 *   error: get_param: param_path 'x.y': No such file or directory
 *
 * Each command returns the errno of its first failure (0 when all went well), which
 * lctl uses as its exit status, as Lustre's does.
 */
import { Errno, toStriaError } from '../common/errno.js';
import { ask, findEndpoints, type Endpoint } from './control-client.js';
import type { ControlRequest, ControlResponse, ListedNode, ReadResult, WireDevice, WireError, WriteResult } from './protocol.js';
import { strerror } from './strerror.js';

export interface Output {
  out(text: string): void;
  err(text: string): void;
}

export interface GetOptions {
  /** -n: values only */
  noName?: boolean;
  /** -N: names only */
  onlyName?: boolean;
  /** -F: mark directories with '/', writable parameters with '=' */
  classify?: boolean;
  /** -R: everything below the matched directories */
  recursive?: boolean;
  /** -H: the name before every line of a multi-line value */
  header?: boolean;
}

export interface ListOptions {
  classify?: boolean;
  recursive?: boolean;
  /** -D: directories only */
  dirOnly?: boolean;
}

export interface SetOptions {
  noName?: boolean;
  /** -P: persistent through the MGS (not supported yet) */
  permanent?: boolean;
  /** -d: delete a persistent setting (implies -P) */
  delete?: boolean;
}

interface Context {
  endpoints: Endpoint[];
  io: Output;
  /** first failure */
  rc: number;
}

function fail(ctx: Context, errno: number): void {
  if (ctx.rc === 0) ctx.rc = errno;
}

/** "Invalid argument: max_rpcs_in_flight must be ..." without repeating what strerror says. */
function describe(e: WireError): string {
  const base = strerror(e.errno);
  return e.message && e.message !== base ? `${base} (${e.message})` : base;
}

/** lctl accepts slashes as separators ("osc/x/stats") as well as dots. */
function normalizePattern(p: string): string {
  return p.replace(/\//g, '.');
}

async function askAll<T>(ctx: Context, op: string, req: ControlRequest, pick: (r: ControlResponse & { ok: true }) => T | undefined): Promise<T[]> {
  const answers = await Promise.all(
    ctx.endpoints.map(async (ep) => {
      try {
        const r = await ask(ep, req);
        if (!r) return undefined;
        if (!r.ok) {
          ctx.io.err(`error: ${op}: ${ep.role} process ${ep.pid}: ${describe(r.error)}\n`);
          fail(ctx, r.error.errno);
          return undefined;
        }
        return pick(r);
      } catch (e) {
        const se = toStriaError(e);
        ctx.io.err(`error: ${op}: ${ep.role} process ${ep.pid}: ${strerror(se.errno)} (${se.message})\n`);
        fail(ctx, se.errno);
        return undefined;
      }
    }),
  );
  return answers.filter((a): a is Awaited<T> => a !== undefined);
}

async function context(io: Output, dir?: string): Promise<Context> {
  return { endpoints: await findEndpoints(dir), io, rc: 0 };
}

function byName<T extends { name: string }>(a: T, b: T): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

function nodeName(n: { name: string; dir: boolean; writable: boolean }, classify: boolean | undefined): string {
  if (!classify) return n.name;
  return n.dir ? `${n.name}/` : n.writable ? `${n.name}=` : n.name;
}

async function listNodes(ctx: Context, op: string, pattern: string, recursive: boolean | undefined): Promise<ListedNode[] | undefined> {
  const lists = await askAll(ctx, op, { op: 'list', pattern, recursive }, (r) => ('nodes' in r ? r.nodes : undefined));
  const seen = new Set<string>();
  const nodes: ListedNode[] = [];
  for (const n of lists.flat().sort(byName)) {
    // directories such as "osc" exist in every process that has an OSC: list them once
    if (seen.has(n.name)) continue;
    seen.add(n.name);
    nodes.push(n);
  }
  if (nodes.length === 0) {
    ctx.io.err(`error: ${op}: param_path '${pattern}': ${strerror(Errno.ENOENT)}\n`);
    fail(ctx, Errno.ENOENT);
    return undefined;
  }
  return nodes;
}

function printValue(io: Output, r: ReadResult & { value: string }, opts: GetOptions): void {
  if (r.value === '') {
    if (opts.header) io.out(`${r.name}=\n`);
    return;
  }
  const buf = r.value.endsWith('\n') ? r.value : `${r.value}\n`;
  const name = nodeName({ name: r.name, dir: false, writable: r.writable }, opts.classify);
  if (opts.header) {
    for (const line of buf.slice(0, -1).split('\n')) io.out(`${name}=${line}\n`);
  } else if (!opts.noName) {
    const multiline = buf.slice(0, -1).includes('\n');
    io.out(`${name}=${multiline ? '\n' : ''}${buf}`);
  } else {
    io.out(buf);
  }
}

export async function getParam(patterns: string[], opts: GetOptions, io: Output, dir?: string): Promise<number> {
  const ctx = await context(io, dir);
  for (const raw of patterns) {
    const pattern = normalizePattern(raw);
    if (opts.onlyName) {
      const nodes = await listNodes(ctx, 'get_param', pattern, opts.recursive);
      for (const n of nodes ?? []) io.out(`${nodeName(n, opts.classify)}\n`);
      continue;
    }
    const answers = await askAll(ctx, 'get_param', { op: 'get', pattern, recursive: opts.recursive }, (r) => ('values' in r ? r : undefined));
    if (answers.reduce((n, a) => n + a.matched, 0) === 0) {
      io.err(`error: get_param: param_path '${pattern}': ${strerror(Errno.ENOENT)}\n`);
      fail(ctx, Errno.ENOENT);
      continue;
    }
    for (const r of answers.flatMap((a) => a.values).sort(byName)) {
      if (r.error) {
        io.err(`error: read_param: '${r.name}': ${describe(r.error)}\n`);
        fail(ctx, r.error.errno);
      } else {
        printValue(io, { ...r, value: r.value ?? '' }, opts);
      }
    }
  }
  return ctx.rc;
}

export async function listParam(patterns: string[], opts: ListOptions, io: Output, dir?: string): Promise<number> {
  const ctx = await context(io, dir);
  for (const raw of patterns) {
    const pattern = normalizePattern(raw);
    const nodes = await listNodes(ctx, 'list_param', pattern, opts.recursive);
    if (!nodes) {
      io.err(`error: list_param: listing '${pattern}': ${strerror(Errno.ENOENT)}\n`);
      continue;
    }
    for (const n of nodes) if (!opts.dirOnly || n.dir) io.out(`${nodeName(n, opts.classify)}\n`);
  }
  return ctx.rc;
}

/** `set_param NAME=VALUE ...` (also `NAME VALUE`). */
export async function setParam(args: string[], opts: SetOptions, io: Output, dir?: string): Promise<number> {
  if (opts.permanent || opts.delete) {
    io.err('error: set_param: -P (persistent parameters kept by the MGS) is not supported yet: set the parameter on each node without -P\n');
    return Errno.EOPNOTSUPP;
  }
  const ctx = await context(io, dir);
  for (let i = 0; i < args.length; ) {
    const arg = args[i]!;
    let name: string;
    let value: string;
    const eq = arg.indexOf('=');
    if (eq >= 0) {
      name = arg.slice(0, eq);
      value = arg.slice(eq + 1);
      i += 1;
    } else {
      name = arg;
      value = args[i + 1] ?? '';
      i += 2;
    }
    if (name === '' || value === '') {
      io.err(`error: set_param: setting ${name}: ${strerror(Errno.EINVAL)}\n`);
      fail(ctx, Errno.EINVAL);
      break;
    }
    const pattern = normalizePattern(name);
    const answers = await askAll(ctx, 'set_param', { op: 'set', pattern, value }, (r) => ('written' in r ? r : undefined));
    if (answers.reduce((n, a) => n + a.matched, 0) === 0) {
      io.err(`error: set_param: param_path '${pattern}': ${strerror(Errno.ENOENT)}\n`);
      io.err(`error: set_param: setting '${pattern}'='${value}': ${strerror(Errno.ENOENT)}\n`);
      fail(ctx, Errno.ENOENT);
      continue;
    }
    let first: WriteResult | undefined;
    for (const w of answers.flatMap((a) => a.written).sort(byName)) {
      if (w.error) {
        io.err(`error: set_param: setting ${w.name}=${value}: ${describe(w.error)}\n`);
        first ??= w;
      } else if (!opts.noName) {
        io.out(`${w.name}=${value}\n`);
      }
    }
    if (first?.error) {
      io.err(`error: set_param: setting '${pattern}'='${value}': ${strerror(first.error.errno)}\n`);
      fail(ctx, first.error.errno);
    }
  }
  return ctx.rc;
}

/** `lctl dl`: the devices of every process on this machine, numbered as one list. */
export async function listDevices(opts: { conn?: boolean }, io: Output, dir?: string): Promise<number> {
  const ctx = await context(io, dir);
  const lists = await askAll(ctx, 'device_list', { op: 'devices' }, (r) => ('devices' in r ? r.devices : undefined));
  let n = 0;
  for (const d of lists.flat() as WireDevice[]) {
    const line = `${String(n++).padStart(3)} ${d.status} ${d.type} ${d.name} ${d.uuid} ${d.refcount}`;
    io.out(opts.conn && d.conn ? `${line} ${d.conn}\n` : `${line}\n`);
  }
  return ctx.rc;
}
