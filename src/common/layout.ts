/**
 * File layouts (LOV): RAID-0 striping over OST objects, and the mapping between
 * absolute file offsets and object offsets exactly as Lustre's lov_offset.c
 * (reference §2.1).
 */
import { err } from './errno.js';

export const LOV_MIN_STRIPE_SIZE = 64 * 1024;
export const LOV_MAX_STRIPE_COUNT = 2000;
export const DEFAULT_STRIPE_SIZE = 4 * 1024 * 1024;
export const DEFAULT_STRIPE_COUNT = 1;
export const MAX_STRIPE_SIZE = 4 * 1024 * 1024 * 1024 - LOV_MIN_STRIPE_SIZE;

export const LOV_USER_MAGIC_V1 = 0x0bd10bd0;
export const LOV_USER_MAGIC_V3 = 0x0bd30bd0;
export const LOV_PATTERN_RAID0 = 0x1;
export const LOV_PATTERN_F_RELEASED = 0x80000000;

/** One object of a striped file: object `oid` in sequence `seq` on OST `ostIdx`. */
export interface OstObject {
  ostIdx: number;
  seq: number;
  oid: number;
}

export interface Raid0Layout {
  /** 'released' once HSM has freed the objects (no objects then) */
  pattern: 'raid0' | 'released';
  stripeSize: number;
  stripeCount: number;
  /** OST index of stripe 0 as requested (-1: chosen by the MDS) */
  stripeOffset: number;
  pool?: string;
  layoutGen: number;
  objects: OstObject[];
}

/**
 * A directory's default layout ("template"). A field left undefined (or 0 for
 * count/size, -1 for offset) is taken from the parent's template, then the
 * filesystem default.
 */
export interface LayoutTemplate {
  stripeSize?: number;
  stripeCount?: number;
  stripeOffset?: number;
  pool?: string;
}

export function validateStripeSize(size: number): void {
  if (!Number.isSafeInteger(size) || size <= 0 || size % LOV_MIN_STRIPE_SIZE !== 0 || size > MAX_STRIPE_SIZE) {
    throw err('EINVAL', `stripe size ${size} must be a positive multiple of 64 KiB below 4 GiB`, 'BAD_STRIPE_SIZE');
  }
}

export function validateStripeCount(count: number): void {
  if (!Number.isInteger(count) || count < -1 || count > LOV_MAX_STRIPE_COUNT) {
    throw err('EINVAL', `stripe count ${count} must be -1 (all OSTs), 0 (default) or 1..${LOV_MAX_STRIPE_COUNT}`, 'BAD_STRIPE_COUNT');
  }
}

export function validatePoolName(pool: string): void {
  if (pool.length === 0 || pool.length > 15 || !/^[A-Za-z0-9_.-]+$/.test(pool)) {
    throw err('EINVAL', `pool name '${pool}' must be 1-15 characters of [A-Za-z0-9_.-]`, 'BAD_POOL_NAME');
  }
}

/** i = floor((x mod W)/S) */
export function stripeIndex(x: number, stripeSize: number, stripeCount: number): number {
  return Math.floor((x % (stripeSize * stripeCount)) / stripeSize);
}

/** o = floor(x/W)*S + (x mod S) */
export function objectOffset(x: number, stripeSize: number, stripeCount: number): number {
  return Math.floor(x / (stripeSize * stripeCount)) * stripeSize + (x % stripeSize);
}

/** x = floor(o/S)*W + i*S + (o mod S) */
export function fileOffset(o: number, stripe: number, stripeSize: number, stripeCount: number): number {
  return Math.floor(o / stripeSize) * stripeSize * stripeCount + stripe * stripeSize + (o % stripeSize);
}

/** File size implied by object `stripe` having size `z` (lov_stripe_size). */
export function fileSizeFromObject(z: number, stripe: number, stripeSize: number, stripeCount: number): number {
  if (z === 0) return 0;
  const w = stripeSize * stripeCount;
  const q = Math.floor(z / stripeSize);
  const r = z % stripeSize;
  return r !== 0 ? q * w + stripe * stripeSize + r : (q - 1) * w + (stripe + 1) * stripeSize;
}

/** Object size object `stripe` must have for the file to be exactly `size` bytes (used by truncate). */
export function objectSizeForFileSize(size: number, stripe: number, stripeSize: number, stripeCount: number): number {
  if (size === 0) return 0;
  const w = stripeSize * stripeCount;
  const fullRounds = Math.floor(size / w);
  const rest = size % w;
  const inLast = Math.min(Math.max(rest - stripe * stripeSize, 0), stripeSize);
  return fullRounds * stripeSize + inLast;
}

/** A contiguous piece of a file range that lives in one object. */
export interface StripePiece {
  fileOffset: number;
  objectOffset: number;
  length: number;
}

/** All the pieces of one object touched by a file range; contiguous in object space. */
export interface ObjectExtent {
  stripe: number;
  objStart: number;
  objEnd: number;
  pieces: StripePiece[];
}

/**
 * Splits the file range [offset, offset+length) by stripe. For a contiguous
 * file range, each object's share is one contiguous object range, so one
 * object extent can travel in one (or a few RPC-sized) bulk transfers.
 */
export function mapExtent(offset: number, length: number, stripeSize: number, stripeCount: number): ObjectExtent[] {
  const byStripe = new Map<number, ObjectExtent>();
  let x = offset;
  const end = offset + length;
  while (x < end) {
    const within = x % stripeSize;
    const len = Math.min(stripeSize - within, end - x);
    const stripe = stripeIndex(x, stripeSize, stripeCount);
    const o = objectOffset(x, stripeSize, stripeCount);
    let ext = byStripe.get(stripe);
    if (!ext) {
      ext = { stripe, objStart: o, objEnd: o, pieces: [] };
      byStripe.set(stripe, ext);
    }
    ext.pieces.push({ fileOffset: x, objectOffset: o, length: len });
    ext.objEnd = o + len;
    x += len;
  }
  return [...byStripe.values()].sort((a, b) => a.stripe - b.stripe);
}

export function patternBits(layout: Raid0Layout): number {
  return layout.pattern === 'released' ? LOV_PATTERN_RAID0 | LOV_PATTERN_F_RELEASED : LOV_PATTERN_RAID0;
}
