/**
 * The Redis metadata store: the MDT's records in a Redis (or Valkey) database
 * the user already runs, possibly replicated under Sentinel.
 *
 * Key schema (P = key prefix, default "stria:"; docs/redis-store.md):
 *
 *   P marker   string  MessagePack { format, version, created }: whose keys these are
 *   P idx      zset    every store key, score 0, so ZRANGEBYLEX lists them in byte order
 *   P v:<key>  string  the value of <key>, MessagePack exactly as codec.ts encodes it
 *
 * Transactions are optimistic (WATCH/MULTI/EXEC): the function runs against
 * a view whose reads WATCH what they read (a scan WATCHes the index too, so
 * an insert into the scanned range is a conflict), its writes are buffered,
 * and MULTI/EXEC applies them; when another client changed something the
 * transaction read, EXEC does nothing and the function runs again. EXEC is
 * the serialisation point, also for read-only transactions (an empty
 * MULTI/EXEC validates their WATCHes).
 *
 * WATCH belongs to a connection, so each running transaction holds one of a
 * small pool of connections. Local transactions that keep conflicting are
 * escalated: after a few optimistic attempts a transaction runs alone among
 * this store's transactions, so under local contention every transaction
 * finishes; only other Redis clients writing the same keys can still make it
 * retry, and after maxAttempts it fails with EAGAIN. A transaction function
 * must not call transact() itself: it would wait for the pool it holds.
 *
 * A lost connection never lets a transaction commit on WATCHes the server
 * forgot: the offline queue and command resending are off, and EXEC is sent
 * only on the connection (and connection epoch) the WATCHes went to. A
 * connection lost after EXEC was sent leaves the outcome unknown: that
 * transaction fails with STORE_COMMIT_UNKNOWN (it is not retried, since it
 * may have been applied).
 *
 * Durability is the server's: transact() resolves when EXEC has answered,
 * which with `appendonly yes` and `appendfsync always` is after the AOF was
 * fsynced. open() warns when the server's settings give less.
 */
import { Redis, ReplyError, type RedisOptions } from 'ioredis';
import { err, StriaError } from '../../common/errno.js';
import type { Logger } from '../../common/log.js';
import { decodeValue, encodeValue } from './codec.js';
import { isWellFormedKey } from './key-order.js';
import { inScanRange, mergeScan, upperLayers, type WriteSet } from './overlay.js';
import type { MetadataStore, StoreTxn } from './types.js';

export const REDIS_STORE_FORMAT = 'stria-mdt-redis';
export const REDIS_STORE_VERSION = 1;
export const REDIS_DEFAULT_PREFIX = 'stria:';
/** the same limit as the LMDB store, so a dump of either loads into the other */
export const REDIS_MAX_KEY_BYTES = 1024;
/** most entries one scan() may return (callers page) */
export const REDIS_MAX_SCAN_LIMIT = 100_000;
const MAX_PREFIX_BYTES = 256;

export interface RedisStoreOptions {
  log?: Logger;
  /** namespace of this store's Redis keys (default "stria:"); also `?prefix=` in the URL */
  keyPrefix?: string;
  /** connections for concurrently running transactions (default 8) */
  poolSize?: number;
  /** how long open() tries to reach the server (ms, default 10000) */
  connectTimeoutMs?: number;
  /** how long an operation waits for a lost server to come back before failing (ms, default 30000) */
  reconnectWaitMs?: number;
  /** a command unanswered this long fails (ms, default 30000) */
  commandTimeoutMs?: number;
  /** attempts before a transaction that keeps conflicting fails with EAGAIN (default 50) */
  maxAttempts?: number;
}

/** What a store URL names. */
export interface RedisTarget {
  mode: 'standalone' | 'sentinel';
  tls: boolean;
  /** the server (standalone) or the sentinels */
  hosts: Array<{ host: string; port: number }>;
  /** Sentinel's name for the master */
  masterName?: string;
  db: number;
  username?: string;
  password?: string;
  /** from `?prefix=` */
  prefix?: string;
  /** the URL without its password, for logs and errors */
  display: string;
}

/** The Redis keys of the store under `prefix`. */
export function redisStoreKeys(prefix: string): { marker: string; index: string; value: (key: string) => string } {
  return { marker: `${prefix}marker`, index: `${prefix}idx`, value: (key) => `${prefix}v:${key}` };
}

const SCHEMES: Record<string, { mode: RedisTarget['mode']; tls: boolean; port: number }> = {
  redis: { mode: 'standalone', tls: false, port: 6379 },
  rediss: { mode: 'standalone', tls: true, port: 6379 },
  'redis+sentinel': { mode: 'sentinel', tls: false, port: 26379 },
  'rediss+sentinel': { mode: 'sentinel', tls: true, port: 26379 },
};
const URL_FORMS =
  'redis://[user:password@]host[:port][/db], rediss://... (TLS) or redis+sentinel://[user:password@]host[:port][,host[:port]...]/master[/db]';

