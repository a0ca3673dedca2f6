/**
 * `npm run bench`: `stria bench` on a cluster of its own. Starts a 3-OST cluster on
 * loopback and a `stria mount` of it, runs the suite on the mount beside the local disk
 * (and every --vs directory), then stops both.
 *
 *   node dist/bench/fio-suite.js [--quick] [--only GROUPS] [--local DIR] [--vs DIR[:label]]... [--json FILE]
 *
 * For a mount that is already there (`stria up --mount`, a compose client): `stria bench DIR`.
 */
import { Command } from 'commander';
import { toStriaError } from '../src/common/errno.js';
import { addBenchOptions, benchOptions } from '../src/cli/bench.js';
import { runBench } from '../src/bench/suite.js';
import { TestCluster } from '../test/helpers/cluster.js';
import { TestMount } from '../test/helpers/mount.js';

async function main(o: Parameters<typeof benchOptions>[1]): Promise<number> {
  process.stderr.write('fio-suite: starting a 3-OST cluster on loopback and a mount\n');
  const cluster = await TestCluster.start({ osts: 3 });
  try {
    const mount = await TestMount.start(cluster);
    const stopAll = async () => {
      await mount.stop().catch(() => undefined);
      await cluster.stop();
    };
    try {
      return await runBench({ ...benchOptions(mount.path('.'), o, cluster.runDir), onInterrupt: stopAll });
    } finally {
      await mount.stop();
    }
  } finally {
    await cluster.stop();
  }
}

const program = addBenchOptions(new Command('fio-suite').description('the fio benchmark suite on a cluster of its own'));
program.action(async (o: Parameters<typeof benchOptions>[1]) => {
  try {
    process.exitCode = await main(o);
  } catch (e) {
    process.stderr.write(`fio-suite: ${toStriaError(e).message}\n`);
    process.exitCode = 2;
  }
});
await program.parseAsync(process.argv);
