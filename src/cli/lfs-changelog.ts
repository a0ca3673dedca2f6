/**
 * `lfs changelog [--follow] MDTNAME [STARTREC [ENDREC]]` and
 * `lfs changelog_clear MDTNAME ID ENDREC` (reference §8.5), printing records in
 * Lustre's line format (lfs.c lfs_changelog):
 *
 *   2 01CREAT 15:15:36.687592024 2018.01.09 0x0 t=[0x200000402:0x2:0x0] j=cp.500 ef=0xf u=500:500 nid=10.128.11.159@tcp p=[0x200000402:0x1:0x0] chloe.jpg
 *
 * The MDT name FSNAME-MDTxxxx names the filesystem: lfs reaches it through a Stria
 * mount of that filesystem on this node (or the MGS in STRIA_MGS when none is mounted).
 */
import { err, StriaError, toStriaError } from '../common/errno.js';
import { fidToString, type Fid } from '../common/fid.js';
import { parseNidList } from '../lnet/nid.js';
import type { StriaClient } from '../client/client.js';
import { parseFsSpec, type FsSpec } from '../client/fs-spec.js';
import type { ChangelogRecord } from '../mds/changelog-types.js';
import { changelogTypeName } from '../mds/changelog.js';
import { ChangelogClient, parseMdtName } from '../hsm/policy/changelog-client.js';
import { splitArgs, UsageError } from './lfs-getopt.js';
import type { LfsSession } from './lfs-session.js';
import type { Output } from './lfs-output.js';

/** The shape of lfs.ts's command table entries. */
export interface LfsChangelogCommand {
  usage: string;
  run(ctx: { session: LfsSession; out: Output; warn: (s: string) => void }, argv: string[]): Promise<boolean | void>;
}

/** Lustre's CLF_FLAGMASK: the flags lfs prints; the bits above say which extensions follow */
const CLF_FLAGMASK = 0x0fff;
/** libcfs_nid2str(0), what Lustre prints for records without a client NID */
const NO_NID = '0@<0:0>';
/** how often --follow asks for new records once it has caught up */
const FOLLOW_POLL_MS = 500;

const p2 = (n: number) => String(n).padStart(2, '0');

function isZeroFid(f: Fid | undefined): boolean {
  return !f || (f.seq === 0 && f.oid === 0 && f.ver === 0);
}

/** One record as `lfs changelog` prints it (without the newline); times in UTC as gmtime(3). */
export function formatChangelogRecord(r: ChangelogRecord): string {
  const d = new Date(r.time.sec * 1000);
  const time = `${p2(d.getUTCHours())}:${p2(d.getUTCMinutes())}:${p2(d.getUTCSeconds())}.${String(r.time.nsec).padStart(9, '0')}`;
  const date = `${String(d.getUTCFullYear()).padStart(4, '0')}.${p2(d.getUTCMonth() + 1)}.${p2(d.getUTCDate())}`;
  let s = `${r.index} ${p2(r.type)}${changelogTypeName(r.type).padEnd(5)} ${time} ${date} 0x${((r.flags ?? 0) & CLF_FLAGMASK).toString(16)} t=${fidToString(r.tfid)}`;
  if (r.jobid) s += ` j=${r.jobid}`;
  // lfs asks for every extension: uid/gid, nid, open mode, xattr name (ef=0xf)
  s += ` ef=0xf u=${r.uid ?? 0}:${r.gid ?? 0} nid=${r.nid || NO_NID}`;
  if (!isZeroFid(r.pfid)) s += ` p=${fidToString(r.pfid!)}`;
  if (r.name) s += ` ${r.name}`;
  if (!isZeroFid(r.sfid)) s += ` s=${fidToString(r.sfid!)} sp=${fidToString(r.spfid ?? { seq: 0, oid: 0, ver: 0 })} ${r.sname ?? ''}`;
  return s;
}

/**
 * The client of the filesystem an MDT name belongs to: through a Stria mount of it on
 * this node, else through `fallbackMgs` (NIDs), else STRIA_MGS.
 */
export async function mdtClient(session: LfsSession, mdt: string, fallbackMgs?: string): Promise<{ client: StriaClient; changelog: ChangelogClient }> {
  const { fsname, index } = parseMdtName(mdt);
  let spec: FsSpec | undefined;
  for (const m of await session.striaMounts().catch(() => [])) {
    try {
      const s = parseFsSpec(m.source);
      if (s.fsname === fsname) {
        spec = { ...s, path: [] };
        break;
      }
    } catch {
      // not a spec: some other mount
    }
  }
  const mgs = fallbackMgs ?? process.env.STRIA_MGS;
  if (!spec && mgs) spec = { mgsNids: parseNidList(mgs), fsname, path: [], text: `${mgs}:/${fsname}` };
  if (!spec) throw err('ENODEV', `${mdt}: filesystem ${fsname} is not mounted here (mount it, or name its MGS in STRIA_MGS)`, 'NO_MOUNT');
  const client = await session.client(spec);
  if (!client.configuration.mdts.some((t) => t.index === index) || index !== 0) {
    throw err('ENODEV', `${mdt}: no such MDT in filesystem ${fsname}`, 'NO_MDT');
  }
  return { client, changelog: new ChangelogClient(client.mdc.imp) };
}

