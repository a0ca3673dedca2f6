/**
 * The MDT key schema: every record the namespace keeps in a MetadataStore.
 * Every backend stores exactly these keys and values (values MessagePack via
 * store/codec.ts), so a dump of one can be loaded into another.
 *
 * <fid> is fidKey(): "seq:oid:ver" in lowercase hex without 0x or padding;
 * its three fields never contain ':' so "<fid>:" is an unambiguous prefix.
 * Fixed-width hex numbers sort numerically as strings.
 *
 *   schema                     { version }                 key schema version (SCHEMA_VERSION)
 *   fs                         { name, uuid, created }     the filesystem record
 *   c:seq                      number                      last client FID sequence granted
 *   c:transno                  number                      last transno (for the RPC layer)
 *   c:inodes                   number                      inodes in existence (statfs)
 *   c:ost:<idx 4 hex>          { seq, oid }                highest object id used/reserved on OST idx
 *   i:<fid>                    Inode                       one per inode, orphans included
 *   d:<dir fid>:<pos 13 hex>   { name, fid, type }         a directory entry
 *   o:<fid>                    { fid, since }              open-unlinked inode (nlink 0, kept while open)
 *   xl:<fid>                   { names: string[], bytes }  the inode's xattr names and total value bytes
 *   x:<fid>:<name>             Buffer                      one xattr value
 *   l:<fid>                    LinkRecord                  the inode's names as (parent FID, name),
 *                                                          Lustre's linkEA: at most LINKEA_MAX_LINKS,
 *                                                          oldest dropped first and `overflow` set
 *
 * Schema versions: 1 had no l: records; 2 adds them (init rebuilds them
 * from the directory entries of a version 1 store).
 *
 * Directory entries are ordered by position pos = hash48(name) * 16 + slot:
 * hash48 is the first 48 bits of SHA-256(name), slot (0..15) the lowest free
 * one among names with the same hash, chosen at insert and never changed. A
 * lookup scans the 16 possible slots under "d:<dir>:<hash 12 hex>"; readdir
 * walks the "d:<dir>:" range and its cookie is pos + 1 (0 = start, always
 * < 2^53), so an entry keeps its cookie for as long as it exists and paging
 * survives inserts and removals elsewhere in the directory.
 */
import { createHash } from 'node:crypto';
import { fidKey, type Fid } from '../common/fid.js';

export const SCHEMA_VERSION = 2;

export const DENTRY_SLOTS = 16;
const HASH_BITS = 48;
const HASH_HEX = HASH_BITS / 4;
const POS_HEX = HASH_HEX + 1;

export const K = {
  schema: 'schema',
  fs: 'fs',
  lastSeq: 'c:seq',
  lastTransno: 'c:transno',
  inodeCount: 'c:inodes',
  ostLastUsedPrefix: 'c:ost:',
  ostLastUsed: (ostIdx: number): string => `c:ost:${ostIdx.toString(16).padStart(4, '0')}`,
  inode: (fid: Fid): string => `i:${fidKey(fid)}`,
  dirPrefix: (dir: Fid): string => `d:${fidKey(dir)}:`,
  dentryHashPrefix: (dir: Fid, hash: number): string => `d:${fidKey(dir)}:${hash.toString(16).padStart(HASH_HEX, '0')}`,
  dentry: (dir: Fid, pos: number): string => `d:${fidKey(dir)}:${pos.toString(16).padStart(POS_HEX, '0')}`,
  orphanPrefix: 'o:',
  orphan: (fid: Fid): string => `o:${fidKey(fid)}`,
  xattrList: (fid: Fid): string => `xl:${fidKey(fid)}`,
  xattr: (fid: Fid, name: string): string => `x:${fidKey(fid)}:${name}`,
  linksPrefix: 'l:',
  links: (fid: Fid): string => `l:${fidKey(fid)}`,
} as const;

/** Names kept per inode; Lustre's linkEA holds a few KiB of them. */
export const LINKEA_MAX_LINKS = 64;

export interface LinkEntry {
  parent: Fid;
  name: string;
}

export interface LinkRecord {
  links: LinkEntry[];
  /** names were dropped to stay within LINKEA_MAX_LINKS: the list may be incomplete */
  overflow?: boolean;
}

/** First 48 bits of SHA-256 of the name's UTF-8 bytes. */
export function nameHash(name: string): number {
  return createHash('sha256').update(name, 'utf8').digest().readUIntBE(0, 6);
}

export function dentryPos(hash: number, slot: number): number {
  return hash * DENTRY_SLOTS + slot;
}

export function slotOfPos(pos: number): number {
  return pos % DENTRY_SLOTS;
}

/** The position encoded at the end of a dentry key. */
export function posFromDentryKey(key: string): number {
  return parseInt(key.slice(key.length - POS_HEX), 16);
}

export function cookieOfPos(pos: number): number {
  return pos + 1;
}

/** Largest valid readdir cookie (the last slot of the largest hash, plus one). */
export const MAX_COOKIE = cookieOfPos(dentryPos(2 ** HASH_BITS - 1, DENTRY_SLOTS - 1));

