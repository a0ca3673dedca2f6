/**
 * A cluster and two client cores for the tests of one file: `a` reads, `writer` makes what
 * it reads, so `a` has none of it cached. Registers the before/after hooks that start and
 * stop them, and hands them to `ready` once started.
 */
import { after, before } from 'node:test';
import type { StriaClient } from '../../src/client/client.js';
import { TestCluster } from './cluster.js';

export interface ClientPair {
  cluster: TestCluster;
  a: StriaClient;
  writer: StriaClient;
}

export function clientPair(osts: number, ready: (pair: ClientPair) => void): ClientPair {
  const pair = {} as ClientPair;
  before(async () => {
    pair.cluster = await TestCluster.start({ osts });
    pair.a = await pair.cluster.mount();
    pair.writer = await pair.cluster.mount();
    ready(pair);
  }, { timeout: 60_000 });
  after(async () => {
    await pair.writer?.unmount();
    await pair.a?.unmount();
    await pair.cluster?.stop();
  }, { timeout: 60_000 });
  return pair;
}
