/** Structured JSON logs (pino) for daemons; level from STRIA_LOG_LEVEL (default info). */
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(name: string, level?: string): Logger {
  return pino({
    name,
    level: level ?? process.env.STRIA_LOG_LEVEL ?? 'info',
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
  });
}

/** A logger that drops everything, for library use and unit tests. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
