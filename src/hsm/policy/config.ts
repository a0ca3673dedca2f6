/**
 * The policy engine's configuration: a YAML (or JSON, which is YAML) file such as
 *
 *   cycle: 5m                  # time between cycles
 *   archive_id: 1              # archive of rules that name none
 *   batch: 64                  # files per HSM request
 *   max_actions: 10000         # most archives, releases and removes per cycle (each)
 *   archive:
 *     retry_after: 1h          # an archive asked for and not done is asked for again after this
 *     rules:                   # first matching rule wins
 *       - name: big-old
 *         older_than: 30m      # since last modification
 *         min_size: 1M
 *         path: /projects/**   # globs on the path from the filesystem root (a list: any)
 *         archive_id: 2
 *   release:
 *     high_watermark: 85%      # an OST fuller than this ...
 *     low_watermark: 80%       # ... has its coldest archived files released until below this
 *     osts: [0, 1]             # only these OSTs (default: all)
 *     rules:                   # which archived files may go (default: any); coldest first
 *       - { name: big, min_size: 1G, unused_for: 1d }
 *       - { name: small, unused_for: 365d }
 *   remove:
 *     after: 30d               # archive copies of deleted files are removed this long after
 *
 * Rule conditions (all optional, all must hold): older_than (since last modification),
 * unused_for (since last access), min_size, max_size, path (globs on the path from the
 * filesystem root; one without a leading '/' matches at any depth), file_name (globs on
 * the file's name), exclude (path globs that must not match), pool. Sizes and durations
 * take units (64K, 10M, 1G; 30s, 10m, 2h, 7d, 1w, 1y). A mistake is EINVAL naming the key.
 */
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { err, StriaError } from '../../common/errno.js';
import { parseSize } from '../../common/units.js';
import { compileGlob, type Glob } from './glob.js';

export interface RuleConditions {
  /** ms since the last modification at least */
  olderThanMs?: number;
  /** ms since the last access at least */
  unusedForMs?: number;
  minSize?: number;
  maxSize?: number;
  /** any of these matches the path from the filesystem root ("/dir/file") */
  path?: Glob[];
  /** any of these matches the file's name */
  fileName?: Glob[];
  /** none of these may match the path */
  exclude?: Glob[];
  pool?: string;
}

export interface ArchiveRule extends RuleConditions {
  name: string;
  archiveId: number;
}

export interface ReleaseRule extends RuleConditions {
  name: string;
}

export interface PolicyConfig {
  cycleMs: number;
  archiveId: number;
  batch: number;
  maxActions: number;
  archive?: { rules: ArchiveRule[]; retryAfterMs: number };
  release?: { high: number; low: number; osts?: number[]; rules: ReleaseRule[] };
  remove?: { afterMs: number };
}

export const DEFAULT_CYCLE_MS = 5 * 60_000;
export const DEFAULT_BATCH = 64;
export const DEFAULT_MAX_ACTIONS = 10_000;
export const DEFAULT_ARCHIVE_RETRY_MS = 3600_000;
/** files one HSM request may name (HSM_REQUEST_MAX_FIDS) */
const MAX_BATCH = 1024;

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3600_000, d: 86_400_000, w: 7 * 86_400_000, y: 365 * 86_400_000 };

function bad(key: string, problem: string): StriaError {
  return err('EINVAL', `${key}: ${problem}`, 'BAD_POLICY_CONFIG');
}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function object(v: unknown, key: string, allowed: readonly string[]): Obj {
  if (!isObj(v)) throw bad(key, 'must be a mapping of keys to values');
  for (const k of Object.keys(v)) if (!allowed.includes(k)) throw bad(key ? `${key}.${k}` : k, `unknown key (known: ${allowed.join(', ')})`);
  return v;
}

