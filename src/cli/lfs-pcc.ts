/**
 * `lfs pcc attach|attach_fid|detach|detach_fid|state` (reference §6), with Lustre's syntax,
 * output and messages: each file is handled in turn, a failure prints one line and the
 * command goes on; the exit status is the first failure's errno (lfs returns -rc).
 * The work is done by the mount daemon serving the file (src/client/pcc), reached over its
 * control socket.
 */
import { toStriaError } from '../common/errno.js';
import { call } from '../ctl/control-client.js';
import type { PccState } from '../client/pcc/manager.js';
import { splitArgs, UsageError, type OptSpec } from './lfs-getopt.js';
import { strerror } from './lfs-session.js';
import type { Output } from './lfs-output.js';
import { PCC_CALL_TIMEOUT_MS, pccEndpoint, pccTarget } from './pcc-endpoint.js';

export interface PccCmdContext {
  out: Output;
  /** one line on stderr, as given (stdout flushed first) */
  error: (line: string) => void;
}

export interface PccCommand {
  usage: string;
  run(ctx: PccCmdContext, argv: string[]): Promise<number>;
}

const ATTACH_OPTIONS: OptSpec[] = [
  { name: 'help', short: 'h', long: ['help'] },
  { name: 'id', short: 'i', long: ['id'], arg: 'required' },
  { name: 'mnt', short: 'm', long: ['mnt'], arg: 'required' },
  { name: 'readonly', short: 'r', long: ['readonly'] },
  { name: 'write', short: 'w', long: ['write'] },
];

const DETACH_OPTIONS: OptSpec[] = [
  { name: 'help', short: 'h', long: ['help'] },
  { name: 'keep', short: 'k', long: ['keep'] },
  { name: 'mnt', short: 'm', long: ['mnt'], arg: 'required' },
];

const HELP_ONLY: OptSpec[] = [{ name: 'help', short: 'h', long: ['help'] }];

export const PCC_USAGE = `usage: pcc <sub-command> [options]
sub-commands:
	attach [--id|-i ID] [--readonly|-r] [--write|-w] <file> ...
	attach_fid [--id|-i ID] [--readonly|-r] [--write|-w] --mnt|-m <mntpath> <fid> ...
	detach [--keep|-k] <file> ...
	detach_fid [--keep|-k] --mnt|-m <mntpath> <fid> ...
	state <file> ...`;

function errnoOf(e: unknown): number {
  const n = toStriaError(e).errno;
  return n > 0 && n < 256 ? n : 1;
}

function why(e: unknown): string {
  return strerror(toStriaError(e).errno);
}

/** Each operand in turn; the first failure's errno is the status. */
async function each(operands: string[], fn: (arg: string) => Promise<void>, failure: (arg: string, e: unknown) => void): Promise<number> {
  let rc = 0;
  for (const arg of operands) {
    try {
      await fn(arg);
    } catch (e) {
      failure(arg, e);
      if (rc === 0) rc = errnoOf(e);
    }
  }
  return rc;
}

/** `lfs pcc state` output (lfs.c): the type alone when nothing is cached and nothing open. */
export function formatPccState(file: string, s: PccState): string {
  let line = `file: ${file}, type: ${s.type}`;
  if (s.type !== 'none' || s.openCount !== 0) {
    line += `, PCC_file: ${s.pccFile ?? ''}, open_count: ${s.openCount}, flags: ${s.flags.toString(16)}`;
  }
  return line;
}

function parseId(v: string | undefined): number {
  if (v === undefined || !/^\d+$/.test(v) || Number(v) === 0 || Number(v) > 0xffffffff) throw new UsageError(`invalid archive ID '${v ?? ''}'`);
  return Number(v);
}

async function attach(ctx: PccCmdContext, argv: string[], byFid: boolean, usage: string): Promise<number> {
  const { opts, operands } = splitArgs(argv, ATTACH_OPTIONS);
  if (opts.some((o) => o.name === 'help')) {
    ctx.out.write(`${usage}\n`);
    return 0;
  }
  let id: number | undefined;
  let type: 'readonly' | 'readwrite' = 'readonly';
  let mnt: string | undefined;
  for (const o of opts) {
    if (o.name === 'id') id = parseId(o.value);
    else if (o.name === 'readonly') type = 'readonly';
    else if (o.name === 'write') type = 'readwrite';
    else if (o.name === 'mnt') mnt = o.value;
  }
  if (byFid && !mnt) throw new UsageError('must specify Lustre mount point');
  if (!byFid && mnt) throw new UsageError('--mnt is for attach_fid');
  if (operands.length === 0) throw new UsageError(byFid ? 'must specify one or more fids' : 'must specify one or more file names');
  const ep = byFid ? await pccEndpoint(mnt!) : undefined;
  return each(
    operands,
    async (arg) => {
      if (ep) await call(ep, 'pcc.attach', { fid: arg, type, id }, PCC_CALL_TIMEOUT_MS);
      else {
        const t = await pccTarget(arg);
        await call(t.endpoint, 'pcc.attach', { path: t.path, type, id }, PCC_CALL_TIMEOUT_MS);
      }
    },
    (arg, e) => ctx.error(`lfs pcc ${byFid ? 'attach_fid' : 'attach'}: cannot attach '${arg}' to PCC with archive ID '${id ?? 0}': ${why(e)}`),
  );
}