/**
 * Parses a store URL. (WHATWG URL cannot: a Sentinel URL lists several
 * host:port pairs.) Credentials are the data nodes'; sentinels are asked
 * without credentials.
 */
export function parseRedisUrl(url: string): RedisTarget {
  const bad = (why: string): StriaError => err('EINVAL', `bad Redis store URL "${redact(url)}": ${why} (forms: ${URL_FORMS})`, 'BAD_STORE_URL');
  if (typeof url !== 'string') throw bad('not a string');
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/(?:([^@/?#]*)@)?([^/?#]*)([^?#]*)(?:\?([^#]*))?$/.exec(url);
  if (!m) throw bad('not of the form scheme://host/...');
  const scheme = SCHEMES[m[1]!.toLowerCase()];
  if (!scheme) throw bad(`unsupported scheme "${m[1]}"`);
  const target: RedisTarget = { mode: scheme.mode, tls: scheme.tls, hosts: [], db: 0, display: '' };

  if (m[2] !== undefined) {
    const colon = m[2].indexOf(':');
    const user = decode(colon < 0 ? m[2] : m[2].slice(0, colon), bad);
    const pass = colon < 0 ? undefined : decode(m[2].slice(colon + 1), bad);
    if (pass === undefined || pass === '') {
      if (user !== '') throw bad('a username needs a password (user:password@)');
    } else {
      target.password = pass;
      if (user !== '') target.username = user;
    }
  }

  const hostList = m[3]!;
  if (hostList === '') throw bad('no host');
  for (const part of hostList.split(',')) target.hosts.push(parseHostPort(part, scheme.port, bad));
  if (scheme.mode === 'standalone' && target.hosts.length > 1) throw bad('several hosts are only for Sentinel (redis+sentinel://)');

  const segments = m[4]!.split('/').slice(1);
  if (segments.length > 0 && segments[segments.length - 1] === '') segments.pop();
  if (scheme.mode === 'sentinel') {
    const master = segments.shift();
    if (!master) throw bad('a Sentinel URL names the master: redis+sentinel://host:port/mastername');
    target.masterName = decode(master, bad);
  }
  if (segments.length > 1) throw bad('the path is /db (a database number) only');
  if (segments.length === 1) {
    if (!/^\d{1,5}$/.test(segments[0]!)) throw bad(`database "${segments[0]}" is not a number`);
    target.db = Number(segments[0]);
  }

  if (m[5] !== undefined && m[5] !== '') {
    for (const pair of m[5].split('&')) {
      const eq = pair.indexOf('=');
      const name = decode(eq < 0 ? pair : pair.slice(0, eq), bad);
      const value = eq < 0 ? '' : decode(pair.slice(eq + 1).replace(/\+/g, ' '), bad);
      if (name !== 'prefix') throw bad(`unknown parameter "${name}" (supported: prefix)`);
      target.prefix = value;
    }
  }

  const hosts = target.hosts.map((h) => `${h.host.includes(':') ? `[${h.host}]` : h.host}:${h.port}`).join(',');
  const auth = target.password === undefined ? '' : `${target.username ?? ''}:***@`;
  const path = target.mode === 'sentinel' ? `/${target.masterName}/${target.db}` : `/${target.db}`;
  target.display = `${m[1]!.toLowerCase()}://${auth}${hosts}${path}`;
  return target;
}

function parseHostPort(s: string, defaultPort: number, bad: (why: string) => StriaError): { host: string; port: number } {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]+))(?::(\d*))?$/.exec(s);
  if (!m) throw bad(`"${s}" is not host[:port]`);
  const host = m[1] ?? m[2]!;
  if (m[3] === undefined || m[3] === '') return { host, port: defaultPort };
  const port = Number(m[3]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw bad(`port "${m[3]}" is not 1..65535`);
  return { host, port };
}

function decode(s: string, bad: (why: string) => StriaError): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw bad(`"${s}" is not valid percent-encoding`);
  }
}

