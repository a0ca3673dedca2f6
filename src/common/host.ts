/** Defaults that depend on the host: the address other nodes reach us at. */
import { networkInterfaces } from 'node:os';

/** First non-internal IPv4 address, else loopback. */
export function primaryAddress(): string {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return '127.0.0.1';
}

/** The NID to advertise for a listener: its own address unless it listens on all. */
export function advertisedAddress(listenAddr: string): string {
  return listenAddr === '0.0.0.0' || listenAddr === '::' ? primaryAddress() : listenAddr;
}
