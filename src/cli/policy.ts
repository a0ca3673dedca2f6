/**
 * `stria policy --config FILE [--state-dir DIR] [--once] [--dry-run] [--scan] MGSNID:/FSNAME`:
 * the HSM policy engine (src/hsm/policy/engine.ts) as a daemon.
 *
 * Why a daemon apart from the MDS rather than inside it:
 * - The MDS serves every metadata request from one event loop; the engine keeps an index
 *   as large as the namespace, re-reads files, walks candidate lists and waits on OSTs.
 *   Inside the MDS that work would take turns with clients' requests and share its memory;
 *   apart, it costs the MDS only the changelog appends and the requests it sends.
 * - What the engine decides on is what a client sees: OST usage as `lfs df` reports it,
 *   object sizes and access times from the OSTs, the data version a release needs. A
 *   StriaClient has all of that; the MDS has none of it.
 * - A stopped, crashed or upgraded engine never takes the namespace down, it can run on
 *   another host, and it picks up where it stopped: its changelog user keeps the records
 *   it has not consumed. This is Lustre's own split: the MDT never archives or releases
 *   by itself, Robinhood does it from a client, fed by the changelog.
 * - It scales without scanning: the MDS only appends changelog records, the engine keeps
 *   its own index (LMDB, in --state-dir) ordered for "due for archive" and "coldest
 *   first", and walks the namespace once at most, when asked (--scan) on an empty index.
 *
 * Logs are JSON lines on stderr; with --dry-run, stdout gets one line per action the
 * engine would take. SIGINT/SIGTERM stop it after the step in progress.
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { pino } from 'pino';
import { StriaClient } from '../client/client.js';
import { parseFsSpec, type FsSpec } from '../client/fs-spec.js';
import { toStriaError } from '../common/errno.js';
import type { Logger } from '../common/log.js';
import { loadPolicyConfig } from '../hsm/policy/config.js';
import { PolicyEngine, type CycleReport } from '../hsm/policy/engine.js';
import { validated } from './args.js';
import { fail } from './daemon.js';

export interface RunPolicyOptions {
  spec: FsSpec;
  configFile: string;
  stateDir: string;
  /** one cycle, then return (tests, cron) */
  once?: boolean;
  dryRun?: boolean;
  /** seed an empty index by walking the namespace once */
  scan?: boolean;
  log: Logger;
  /** dry-run lines (default: stdout) */
  report?: (line: string) => void;
  /** stops the daemon (between steps) */
  signal?: AbortSignal;
  /** the engine's clock, ms */
  now?: () => number;
}

/** Runs the engine: one cycle with `once` (its report is returned), else until `signal` aborts. */
export async function runPolicy(opts: RunPolicyOptions): Promise<CycleReport | undefined> {
  const config = await loadPolicyConfig(opts.configFile);
  const client = await StriaClient.mount({ mgsNids: opts.spec.mgsNids, fsname: opts.spec.fsname, uuid: `policy-${process.pid}-${Date.now().toString(36)}` }, opts.log);
  try {
    const engine = await PolicyEngine.open({
      client, config, stateDir: opts.stateDir, log: opts.log, dryRun: opts.dryRun, report: opts.report, now: opts.now,
    });
    const onAbort = () => engine.stop();
    opts.signal?.addEventListener('abort', onAbort);
    try {
      opts.log.info({ mdt: engine.mdt, user: engine.userId, stateDir: opts.stateDir, cycleMs: config.cycleMs, dryRun: opts.dryRun ?? false }, 'policy engine started');
      if (opts.scan) await engine.scan();
      if (opts.once) return await engine.cycle();
      await engine.run(opts.signal ?? new AbortController().signal);
      return undefined;
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
      await engine.close();
    }
  } finally {
    await client.unmount();
  }
}

/** Adds `stria policy` to the stria command. */
export function registerPolicyCommand(program: Command): void {
  program
    .command('policy')
    .description('run the HSM policy engine: archive, release by OST usage, remove copies of deleted files (rules in --config)')
    .argument('<spec>', 'the filesystem: MGSNID[,NID][:FAILOVER]:/FSNAME', validated(parseFsSpec))
    .requiredOption('--config <file>', 'policy rules (YAML or JSON)')
    .option('--state-dir <dir>', 'where the engine keeps its index and changelog user (default ./stria-policy-FSNAME)')
    .option('--once', 'run one cycle and exit')
    .option('--dry-run', 'print what would be archived, released and removed; change nothing')
    .option('--scan', 'when the index is empty, walk the namespace once to seed it (a filesystem older than the engine)')
    .action(async (spec: FsSpec, o: { config: string; stateDir?: string; once?: boolean; dryRun?: boolean; scan?: boolean }) => {
      const log = pino(
        { name: 'policy', level: process.env.STRIA_LOG_LEVEL ?? 'info', base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime },
        pino.destination(2),
      );
      const stop = new AbortController();
      const onSignal = (signal: string) => {
        if (stop.signal.aborted) return;
        log.info({ signal }, 'policy stopping');
        stop.abort();
      };
      process.on('SIGINT', () => onSignal('SIGINT'));
      process.on('SIGTERM', () => onSignal('SIGTERM'));
      try {
        await runPolicy({
          spec,
          configFile: resolve(o.config),
          stateDir: resolve(o.stateDir ?? `stria-policy-${spec.fsname}`),
          once: o.once,
          dryRun: o.dryRun,
          scan: o.scan,
          log,
          signal: stop.signal,
        });
        log.info('policy stopped');
        log.flush();
        process.exit(0);
      } catch (e) {
        const se = toStriaError(e);
        log.debug({ err: se.message, code: se.code, stack: (e as Error).stack }, 'policy failed');
        fail(`policy: ${se.message} (${se.code})`);
      }
    });
}