/** The URL with any password replaced, for messages. */
function redact(url: string): string {
  return String(url).replace(/^([^:/?#]+:\/\/[^:@/?#]*:)[^@/?#]*@/, '$1***@');
}

function where(target: RedisTarget): string {
  const hosts = target.hosts.map((h) => `${h.host.includes(':') ? `[${h.host}]` : h.host}:${h.port}`).join(',');
  return target.mode === 'sentinel' ? `Sentinel ${hosts} (master "${target.masterName}")` : hosts;
}

// --- connections ---

interface Settings {
  connectTimeoutMs: number;
  reconnectWaitMs: number;
  commandTimeoutMs: number;
}

/**
 * One Redis connection. `epoch` counts its (re)connections: WATCHes sent in
 * one epoch are gone in the next, so a transaction commits only in the epoch
 * it started in.
 */
class Link {
  readonly redis: Redis;
  epoch = 0;
  lastError: Error | undefined;
  private reconnect = false;
  private reconnected: Promise<void> | undefined;

  constructor(
    readonly target: RedisTarget,
    private readonly settings: Settings,
    name: string,
  ) {
    const backoff = (n: number): number | null => (this.reconnect ? Math.min(50 * n, 1000) : null);
    const options: RedisOptions = {
      db: target.db,
      username: target.username,
      password: target.password,
      // RESP2: what every Redis, Valkey and Kvrocks version speaks
      protocol: 2,
      lazyConnect: true,
      // a command for a connection that is down fails at once instead of
      // being sent later on a connection that never saw this transaction's WATCHes
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      maxRetriesPerRequest: 0,
      connectTimeout: settings.connectTimeoutMs,
      commandTimeout: settings.commandTimeoutMs,
      connectionName: `stria-mds-${name}`,
      retryStrategy: backoff,
    };
    if (target.mode === 'standalone') {
      options.host = target.hosts[0]!.host;
      options.port = target.hosts[0]!.port;
      if (target.tls) options.tls = {};
    } else {
      options.sentinels = target.hosts.map((h) => ({ host: h.host, port: h.port }));
      options.name = target.masterName;
      options.role = 'master';
      options.sentinelRetryStrategy = backoff;
      options.sentinelCommandTimeout = settings.commandTimeoutMs;
      if (target.tls) {
        options.tls = {};
        options.sentinelTLS = {};
        options.enableTLSForSentinelMode = true;
      }
    }
    this.redis = new Redis(options);
    this.redis.on('ready', () => this.epoch++);
    // without a listener ioredis prints every connection error to the console
    this.redis.on('error', (e: Error) => (this.lastError = e));
  }

  /**
   * Connects, retrying until the deadline; fails with a message naming the
   * server and the code STORE_UNREACHABLE (at open) or STORE_UNAVAILABLE.
   */
  async open(timeoutMs: number, code = 'STORE_UNREACHABLE'): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (let attempt = 0; attempt < 10_000; attempt++) {
      const left = deadline - Date.now();
      const timedOut = await withTimeout(this.redis.connect(), left).then(
        () => false,
        (e: unknown) => (e === TIMEOUT ? true : ((this.lastError ??= e as Error), false)),
      );
      if (this.redis.status === 'ready') {
        this.reconnect = true;
        return;
      }
      // (disconnect() on a connection that has ended would silence the next attempt's errors)
      if (this.redis.status !== 'end') this.redis.disconnect();
      // set by the 'error' event while connect() ran (or an earlier attempt)
      const cause = this.lastError as Error | undefined;
      if (cause instanceof ReplyError) throw refused(this.target, cause as Error);
      if (timedOut || Date.now() + 200 >= deadline) {
        const why = timedOut ? `no answer within ${timeoutMs} ms` : (cause?.message ?? 'connection closed');
        const errno = timedOut || (cause as NodeJS.ErrnoException | undefined)?.code === 'ETIMEDOUT' ? 'ETIMEDOUT' : 'ECONNREFUSED';
        throw err(errno, `cannot reach Redis at ${where(this.target)}: ${why}`, code);
      }
      await sleep(200);
    }
    throw err('ECONNREFUSED', `cannot reach Redis at ${where(this.target)}`, code);
  }

  /** Resolves once the connection is usable, waiting at most `ms` for a reconnection. */
  async ready(ms: number): Promise<void> {
    if (this.redis.status === 'ready') return;
    if (this.redis.status === 'end' || this.redis.status === 'wait') this.redis.connect().catch(() => undefined);
    // one listener however many operations wait
    this.reconnected ??= new Promise<void>((resolve) =>
      this.redis.once('ready', () => {
        this.reconnected = undefined;
        resolve();
      }),
    );
    await withTimeout(this.reconnected, ms).catch((e: unknown) => {
      if (e !== TIMEOUT) throw e;
      const cause = this.lastError ? `: ${this.lastError.message}` : '';
      throw err('EIO', `Redis at ${where(this.target)} has been unreachable for ${ms} ms${cause}`, 'STORE_UNAVAILABLE');
    });
  }

  async close(): Promise<void> {
    this.reconnect = false;
    if (this.redis.status === 'ready') await withTimeout(this.redis.quit(), 2000).catch(() => undefined);
    this.redis.disconnect();
  }
}

function refused(target: RedisTarget, cause: Error): StriaError {
  if (/^(WRONGPASS|NOAUTH|NOPERM)|AUTH/.test(cause.message)) {
    return err('EACCES', `Redis at ${where(target)} refused the credentials: ${cause.message}`, 'STORE_AUTH');
  }
  return err('EIO', `Redis at ${where(target)} refused the connection: ${cause.message}`, 'STORE_UNREACHABLE');
}

const TIMEOUT = Symbol('timeout');

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(TIMEOUT), Math.max(0, ms)))),
  ]).finally(() => clearTimeout(timer));
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A failure of the server or the connection, as the store reports it. */
function redisFailure(e: unknown, target: RedisTarget, doing: string): StriaError {
  if (e instanceof StriaError) return e;
  const message = e instanceof Error ? e.message : String(e);
  return err('EIO', `Redis at ${where(target)} failed ${doing}: ${message}`, e instanceof ReplyError ? 'STORE_FAILED' : 'STORE_UNAVAILABLE');
}

