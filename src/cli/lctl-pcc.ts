/**
 * `lctl pcc add|del|clear|list` (reference §6, lctl-pcc.8): PCC backends of a mount. In
 * Lustre they write the llite `pcc` parameter; here they go to the mount daemon's PCC
 * (src/client/pcc) over its control socket.
 *
 *   lctl pcc add MNT PCCPATH [-p|--param] "RULE PARAMS"
 *   lctl pcc del [-k|--keep] MNT PCCPATH
 *   lctl pcc clear [-k|--keep] MNT
 *   lctl pcc list MNT
 */
import type { Command } from 'commander';
import { resolve } from 'node:path';
import { err } from '../common/errno.js';
import { call } from '../ctl/control-client.js';
import { PCC_CALL_TIMEOUT_MS, pccEndpoint } from './pcc-endpoint.js';

export function registerLctlPcc(program: Command, print: (line: string) => void = (l) => void process.stdout.write(`${l}\n`)): void {
  const pcc = program.command('pcc').description('Persistent Client Cache backends of a mount (add, del, clear, list)');
  pcc
    .command('add <mnt> <pccpath> [param]')
    .description('add a PCC backend: "RULE PARAMS", e.g. "projid={500}&fname={*.h5} rwid=2"')
    .option('-p, --param <param>', 'the rule and parameters')
    .action(async (mnt: string, pccpath: string, param: string | undefined, o: { param?: string }) => {
      const text = o.param ?? param;
      if (text === undefined) throw err('EINVAL', 'pcc add: no "RULE PARAMS" given', 'NO_PCC_PARAM');
      await call(await pccEndpoint(mnt), 'pcc.add', { pccpath: resolve(pccpath), param: text }, 60_000);
    });
  pcc
    .command('del <mnt> <pccpath>')
    .description('delete a PCC backend (its files are detached first)')
    .option('-k, --keep', 'keep the cached copies')
    .action(async (mnt: string, pccpath: string, o: { keep?: boolean }) => {
      await call(await pccEndpoint(mnt), 'pcc.del', { pccpath: resolve(pccpath), keep: o.keep === true }, PCC_CALL_TIMEOUT_MS);
    });
  pcc
    .command('clear <mnt>')
    .description('delete every PCC backend of a mount')
    .option('-k, --keep', 'keep the cached copies')
    .action(async (mnt: string, o: { keep?: boolean }) => {
      await call(await pccEndpoint(mnt), 'pcc.clear', { keep: o.keep === true }, PCC_CALL_TIMEOUT_MS);
    });
  pcc
    .command('list <mnt>')
    .description('list the PCC backends of a mount')
    .action(async (mnt: string) => {
      const text = (await call(await pccEndpoint(mnt), 'pcc.list', {}, 60_000)) as string;
      print(text.replace(/\n$/, ''));
    });
}