function recordNumber(text: string, what: string): number {
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text))) throw new UsageError(`invalid ${what} '${text}'`);
  return Number(text);
}

/** Resolves at the first SIGINT/SIGTERM; `dispose` removes the handlers. */
function stopOnSignal(): { stopped: Promise<void>; isStopped: () => boolean; dispose: () => void } {
  let stop = false;
  let resolve!: () => void;
  const stopped = new Promise<void>((r) => (resolve = r));
  const on = () => {
    stop = true;
    resolve();
  };
  process.on('SIGINT', on);
  process.on('SIGTERM', on);
  return {
    stopped,
    isStopped: () => stop,
    dispose: () => {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
    },
  };
}

async function changelog(ctx: Parameters<LfsChangelogCommand['run']>[0], argv: string[], usage: string): Promise<void> {
  const { opts, operands } = splitArgs(argv, [
    { name: 'follow', short: 'f', long: ['follow'] },
    { name: 'help', short: 'h', long: ['help'] },
  ]);
  if (opts.some((o) => o.name === 'help')) return void ctx.out.write(`${usage}\n`);
  const follow = opts.some((o) => o.name === 'follow');
  const [mdt, startText, endText, ...extra] = operands;
  if (!mdt) throw new UsageError('changelog: no MDT name given');
  if (extra.length > 0) throw new UsageError(`changelog: unexpected argument '${extra[0]}'`);
  const start = startText === undefined ? 0 : recordNumber(startText, 'start record');
  const end = endText === undefined ? Infinity : recordNumber(endText, 'end record');
  const { changelog: cl } = await mdtClient(ctx.session, mdt);
  const signals = follow ? stopOnSignal() : undefined;
  try {
    let after = start > 0 ? start - 1 : 0;
    // without --follow: up to the newest record when we started, so the command ends
    let stopAt = Infinity;
    for (;;) {
      if (signals?.isStopped()) return;
      const r = await cl.read(after);
      if (!follow && stopAt === Infinity) stopAt = Math.min(r.current, end);
      for (const rec of r.records) {
        if (rec.index > end) return;
        ctx.out.write(`${formatChangelogRecord(rec)}\n`);
      }
      ctx.out.flush();
      if (r.records.length > 0) after = r.records[r.records.length - 1]!.index;
      else if (r.current > after) after = r.current; // purged meanwhile: nothing left below
      if (after >= end || (!follow && after >= stopAt)) return;
      if (r.eof) {
        if (!follow) return;
        await Promise.race([new Promise((res) => setTimeout(res, FOLLOW_POLL_MS)), signals!.stopped]);
      }
    }
  } finally {
    signals?.dispose();
  }
}

async function changelogClear(ctx: Parameters<LfsChangelogCommand['run']>[0], argv: string[], usage: string): Promise<void> {
  const { opts, operands } = splitArgs(argv, [{ name: 'help', short: 'h', long: ['help'] }]);
  if (opts.length > 0) return void ctx.out.write(`${usage}\n`);
  if (operands.length !== 3) throw new UsageError('changelog_clear: MDT name, user id and end record needed');
  const [mdt, id, endText] = operands as [string, string, string];
  const endrec = recordNumber(endText, 'end record');
  const { changelog: cl } = await mdtClient(ctx.session, mdt);
  try {
    await cl.clear(id, endrec);
  } catch (e) {
    const se = toStriaError(e);
    if (se.code === 'NO_CHANGELOG_USER' || se.code === 'BAD_CHANGELOG_USER' || (se.code === 'BAD_REQUEST' && /\bid\b/.test(se.message))) {
      throw new StriaError(se.errno, `changelog_clear: no changelog user: ${id}`, se.code);
    }
    if (se.code === 'CHANGELOG_RANGE') throw new StriaError(se.errno, `changelog_clear: record out of range: ${endrec}`, se.code);
    throw new StriaError(se.errno, `changelog_clear error: ${se.message}`, se.code);
  }
}

const CHANGELOG_USAGE = 'usage: changelog [--follow] <mdtname> [startrec [endrec]]';
const CHANGELOG_CLEAR_USAGE = 'usage: changelog_clear <mdtname> <id> <endrec>';

/** Entries for lfs.ts's COMMANDS table. */
export const CHANGELOG_COMMANDS: Record<'changelog' | 'changelog_clear', LfsChangelogCommand> = {
  changelog: { usage: CHANGELOG_USAGE, run: (ctx, argv) => changelog(ctx, argv, CHANGELOG_USAGE) },
  changelog_clear: { usage: CHANGELOG_CLEAR_USAGE, run: (ctx, argv) => changelogClear(ctx, argv, CHANGELOG_CLEAR_USAGE) },
};