/** ioredis refuses a command on a connection it cannot write to (the offline queue being off) */
const NOT_SENT = /enableOfflineQueue options is false/;

/** The connection, not the server, failed: nothing was done and the command may be sent again. */
function isConnectionLoss(e: unknown): boolean {
  return !(e instanceof ReplyError) && !(e instanceof StriaError) && e instanceof Error;
}

// --- open ---

interface Marker {
  format: string;
  version: number;
  created: string;
}

export async function openRedisStore(url: string, opts: RedisStoreOptions = {}): Promise<MetadataStore> {
  const target = parseRedisUrl(url);
  const prefix = choosePrefix(target, opts.keyPrefix);
  const settings: Settings = {
    connectTimeoutMs: positive(opts.connectTimeoutMs, 10_000, 'connectTimeoutMs'),
    reconnectWaitMs: positive(opts.reconnectWaitMs, 30_000, 'reconnectWaitMs'),
    commandTimeoutMs: positive(opts.commandTimeoutMs, 30_000, 'commandTimeoutMs'),
  };
  const poolSize = positive(opts.poolSize, 8, 'poolSize');
  const maxAttempts = positive(opts.maxAttempts, 50, 'maxAttempts');
  const main = new Link(target, settings, 'main');
  try {
    await main.open(settings.connectTimeoutMs);
    // ioredis only reports a failed SELECT as an event and carries on in db 0
    if (target.db !== 0) {
      await main.redis.select(target.db).catch((e: Error) => {
        throw err('EINVAL', `Redis at ${where(target)} has no database ${target.db}: ${e.message}`, 'BAD_STORE_URL');
      });
    }
    await checkMarker(main, prefix);
    await checkPersistence(main, opts.log);
  } catch (e) {
    await main.close();
    throw e;
  }
  opts.log?.info({ store: target.display, prefix }, 'metadata store: Redis');
  return new RedisStore(main, prefix, settings, poolSize, maxAttempts, opts.log);
}

function positive(v: number | undefined, dflt: number, name: string): number {
  if (v === undefined) return dflt;
  if (!Number.isInteger(v) || v < 1) throw err('EINVAL', `Redis store option ${name} must be a positive integer`, 'BAD_OPTION');
  return v;
}

function choosePrefix(target: RedisTarget, fromOpts: string | undefined): string {
  if (fromOpts !== undefined && target.prefix !== undefined && fromOpts !== target.prefix) {
    throw err('EINVAL', `two key prefixes given: "${target.prefix}" in the URL and "${fromOpts}"`, 'BAD_STORE_URL');
  }
  const prefix = fromOpts ?? target.prefix ?? REDIS_DEFAULT_PREFIX;
  if (typeof prefix !== 'string' || prefix === '' || !isWellFormedKey(prefix) || Buffer.byteLength(prefix) > MAX_PREFIX_BYTES) {
    throw err('EINVAL', `the Redis key prefix must be a non-empty string of at most ${MAX_PREFIX_BYTES} bytes`, 'BAD_STORE_URL');
  }
  return prefix;
}

/**
 * The marker says whose keys live under the prefix. A prefix without one
 * must hold no keys at all: it becomes a new store. Checked and created under
 * WATCH, so two MDSs starting at once agree.
 */
async function checkMarker(link: Link, prefix: string): Promise<void> {
  const keys = redisStoreKeys(prefix);
  const r = link.redis;
  const at = `Redis at ${where(link.target)}, prefix "${prefix}"`;
  for (let attempt = 0; attempt < 20; attempt++) {
    await r.watch(keys.marker);
    let raw: Buffer | null;
    try {
      raw = await r.getBuffer(keys.marker);
    } catch (e) {
      await r.unwatch();
      if (e instanceof ReplyError) throw err('EINVAL', `${at}: ${keys.marker} is not a Stria store marker (${(e as Error).message})`, 'STORE_FOREIGN');
      throw e;
    }
    if (raw !== null) {
      await r.unwatch();
      checkMarkerValue(raw, at);
      return;
    }
    const foreign = await firstKeyUnder(r, prefix);
    if (foreign !== undefined) {
      await r.unwatch();
      throw err('EINVAL', `${at} holds keys (e.g. "${foreign}") but no Stria store marker; refusing to write there (choose another prefix or database)`, 'STORE_FOREIGN');
    }
    const marker: Marker = { format: REDIS_STORE_FORMAT, version: REDIS_STORE_VERSION, created: new Date().toISOString() };
    if ((await r.multi().set(keys.marker, encodeValue(marker)).exec()) !== null) return;
  }
  throw err('EAGAIN', `${at}: could not create the store marker (keys keep changing)`, 'STORE_CONFLICT');
}

