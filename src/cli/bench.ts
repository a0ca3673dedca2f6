/** `stria bench [options] <dir>`: the fio benchmark suite on a Stria mount, side by side with baselines. */
import { Command, Option } from 'commander';
import { toStriaError } from '../common/errno.js';
import { parseGroups, parseVs, runBench, type BenchOptions } from '../bench/suite.js';
import { GROUPS, type Group } from '../bench/workloads.js';
import { validated } from './args.js';

type BenchTarget = { dir: string; label: string };
const vsArg = validated(parseVs);

interface ParsedBenchOptions {
  quick?: boolean;
  only?: Group[];
  local?: string;
  vs: BenchTarget[];
  json?: string;
}

/** The options `stria bench` and `npm run bench` share. */
export function addBenchOptions(cmd: Command): Command {
  return cmd
    .option('--quick', 'small sizes: about a minute per target instead of several')
    .addOption(new Option('--only <groups>', `run only these workload groups, comma-separated (${GROUPS.join(',')})`).argParser(validated(parseGroups)))
    .option('--local <dir>', 'parent directory of the local-disk baseline (default: the system temporary directory)')
    .option('--vs <dir[:label]>', 'one more baseline directory, e.g. a bindfs or other filesystem mount (repeatable)', (v: string, prev: BenchTarget[]) => [...prev, vsArg(v)], [] as BenchTarget[])
    .option('--json <file>', 'also write the figures as JSON to this file');
}

export function benchOptions(dir: string, o: ParsedBenchOptions, runDir?: string): BenchOptions {
  return { dir, quick: o.quick === true, only: o.only, local: o.local, vs: o.vs, json: o.json, runDir };
}

export function addBenchCommand(program: Command): void {
  addBenchOptions(
    program
      .command('bench')
      .description('run the fio benchmark suite on a directory of a Stria mount, beside the local disk and other baselines')
      .argument('<dir>', 'a directory on a Stria mount (the work directory is made inside it and removed at the end)'),
  ).action(async (dir: string, o: ParsedBenchOptions) => {
    try {
      process.exitCode = await runBench(benchOptions(dir, o));
    } catch (e) {
      process.stderr.write(`stria bench: ${toStriaError(e).message}\n`);
      process.exitCode = 2;
    }
  });
}
