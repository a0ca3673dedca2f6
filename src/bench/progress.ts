/**
 * What the suite shows while it runs: a progress bar over all steps of all targets on a
 * terminal, one timestamped line per step elsewhere (CI logs, pipes). Results and
 * messages printed meanwhile go above the bar.
 */
import cliProgress from 'cli-progress';

export interface Progress {
  /** a step starts: `what` names it */
  begin(what: string): void;
  /** the step ends, with its figure or its error */
  end(what: string, outcome: string): void;
  /** a message that is not a step */
  log(line: string): void;
  stop(): void;
}

function elapsed(t0: number): string {
  return `${((performance.now() - t0) / 1000).toFixed(0).padStart(4)}s`;
}

export function createProgress(totalSteps: number, stream: NodeJS.WriteStream, name: string): Progress {
  const t0 = performance.now();
  if (!stream.isTTY) {
    const line = (s: string) => stream.write(`[${name} ${elapsed(t0)}] ${s}\n`);
    return { begin: (what) => line(`${what} ...`), end: (what, outcome) => line(`${what} = ${outcome}`), log: line, stop: () => undefined };
  }
  const bar = new cliProgress.SingleBar(
    { stream, format: `${name} |{bar}| {value}/{total} steps | {elapsed} | {step}`, hideCursor: true, fps: 5, clearOnComplete: true },
    cliProgress.Presets.shades_classic,
  );
  let done = 0;
  let stopped = false;
  bar.start(totalSteps, 0, { step: 'starting', elapsed: elapsed(t0).trim() });
  const tick = setInterval(() => bar.update({ elapsed: elapsed(t0).trim() }), 1000);
  tick.unref();
  const above = (s: string) => {
    // cli-progress has no log() on a single bar: clear its line, print, let it redraw
    stream.clearLine(0);
    stream.cursorTo(0);
    stream.write(`${s}\n`);
    bar.render();
  };
  return {
    begin: (what) => bar.update(done, { step: what }),
    end: (what, outcome) => {
      done++;
      above(`${what} = ${outcome}`);
      bar.update(done, { step: what });
    },
    log: above,
    stop: () => {
      if (stopped) return;
      stopped = true;
      clearInterval(tick);
      bar.stop();
    },
  };
}
