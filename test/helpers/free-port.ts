/**
 * Free loopback ports for the daemons tests start, below the kernel's
 * ephemeral range (32768 and up by default), so no outgoing connection can be
 * holding one when a daemon binds it later: a client reconnecting to a killed
 * server could otherwise be handed the server's own port as its local port.
 *
 * A port is handed out once per process. Probing releases it, and two roles of
 * one cluster drawing the same port would make the later one fail to bind.
 */
import { createServer } from 'node:net';

const handedOut = new Set<number>();

/** `count` consecutive free ports; returns the first. */
export async function freePortRange(count: number): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const base = 20000 + Math.floor(Math.random() * 10000);
    const range = Array.from({ length: count }, (_, i) => base + i);
    if (range.some((p) => handedOut.has(p))) continue;
    const servers: ReturnType<typeof createServer>[] = [];
    try {
      for (const port of range) {
        const s = createServer();
        await new Promise<void>((resolve, reject) => {
          s.once('error', reject);
          s.listen(port, '127.0.0.1', () => resolve());
        });
        servers.push(s);
      }
      for (const port of range) handedOut.add(port);
      return base;
    } catch {
      // taken: try another base
    } finally {
      await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    }
  }
  throw new Error(`no ${count} consecutive free ports found`);
}

/** One free port. */
export async function freePort(): Promise<number> {
  return freePortRange(1);
}
