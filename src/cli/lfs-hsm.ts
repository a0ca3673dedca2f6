/**
 * `lfs hsm_*`: HSM requests and state (reference §7.4), with the syntax, messages and exit
 * statuses of Lustre's lfs.c: a failure prints one line and exits with its errno (lfs
 * returns -rc), a command line that does not parse prints the usage (CMD_HELP).
 */
import { lstat, readFile } from 'node:fs/promises';
import { Errno, toStriaError } from '../common/errno.js';
import { parseFid, type Fid } from '../common/fid.js';
import type { Inode } from '../common/inode.js';
import type { StriaClient } from '../client/client.js';
import { fsKey, looksLikeFsSpec, parseFsSpec, type FsSpec } from '../client/fs-spec.js';
import type { Cred } from '../client/mdc.js';
import { formatHsmState, HSM_FLAG_OPTIONS } from '../hsm/flags.js';
import { HSM_REQUEST_MAX_FIDS, type HsmActionReply, type HsmRequestBody } from '../hsm/protocol.js';
import { splitArgs, UsageError, type OptSpec } from './lfs-getopt.js';
import { strerror, type LfsSession } from './lfs-session.js';
import type { Output } from './lfs-output.js';

export interface HsmCmdContext {
  session: LfsSession;
  out: Output;
  /** one line on stderr, as given (stdout flushed first) */
  error: (line: string) => void;
}

export interface HsmCommand {
  usage: string;
  /** resolves with the exit status */
  run(ctx: HsmCmdContext, argv: string[]): Promise<number>;
}

type RequestAction = HsmRequestBody['action'] | 'release';

const FILES = '<file|MGSNID:/FSNAME/PATH> ...';

const REQUEST_OPTIONS: OptSpec[] = [
  { name: 'archive', short: 'a', long: ['archive'], arg: 'required' },
  { name: 'data', short: 'D', long: ['data'], arg: 'required' },
  { name: 'help', short: 'h', long: ['help'] },
  { name: 'filelist', short: 'l', long: ['filelist'], arg: 'required' },
  { name: 'mntpath', short: 'm', long: ['mntpath'], arg: 'required' },
];

const FLAG_OPTIONS: OptSpec[] = [
  { name: 'archived', short: 'A', long: ['archived'] },
  { name: 'noarchive', short: 'a', long: ['noarchive'] },
  { name: 'dirty', short: 'd', long: ['dirty'] },
  { name: 'exists', short: 'e', long: ['exists'] },
  { name: 'help', short: 'h', long: ['help'] },
  { name: 'archive-id', short: 'i', long: ['archive-id'], arg: 'required' },
  { name: 'lost', short: 'l', long: ['lost'] },
  { name: 'norelease', short: 'r', long: ['norelease'] },
];

const HELP_ONLY: OptSpec[] = [{ name: 'help', short: 'h', long: ['help'] }];