function checkMarkerValue(raw: Buffer, at: string): void {
  let marker: Partial<Marker>;
  try {
    marker = decodeValue<Partial<Marker>>(raw);
  } catch {
    throw err('EINVAL', `${at}: unreadable store marker`, 'STORE_FOREIGN');
  }
  if (!marker || typeof marker !== 'object' || marker.format !== REDIS_STORE_FORMAT) {
    throw err('EINVAL', `${at} is not a Stria Redis metadata store (format ${String(marker?.format)})`, 'STORE_FOREIGN');
  }
  if (typeof marker.version !== 'number' || marker.version > REDIS_STORE_VERSION) {
    throw err('EPROTO', `${at} has store version ${String(marker.version)}, newer than this Stria supports (${REDIS_STORE_VERSION}); upgrade Stria`, 'STORE_TOO_NEW');
  }
}

/** Any key under the prefix: a full SCAN of the database, done once, when a store is created. */
async function firstKeyUnder(r: Redis, prefix: string): Promise<string | undefined> {
  const pattern = `${prefix.replace(/[\\*?[\]]/g, '\\$&')}*`;
  let cursor = '0';
  for (let round = 0; round < 10_000_000; round++) {
    const [next, found] = await r.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    if (found.length > 0) return found[0];
    cursor = next;
    if (cursor === '0') return undefined;
  }
  return undefined;
}

/** Warns when a committed transaction could be lost by a Redis crash. */
async function checkPersistence(link: Link, log: Logger | undefined): Promise<void> {
  const setting = async (name: string): Promise<string | undefined> => {
    try {
      const pair = (await link.redis.config('GET', name)) as unknown as string[];
      return pair[1];
    } catch {
      return undefined;
    }
  };
  const appendonly = await setting('appendonly');
  const appendfsync = await setting('appendfsync');
  const evict = await setting('maxmemory-policy');
  const server = where(link.target);
  if (appendonly === undefined) {
    log?.warn({ server }, 'cannot read the Redis persistence settings (CONFIG GET refused): make sure the server runs with appendonly yes, appendfsync always');
  } else if (appendonly !== 'yes') {
    log?.warn({ server, appendonly }, 'Redis runs without an append-only file: a Redis crash loses the metadata changes since its last RDB snapshot; run it with appendonly yes, appendfsync always');
  } else if (appendfsync !== 'always') {
    const loss = appendfsync === 'everysec' ? 'about the last second' : 'the last ~30 s the OS has not written';
    log?.warn({ server, appendfsync }, `Redis syncs its append-only file with appendfsync ${appendfsync}: a server crash or power loss can lose ${loss} of acknowledged metadata changes; run it with appendfsync always`);
  }
  if (evict !== undefined && evict.startsWith('allkeys-')) {
    log?.warn({ server, maxmemoryPolicy: evict }, 'Redis may evict any key when full (maxmemory-policy): it could drop metadata; use noeviction');
  }
}

// --- scans ---

const FF = Buffer.from([0xff]);

/**
 * ZRANGEBYLEX bounds for keys with `prefix` strictly after `after`. Keys are
 * UTF-8 and never contain the byte 0xff, so prefix + 0xff ends the range.
 */
function lexRange(prefix: string, after: string | undefined): [Buffer | string, Buffer | string] {
  const p = Buffer.from(prefix, 'utf8');
  let min: Buffer | string = prefix === '' ? '-' : Buffer.concat([Buffer.from('['), p]);
  const max: Buffer | string = prefix === '' ? '+' : Buffer.concat([Buffer.from('('), p, FF]);
  if (after !== undefined) {
    const a = Buffer.from(after, 'utf8');
    if (Buffer.compare(a, p) >= 0) min = Buffer.concat([Buffer.from('('), a]);
  }
  return [min, max];
}

function checkKey(key: string): void {
  if (typeof key !== 'string' || key.length === 0) throw err('EINVAL', 'store keys are non-empty strings', 'BAD_KEY');
  if (!isWellFormedKey(key)) throw err('EINVAL', 'store key is not valid Unicode (unpaired surrogate)', 'BAD_KEY');
  const n = Buffer.byteLength(key, 'utf8');
  if (n > REDIS_MAX_KEY_BYTES) throw err('EINVAL', `store key of ${n} bytes exceeds ${REDIS_MAX_KEY_BYTES}`, 'BAD_KEY');
}

function checkScanArgs(prefix: string, after: string | undefined, limit: number): void {
  if (typeof prefix !== 'string' || !isWellFormedKey(prefix)) throw err('EINVAL', 'scan prefix must be a well-formed string', 'BAD_KEY');
  if (after !== undefined && (typeof after !== 'string' || !isWellFormedKey(after))) {
    throw err('EINVAL', 'scan position must be a well-formed string', 'BAD_KEY');
  }
  if (!Number.isInteger(limit) || limit < 0 || limit > REDIS_MAX_SCAN_LIMIT) {
    throw err('EINVAL', `scan limit must be an integer 0..${REDIS_MAX_SCAN_LIMIT}`, 'BAD_LIMIT');
  }
}

