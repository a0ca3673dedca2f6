/** Shared plumbing of the daemons: one-line fatal errors, clean stop on SIGINT/SIGTERM. */
import type { Logger } from '../common/log.js';
import { toStriaError } from '../common/errno.js';

export function fail(message: string): never {
  process.stderr.write(`stria: ${message}\n`);
  process.exit(1);
}

/**
 * Runs a daemon until SIGINT/SIGTERM; start-up errors end the process with one
 * line. Signal handlers are installed first so a signal during start-up still
 * stops the daemon cleanly once it is up.
 */
export async function runDaemon(name: string, log: Logger, start: () => Promise<{ close(): Promise<void> }>): Promise<void> {
  let running: { close(): Promise<void> } | undefined;
  let stopRequested: string | undefined;
  let stopping = false;
  const stop = (signal: string) => {
    if (!running) {
      stopRequested ??= signal;
      return;
    }
    if (stopping) return;
    stopping = true;
    log.info({ signal }, `${name} stopping`);
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    running.close().then(
      () => {
        log.info(`${name} stopped`);
        process.exit(0);
      },
      (e) => {
        log.error({ err: toStriaError(e).message }, `${name} stopped with an error`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  try {
    running = await start();
  } catch (e) {
    const se = toStriaError(e);
    log.debug({ err: se.message, code: se.code, stack: (e as Error).stack }, 'start-up failed');
    fail(`${name}: ${se.message} (${se.code})`);
  }
  if (stopRequested) stop(stopRequested);
}
