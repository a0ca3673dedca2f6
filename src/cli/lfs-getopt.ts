/**
 * Command-line parsing the way lfs does it (GNU getopt_long): grouped short
 * options (-cS), attached or separate values (-c2, -c 2, --stripe-count=2),
 * unique prefixes of long options, "--" to end options, and options mixed
 * with operands. `longOnly` is getopt_long_only, as lfs find uses it:
 * "-name" and "-mtime" are long options, and "!" negates the next option.
 */

export type ArgKind = 'none' | 'required' | 'optional';

export interface OptSpec {
  /** the key the option is reported under */
  name: string;
  short?: string;
  long?: string[];
  arg?: ArgKind;
}

export type Token =
  | { kind: 'opt'; name: string; value?: string; negated: boolean; text: string }
  | { kind: 'operand'; value: string };

/** A command line that does not parse: lfs prints the message and the command's usage. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

interface Match {
  spec: OptSpec;
  exact: boolean;
}

function matchLong(specs: OptSpec[], word: string): Match | 'ambiguous' | undefined {
  const exact = specs.find((s) => s.long?.includes(word));
  if (exact) return { spec: exact, exact: true };
  const prefixed = [...new Set(specs.filter((s) => s.long?.some((l) => l.startsWith(word))))];
  if (prefixed.length === 1) return { spec: prefixed[0]!, exact: false };
  return prefixed.length > 1 ? 'ambiguous' : undefined;
}

/**
 * Splits argv into options and operands, in command-line order. Throws
 * UsageError for unknown or ambiguous options and missing values.
 */
export function getopt(argv: string[], specs: OptSpec[], mode: { longOnly?: boolean; bang?: boolean } = {}): Token[] {
  const out: Token[] = [];
  const shortOf = (c: string) => specs.find((s) => s.short === c);
  let negate = false;
  const push = (spec: OptSpec, text: string, value?: string) => {
    out.push({ kind: 'opt', name: spec.name, value, negated: negate, text });
    negate = false;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      for (const rest of argv.slice(i + 1)) out.push({ kind: 'operand', value: rest });
      break;
    }
    if (mode.bang && a === '!') {
      if (negate) throw new UsageError("'!' given twice");
      negate = true;
      continue;
    }
    if (a === '-' || !a.startsWith('-')) {
      if (negate) throw new UsageError(`'!' must precede an option, not '${a}'`);
      out.push({ kind: 'operand', value: a });
      continue;
    }
    const isDouble = a.startsWith('--');
    const body = a.slice(isDouble ? 2 : 1);
    // getopt_long_only tries "-word" as a long option unless it is one known short letter
    if (isDouble || (mode.longOnly && (body.length > 1 || !shortOf(body)))) {
      const eq = body.indexOf('=');
      const word = eq >= 0 ? body.slice(0, eq) : body;
      const m = matchLong(specs, word);
      if (m === 'ambiguous') throw new UsageError(`option '${a.slice(0, a.length - body.length)}${word}' is ambiguous`);
      if (m) {
        const kind = m.spec.arg ?? 'none';
        const shown = `${a.slice(0, a.length - body.length)}${word}`;
        if (eq >= 0) {
          if (kind === 'none') throw new UsageError(`option '${shown}' doesn't allow an argument`);
          push(m.spec, shown, body.slice(eq + 1));
        } else if (kind === 'required') {
          if (i + 1 >= argv.length) throw new UsageError(`option '${shown}' requires an argument`);
          push(m.spec, shown, argv[++i]);
        } else {
          push(m.spec, shown);
        }
        continue;
      }
      if (isDouble || !shortOf(body[0]!)) throw new UsageError(`unrecognized option '${a}'`);
    }
    for (let j = 0; j < body.length; j++) {
      const spec = shortOf(body[j]!);
      if (!spec) throw new UsageError(`invalid option -- '${body[j]}'`);
      const kind = spec.arg ?? 'none';
      const rest = body.slice(j + 1);
      if (kind === 'none') {
        push(spec, `-${body[j]}`);
        continue;
      }
      if (rest.length > 0) push(spec, `-${body[j]}`, rest);
      else if (kind === 'required') {
        if (i + 1 >= argv.length) throw new UsageError(`option requires an argument -- '${body[j]}'`);
        push(spec, `-${body[j]}`, argv[++i]);
      } else push(spec, `-${body[j]}`);
      break;
    }
  }
  if (negate) throw new UsageError("'!' must precede an option");
  return out;
}

/** Options and operands apart, for commands where their order does not matter. */
export function splitArgs(argv: string[], specs: OptSpec[]): { opts: Array<Extract<Token, { kind: 'opt' }>>; operands: string[] } {
  const tokens = getopt(argv, specs);
  return {
    opts: tokens.filter((t): t is Extract<Token, { kind: 'opt' }> => t.kind === 'opt'),
    operands: tokens.filter((t): t is Extract<Token, { kind: 'operand' }> => t.kind === 'operand').map((t) => t.value),
  };
}