function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** keys per command when a transaction writes, watches or reads many */
const BATCH = 1000;

// --- transactions ---

/**
 * Admits up to `slots` transactions at once (one connection each), or one
 * alone, first come first served: a transaction that conflicted too often
 * waits for the others to finish and then runs without local competition.
 */
class Gate {
  private shared = 0;
  private exclusive = false;
  private readonly waiting: Array<{ alone: boolean; admit: () => void }> = [];

  constructor(private readonly slots: number) {}

  enter(alone: boolean): Promise<void> {
    if (this.waiting.length === 0 && this.fits(alone)) {
      this.take(alone);
      return Promise.resolve();
    }
    return new Promise((admit) => this.waiting.push({ alone, admit }));
  }

  leave(alone: boolean): void {
    if (alone) this.exclusive = false;
    else this.shared--;
    while (this.waiting.length > 0 && this.fits(this.waiting[0]!.alone)) {
      const next = this.waiting.shift()!;
      this.take(next.alone);
      next.admit();
    }
  }

  private fits(alone: boolean): boolean {
    return !this.exclusive && (alone ? this.shared === 0 : this.shared < this.slots);
  }

  private take(alone: boolean): void {
    if (alone) this.exclusive = true;
    else this.shared++;
  }
}

/** Optimistic attempts before a transaction runs alone among this store's transactions. */
const SHARED_ATTEMPTS = 2;

type Attempt<T> = { committed: true; value: T } | { committed: false; why: string };

class RedisStore implements MetadataStore {
  readonly kind = 'redis';
  readonly keys: ReturnType<typeof redisStoreKeys>;
  private readonly gate: Gate;
  private readonly idle: Link[] = [];
  private readonly links: Link[] = [];
  private readonly running = new Set<Promise<unknown>>();
  private closing: Promise<void> | undefined;
  private lostLogged = false;

  constructor(
    private readonly main: Link,
    readonly prefix: string,
    private readonly settings: Settings,
    poolSize: number,
    private readonly maxAttempts: number,
    private readonly log: Logger | undefined,
  ) {
    this.keys = redisStoreKeys(prefix);
    this.gate = new Gate(poolSize);
    main.redis.on('close', () => {
      if (this.closing || this.lostLogged) return;
      this.lostLogged = true;
      log?.warn({ server: where(main.target) }, 'lost the connection to Redis; reconnecting');
    });
    main.redis.on('ready', () => {
      if (!this.lostLogged) return;
      this.lostLogged = false;
      log?.info({ server: where(main.target) }, 'reconnected to Redis');
    });
  }

  get target(): RedisTarget {
    return this.main.target;
  }

  async get<T = unknown>(key: string): Promise<T | undefined> {
    this.usable();
    checkKey(key);
    const raw = await this.read('reading', (r) => r.getBuffer(this.keys.value(key)));
    return raw === null ? undefined : decodeValue<T>(raw);
  }

  /**
   * Not a snapshot (as outside a transaction nothing is): a key deleted
   * between listing and reading is skipped and the page filled up from
   * further keys, so a short page still means the end of the range.
   */
  async scan<T = unknown>(prefix: string, after: string | undefined, limit: number): Promise<Array<[string, T]>> {
    this.usable();
    checkScanArgs(prefix, after, limit);
    const rows: Array<[string, T]> = [];
    let from = after;
    for (let round = 0; round < 10_000 && rows.length < limit; round++) {
      const want = limit - rows.length;
      const [min, max] = lexRange(prefix, from);
      const keys = await this.read('scanning', (r) => r.zrangebylex(this.keys.index, min, max, 'LIMIT', 0, want));
      if (keys.length === 0) break;
      const values = await this.read('scanning', (r) => mget(r, keys.map(this.keys.value)));
      keys.forEach((k, i) => {
        const v = values[i];
        if (v) rows.push([k, decodeValue<T>(v)]);
      });
      if (keys.length < want) break;
      from = keys[keys.length - 1];
    }
    return rows;
  }

  transact<T>(fn: (tx: StoreTxn) => Promise<T>): Promise<T> {
    try {
      this.usable();
    } catch (e) {
      return Promise.reject(e);
    }
    const run = this.run(fn);
    const settled = run.then(
      () => undefined,
      () => undefined,
    );
    this.running.add(settled);
    void settled.then(() => this.running.delete(settled));
    return run;
  }

  async close(): Promise<void> {
    if (!this.closing) {
      this.closing = (async () => {
        // transactions called before close() finish first
        await Promise.all([...this.running]);
        await Promise.all([this.main, ...this.links].map((l) => l.close()));
      })();
    }
    return this.closing;
  }

