/** Limits of the OST protocol and object store, shared by both sides. */

/** Largest I/O RPC, as Lustre's (reference §5). */
export const MAX_IO_BYTES = 64 * 1024 * 1024;
/** Most ranges one OST_WRITE carries (Lustre's niobufs per bulk RPC: PTLRPC_MAX_BRW_PAGES at 4 KiB pages is 256 for 1 MiB). */
export const MAX_WRITE_SEGMENTS = 1024;
/** Largest precreate batch (Lustre's OST_MAX_PRECREATE / max_create_count). */
export const MAX_PRECREATE = 20000;
/** Offsets and sizes beyond this cannot be represented exactly by a JS number. */
export const MAX_OBJECT_BYTES = 2 ** 53;
/** Orphan cleanup deletes at most this many objects; more means the MDT's view is wrong, not orphans. */
export const MAX_ORPHANS = MAX_PRECREATE;
