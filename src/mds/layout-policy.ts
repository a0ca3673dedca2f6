/**
 * Layout templates and their inheritance (reference §2.4), and validation of
 * layouts and templates that arrive from clients.
 *
 * - The root's template is the filesystem default. New subdirectories of the
 *   root do not copy it: they pick it up at run time.
 * - A template on any other directory is copied into each new subdirectory.
 * - A field a template leaves unset comes from the root's template, then the
 *   filesystem default.
 * - Pool "ignore" means no pool and no inheritance of one; "inherit" (old
 *   spelling "none") means take it from above, i.e. unset.
 */
import { err } from '../common/errno.js';
import { isValidFid } from '../common/fid.js';
import {
  validatePoolName,
  validateStripeCount,
  validateStripeSize,
  type LayoutTemplate,
  type OstObject,
  type Raid0Layout,
} from '../common/layout.js';

/** A template with every field decided: what a new file in a directory gets. */
export interface EffectiveTemplate {
  stripeSize: number;
  stripeCount: number;
  /** -1: the allocator chooses */
  stripeOffset: number;
  pool?: string;
}

export interface FsDefault {
  stripeSize: number;
  stripeCount: number;
}

export const POOL_IGNORE = 'ignore';
const POOL_INHERIT = new Set(['inherit', 'none']);
/** lmm_stripe_offset is a u16 and 0xffff means "any" */
export const MAX_STRIPE_OFFSET = 0xfffe;
export const MAX_OST_INDEX = 0xffff;

/**
 * Validates an untrusted template and returns its canonical form: "use the
 * default" values (size 0, count 0, offset -1, pool inherit/none) are dropped
 * so that absent always means inherited.
 */
export function normalizeTemplate(input: unknown): LayoutTemplate {
  if (!input || typeof input !== 'object' || Array.isArray(input)) throw err('EINVAL', 'layout template must be an object', 'BAD_TEMPLATE');
  const t = input as Record<string, unknown>;
  const out: LayoutTemplate = {};
  if (t.stripeSize !== undefined && t.stripeSize !== 0) {
    validateStripeSize(t.stripeSize as number);
    out.stripeSize = t.stripeSize as number;
  }
  if (t.stripeCount !== undefined && t.stripeCount !== 0) {
    validateStripeCount(t.stripeCount as number);
    out.stripeCount = t.stripeCount as number;
  }
  if (t.stripeOffset !== undefined && t.stripeOffset !== -1) {
    const off = t.stripeOffset;
    if (!Number.isInteger(off) || (off as number) < 0 || (off as number) > MAX_STRIPE_OFFSET) {
      throw err('EINVAL', `stripe offset ${String(off)} must be -1 or an OST index 0..${MAX_STRIPE_OFFSET}`, 'BAD_STRIPE_OFFSET');
    }
    out.stripeOffset = off as number;
  }
  if (t.pool !== undefined) {
    if (typeof t.pool !== 'string') throw err('EINVAL', 'pool name must be a string', 'BAD_POOL_NAME');
    if (!POOL_INHERIT.has(t.pool)) {
      validatePoolName(t.pool);
      out.pool = t.pool;
    }
  }
  return out;
}

export function isEmptyTemplate(t: LayoutTemplate): boolean {
  return t.stripeSize === undefined && t.stripeCount === undefined && t.stripeOffset === undefined && t.pool === undefined;
}

/**
 * The template a new directory starts with: the one given at creation, else a
 * copy of its parent's, except that the root's is never copied.
 */
export function templateForNewDir(
  parentIsRoot: boolean,
  parentTemplate: LayoutTemplate | undefined,
  explicit: LayoutTemplate | undefined,
): LayoutTemplate | undefined {
  if (explicit) return { ...explicit };
  if (parentIsRoot || !parentTemplate) return undefined;
  return { ...parentTemplate };
}

/** Fills the directory's template from the root's, then the filesystem default. */
export function resolveTemplate(
  dirTemplate: LayoutTemplate | undefined,
  rootTemplate: LayoutTemplate | undefined,
  fsDefault: FsDefault,
): EffectiveTemplate {
  const d = dirTemplate ?? {};
  const r = rootTemplate ?? {};
  const out: EffectiveTemplate = {
    stripeSize: d.stripeSize || r.stripeSize || fsDefault.stripeSize,
    stripeCount: d.stripeCount || r.stripeCount || fsDefault.stripeCount,
    stripeOffset: pickOffset(d.stripeOffset) ?? pickOffset(r.stripeOffset) ?? -1,
  };
  const pool = d.pool !== undefined ? d.pool : r.pool;
  if (pool !== undefined && pool !== POOL_IGNORE) out.pool = pool;
  return out;
}

function pickOffset(off: number | undefined): number | undefined {
  return off === undefined || off < 0 ? undefined : off;
}