  private async run<T>(fn: (tx: StoreTxn) => Promise<T>): Promise<T> {
    let why = '';
    for (let attempt = 1; attempt <= this.maxAttempts; attempt++) {
      const alone = attempt > SHARED_ATTEMPTS;
      await this.gate.enter(alone);
      let outcome: Attempt<T>;
      try {
        const link = await this.takeLink();
        try {
          outcome = await this.attempt(link, fn);
        } finally {
          this.idle.push(link);
        }
      } finally {
        this.gate.leave(alone);
      }
      if (outcome.committed) return outcome.value;
      why = outcome.why;
      // running alone, it lost to another client: back off with jitter so
      // the two do not retry in lockstep (a local loser just runs alone next)
      if (alone) await sleep(Math.random() * Math.min(2 ** (attempt - SHARED_ATTEMPTS), 100));
    }
    throw err(
      'EAGAIN',
      `metadata transaction gave up after ${this.maxAttempts} attempts (${why}); is another client writing under prefix "${this.prefix}" at ${where(this.target)}?`,
      'STORE_CONFLICT',
    );
  }

  /** An idle connection, a new one while the pool is below its size; ready for commands. */
  private async takeLink(): Promise<Link> {
    let link = this.idle.pop();
    if (!link) {
      link = new Link(this.target, this.settings, `txn${this.links.length}`);
      this.links.push(link);
      try {
        // the gate admits at most poolSize transactions, so at most poolSize links exist
        await link.open(this.settings.reconnectWaitMs, 'STORE_UNAVAILABLE');
      } catch (e) {
        this.links.splice(this.links.indexOf(link), 1);
        throw e;
      }
      return link;
    }
    try {
      await link.ready(this.settings.reconnectWaitMs);
    } catch (e) {
      this.idle.push(link);
      throw e;
    }
    return link;
  }

  private async attempt<T>(link: Link, fn: (tx: StoreTxn) => Promise<T>): Promise<Attempt<T>> {
    const epoch = link.epoch;
    const tx = new RedisTxn(this, link);
    let value: T;
    try {
      value = await fn(tx);
    } catch (e) {
      tx.finish();
      // it may have failed because what it read changed underneath it: then run it again
      if (tx.watching && !(await this.validate(link, epoch))) return { committed: false, why: 'what it read changed while it ran' };
      throw e;
    }
    tx.finish();
    if (!tx.watching && tx.writes.size === 0) return { committed: true, value };
    const result = await this.commit(link, epoch, tx.writes);
    return result === 'committed' ? { committed: true, value } : { committed: false, why: result };
  }

  /** EXECs nothing: true when nothing the transaction watched has changed. */
  private async validate(link: Link, epoch: number): Promise<boolean> {
    if (link.epoch !== epoch || link.redis.status !== 'ready') {
      if (link.redis.status === 'ready') link.redis.unwatch().catch(() => undefined);
      return false;
    }
    try {
      return (await link.redis.multi().exec()) !== null;
    } catch {
      return false;
    }
  }

  private async commit(link: Link, epoch: number, writes: WriteSet): Promise<'committed' | string> {
    const r = link.redis;
    // WATCHes live in one connection epoch: after a reconnection they are gone
    if (link.epoch !== epoch || r.status !== 'ready') {
      if (r.status === 'ready') r.unwatch().catch(() => undefined);
      return 'the connection to Redis was lost';
    }
    const puts: Array<[string, Buffer]> = [];
    const dels: string[] = [];
    for (const [k, v] of writes) {
      if (v === null) dels.push(k);
      else puts.push([k, v]);
    }
    const m = r.multi();
    for (const batch of chunks(puts, BATCH)) {
      m.mset(...batch.flatMap(([k, v]) => [this.keys.value(k), v]));
      m.zadd(this.keys.index, ...batch.flatMap(([k]) => [0, k]));
    }
    for (const batch of chunks(dels, BATCH)) {
      m.del(...batch.map(this.keys.value));
      m.zrem(this.keys.index, ...batch);
    }
    let results: Array<[Error | null, unknown]> | null;
    try {
      results = await m.exec();
    } catch (e) {
      // refused before anything was written: the connection went down a moment ago
      if (NOT_SENT.test((e as Error).message)) return 'the connection to Redis was lost';
      if (e instanceof ReplyError) {
        // EXECABORT: the server refused a queued command and applied nothing
        throw err('EIO', `Redis at ${where(this.target)} refused the metadata transaction: ${(e as Error).message}`, 'STORE_FAILED');
      }
      throw err(
        'EIO',
        `metadata commit outcome unknown: the connection to Redis at ${where(this.target)} failed after EXEC was sent (${(e as Error).message})`,
        'STORE_COMMIT_UNKNOWN',
      );
    }
    if (results === null) return 'what it read was changed by another transaction';
    const failed = results.find(([e]) => e);
    if (failed) {
      this.log?.error({ err: failed[0] }, 'Redis applied a metadata transaction only in part');
      throw err('EIO', `Redis at ${where(this.target)} applied a metadata transaction only in part: ${failed[0]!.message}; are other clients writing under prefix "${this.prefix}"?`, 'STORE_FAILED');
    }
    return 'committed';
  }

