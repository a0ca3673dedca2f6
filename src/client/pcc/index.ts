/**
 * PCC in a mount daemon: the manager, its hook in the FUSE adapter, and the control
 * commands `lfs pcc` and `lctl pcc` send over the mount's control socket:
 *
 *   pcc.add    { pccpath, param }                      -> null
 *   pcc.del    { pccpath, keep }                       -> null
 *   pcc.clear  { keep }                                -> null
 *   pcc.list   {}                                      -> text (as llite.*.pcc)
 *   pcc.attach { path: string[] | fid: string, type: 'readonly'|'readwrite', id? } -> null
 *   pcc.detach { path | fid, keep }                    -> null
 *   pcc.state  { path | fid }                          -> PccState
 *
 * `path` is the file's components below the mount's root. Also publishes the read-only
 * parameter llite.<fsname>-<instance>.pcc with the list of backends.
 */
import { resolve } from 'node:path';
import { z } from 'zod';
import type { Logger } from '../../common/log.js';
import { err } from '../../common/errno.js';
import { parseFid, type Fid } from '../../common/fid.js';
import type { StriaClient } from '../client.js';
import type { ParamRegistry } from '../../ctl/params.js';
import type { StriaFs } from '../../fuse/stria-fs.js';
import { PccManager, type PccBackend } from './manager.js';

export { PccManager } from './manager.js';
export type { PccState, PccType } from './manager.js';

export interface PccService {
  readonly manager: PccManager;
  close(): Promise<void>;
}

const FileArgs = z.object({
  path: z.array(z.string().min(1).max(255)).max(4096).optional(),
  fid: z.string().max(64).optional(),
});
const AttachArgs = FileArgs.extend({ type: z.enum(['readonly', 'readwrite']), id: z.number().int().min(1).max(0xffffffff).optional() });
const DetachArgs = FileArgs.extend({ keep: z.boolean().optional() });
const AddArgs = z.object({ pccpath: z.string().min(1).max(4096), param: z.string().max(4096) });
const DelArgs = z.object({ pccpath: z.string().min(1).max(4096), keep: z.boolean().optional() });
const ClearArgs = z.object({ keep: z.boolean().optional() });

function parseArgs<T>(schema: z.ZodType<T>, args: unknown): T {
  const r = schema.safeParse(args ?? {});
  if (!r.success) throw err('EINVAL', `bad arguments: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`, 'BAD_ARGS');
  return r.data;
}

/** `lctl pcc list` / llite.*.pcc: one block per backend. */
export function formatBackends(mountpoint: string, list: readonly PccBackend[]): string {
  let out = `mount: ${mountpoint}\n`;
  for (const b of list) {
    const p = b.spec.params;
    const flags = [
      p.rwid > 0 ? 'pccrw' : '', p.roid > 0 ? 'pccro' : '', p.autoAttach ? 'auto_attach' : '', p.openAttach ? 'open_attach' : '',
      p.ioAttach ? 'io_attach' : '', p.statAttach ? 'stat_attach' : '', p.mmapConv ? 'mmap_conv' : '', p.projQuota ? 'proj_quota' : '',
    ].filter((f) => f.length > 0);
    out += `${b.path}:\n  rwid: ${p.rwid}\n  roid: ${p.roid}\n  flags: ${flags.join(',')}\n  autocache: ${b.spec.rule?.text ?? ''}\n`;
  }
  return out;
}

export async function startPcc(opts: { client: StriaClient; fs: StriaFs; registry: ParamRegistry; mountpoint: string; log: Logger }): Promise<PccService> {
  const { client, fs, registry, log } = opts;
  const mountpoint = resolve(opts.mountpoint);
  const manager = new PccManager(client, mountpoint, log);

  const fileOf = async (a: z.infer<typeof FileArgs>): Promise<Fid> => {
    if (a.fid !== undefined) return parseFid(a.fid);
    if (!a.path) throw err('EINVAL', 'give path or fid', 'BAD_ARGS');
    let fid = fs.mountRoot;
    for (const name of a.path) {
      if (name === '.') continue;
      fid = (await client.lookup(fid, name)).fid;
    }
    return fid;
  };

  const undo: Array<() => void> = [
    registry.command('pcc.add', async (args) => {
      const a = parseArgs(AddArgs, args);
      await manager.add(a.pccpath, a.param);
      return null;
    }),
    registry.command('pcc.del', async (args) => {
      const a = parseArgs(DelArgs, args);
      await manager.del(a.pccpath, a.keep === true);
      return null;
    }),
    registry.command('pcc.clear', async (args) => {
      await manager.clear(parseArgs(ClearArgs, args).keep === true);
      return null;
    }),
    registry.command('pcc.list', () => formatBackends(mountpoint, manager.list())),
    registry.command('pcc.attach', async (args) => {
      const a = parseArgs(AttachArgs, args);
      await manager.attach(await fileOf(a), a.type, a.id);
      return null;
    }),
    registry.command('pcc.detach', async (args) => {
      const a = parseArgs(DetachArgs, args);
      await manager.detach(await fileOf(a), a.keep === true);
      return null;
    }),
    registry.command('pcc.state', async (args) => manager.state(await fileOf(parseArgs(FileArgs, args)))),
  ];
  const llite = registry.match('llite.*.uuid')[0]?.path[1];
  if (llite) undo.push(registry.register(`llite.${llite}.pcc`, { get: () => formatBackends(mountpoint, manager.list()) }));

  fs.pcc = manager;
  let closed = false;
  return {
    manager,
    close: async () => {
      if (closed) return;
      closed = true;
      fs.pcc = undefined;
      for (const u of undo) u();
      await manager.close();
    },
  };
}