/** "30s", "10m", "2h", "7d", "1w", "1y", "500ms"; a bare number is seconds */
export function parseDuration(v: unknown, key: string): number {
  if (typeof v === 'number' && Number.isFinite(v) && v >= 0) return Math.round(v * 1000);
  const m = typeof v === 'string' ? /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w|y)?$/.exec(v.trim()) : null;
  if (!m) throw bad(key, `${JSON.stringify(v)} is not a duration (examples: 30s, 10m, 2h, 7d, 1y)`);
  const ms = Number(m[1]) * UNIT_MS[m[2] ?? 's']!;
  if (!Number.isSafeInteger(Math.round(ms))) throw bad(key, `${JSON.stringify(v)} is too long`);
  return Math.round(ms);
}

function size(v: unknown, key: string): number {
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return v;
  if (typeof v === 'string') {
    try {
      return parseSize(v);
    } catch {
      // reported below with the key
    }
  }
  throw bad(key, `${JSON.stringify(v)} is not a size (examples: 4096, 64K, 10M, 1G)`);
}

function percent(v: unknown, key: string): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d+(\.\d+)?\s*%?$/.test(v.trim()) ? Number(v.trim().replace(/%$/, '')) : NaN;
  if (!Number.isFinite(n) || n < 0 || n > 100) throw bad(key, `${JSON.stringify(v)} is not a percentage 0..100 (e.g. 85%)`);
  return n;
}

function uint(v: unknown, key: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw bad(key, `${JSON.stringify(v)} must be an integer ${min}..${max}`);
  return v;
}

function str(v: unknown, key: string): string {
  if (typeof v !== 'string' || v.length === 0) throw bad(key, 'must be a non-empty string');
  return v;
}

function globs(v: unknown, key: string): Glob[] {
  const list = Array.isArray(v) ? v : [v];
  if (list.length === 0) throw bad(key, 'must name at least one glob');
  return list.map((g, i) => {
    const k = Array.isArray(v) ? `${key}[${i}]` : key;
    try {
      return compileGlob(str(g, k));
    } catch (e) {
      if (e instanceof StriaError && e.code === 'BAD_POLICY_CONFIG') throw e;
      throw bad(k, (e as Error).message);
    }
  });
}

const CONDITION_KEYS = ['name', 'older_than', 'unused_for', 'min_size', 'max_size', 'path', 'file_name', 'exclude', 'pool'] as const;

function conditions(o: Obj, key: string): RuleConditions {
  const c: RuleConditions = {};
  if (o.older_than !== undefined) c.olderThanMs = parseDuration(o.older_than, `${key}.older_than`);
  if (o.unused_for !== undefined) c.unusedForMs = parseDuration(o.unused_for, `${key}.unused_for`);
  if (o.min_size !== undefined) c.minSize = size(o.min_size, `${key}.min_size`);
  if (o.max_size !== undefined) c.maxSize = size(o.max_size, `${key}.max_size`);
  if (c.minSize !== undefined && c.maxSize !== undefined && c.minSize > c.maxSize) throw bad(`${key}.min_size`, 'is larger than max_size');
  if (o.path !== undefined) c.path = globs(o.path, `${key}.path`);
  if (o.file_name !== undefined) c.fileName = globs(o.file_name, `${key}.file_name`);
  if (o.exclude !== undefined) c.exclude = globs(o.exclude, `${key}.exclude`);
  if (o.pool !== undefined) c.pool = str(o.pool, `${key}.pool`);
  return c;
}

function ruleList(v: unknown, key: string): Obj[] {
  if (!Array.isArray(v)) throw bad(key, 'must be a list of rules');
  return v.map((r, i) => (isObj(r) ? r : (() => { throw bad(`${key}[${i}]`, 'must be a mapping (a rule)'); })()));
}

function ruleName(o: Obj, key: string, i: number): string {
  return o.name === undefined ? `rule${i}` : str(o.name, `${key}.name`);
}

