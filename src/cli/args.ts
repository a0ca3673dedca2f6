/** Shared command-line plumbing: validated option values and one-line errors. */
import { InvalidArgumentError, type Command } from 'commander';
import { StriaError, toStriaError } from '../common/errno.js';

/** Adapts a validating parser for commander: a thrown error becomes its one-line message. */
export function validated<T>(parse: (v: string) => T): (v: string) => T {
  return (v) => {
    try {
      return parse(v);
    } catch (e) {
      throw new InvalidArgumentError(e instanceof StriaError ? e.message : String(e));
    }
  };
}

/** Runs a tool's command; any failure is one `name: message` line and exit status 1. */
export async function runTool(name: string, program: Command, argv: string[]): Promise<void> {
  try {
    await program.parseAsync(argv);
  } catch (e) {
    process.stderr.write(`${name}: ${toStriaError(e).message}\n`);
    process.exitCode = 1;
  }
}
