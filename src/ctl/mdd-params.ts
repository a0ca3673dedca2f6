/**
 * The changelog parameters of an MDT, as Lustre's mdd device shows them:
 *
 *   mdd.<target>.changelog_mask    record types kept; "+hsm", "-atime", "ALL" or a full list
 *   mdd.<target>.changelog_users   current index: N / ID    index (idle seconds) / cl1   N (S)
 */
import type { Changelog } from '../mds/changelog.js';
import { formatChangelogMask } from '../mds/changelog.js';
import type { ParamRegistry } from './params.js';

export function registerMddParams(reg: ParamRegistry, changelog: Changelog): () => void {
  const dev = `mdd.${changelog.mdtName}`;
  const undo = [
    reg.register(`${dev}.changelog_mask`, {
      get: () => formatChangelogMask(changelog.mask),
      set: (value) => changelog.setMask(value),
    }),
    reg.register(`${dev}.changelog_users`, { get: () => changelog.formatUsers() }),
  ];
  return () => {
    for (const u of undo) u();
  };
}