/** Validates a parsed configuration document. */
export function parsePolicyConfig(doc: unknown): PolicyConfig {
  const top = object(doc ?? {}, '', ['cycle', 'archive_id', 'batch', 'max_actions', 'archive', 'release', 'remove']);
  const cfg: PolicyConfig = {
    cycleMs: top.cycle === undefined ? DEFAULT_CYCLE_MS : parseDuration(top.cycle, 'cycle'),
    archiveId: top.archive_id === undefined ? 1 : uint(top.archive_id, 'archive_id', 1, 0xffffffff),
    batch: top.batch === undefined ? DEFAULT_BATCH : uint(top.batch, 'batch', 1, MAX_BATCH),
    maxActions: top.max_actions === undefined ? DEFAULT_MAX_ACTIONS : uint(top.max_actions, 'max_actions', 1, 10_000_000),
  };
  if (cfg.cycleMs < 100) throw bad('cycle', 'must be at least 100ms');
  if (top.archive !== undefined) {
    const a = object(top.archive, 'archive', ['rules', 'retry_after']);
    if (a.rules === undefined) throw bad('archive.rules', 'is missing (a list of rules)');
    const rules = ruleList(a.rules, 'archive.rules').map((r, i): ArchiveRule => {
      const key = `archive.rules[${i}]`;
      object(r, key, [...CONDITION_KEYS, 'archive_id']);
      return {
        name: ruleName(r, key, i),
        archiveId: r.archive_id === undefined ? cfg.archiveId : uint(r.archive_id, `${key}.archive_id`, 1, 0xffffffff),
        ...conditions(r, key),
      };
    });
    cfg.archive = { rules, retryAfterMs: a.retry_after === undefined ? DEFAULT_ARCHIVE_RETRY_MS : parseDuration(a.retry_after, 'archive.retry_after') };
  }
  if (top.release !== undefined) {
    const r = object(top.release, 'release', ['high_watermark', 'low_watermark', 'osts', 'rules']);
    if (r.high_watermark === undefined) throw bad('release.high_watermark', 'is missing (e.g. 85%)');
    if (r.low_watermark === undefined) throw bad('release.low_watermark', 'is missing (e.g. 80%)');
    const high = percent(r.high_watermark, 'release.high_watermark');
    const low = percent(r.low_watermark, 'release.low_watermark');
    if (low >= high) throw bad('release.low_watermark', `${low}% must be below release.high_watermark (${high}%)`);
    let osts: number[] | undefined;
    if (r.osts !== undefined) {
      if (!Array.isArray(r.osts) || r.osts.length === 0) throw bad('release.osts', 'must be a non-empty list of OST indexes');
      osts = r.osts.map((x, i) => uint(x, `release.osts[${i}]`, 0, 0xffff));
    }
    const rules = r.rules === undefined ? [] : ruleList(r.rules, 'release.rules').map((x, i): ReleaseRule => {
      const key = `release.rules[${i}]`;
      object(x, key, CONDITION_KEYS);
      return { name: ruleName(x, key, i), ...conditions(x, key) };
    });
    cfg.release = { high, low, osts, rules };
  }
  if (top.remove !== undefined) {
    const r = object(top.remove, 'remove', ['after']);
    if (r.after === undefined) throw bad('remove.after', 'is missing (e.g. 30d)');
    cfg.remove = { afterMs: parseDuration(r.after, 'remove.after') };
  }
  return cfg;
}

/** Parses configuration text; YAML syntax errors are EINVAL with the line. */
export function parsePolicyConfigText(text: string): PolicyConfig {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw err('EINVAL', `not valid YAML or JSON: ${(e as Error).message.split('\n')[0]}`, 'BAD_POLICY_CONFIG');
  }
  return parsePolicyConfig(doc);
}

export async function loadPolicyConfig(file: string): Promise<PolicyConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw err(code === 'ENOENT' ? 'ENOENT' : 'EIO', `policy config ${file}: ${(e as Error).message}`, 'BAD_POLICY_CONFIG');
  }
  try {
    return parsePolicyConfigText(text);
  } catch (e) {
    if (e instanceof StriaError) throw new StriaError(e.errno, `policy config ${file}: ${e.message}`, e.code);
    throw e;
  }
}
