/**
 * A loopback TCP proxy for fault injection between a client and a real server: cut every
 * connection, swallow traffic (a dead peer that still holds the socket), drop only one
 * direction, or rewrite bytes in flight.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

export type Direction = 'c2s' | 's2c';

interface Pair {
  client: Socket;
  server: Socket | undefined;
}

export class TcpProxy {
  /** swallow all traffic, and hold new connections without connecting upstream */
  blackhole = false;
  /** swallow server->client traffic only (replies get lost) */
  dropReplies = false;
  /** rewrites every chunk in flight */
  transform: ((dir: Direction, chunk: Buffer) => Buffer) | undefined;
  /** connections accepted so far */
  accepted = 0;
  private readonly pairs = new Set<Pair>();
  private readonly listener: Server;
  private readonly upstreamHost: string;
  private readonly upstreamPort: number;

  private constructor(listener: Server, host: string, port: number) {
    this.listener = listener;
    this.upstreamHost = host;
    this.upstreamPort = port;
  }

  static async start(upstreamHost: string, upstreamPort: number): Promise<TcpProxy> {
    let proxy!: TcpProxy;
    const listener = createServer((socket) => proxy.accept(socket));
    proxy = new TcpProxy(listener, upstreamHost, upstreamPort);
    await new Promise<void>((resolve, reject) => {
      listener.once('error', reject);
      listener.listen(0, '127.0.0.1', () => resolve());
    });
    return proxy;
  }

  get port(): number {
    const a = this.listener.address();
    return typeof a === 'object' && a !== null ? a.port : 0;
  }

  get open(): number {
    return this.pairs.size;
  }

  /** Destroys every proxied connection (both sides see a reset/close). */
  cutAll(): void {
    for (const p of this.pairs) {
      p.client.destroy();
      p.server?.destroy();
    }
    this.pairs.clear();
  }

  async close(): Promise<void> {
    this.cutAll();
    await new Promise<void>((resolve) => this.listener.close(() => resolve()));
  }

  private accept(client: Socket): void {
    this.accepted++;
    const pair: Pair = { client, server: undefined };
    this.pairs.add(pair);
    const drop = (): void => {
      client.destroy();
      pair.server?.destroy();
      this.pairs.delete(pair);
    };
    client.on('error', drop);
    client.on('close', drop);
    if (this.blackhole) {
      client.on('data', () => undefined);
      return;
    }
    const server = connect({ host: this.upstreamHost, port: this.upstreamPort });
    pair.server = server;
    server.on('error', drop);
    server.on('close', drop);
    const pending: Buffer[] = [];
    let connected = false;
    server.once('connect', () => {
      connected = true;
      for (const c of pending) server.write(c);
      pending.length = 0;
    });
    client.on('data', (chunk: Buffer) => {
      if (this.blackhole) return;
      const out = this.transform ? this.transform('c2s', chunk) : chunk;
      if (connected) server.write(out);
      else pending.push(out);
    });
    server.on('data', (chunk: Buffer) => {
      if (this.blackhole || this.dropReplies) return;
      client.write(this.transform ? this.transform('s2c', chunk) : chunk);
    });
  }
}
