/** MGS request bodies (validated with zod) and the configuration clients fetch at mount. */
import { z } from 'zod';
export { parseBody } from '../common/validate.js';

const fsname = z.string().regex(/^[A-Za-z0-9_-]{1,8}$/, 'filesystem name: 1-8 of [A-Za-z0-9_-]');
const index = z.number().int().min(0).max(0xffff);
const nid = z.string().min(1).max(256);
const poolName = z.string().regex(/^[A-Za-z0-9_.-]{1,15}$/, 'pool name: 1-15 of [A-Za-z0-9_.-]');

export const TargetRegBody = z.object({
  fsname,
  kind: z.enum(['mdt', 'ost']),
  index,
  uuid: z.string().min(1).max(64),
  nids: z.array(nid).min(1).max(16),
  /** the filesystem UUID the target was formatted for, when it knows one */
  fsUuid: z.string().min(1).max(64).optional(),
});
export type TargetRegBody = z.infer<typeof TargetRegBody>;

export const ConfigReadBody = z.object({ fsname });

export const PoolOpBody = z.object({
  op: z.enum(['pool_new', 'pool_add', 'pool_remove', 'pool_destroy']),
  fsname,
  pool: poolName,
  osts: z.array(index).max(4096).optional(),
});
export type PoolOpBody = z.infer<typeof PoolOpBody>;

export interface TargetRecord {
  index: number;
  uuid: string;
  nids: string[];
}

export interface FsConfig {
  fsname: string;
  /** the filesystem's UUID: set when its first target registers; targets of another filesystem of the same name are refused */
  uuid?: string;
  /** bumped on every change so clients can tell a stale copy */
  generation: number;
  mdts: TargetRecord[];
  osts: TargetRecord[];
  pools: Record<string, number[]>;
}
