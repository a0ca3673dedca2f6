/**
 * The MDT's metadata store: an ordered key/value store with atomic multi-key
 * transactions. Two backends implement it (embedded LMDB now, Redis later) and
 * pass one conformance suite (test/store-conformance.test.ts).
 *
 * Keys are strings (ordered bytewise), values are MessagePack-encodable JS
 * values. A transaction's reads see its own writes; its writes become visible
 * and durable together, or not at all.
 */
export interface StoreTxn {
  get<T = unknown>(key: string): Promise<T | undefined>;
  put(key: string, value: unknown): void;
  del(key: string): void;
  /** keys with `prefix`, ascending, strictly after `after` when given, at most `limit` */
  scan<T = unknown>(prefix: string, after: string | undefined, limit: number): Promise<Array<[string, T]>>;
}

export interface MetadataStore {
  /** backend name for logs and lctl: "lmdb", "redis" */
  readonly kind: string;
  get<T = unknown>(key: string): Promise<T | undefined>;
  scan<T = unknown>(prefix: string, after: string | undefined, limit: number): Promise<Array<[string, T]>>;
  /**
   * Runs `fn` as one atomic transaction and resolves once it is durable. `fn` may
   * be run more than once (optimistic retry), so it must have no side effects
   * beyond the transaction. Transactions are serialisable.
   */
  transact<T>(fn: (tx: StoreTxn) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}
