/**
 * The MGS's persistent configuration: per filesystem, its targets (index, uuid,
 * NIDs) and pools. One JSON file, replaced atomically on every change.
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { stat } from 'node:fs/promises';
import { err } from '../common/errno.js';
import { writeFileAtomic, readJsonFile } from '../common/atomic-file.js';
import type { FsConfig, PoolOpBody, TargetRegBody } from './protocol.js';

const CONFIG_FILE = 'mgs-config.json';
const CONFIG_VERSION = 1;

interface ConfigFile {
  version: number;
  filesystems: Record<string, FsConfig>;
}

export class MgsConfigDb {
  private saving: Promise<void> = Promise.resolve();

  private constructor(
    private readonly path: string,
    private readonly data: ConfigFile,
  ) {}

  static async open(dir: string): Promise<MgsConfigDb> {
    const st = await stat(dir).catch(() => undefined);
    if (!st?.isDirectory()) throw err('ENOENT', `MGS directory ${dir} does not exist`, 'NO_TARGET_DIR');
    const path = join(dir, CONFIG_FILE);
    let data: ConfigFile | undefined;
    try {
      data = await readJsonFile<ConfigFile>(path);
    } catch {
      throw err('EINVAL', `${path} is not a valid MGS configuration`, 'BAD_CONFIG');
    }
    if (data && (data.version > CONFIG_VERSION || typeof data.filesystems !== 'object')) {
      throw err('EINVAL', `${path} has version ${data.version}, newer than this MGS understands (${CONFIG_VERSION})`, 'NEWER_CONFIG');
    }
    return new MgsConfigDb(path, data ?? { version: CONFIG_VERSION, filesystems: {} });
  }

  get(fsname: string): FsConfig | undefined {
    return this.data.filesystems[fsname];
  }

  list(): FsConfig[] {
    return Object.values(this.data.filesystems);
  }

  /** A target (re-)registers; an index is owned by the first uuid that claimed it. */
  async register(reg: TargetRegBody): Promise<FsConfig> {
    const known = this.data.filesystems[reg.fsname];
    if (known?.uuid && reg.fsUuid && known.uuid !== reg.fsUuid) {
      throw err(
        'EINVAL',
        `${reg.fsname} ${reg.kind.toUpperCase()} index ${reg.index} was formatted for another filesystem named ${reg.fsname} (uuid ${reg.fsUuid}); this MGS knows ${reg.fsname} as ${known.uuid}`,
        'WRONG_FILESYSTEM',
      );
    }
    const fs = (this.data.filesystems[reg.fsname] ??= { fsname: reg.fsname, generation: 0, mdts: [], osts: [], pools: {} });
    if (!fs.uuid) {
      fs.uuid = reg.fsUuid ?? randomUUID();
      fs.generation++;
      await this.save();
    }
    const list = reg.kind === 'mdt' ? fs.mdts : fs.osts;
    const existing = list.find((t) => t.index === reg.index);
    if (existing && existing.uuid !== reg.uuid) {
      throw err('EEXIST', `${reg.fsname} ${reg.kind.toUpperCase()} index ${reg.index} is already in use by target ${existing.uuid}`, 'INDEX_IN_USE');
    }
    if (existing && sameList(existing.nids, reg.nids)) return fs;
    if (existing) existing.nids = reg.nids;
    else {
      list.push({ index: reg.index, uuid: reg.uuid, nids: reg.nids });
      list.sort((a, b) => a.index - b.index);
    }
    fs.generation++;
    await this.save();
    return fs;
  }

  async poolOp(op: PoolOpBody): Promise<FsConfig> {
    const fs = this.data.filesystems[op.fsname];
    if (!fs) throw err('ENOENT', `filesystem ${op.fsname} is not known to this MGS`, 'NO_SUCH_FS');
    const members = fs.pools[op.pool];
    switch (op.op) {
      case 'pool_new':
        if (members) throw err('EEXIST', `pool ${op.fsname}.${op.pool} already exists`, 'POOL_EXISTS');
        fs.pools[op.pool] = [];
        break;
      case 'pool_destroy':
        if (!members) throw noPool(op);
        if (members.length > 0) throw err('ENOTEMPTY', `pool ${op.fsname}.${op.pool} is not empty`, 'POOL_NOT_EMPTY');
        delete fs.pools[op.pool];
        break;
      case 'pool_add': {
        if (!members) throw noPool(op);
        for (const idx of op.osts ?? []) {
          if (!fs.osts.some((t) => t.index === idx)) throw err('ENOENT', `OST index ${idx} is not registered in ${op.fsname}`, 'NO_SUCH_OST');
          if (members.includes(idx)) throw err('EEXIST', `OST index ${idx} is already in pool ${op.fsname}.${op.pool}`, 'ALREADY_IN_POOL');
        }
        members.push(...(op.osts ?? []));
        members.sort((a, b) => a - b);
        break;
      }
      case 'pool_remove':
        if (!members) throw noPool(op);
        for (const idx of op.osts ?? []) {
          if (!members.includes(idx)) throw err('ENOENT', `OST index ${idx} is not in pool ${op.fsname}.${op.pool}`, 'NOT_IN_POOL');
        }
        fs.pools[op.pool] = members.filter((i) => !(op.osts ?? []).includes(i));
        break;
    }
    fs.generation++;
    await this.save();
    return fs;
  }

  /** Saves in order: each save writes the state as it is when its turn comes. */
  private save(): Promise<void> {
    const run = this.saving.then(() => writeFileAtomic(this.path, JSON.stringify(this.data, null, 2)));
    this.saving = run.catch(() => undefined);
    return run;
  }
}

function noPool(op: PoolOpBody) {
  return err('ENOENT', `pool ${op.fsname}.${op.pool} does not exist`, 'NO_SUCH_POOL');
}

function sameList(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
