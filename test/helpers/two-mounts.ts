/**
 * Two mounts of one filesystem (two client processes on one test cluster), for the
 * coherence tests: what one mount does, the other must see.
 */
import { existsSync } from 'node:fs';
import { after, before } from 'node:test';
import { TestCluster, type ClusterOptions } from './cluster.js';
import { TestMount } from './mount.js';

/** Why mount tests cannot run here (for a describe's skip option), or false when they can. */
export const mountSkip: string | false = process.getuid?.() !== 0 ? 'mount tests need root' : !existsSync('/dev/fuse') ? 'no /dev/fuse' : false;

export interface TwoMounts {
  readonly cluster: TestCluster;
  readonly a: TestMount;
  readonly b: TestMount;
}

export interface TwoMountsOptions extends ClusterOptions {
  /** Runs first in the teardown, e.g. to kill processes that hold files open on the mounts. */
  beforeStop?: () => void;
}

/**
 * Registers a before hook in the calling describe that starts a cluster and mounts A
 * and B on it, and an after hook that stops whatever of them started. The returned
 * object hands them out from the tests on.
 */
export function twoMounts(opts: TwoMountsOptions = {}): TwoMounts {
  const { beforeStop, ...clusterOptions } = opts;
  let cluster: TestCluster | undefined;
  let a: TestMount | undefined;
  let b: TestMount | undefined;

  before(async () => {
    cluster = await TestCluster.start(clusterOptions);
    a = await TestMount.start(cluster);
    b = await TestMount.start(cluster);
  }, { timeout: 120_000 });

  after(async () => {
    beforeStop?.();
    // A stopped mount process (a test froze it) can neither unmount nor be waited for: wake it first.
    for (const m of [a, b]) {
      const p = m?.proc;
      if (p && p.exitCode === null && p.signalCode === null) p.kill('SIGCONT');
    }
    await b?.stop();
    await a?.stop();
    await cluster?.stop();
  }, { timeout: 300_000 });

  const started = <T>(x: T | undefined, what: string): T => {
    if (x === undefined) throw new Error(`${what} is not started yet: use it from inside a test`);
    return x;
  };
  return {
    get cluster() {
      return started(cluster, 'the cluster');
    },
    get a() {
      return started(a, 'mount A');
    },
    get b() {
      return started(b, 'mount B');
    },
  };
}
