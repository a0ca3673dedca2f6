/**
 * What the client's cache levels (memory pages, the local SSD block cache, write-back)
 * show to the tools outside the client core: lctl parameters, `stria stats`, `stria warmup`.
 */
import type { Fid } from '../../common/fid.js';

export interface LevelCounters {
  /** bytes and read requests served by this level */
  hitBytes: number;
  hitRequests: number;
  /** bytes and read requests this level did not have (they went one level down) */
  missBytes: number;
  missRequests: number;
}

export interface CacheStatsSnapshot {
  memory: LevelCounters & { cachedBytes: number; maxBytes: number; pageSize: number };
  ssd: LevelCounters & { enabled: boolean; cachedBytes: number; maxBytes: number; errors: number; dirs: string[] };
  /** what reached the OSTs */
  oss: { readBytes: number; readRequests: number; writeBytes: number; writeRequests: number };
  dirtyBytes: number;
  maxDirtyBytes: number;
  /** space the OSTs reserved for this client's cached writes, summed over OSTs */
  grantBytes: number;
  readahead: { hits: number; misses: number; readaheadBytes: number; wholeFileReads: number; stridedWindows: number };
}

/** The cache operations `stria warmup` asks a mounted client for, by file. */
export interface CacheControl {
  /** reads the whole file into the SSD cache (and memory); resolves with the bytes loaded from the OSTs */
  warmup(fid: Fid): Promise<{ size: number; loadedBytes: number }>;
  /** how much of the file the SSD cache holds now */
  check(fid: Fid): Promise<{ size: number; cachedBytes: number }>;
  /** drops the file from the SSD and memory caches; resolves with the bytes dropped */
  evict(fid: Fid): Promise<number>;
  stats(): CacheStatsSnapshot;
}

/** The tunables behind llite.*.max_cached_mb, max_read_ahead_*_mb and osc.*.max_dirty_mb (bytes). */
export interface CacheTunables {
  maxCachedBytes: number;
  maxReadAheadBytes: number;
  maxReadAheadPerFileBytes: number;
  /** files up to this size are read whole on their second access (max_read_ahead_whole_mb) */
  maxReadAheadWholeBytes: number;
  /** dirty data allowed per OST (osc.*.max_dirty_mb) */
  maxDirtyBytesPerOst: number;
}