  /** A read on the shared connection: waits out a reconnection, sends again if the connection dropped it. */
  private async read<R>(doing: string, op: (r: Redis) => Promise<R>): Promise<R> {
    const deadline = Date.now() + this.settings.reconnectWaitMs;
    for (let attempt = 1; ; attempt++) {
      await this.main.ready(Math.max(1, deadline - Date.now()));
      try {
        return await op(this.main.redis);
      } catch (e) {
        if (!isConnectionLoss(e) || Date.now() >= deadline || attempt >= 10_000) throw redisFailure(e, this.target, doing);
        // the connection may not know yet that it is gone
        await sleep(20);
      }
    }
  }

  private usable(): void {
    if (this.closing) throw err('ESHUTDOWN', 'metadata store is closed', 'STORE_CLOSED');
  }
}

function mget(r: Redis, keys: string[]): Promise<Array<Buffer | null>> {
  return Promise.all(chunks(keys, BATCH).map((c) => r.mgetBuffer(...c))).then((parts) => parts.flat());
}

/**
 * One attempt's view: its own writes over what it read, each read WATCHed
 * first so that EXEC fails if any of it changes before the commit.
 */
class RedisTxn implements StoreTxn {
  readonly writes: WriteSet = new Map();
  /** something was WATCHed: the commit (or a validation) must EXEC */
  watching = false;
  /** values read in this attempt (null: absent): each key is fetched and watched once */
  private readonly seen = new Map<string, Buffer | null>();
  private indexWatched = false;
  private done = false;

  constructor(
    private readonly store: RedisStore,
    private readonly link: Link,
  ) {}

  async get<T = unknown>(key: string): Promise<T | undefined> {
    this.open();
    checkKey(key);
    const own = this.writes.get(key);
    if (own !== undefined) return own === null ? undefined : decodeValue<T>(own);
    let raw = this.seen.get(key);
    if (raw === undefined) {
      const r = this.link.redis;
      const vkey = this.store.keys.value(key);
      this.watching = true;
      try {
        const [, value] = await Promise.all([r.watch(vkey), r.getBuffer(vkey)]);
        raw = value;
      } catch (e) {
        throw redisFailure(e, this.link.target, 'reading');
      }
      this.seen.set(key, raw);
    }
    return raw === null ? undefined : decodeValue<T>(raw);
  }

  put(key: string, value: unknown): void {
    this.open();
    checkKey(key);
    if (value === undefined) throw err('EINVAL', `store value for ${key} is undefined (use del)`, 'BAD_VALUE');
    this.writes.set(key, encodeValue(value));
  }

  del(key: string): void {
    this.open();
    checkKey(key);
    this.writes.set(key, null);
  }

  async scan<T = unknown>(prefix: string, after: string | undefined, limit: number): Promise<Array<[string, T]>> {
    this.open();
    checkScanArgs(prefix, after, limit);
    if (limit === 0) return [];
    const own: Array<[string, Buffer | null]> = [];
    let deletions = 0;
    for (const [k, v] of this.writes) {
      if (!inScanRange(k, prefix, after)) continue;
      own.push([k, v]);
      if (v === null) deletions++;
    }
    const r = this.link.redis;
    const { index, value } = this.store.keys;
    const [min, max] = lexRange(prefix, after);
    let keys: string[];
    try {
      const watched = this.indexWatched ? undefined : r.watch(index);
      this.watching = this.indexWatched = true;
      // each own deletion can hide one stored key: list enough to fill the page anyway
      [, keys] = await Promise.all([watched, r.zrangebylex(index, min, max, 'LIMIT', 0, limit + deletions)]);
      const unseen = keys.filter((k) => !this.seen.has(k));
      if (unseen.length > 0) {
        const watches = chunks(unseen, BATCH).map((batch) => r.watch(...batch.map(value)));
        const [, values] = await Promise.all([Promise.all(watches), mget(r, unseen.map(value))]);
        values.forEach((v, i) => this.seen.set(unseen[i]!, v));
      }
    } catch (e) {
      throw redisFailure(e, this.link.target, 'scanning');
    }
    // a key listed but gone changed after the listing: the commit will fail and retry
    const base: Array<[string, Buffer]> = [];
    for (const k of keys) {
      const v = this.seen.get(k);
      if (v) base.push([k, v]);
    }
    const rows = mergeScan(base, upperLayers([own]), limit);
    return rows.map(([k, v]) => [k, decodeValue<T>(v)]);
  }

  finish(): void {
    this.done = true;
  }

  private open(): void {
    if (this.done) throw err('EINVAL', 'store transaction used after its function returned', 'TXN_FINISHED');
  }
}