export function validateFsDefault(d: unknown): FsDefault {
  if (!d || typeof d !== 'object') throw err('EINVAL', 'filesystem default layout missing', 'BAD_FS_DEFAULT');
  const x = d as Record<string, unknown>;
  validateStripeSize(x.stripeSize as number);
  validateStripeCount(x.stripeCount as number);
  if (x.stripeCount === 0) throw err('EINVAL', 'filesystem default stripe count must be -1 or 1..2000', 'BAD_FS_DEFAULT');
  return { stripeSize: x.stripeSize as number, stripeCount: x.stripeCount as number };
}

/** Validates an untrusted layout with its objects and returns a clean copy. */
export function validateLayout(input: unknown): Raid0Layout {
  if (!input || typeof input !== 'object' || Array.isArray(input)) throw err('EINVAL', 'layout must be an object', 'BAD_LAYOUT');
  const l = input as Record<string, unknown>;
  if (l.pattern !== 'raid0' && l.pattern !== 'released') throw err('EINVAL', `unknown layout pattern ${String(l.pattern)}`, 'BAD_LAYOUT');
  validateStripeSize(l.stripeSize as number);
  const count = l.stripeCount as number;
  if (!Number.isInteger(count) || count < 0 || count > 2000) throw err('EINVAL', `layout stripe count ${String(count)} must be 0..2000`, 'BAD_LAYOUT');
  const off = l.stripeOffset;
  if (!Number.isInteger(off) || (off as number) < -1 || (off as number) > MAX_STRIPE_OFFSET) {
    throw err('EINVAL', `layout stripe offset ${String(off)} out of range`, 'BAD_LAYOUT');
  }
  const gen = l.layoutGen;
  if (!Number.isInteger(gen) || (gen as number) < 0 || (gen as number) > 0xffffffff) throw err('EINVAL', 'layout generation must be a u32', 'BAD_LAYOUT');
  if (!Array.isArray(l.objects)) throw err('EINVAL', 'layout objects must be an array', 'BAD_LAYOUT');
  const objects = l.objects.map(validateObject);
  if (l.pattern === 'raid0' && (count < 1 || objects.length !== count)) {
    throw err('EINVAL', `a raid0 layout needs one object per stripe (count ${count}, ${objects.length} objects)`, 'BAD_LAYOUT');
  }
  if (l.pattern === 'released' && objects.length !== 0) throw err('EINVAL', 'a released layout has no objects', 'BAD_LAYOUT');
  const seen = new Set<string>();
  for (const o of objects) {
    const k = `${o.ostIdx}/${o.seq}/${o.oid}`;
    if (seen.has(k)) throw err('EINVAL', `object ${k} appears twice in one layout`, 'BAD_LAYOUT');
    seen.add(k);
  }
  const out: Raid0Layout = {
    pattern: l.pattern,
    stripeSize: l.stripeSize as number,
    stripeCount: count,
    stripeOffset: off as number,
    layoutGen: gen as number,
    objects,
  };
  if (l.pool !== undefined) {
    if (typeof l.pool !== 'string') throw err('EINVAL', 'pool name must be a string', 'BAD_POOL_NAME');
    validatePoolName(l.pool);
    if (l.pool === POOL_IGNORE || POOL_INHERIT.has(l.pool)) throw err('EINVAL', `'${l.pool}' is not a pool a file can live in`, 'BAD_POOL_NAME');
    out.pool = l.pool;
  }
  return out;
}

function validateObject(input: unknown): OstObject {
  if (!input || typeof input !== 'object') throw err('EINVAL', 'layout object must be an object', 'BAD_LAYOUT');
  const o = input as Record<string, unknown>;
  if (!Number.isInteger(o.ostIdx) || (o.ostIdx as number) < 0 || (o.ostIdx as number) > MAX_OST_INDEX) {
    throw err('EINVAL', `object OST index ${String(o.ostIdx)} out of range`, 'BAD_LAYOUT');
  }
  // objects are named by FID form on the wire (f_seq u64, f_oid u32)
  if (!isValidFid({ seq: o.seq, oid: o.oid, ver: 0 })) throw err('EINVAL', `object id ${String(o.seq)}:${String(o.oid)} out of range`, 'BAD_LAYOUT');
  return { ostIdx: o.ostIdx as number, seq: o.seq as number, oid: o.oid as number };
}

/** Highest object id per OST among `objects` (for the per-OST last-used record). */
export function highestObjects(objects: OstObject[]): Map<number, { seq: number; oid: number }> {
  const m = new Map<number, { seq: number; oid: number }>();
  for (const o of objects) {
    const cur = m.get(o.ostIdx);
    if (!cur || compareObjectIds(o, cur) > 0) m.set(o.ostIdx, { seq: o.seq, oid: o.oid });
  }
  return m;
}

/** Object ids order by sequence, then oid (sequences only grow on rollover). */
export function compareObjectIds(a: { seq: number; oid: number }, b: { seq: number; oid: number }): number {
  return a.seq !== b.seq ? a.seq - b.seq : a.oid - b.oid;
}
