/** LNet network identifiers: ADDR[:PORT]@NET[N], e.g. 127.0.0.1@tcp, 10.0.0.5:9988@tcp1. */
import { isIP } from 'node:net';
import { err } from '../common/errno.js';

export const DEFAULT_PORT = 988;

export interface Nid {
  addr: string;
  port: number;
  /** network name with its number, "tcp" is "tcp0" */
  net: string;
}

const NID_RE = /^(\[[0-9a-fA-F:]+\]|[^:@\s]+)(?::(\d+))?(?:@(tcp\d*|lo))?$/;

export function parseNid(text: string, defaultPort = DEFAULT_PORT): Nid {
  const m = NID_RE.exec(text.trim());
  if (!m) throw err('EINVAL', `invalid NID '${text}' (expected ADDR[:PORT]@tcp[N])`, 'BAD_NID');
  const addr = m[1]!.replace(/^\[|\]$/g, '');
  if (isIP(addr) === 0 && !/^[A-Za-z0-9.-]+$/.test(addr)) {
    throw err('EINVAL', `invalid NID address '${addr}'`, 'BAD_NID');
  }
  // The resolver reads "19880" or "10.1" as IPv4 numbers (inet_aton): a port put after
  // "@tcp:" would otherwise become a failover node at some unrelated address.
  if (isIP(addr) === 0 && /^[0-9.]+$/.test(addr)) {
    throw err('EINVAL', `invalid NID address '${addr}': not a dotted IPv4 address (a port goes before the network: ADDR:PORT@tcp)`, 'BAD_NID');
  }
  const port = m[2] === undefined ? defaultPort : Number(m[2]);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw err('EINVAL', `invalid port in NID '${text}'`, 'BAD_NID');
  const net = m[3] === undefined || m[3] === 'tcp0' ? 'tcp' : m[3];
  return { addr, port, net };
}

export function formatNid(nid: Nid): string {
  const addr = nid.addr.includes(':') ? `[${nid.addr}]` : nid.addr;
  return nid.port === DEFAULT_PORT ? `${addr}@${nid.net}` : `${addr}:${nid.port}@${nid.net}`;
}

/** Several NIDs of one node are separated by ',', failover nodes by ':' in mount specs. */
export function parseNidList(text: string, defaultPort = DEFAULT_PORT): Nid[] {
  return text.split(',').filter((s) => s.length > 0).map((s) => parseNid(s, defaultPort));
}
