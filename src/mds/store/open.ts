/**
 * `--store` takes an embedded store directory or a Redis URL (redis://, rediss://,
 * redis+sentinel://); this picks the backend.
 */
import { stat } from 'node:fs/promises';
import { err } from '../../common/errno.js';
import type { Logger } from '../../common/log.js';
import { openLmdbStore } from './lmdb.js';
import { openRedisStore, parseRedisUrl } from './redis.js';
import type { MetadataStore } from './types.js';

const REDIS_URL = /^(redis|rediss|redis\+sentinel|rediss\+sentinel):\/\//i;

export function isStoreUrl(spec: string): boolean {
  return REDIS_URL.test(spec);
}

export async function openMetadataStore(spec: string, log: Logger): Promise<MetadataStore> {
  if (isStoreUrl(spec)) return openRedisStore(spec, { log });
  const st = await stat(spec).catch(() => undefined);
  if (!st?.isDirectory()) throw err('ENOENT', `MDT store directory ${spec} does not exist`, 'NO_TARGET_DIR');
  return openLmdbStore(spec);
}

/** The store as logs and lctl show it: a URL loses its password. */
export function describeStore(spec: string): string {
  if (!isStoreUrl(spec)) return spec;
  try {
    return parseRedisUrl(spec).display;
  } catch {
    return spec.replace(/\/\/[^@/]*@/, '//***@');
  }
}