async function detach(ctx: PccCmdContext, argv: string[], byFid: boolean, usage: string): Promise<number> {
  const { opts, operands } = splitArgs(argv, DETACH_OPTIONS);
  if (opts.some((o) => o.name === 'help')) {
    ctx.out.write(`${usage}\n`);
    return 0;
  }
  const keep = opts.some((o) => o.name === 'keep');
  let mnt = opts.find((o) => o.name === 'mnt')?.value;
  const rest = [...operands];
  // older lfs: detach_fid <mntpath> <fid>...
  if (byFid && mnt === undefined) mnt = rest.shift();
  if (byFid && !mnt) throw new UsageError('must specify Lustre mount point');
  if (!byFid && mnt) throw new UsageError('--mnt is for detach_fid');
  if (rest.length === 0) throw new UsageError(byFid ? 'must specify one or more fids' : 'must specify one or more file names');
  const ep = byFid ? await pccEndpoint(mnt!) : undefined;
  return each(
    rest,
    async (arg) => {
      if (ep) await call(ep, 'pcc.detach', { fid: arg, keep }, PCC_CALL_TIMEOUT_MS);
      else {
        const t = await pccTarget(arg);
        await call(t.endpoint, 'pcc.detach', { path: t.path, keep }, PCC_CALL_TIMEOUT_MS);
      }
    },
    (arg, e) => ctx.error(`lfs pcc ${byFid ? 'detach_fid' : 'detach'}: cannot detach '${arg}' from PCC: ${why(e)}`),
  );
}

async function state(ctx: PccCmdContext, argv: string[], usage: string): Promise<number> {
  const { opts, operands } = splitArgs(argv, HELP_ONLY);
  if (opts.length > 0) {
    ctx.out.write(`${usage}\n`);
    return 0;
  }
  if (operands.length === 0) throw new UsageError('must specify one or more file names');
  return each(
    operands,
    async (arg) => {
      const t = await pccTarget(arg);
      const s = (await call(t.endpoint, 'pcc.state', { path: t.path }, 60_000)) as PccState;
      ctx.out.write(`${formatPccState(arg, s)}\n`);
    },
    (arg, e) => ctx.error(`lfs pcc state: cannot get PCC state of '${arg}': ${why(e)}`),
  );
}

const SUBCOMMANDS: Record<string, { usage: string; run(ctx: PccCmdContext, argv: string[]): Promise<number> }> = {
  attach: {
    usage: 'usage: pcc attach [--id|-i ID] [--readonly|-r] [--write|-w] <file> ...',
    run(ctx, argv) {
      return attach(ctx, argv, false, this.usage);
    },
  },
  attach_fid: {
    usage: 'usage: pcc attach_fid [--id|-i ID] [--readonly|-r] [--write|-w] --mnt|-m <mntpath> <fid> ...',
    run(ctx, argv) {
      return attach(ctx, argv, true, this.usage);
    },
  },
  detach: {
    usage: 'usage: pcc detach [--keep|-k] <file> ...',
    run(ctx, argv) {
      return detach(ctx, argv, false, this.usage);
    },
  },
  detach_fid: {
    usage: 'usage: pcc detach_fid [--keep|-k] --mnt|-m <mntpath> <fid> ...',
    run(ctx, argv) {
      return detach(ctx, argv, true, this.usage);
    },
  },
  state: {
    usage: 'usage: pcc state <file> ...',
    run(ctx, argv) {
      return state(ctx, argv, this.usage);
    },
  },
};

export const PCC_COMMANDS: Record<string, PccCommand> = {
  pcc: {
    usage: PCC_USAGE,
    async run(ctx, argv) {
      const [sub, ...rest] = argv;
      if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
        ctx.out.write(`${PCC_USAGE}\n`);
        return sub === undefined ? 4 : 0;
      }
      const cmd = Object.hasOwn(SUBCOMMANDS, sub) ? SUBCOMMANDS[sub]! : undefined;
      if (!cmd) {
        ctx.error(`lfs pcc: '${sub}' is not a valid sub-command\n${PCC_USAGE}`);
        return 4;
      }
      try {
        return await cmd.run(ctx, rest);
      } catch (e) {
        if (e instanceof UsageError) {
          ctx.error(`${e.message ? `lfs pcc ${sub}: ${e.message}\n` : ''}${cmd.usage}`);
          return 4;
        }
        throw e;
      }
    },
  },
};
