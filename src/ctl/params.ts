/**
 * The parameters of one process (Lustre's /proc/fs/lustre + /sys/fs/lustre tree):
 * dotted names such as `osc.testfs-OST0000-osc-ffff88c3a1b2c3d4.max_rpcs_in_flight`,
 * each with a getter and, when writable, a setter. Families of parameters whose
 * members come and go (one OSC per OST) are registered as providers, asked afresh
 * at every lookup. The directory levels are implied by the names, as in Lustre.
 */
import { err } from '../common/errno.js';
import { globMatch, joinParamPath, splitParamPath } from './glob.js';

export interface Param {
  /** the value as the file would read: one line, or several lines each ending in "\n" */
  get(): string | Promise<string>;
  /** validates and applies; throws (ERANGE, EINVAL...) and changes nothing on a bad value */
  set?(value: string): void | Promise<void>;
}

/** One line of `lctl dl`. */
export interface DeviceInfo {
  /** obd type: osc, mdc, lov, obdfilter, mdt, mgs, osp... */
  type: string;
  name: string;
  uuid: string;
  /** UP, or ST while stopping */
  status: string;
  refcount: number;
  /** the connection's NID for client devices (`lctl dl -t`) */
  conn?: string;
}

export type ParamEntries = Iterable<readonly [string, Param]>;

/** A matched node: a parameter (file) or a level above parameters (directory). */
export interface ParamNode {
  readonly path: readonly string[];
  readonly name: string;
  /** set for files, undefined for directories */
  readonly param: Param | undefined;
}

const NAME_PART = /^[A-Za-z0-9_@:+,=-][A-Za-z0-9_@:.+,=-]*$/;

/** A control command: JSON arguments in, a JSON-serialisable result out; throw StriaError to fail. */
export type Command = (args: unknown) => Promise<unknown> | unknown;

export class ParamRegistry {
  private readonly fixed = new Map<string, { path: string[]; param: Param }>();
  private readonly providers = new Set<() => ParamEntries>();
  private readonly deviceSources = new Set<() => DeviceInfo[]>();
  private readonly commands = new Map<string, Command>();

  /**
   * Adds a command that tools call by name over the control socket (`stria warmup`, `lfs pcc`
   * talk to a mounted client this way); returns a function that removes it.
   */
  command(name: string, fn: Command): () => void {
    if (this.commands.has(name)) throw err('EEXIST', `command ${name} is already registered`, 'COMMAND_EXISTS');
    this.commands.set(name, fn);
    return () => {
      if (this.commands.get(name) === fn) this.commands.delete(name);
    };
  }

  commandNamed(name: string): Command | undefined {
    return this.commands.get(name);
  }

  /** Adds one parameter; returns a function that removes it. */
  register(name: string, param: Param): () => void {
    const path = checkName(name);
    const key = joinParamPath(path);
    if (this.fixed.has(key)) throw err('EEXIST', `parameter ${key} is already registered`, 'PARAM_EXISTS');
    this.fixed.set(key, { path, param });
    return () => {
      if (this.fixed.get(key)?.param === param) this.fixed.delete(key);
    };
  }

  /** Adds a family whose members are listed afresh at every lookup. */
  provide(source: () => ParamEntries): () => void {
    this.providers.add(source);
    return () => this.providers.delete(source);
  }

  addDevices(source: () => DeviceInfo[]): () => void {
    this.deviceSources.add(source);
    return () => this.deviceSources.delete(source);
  }

  devices(): DeviceInfo[] {
    return [...this.deviceSources].flatMap((s) => s());
  }

  /** Every parameter now, sorted by name. */
  entries(): Array<{ path: string[]; name: string; param: Param }> {
    const all = new Map<string, { path: string[]; param: Param }>(this.fixed);
    for (const source of this.providers) {
      for (const [name, param] of source()) {
        const path = checkName(name);
        const key = joinParamPath(path);
        if (!all.has(key)) all.set(key, { path, param });
      }
    }
    return [...all.values()].sort((a, b) => comparePaths(a.path, b.path)).map((e) => ({ ...e, name: joinParamPath(e.path) }));
  }

  /**
   * The files and directories a pattern names, each component a glob, sorted like
   * glob(3). With `recursive`, everything below a matched directory is added.
   */
  match(pattern: string, recursive = false): ParamNode[] {
    const pat = splitParamPath(pattern);
    const out = new Map<string, ParamNode>();
    const entries = this.entries();
    const add = (path: string[], param: Param | undefined) => {
      const name = joinParamPath(path);
      if (!out.has(name)) out.set(name, { path, name, param });
    };
    for (const e of entries) {
      if (e.path.length < pat.length) continue;
      if (!pat.every((p, i) => globMatch(p, e.path[i]!))) continue;
      const node = e.path.slice(0, pat.length);
      add(node, e.path.length === pat.length ? e.param : undefined);
      if (recursive && e.path.length > pat.length) {
        for (let depth = pat.length + 1; depth < e.path.length; depth++) add(e.path.slice(0, depth), undefined);
        add(e.path, e.param);
      }
    }
    return [...out.values()].sort((a, b) => comparePaths(a.path, b.path));
  }
}

function checkName(name: string): string[] {
  const path = splitParamPath(name);
  if (path.length < 2 || !path.every((p) => NAME_PART.test(p))) {
    throw err('EINVAL', `'${name}' is not a parameter name (dotted components of [A-Za-z0-9_@:+,=-])`, 'BAD_PARAM_NAME');
  }
  return path;
}

function comparePaths(a: readonly string[], b: readonly string[]): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return a[i]! < b[i]! ? -1 : 1;
  }
  return a.length - b.length;
}
