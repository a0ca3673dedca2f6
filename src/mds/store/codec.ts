/**
 * Value encoding shared by every MetadataStore backend, so a record written
 * by one backend reads back identically from another (and from a dump).
 */
import { Packr } from 'msgpackr';

// useRecords:false keeps each value self-describing (no shared structure
// table to persist); copyBuffers:true so a Buffer read back never aliases
// a store-internal buffer that could change or be reused underneath it.
const packr = new Packr({ useRecords: false, copyBuffers: true, mapsAsObjects: true });

export function encodeValue(value: unknown): Buffer {
  return packr.pack(value);
}

export function decodeValue<T>(bytes: Uint8Array): T {
  return packr.unpack(bytes) as T;
}