/** Who is asking: the MDT lets only root archive, release, remove or set admin flags. */
function caller(): Cred {
  return { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
}

/** Lustre's exit status for a failure: the errno (lfs returns -rc). */
function exitStatus(e: unknown): number {
  const n = toStriaError(e).errno;
  return n > 0 && n < 256 ? n : 1;
}

function why(e: unknown): string {
  return strerror(toStriaError(e).errno);
}

/** A file named on the command line, looked up through the MDS. */
interface NamedFile {
  arg: string;
  spec: FsSpec;
  client: StriaClient;
  inode: Inode;
}

async function lookupFile(session: LfsSession, arg: string, follow: boolean): Promise<NamedFile> {
  const t = await session.target(arg, follow);
  const client = await session.client(t.spec);
  const node = await session.lookup(client, t.spec, t.spec.path, follow);
  return { arg, spec: t.spec, client, inode: node.inode };
}

/** "(from 0 to EOF)": an extent that reaches the largest offset */
function reachesEof(e: { offset: number; length: number }): boolean {
  return e.length < 0 || !Number.isSafeInteger(e.length) || !Number.isSafeInteger(e.offset + e.length) || e.offset + e.length >= Number.MAX_SAFE_INTEGER;
}

/** What lfs hsm_action prints after "FILE: " */
export function formatHsmAction(a: HsmActionReply): string {
  if (a.action === 'NOOP') return 'NOOP';
  const phase = a.phase ?? (a.status === 'STARTED' ? 'RUNNING' : a.status === 'WAITING' || a.status === undefined ? 'WAITING' : 'DONE');
  const head = `${a.action} ${phase} `;
  if (phase === 'RUNNING' && (a.action === 'ARCHIVE' || a.action === 'RESTORE')) return `${head}(${a.bytesMoved} bytes moved)`;
  if (reachesEof(a.extent)) return `${head}(from ${a.extent.offset} to EOF)`;
  return `${head}(from ${a.extent.offset} to ${a.extent.offset + a.extent.length})`;
}

/** hsm_set / hsm_clear options: the HS_* bits named, and --archive-id. */
export function parseHsmFlags(argv: string[]): { help: boolean; mask: number; archiveId?: number; files: string[] } {
  const { opts, operands } = splitArgs(argv, FLAG_OPTIONS);
  let mask = 0;
  let archiveId: number | undefined;
  for (const o of opts) {
    if (o.name === 'help') return { help: true, mask: 0, files: [] };
    if (o.name === 'archive-id') {
      const v = o.value ?? '';
      if (!/^\d+$/.test(v) || Number(v) > 0xffffffff) throw new UsageError(`invalid archive_id: '${v}'`);
      archiveId = Number(v);
      continue;
    }
    mask |= HSM_FLAG_OPTIONS[o.name] ?? 0;
  }
  // lfs wants at least one flag and one file, or shows the usage.
  if (mask === 0 || operands.length === 0) throw new UsageError('');
  return { help: false, mask, archiveId, files: operands };
}

export interface HsmRequestArgs {
  help: boolean;
  archiveId?: number;
  data?: string;
  filelist?: string;
  mntpath?: string;
  /** paths, or FIDs with mntpath */
  items: string[];
}

/** lfs_hsm_request's command line (archive, restore, release, remove, cancel). */
export function parseHsmRequest(action: RequestAction, argv: string[]): HsmRequestArgs {
  const { opts, operands } = splitArgs(argv, REQUEST_OPTIONS);
  const r: HsmRequestArgs = { help: false, items: operands };
  for (const o of opts) {
    const v = o.value ?? '';
    if (o.name === 'help') return { help: true, items: [] };
    if (o.name === 'archive') {
      if (action !== 'archive' && action !== 'remove') throw new UsageError('error: -a is supported only when archiving or removing');
      if (!/^\d+$/.test(v) || Number(v) > 0xffffffff) throw new UsageError(`invalid archive number '${v}'`);
      r.archiveId = Number(v);
    }
    if (o.name === 'data') r.data = v;
    if (o.name === 'filelist') r.filelist = v;
    // the first --mntpath counts, as in lfs
    if (o.name === 'mntpath') r.mntpath ??= v;
  }
  if (r.items.length === 0 && r.filelist === undefined) throw new UsageError('');
  return r;
}

/** A file of a request: its FID on one filesystem, and how the command line named it. */
interface RequestItem {
  text: string;
  fid: Fid;
}

async function requestCommand(ctx: HsmCmdContext, name: string, action: RequestAction, argv: string[], usage: string): Promise<number> {
  const a = parseHsmRequest(action, argv);
  if (a.help) {
    ctx.out.write(`${usage}\n`);
    return 0;
  }
  const fail = (line: string, status: number): number => {
    ctx.error(`lfs ${name}: ${line}`);
    return status;
  };
  const texts = [...a.items];
  if (a.filelist !== undefined) {
    let list: string;
    try {
      list = await readFile(a.filelist, 'utf8');
    } catch (e) {
      return fail(`Cannot read the file list ${a.filelist}: ${why(e)}`, exitStatus(e));
    }
    texts.push(...list.split('\n').filter((l) => l.length > 0));
  }
  let spec: FsSpec | undefined;
  let client: StriaClient | undefined;
  const items: RequestItem[] = [];
  if (a.mntpath !== undefined) {
    for (const t of texts) {
      try {
        items.push({ text: t, fid: parseFid(t) });
      } catch {
        return fail(`'${t}' is not a valid FID`, Errno.EINVAL);
      }
    }
    try {
      spec = looksLikeFsSpec(a.mntpath) ? parseFsSpec(a.mntpath) : (await ctx.session.target(a.mntpath, true)).spec;
      client = await ctx.session.client(spec);
    } catch (e) {
      return fail(`cannot resolve mount point for '${a.mntpath}': ${why(e)}`, exitStatus(e));
    }
  } else {
    for (const t of texts) {
      let f: NamedFile;
      try {
        // lstat first, as lfs does: a missing file is "Cannot stat" wherever it would be
        if (!looksLikeFsSpec(t)) await lstat(t);
        f = await lookupFile(ctx.session, t, false);
      } catch (e) {
        const se = toStriaError(e);
        const pathError = [Errno.ENOENT, Errno.ENOTDIR, Errno.EACCES, Errno.ELOOP, Errno.ENAMETOOLONG].includes(se.errno);
        return fail(`${pathError ? 'Cannot stat' : 'Cannot read FID of'} ${t}: ${why(e)}`, exitStatus(e));
      }
      // lfs asks only for regular files: nothing else has data a copytool could move.
      if (f.inode.type !== 'reg') throw new UsageError(`error: "${t}" is not a regular file`);
      if (spec && fsKey(spec) !== fsKey(f.spec)) return fail(`All files should be on the same filesystem: ${t}`, Errno.EINVAL);
      spec ??= f.spec;
      client ??= f.client;
      items.push({ text: t, fid: f.inode.fid });
    }
  }
  if (!client || items.length === 0) return 0;
  const first = items[0]!.text;
  const cred = caller();
  if (action === 'release') {
    for (const it of items) {
      try {
        await release(client, it.fid, cred);
      } catch (e) {
        return fail(`Cannot send HSM request (use of ${it.text}): ${why(e)}`, exitStatus(e));
      }
    }
    return 0;
  }
  for (let i = 0; i < items.length; i += HSM_REQUEST_MAX_FIDS) {
    const body: HsmRequestBody = { action, fids: items.slice(i, i + HSM_REQUEST_MAX_FIDS).map((it) => it.fid) };
    if (a.archiveId !== undefined && a.archiveId !== 0) body.archiveId = a.archiveId;
    if (a.data !== undefined) body.data = a.data;
    try {
      await client.hsm.request(body, cred);
    } catch (e) {
      return fail(`Cannot send HSM request (use of ${first}): ${why(e)}`, exitStatus(e));
    }
  }
  return 0;
}

/**
 * Synchronous release (reference §7.2): the size, times and data version this client sees
 * go with the request, so the MDT keeps what stat shows and refuses if the data moved on.
 */
async function release(client: StriaClient, fid: Fid, cred: Cred): Promise<void> {
  const attr = await client.getattr(fid);
  const dataVersion = await client.dataVersion(fid);
  await client.hsm.release({ fid, dataVersion, size: attr.size, atime: attr.atime, mtime: attr.mtime, ctime: attr.ctime }, cred);
}

/** hsm_state and hsm_action: one line per file; the first failure ends the command. */
async function perFile(ctx: HsmCmdContext, argv: string[], usage: string, show: (f: NamedFile) => Promise<string>, failure: (arg: string) => string): Promise<number> {
  const { opts, operands } = splitArgs(argv, HELP_ONLY);
  if (opts.length > 0) {
    ctx.out.write(`${usage}\n`);
    return 0;
  }
  if (operands.length === 0) throw new UsageError('');
  for (const arg of operands) {
    try {
      const f = await lookupFile(ctx.session, arg, true);
      ctx.out.write(`${arg}: ${await show(f)}\n`);
    } catch (e) {
      ctx.error(`${failure(arg)}: ${why(e)}`);
      return exitStatus(e);
    }
  }
  return 0;
}

async function changeFlags(ctx: HsmCmdContext, name: string, mode: 'set' | 'clear', argv: string[], usage: string): Promise<number> {
  const p = parseHsmFlags(argv);
  if (p.help) {
    ctx.out.write(`${usage}\n`);
    return 0;
  }
  const cred = caller();
  for (const arg of p.files) {
    try {
      const f = await lookupFile(ctx.session, arg, true);
      await f.client.hsm.setState(
        mode === 'set'
          ? { fid: f.inode.fid, set: p.mask, clear: 0, ...(p.archiveId ? { archiveId: p.archiveId } : {}) }
          : { fid: f.inode.fid, set: 0, clear: p.mask },
        cred,
      );
    } catch (e) {
      ctx.error(`lfs ${name}: Can't change hsm flags for ${arg}: ${why(e)}`);
      return exitStatus(e);
    }
  }
  return 0;
}

const REQUEST_USAGE = (name: string, extra = '') => `usage: ${name} [--filelist FILELIST] [--data DATA]${extra} ${FILES}`;

export const HSM_COMMANDS: Record<string, HsmCommand> = {
  hsm_state: {
    usage: `usage: hsm_state ${FILES}`,
    run(ctx, argv) {
      return perFile(ctx, argv, this.usage, async (f) => formatHsmState(await f.client.hsm.state(f.inode.fid, caller())), (arg) => `lfs hsm_state: can't get hsm state for ${arg}`);
    },
  },
  hsm_action: {
    usage: `usage: hsm_action ${FILES}`,
    run(ctx, argv) {
      return perFile(ctx, argv, this.usage, async (f) => formatHsmAction(await f.client.hsm.action(f.inode.fid, caller())), (arg) => `lfs hsm_action: can't get hsm action for ${arg}`);
    },
  },
  hsm_set: {
    usage: `usage: hsm_set [--norelease] [--noarchive] [--dirty] [--exists] [--archived] [--lost] [--archive-id NUM] ${FILES}`,
    run(ctx, argv) {
      return changeFlags(ctx, 'hsm_set', 'set', argv, this.usage);
    },
  },
  hsm_clear: {
    usage: `usage: hsm_clear [--norelease] [--noarchive] [--dirty] [--exists] [--archived] [--lost] ${FILES}`,
    run(ctx, argv) {
      return changeFlags(ctx, 'hsm_clear', 'clear', argv, this.usage);
    },
  },
  hsm_archive: {
    usage: REQUEST_USAGE('hsm_archive', ' [--archive NUM]'),
    run(ctx, argv) {
      return requestCommand(ctx, 'hsm_archive', 'archive', argv, this.usage);
    },
  },
  hsm_restore: {
    usage: REQUEST_USAGE('hsm_restore'),
    run(ctx, argv) {
      return requestCommand(ctx, 'hsm_restore', 'restore', argv, this.usage);
    },
  },
  hsm_release: {
    usage: REQUEST_USAGE('hsm_release'),
    run(ctx, argv) {
      return requestCommand(ctx, 'hsm_release', 'release', argv, this.usage);
    },
  },
  hsm_remove: {
    usage: `usage: hsm_remove [--filelist FILELIST] [--data DATA] [--archive NUM]
                  (FILE [FILE ...] | --mntpath MOUNTPATH FID [FID ...])

Note: To remove an archived copy of a file already deleted from a Stria filesystem, the
--mntpath option and a list of FIDs must be specified`,
    run(ctx, argv) {
      return requestCommand(ctx, 'hsm_remove', 'remove', argv, this.usage);
    },
  },
  hsm_cancel: {
    usage: REQUEST_USAGE('hsm_cancel'),
    run(ctx, argv) {
      return requestCommand(ctx, 'hsm_cancel', 'cancel', argv, this.usage);
    },
  },
};
