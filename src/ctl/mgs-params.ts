/**
 * The parameters of an MGS process: `mgs.MGS.{uuid,num_exports,filesystems}` and
 * `mgs.MGS.live.<fsname>` (the filesystem's configuration generation and targets).
 */
import { MGS_TARGET, mdtName, ostName } from '../common/targets.js';
import type { RpcServer } from '../ptlrpc/server.js';
import type { MgsConfigDb } from '../mgs/config-db.js';
import { ro } from './common-params.js';
import type { ParamRegistry, Param } from './params.js';

export function registerMgsParams(reg: ParamRegistry, mgs: { server: RpcServer; db: MgsConfigDb }): () => void {
  const p = `mgs.${MGS_TARGET}`;
  const fixed: Array<[string, Param]> = [
    [`${p}.uuid`, ro(() => MGS_TARGET)],
    [`${p}.num_exports`, ro(() => mgs.server.exports(MGS_TARGET).length)],
    [`${p}.filesystems`, ro(() => mgs.db.list().map((f) => `${f.fsname}\n`).join(''))],
  ];
  const undo = fixed.map(([name, param]) => reg.register(name, param));
  undo.push(
    reg.provide(function* () {
      for (const fs of mgs.db.list()) {
        yield [
          `${p}.live.${fs.fsname}`,
          ro(() => {
            const cur = mgs.db.get(fs.fsname) ?? fs;
            const targets = [
              ...[...cur.mdts].sort((a, b) => a.index - b.index).map((t) => mdtName(cur.fsname, t.index)),
              ...[...cur.osts].sort((a, b) => a.index - b.index).map((t) => ostName(cur.fsname, t.index)),
            ];
            return `fsname: ${cur.fsname}\ngen: ${cur.generation}\n${targets.map((t) => `${t}\n`).join('')}`;
          }),
        ] as const;
      }
    }),
  );
  undo.push(reg.addDevices(() => [{ type: 'mgs', name: MGS_TARGET, uuid: MGS_TARGET, status: 'UP', refcount: mgs.server.exports(MGS_TARGET).length }]));
  return () => {
    for (const u of undo) u();
  };
}
