/**
 * Child processes driven line by line over stdin/stdout, and the ready/go/done
 * handshake that lets several writer processes start at the same moment.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';

const POLL_MS = 10;
const DEFAULT_STEP_MS = 30_000;

/** A child process whose stdout lines can be awaited: by content (waitFor) or one at a time, in order (next). */
export class LineChild {
  readonly lines: string[] = [];
  readonly exited: Promise<number | null>;
  protected readonly proc: ChildProcess;
  private taken = 0;
  private stderr = '';

  /** label names the process in error messages. */
  constructor(argv: string[], readonly label = argv[0]!) {
    this.proc = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    let buf = '';
    this.proc.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        this.lines.push(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
    });
    this.proc.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) => this.proc.once('exit', (code) => resolve(code)));
  }

  get pid(): number {
    return this.proc.pid!;
  }

  /** Everything the process wrote to stderr so far. */
  get errors(): string {
    return this.stderr;
  }

  private get ended(): boolean {
    return this.proc.exitCode !== null || this.proc.signalCode !== null;
  }

  /** Waits until the process has printed this exact line, at any point since it started. */
  async waitFor(line: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.lines.includes(line)) {
      if (this.ended) throw new Error(`${this.label} exited (${this.proc.exitCode ?? this.proc.signalCode}) before "${line}": ${this.lines.join('|')} ${this.stderr}`);
      if (Date.now() > deadline) throw new Error(`${this.label}: no "${line}" within ${timeoutMs} ms: ${this.lines.join('|')} ${this.stderr}`);
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  /** The next line not yet taken, waiting for it at most timeoutMs. */
  async next(timeoutMs = DEFAULT_STEP_MS): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (this.taken >= this.lines.length) {
      if (this.ended) throw new Error(`${this.label} exited (${this.proc.exitCode ?? this.proc.signalCode}) without answering: ${this.stderr}`);
      if (Date.now() > deadline) throw new Error(`${this.label} did not answer within ${timeoutMs} ms (said: ${this.lines.join(' | ')}) ${this.stderr}`);
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
    return this.lines[this.taken++]!;
  }

  /** True when a line has arrived that next() has not taken yet. */
  get hasUnread(): boolean {
    return this.taken < this.lines.length;
  }

  send(line: string): void {
    this.proc.stdin!.write(`${line}\n`);
  }

  /** Sends a line and returns the next line of the answer. */
  async ask(line: string): Promise<string> {
    this.send(line);
    return this.next();
  }

  kill(): void {
    if (!this.ended) this.proc.kill('SIGKILL');
  }

  /** Sends a signal (a daemon's clean stop: SIGTERM, SIGINT) if it still runs. */
  signal(sig: NodeJS.Signals): void {
    if (!this.ended) this.proc.kill(sig);
  }
}

/**
 * The source of a `node -e` (CommonJS) script that takes part in runTogether: it runs
 * setup (reading arguments, opening files), prints "ready", waits for "go" on stdin,
 * runs body, then prints "done" and exits 0. A body that fails prints why and exits non-zero.
 */
export function handshakeScript(setup: string, body: string): string {
  return `
${setup}
process.stdout.write('ready\\n');
process.stdin.once('data', () => {
${body}
  process.stdout.write('done\\n');
  process.exit(0);
});
`;
}

/** Starts the writers together (after each says ready) and waits for all to finish cleanly. */
export async function runTogether(writers: LineChild[], timeoutMs: number): Promise<void> {
  try {
    for (const w of writers) await w.waitFor('ready', 30_000);
    for (const w of writers) w.send('go');
    for (const w of writers) await w.waitFor('done', timeoutMs);
    const codes = await Promise.all(writers.map((w) => w.exited));
    assert.deepEqual(codes, writers.map(() => 0), `writers exited ${codes}: ${writers.map((w) => w.errors).join('\n')}`);
  } finally {
    for (const w of writers) w.kill();
  }
}
