/**
 * docker/compose.yml and docker/Dockerfile, checked without a Docker engine: Debian's
 * docker-compose validates and normalizes the compose file (anchors, merges,
 * variables), and the result and the Dockerfile are read as data. The Stria command
 * lines of the services are parsed by the real `stria` CLI.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, realpathSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { buildProgram } from '../src/cli/stria.js';
import { formatNid, parseNid, type Nid } from '../src/lnet/nid.js';
import { parseFsSpec } from '../src/client/fs-spec.js';
import { parseS3Url } from '../src/hsm/archive-url.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const COMPOSE_FILE = 'docker/compose.yml';
const STRIA_ROLES = new Set(['mgs', 'mds', 'oss', 'mount', 'up', 'copytool']);
const SERVER_ROLES = new Set(['mgs', 'mds', 'oss']);
const COMPILERS = ['g++', 'gcc', 'make', 'build-essential', 'libfuse3-dev', 'pkg-config', 'python3', 'node-gyp'];

// ---- docker-compose ----

interface BindMount {
  type: string;
  source?: string;
  target: string;
  bind?: { propagation?: string };
}

interface Service {
  image?: string;
  environment?: Record<string, string | null> | string[];
  build?: { context: string; dockerfile?: string; target?: string };
  command?: string[] | string;
  entrypoint?: string[] | string;
  hostname?: string;
  user?: string;
  devices?: string[];
  cap_add?: string[];
  security_opt?: string[];
  volumes?: Array<BindMount | string>;
  depends_on?: Record<string, { condition?: string }> | string[];
  healthcheck?: { test?: string[] | string; disable?: boolean };
  profiles?: string[];
  pid?: string;
}

interface ComposeConfig {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
}

function runCompose(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('docker-compose', ['-f', COMPOSE_FILE, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  if ((r.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
    assert.fail('docker-compose is not installed: apt-get install docker-compose (scripts/setup.sh installs it); it validates docker/compose.yml');
  }
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

let configCache: ComposeConfig | undefined;

/** The normalized config, read with the YAML library docker-compose itself runs on. */
function composeConfig(): ComposeConfig {
  if (configCache) return configCache;
  const out = runCompose(['config']);
  assert.equal(out.status, 0, `docker-compose config failed:\n${out.stderr}`);
  const py = spawnSync('python3', ['-c', 'import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)'], {
    input: out.stdout,
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(py.status, 0, `python3 could not read docker-compose's output (python3-yaml comes with docker-compose):\n${py.stderr}`);
  const cfg = JSON.parse(py.stdout) as ComposeConfig;
  assert.ok(cfg && typeof cfg.services === 'object', 'the config has services');
  configCache = cfg;
  return cfg;
}

function argv(v: string[] | string | undefined): string[] {
  if (v === undefined) return [];
  return Array.isArray(v) ? v : v.split(/\s+/).filter((s) => s.length > 0);
}

/** The Stria services: those whose command is a `stria` subcommand. */
function striaServices(cfg: ComposeConfig): Array<[string, Service, string[]]> {
  return Object.entries(cfg.services)
    .map(([name, s]) => [name, s, argv(s.command)] as [string, Service, string[]])
    .filter(([, , cmd]) => STRIA_ROLES.has(cmd[0] ?? ''));
}

function byRole(cfg: ComposeConfig, role: string): Array<[string, Service, string[]]> {
  return striaServices(cfg).filter(([, , cmd]) => cmd[0] === role);
}

/** A subcommand of a fresh `stria` program, parsing without running anything. */
function subcommand(role: string): Command {
  const cmd = buildProgram().commands.find((c) => c.name() === role);
  assert.ok(cmd, `stria has a '${role}' command`);
  cmd.exitOverride();
  cmd.configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
  return cmd;
}

interface ParsedCommand {
  opts: Record<string, unknown>;
  operands: string[];
}

function parseStriaCommand(service: string, cmdline: string[]): ParsedCommand {
  const cmd = subcommand(cmdline[0]!);
  let parsed: { operands: string[]; unknown: string[] };
  try {
    parsed = cmd.parseOptions(cmdline.slice(1));
  } catch (e) {
    assert.fail(`${service}: stria ${cmdline.join(' ')}: ${(e as Error).message}`);
  }
  assert.deepEqual(parsed.unknown, [], `${service}: options stria ${cmdline[0]} does not know`);
  const opts = cmd.opts();
  for (const o of cmd.options.filter((x) => x.mandatory)) {
    assert.notEqual(opts[o.attributeName()], undefined, `${service}: required option ${o.long} is missing`);
  }
  return { opts, operands: parsed.operands };
}

/** Volumes in long form; docker-compose 1.29 prints short ones as SOURCE:TARGET[:MODE]. */
function binds(s: Service): BindMount[] {
  return (s.volumes ?? []).map((v) => {
    if (typeof v === 'object') return v;
    const [source, target, mode] = v.split(':');
    assert.ok(source && target, `volume '${v}' is SOURCE:TARGET[:MODE]`);
    const propagation = (mode ?? '').split(',').find((m) => /^r?(shared|slave|private)$/.test(m));
    return { type: /^[./~]/.test(source) ? 'bind' : 'volume', source, target, ...(propagation ? { bind: { propagation } } : {}) };
  });
}

/** The named volume mounted at or above `path` in service `s`. */
function volumeHolding(s: Service, path: string): BindMount | undefined {
  return binds(s).find((v) => v.type === 'volume' && (path === v.target || path.startsWith(`${v.target}/`)));
}

function dependencies(s: Service): Record<string, { condition?: string }> {
  const d = s.depends_on;
  if (d === undefined) return {};
  if (Array.isArray(d)) return Object.fromEntries(d.map((n) => [n, {}]));
  return d;
}

function healthTest(s: Service): string[] {
  if (!s.healthcheck || s.healthcheck.disable) return [];
  return argv(s.healthcheck.test);
}

function sameNid(a: Nid, b: Nid): boolean {
  return formatNid(a) === formatNid(b);
}

test('docker-compose validates docker/compose.yml', () => {
  const r = runCompose(['config', '-q']);
  assert.equal(r.status, 0, `docker-compose -f ${COMPOSE_FILE} config -q failed:\n${r.stderr}`);
});

test('the cluster has Redis, MinIO, an MGS, an MDS, three OSS, a copytool, two clients and fio', () => {
  const cfg = composeConfig();
  for (const name of ['redis', 'minio', 'mgs', 'mds', 'oss1', 'oss2', 'oss3', 'copytool', 'client1', 'client2', 'fio']) {
    assert.ok(cfg.services[name], `service ${name}`);
  }
  assert.ok(cfg.services.minio!.healthcheck, 'minio has a healthcheck');
  assert.equal(byRole(cfg, 'mgs').length, 1);
  assert.equal(byRole(cfg, 'mds').length, 1);
  assert.equal(byRole(cfg, 'oss').length, 3);
  assert.equal(byRole(cfg, 'mount').length, 2);
  assert.equal(byRole(cfg, 'copytool').length, 1);
  const redis = argv(cfg.services.redis!.command);
  assert.ok(redis.join(' ').includes('--appendonly yes'), 'redis keeps an append-only file');
  assert.ok(redis.join(' ').includes('--appendfsync always'), 'redis fsyncs every write');
  assert.ok(healthTest(cfg.services.redis!).join(' ').includes('redis-cli ping'));
});

test('every Stria service runs the one image built from docker/Dockerfile', () => {
  const cfg = composeConfig();
  const services = striaServices(cfg);
  assert.ok(services.length >= 7);
  const [firstName, first] = services[0]!;
  assert.ok(first.image, `${firstName} names its image`);
  assert.ok(first.build, `${firstName} says how its image is built`);
  assert.equal(first.build.dockerfile, 'docker/Dockerfile');
  assert.equal(realpathSync(first.build.context), realpathSync(ROOT), 'the build context is the repository root');
  assert.equal(first.build.target, undefined, 'the image is the Dockerfile\'s last stage, the runtime');
  for (const [name, s] of services) {
    assert.equal(s.image, first.image, `${name} uses the same image as ${firstName}`);
    assert.deepEqual(s.build, first.build, `${name} builds it the same way`);
    assert.equal(s.entrypoint, undefined, `${name} keeps the image's entrypoint (stria under tini)`);
  }
  for (const [name, s] of Object.entries(cfg.services)) {
    if (!services.some(([n]) => n === name)) assert.notEqual(s.image, first.image, `${name} is not a Stria role but uses the Stria image`);
  }
});

test('the Stria command lines are valid for the stria CLI', () => {
  const cfg = composeConfig();
  for (const [name, , cmd] of striaServices(cfg)) {
    const { operands } = parseStriaCommand(name, cmd);
    if (cmd[0] === 'mount') {
      assert.equal(operands.length, 2, `${name}: stria mount SPEC MOUNTPOINT`);
      parseFsSpec(operands[0]!);
    } else if (cmd[0] === 'copytool') {
      assert.equal(operands.length, 1, `${name}: stria copytool [options] SPEC`);
      parseFsSpec(operands[0]!);
    } else {
      assert.deepEqual(operands, [], `${name}: no stray arguments`);
    }
  }
});

test('servers are reached by service name and agree on the MGS and the filesystem', () => {
  const cfg = composeConfig();
  const [[mgsName, mgsSvc, mgsCmd]] = byRole(cfg, 'mgs') as [[string, Service, string[]]];
  const mgsNid = parseStriaCommand(mgsName, mgsCmd).opts.listen as Nid;
  const fsnames = new Set<string>();
  for (const [name, s, cmd] of striaServices(cfg)) {
    const { opts, operands } = parseStriaCommand(name, cmd);
    if (SERVER_ROLES.has(cmd[0]!)) {
      const listen = opts.listen as Nid;
      assert.equal(listen.addr, name, `${name} listens on (and registers) its service name`);
      assert.equal(s.hostname, name, `${name}'s hostname is its service name`);
      const ping = healthTest(s);
      const at = ping.indexOf('ping');
      assert.ok(at >= 0 && ping[at + 1] !== undefined, `${name}'s healthcheck pings it: ${ping.join(' ')}`);
      assert.ok(sameNid(parseNid(ping[at + 1]!), listen), `${name}'s healthcheck pings ${formatNid(listen)}, not ${ping[at + 1]}`);
    }
    if (cmd[0] === 'mds' || cmd[0] === 'oss') {
      const mgs = opts.mgs as Nid[];
      assert.ok(mgs.length >= 1 && mgs.every((n) => sameNid(n, mgsNid)), `${name} registers with ${mgsName} at ${formatNid(mgsNid)}`);
      fsnames.add(opts.fsname as string);
    }
    if (cmd[0] === 'mount' || cmd[0] === 'copytool') {
      const spec = parseFsSpec(operands[0]!);
      assert.ok(spec.mgsNids.every((n) => sameNid(n, mgsNid)), `${name} mounts from ${formatNid(mgsNid)}`);
      fsnames.add(spec.fsname);
    }
  }
  assert.equal(fsnames.size, 1, `one filesystem: ${[...fsnames].join(', ')}`);
  assert.ok(mgsSvc.volumes?.length, 'the MGS keeps its configuration in a volume');
});

test('every server keeps its data in a volume of its own; OSTs have distinct indexes', () => {
  const cfg = composeConfig();
  const owners = new Map<string, string>();
  const claim = (service: string, dir: string, s: Service) => {
    const vol = volumeHolding(s, dir);
    assert.ok(vol?.source, `${service}: ${dir} is on a named volume`);
    assert.ok(cfg.volumes && vol.source in cfg.volumes, `volume ${vol.source} is declared`);
    const prev = owners.get(vol.source);
    assert.equal(prev, undefined, `${service} and ${prev} share the volume ${vol.source}`);
    owners.set(vol.source, service);
  };
  for (const [name, s, cmd] of byRole(cfg, 'mgs')) claim(name, parseStriaCommand(name, cmd).opts.dir as string, s);
  for (const [name, s, cmd] of byRole(cfg, 'mds')) {
    const store = parseStriaCommand(name, cmd).opts.store as string;
    if (!/^rediss?:/.test(store)) claim(name, store, s);
  }
  const indexes: number[] = [];
  for (const [name, s, cmd] of byRole(cfg, 'oss')) {
    const osts = parseStriaCommand(name, cmd).opts.ost as Array<{ index: number; dir: string }>;
    assert.ok(osts.length >= 1, `${name} serves an OST`);
    for (const t of osts) {
      claim(name, t.dir, s);
      indexes.push(t.index);
    }
  }
  assert.deepEqual([...indexes].sort((a, b) => a - b), [0, 1, 2], 'OST indexes 0, 1, 2, each once');
});

test('clients mount as root with /dev/fuse, CAP_SYS_ADMIN and a mount the host sees', () => {
  const cfg = composeConfig();
  const sources = new Set<string>();
  for (const [name, s, cmd] of byRole(cfg, 'mount')) {
    const mountpoint = parseStriaCommand(name, cmd).operands[1]!;
    assert.ok((s.devices ?? []).some((d) => d === '/dev/fuse' || d.startsWith('/dev/fuse:')), `${name} has /dev/fuse`);
    assert.ok((s.cap_add ?? []).some((c) => c.replace(/^CAP_/, '') === 'SYS_ADMIN'), `${name} has CAP_SYS_ADMIN`);
    assert.ok((s.security_opt ?? []).some((o) => /^apparmor[:=]unconfined$/.test(o)), `${name} is not confined by AppArmor's docker profile`);
    assert.ok(['0', '0:0', 'root', 'root:root'].includes(String(s.user)), `${name} runs as root (user: ${s.user})`);
    const bind = binds(s).find((v) => v.type === 'bind' && v.target === mountpoint);
    assert.ok(bind?.source, `${name}: ${mountpoint} is a bind mount from the host`);
    assert.ok(['rshared', 'shared'].includes(bind.bind?.propagation ?? ''), `${name}: ${mountpoint} propagates mounts to the host`);
    assert.ok(!sources.has(bind.source), `${name} mounts on a host directory of its own`);
    sources.add(bind.source);
    assert.ok(healthTest(s).join(' ').includes(mountpoint), `${name}'s healthcheck looks at ${mountpoint}`);
  }
  assert.equal(sources.size, 2);
});

function envOf(s: Service): Record<string, string> {
  const e = s.environment ?? {};
  if (Array.isArray(e)) return Object.fromEntries(e.map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
  return Object.fromEntries(Object.entries(e).map(([k, v]) => [k, v ?? '']));
}

test('the copytool archives to the minio service with its credentials, from the environment', () => {
  const cfg = composeConfig();
  const [[name, s, cmd]] = byRole(cfg, 'copytool') as [[string, Service, string[]]];
  const { opts } = parseStriaCommand(name, cmd);
  assert.deepEqual(opts.archive, [1], 'archive id 1, what lfs hsm_archive uses by default');
  assert.equal(opts.posix, undefined);
  const target = opts.s3 as ReturnType<typeof parseS3Url>;
  assert.ok(target, `${name} archives to S3`);
  const endpoint = new URL(target.endpoint!);
  assert.equal(endpoint.hostname, 'minio', 'the minio service, by name');
  const minio = cfg.services.minio!;
  const minioCmd = argv(minio.command);
  const address = minioCmd.includes('--address') ? minioCmd[minioCmd.indexOf('--address') + 1]! : ':9000';
  assert.equal(endpoint.port || '80', address.slice(address.lastIndexOf(':') + 1), 'the port MinIO serves S3 on');
  assert.equal(target.pathStyle, true, 'path-style: minio is not a wildcard DNS name');
  const bucketCreated = opts.createBucket === true || Object.values(cfg.services).some((x) => argv(x.entrypoint).concat(argv(x.command)).join(' ').match(/\bmc mb\b/) !== null);
  assert.ok(bucketCreated, 'something creates the bucket');
  const env = envOf(s);
  const minioEnv = envOf(minio);
  assert.equal(env.AWS_ACCESS_KEY_ID, minioEnv.MINIO_ROOT_USER, 'the access key is MinIO\'s user');
  assert.equal(env.AWS_SECRET_ACCESS_KEY, minioEnv.MINIO_ROOT_PASSWORD, 'the secret key is MinIO\'s password');
  assert.ok(env.AWS_REGION, 'a region for the signature');
  assert.equal(opts.secretKey, undefined, 'no secret on the command line (ps shows it)');
  assert.ok(env.STRIA_LOG_LEVEL, 'the log level the other services get');
  const deps = dependencies(s);
  for (const need of ['minio', ...byRole(cfg, 'mds').map(([n]) => n), ...byRole(cfg, 'oss').map(([n]) => n)]) {
    assert.equal(deps[need]?.condition, 'service_healthy', `${name} waits for ${need} to be healthy`);
  }
});

test('fio sees both clients\' mounts and runs fio in them', () => {
  const cfg = composeConfig();
  const fio = cfg.services.fio!;
  const script = [...argv(fio.entrypoint), ...argv(fio.command)].join(' ');
  assert.match(script, /\bfio\b.*--directory=/, 'fio runs a job in a directory');
  for (const [name, s, cmd] of byRole(cfg, 'mount')) {
    const mountpoint = parseStriaCommand(name, cmd).operands[1]!;
    const clientBind = binds(s).find((v) => v.target === mountpoint)!;
    const view = binds(fio).find((v) => v.type === 'bind' && v.source !== undefined && clientBind.source!.startsWith(`${v.source}/`));
    assert.ok(view, `fio binds a host directory above ${clientBind.source}`);
    assert.ok(['rslave', 'slave', 'rshared', 'shared'].includes(view.bind?.propagation ?? ''), 'fio receives mounts made on the host');
    const inside = posix.join(view.target, posix.relative(view.source!, clientBind.source!));
    assert.ok(script.includes(`${inside}/`) || script.includes(`${inside} `), `fio uses ${name}'s mount at ${inside}`);
  }
});

test('start order: redis and mgs, then mds and oss, then clients, then fio', () => {
  const cfg = composeConfig();
  for (const [name, s] of Object.entries(cfg.services)) {
    const deps = dependencies(s);
    assert.ok(healthTest(s).length > 0 || Object.keys(deps).length > 0, `${name} has a healthcheck or waits for others`);
    for (const [dep, d] of Object.entries(deps)) {
      assert.ok(cfg.services[dep], `${name} depends on an existing service ${dep}`);
      assert.ok(d.condition === 'service_healthy' || d.condition === 'service_completed_successfully', `${name} waits for ${dep} with a condition`);
      if (d.condition === 'service_healthy') assert.ok(healthTest(cfg.services[dep]!).length > 0, `${dep} has a healthcheck for ${name} to wait on`);
    }
  }
  const closure = (start: string): Set<string> => {
    const seen = new Set<string>();
    const todo = Object.keys(dependencies(cfg.services[start]!));
    for (let i = 0; i < todo.length && i < 1000; i++) {
      const n = todo[i]!;
      if (seen.has(n)) continue;
      seen.add(n);
      todo.push(...Object.keys(dependencies(cfg.services[n]!)));
    }
    return seen;
  };
  for (const name of Object.keys(cfg.services)) assert.ok(!closure(name).has(name), `${name} does not wait for itself`);
  const names = (role: string) => byRole(cfg, role).map(([n]) => n);
  const [mgs] = names('mgs');
  for (const n of [...names('mds'), ...names('oss')]) assert.ok(closure(n).has(mgs!), `${n} starts after ${mgs}`);
  assert.ok(closure(names('mds')[0]!).has('redis'), 'the MDS starts after Redis (for --store redis://)');
  for (const c of names('mount')) {
    for (const server of [...names('mds'), ...names('oss')]) assert.ok(closure(c).has(server), `${c} starts after ${server}`);
  }
  for (const c of names('mount')) assert.ok(closure('fio').has(c), `fio starts after ${c}`);
});

// ---- Dockerfile ----

interface Instruction {
  op: string;
  args: string;
}

interface Stage {
  base: string;
  name: string | undefined;
  body: Instruction[];
}

/** Instructions with continuation lines joined and comments dropped, as Docker reads them. */
function parseDockerfile(text: string): Stage[] {
  const instructions: Instruction[] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    if (/^\s*#/.test(raw)) continue;
    const line = raw.replace(/\s+$/, '');
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    const full = (pending + line).trim();
    pending = '';
    if (full.length === 0) continue;
    const m = /^(\S+)\s*(.*)$/s.exec(full)!;
    instructions.push({ op: m[1]!.toUpperCase(), args: m[2]!.replace(/\s+/g, ' ') });
  }
  const stages: Stage[] = [];
  for (const ins of instructions) {
    if (ins.op === 'FROM') {
      const m = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      assert.ok(m, `FROM ${ins.args}`);
      stages.push({ base: m[1]!, name: m[2], body: [] });
    } else {
      assert.ok(stages.length > 0 || ins.op === 'ARG', `${ins.op} before the first FROM`);
      stages.at(-1)?.body.push(ins);
    }
  }
  return stages;
}

function dockerfile(): Stage[] {
  return parseDockerfile(readFileSync(join(ROOT, 'docker', 'Dockerfile'), 'utf8'));
}

function runText(stage: Stage): string {
  return stage.body.filter((i) => i.op === 'RUN').map((i) => i.args).join(' ; ');
}

/** Packages named by `apt-get install` (or apt install) in a stage's RUN lines. */
function aptPackages(stage: Stage): string[] {
  const out: string[] = [];
  for (const m of runText(stage).matchAll(/\bapt(?:-get)? (?:[-\w=]+ )*install ([^;&|]*)/g)) {
    out.push(...m[1]!.split(' ').filter((w) => w.length > 0 && !w.startsWith('-')));
  }
  return out;
}

function stageOf(stages: Stage[], name: string): Stage | undefined {
  return stages.find((s) => s.name === name);
}

function copiesFrom(stage: Stage): Array<{ from: string | undefined; sources: string[]; dest: string }> {
  return stage.body
    .filter((i) => i.op === 'COPY' || i.op === 'ADD')
    .map((i) => {
      const words = i.args.split(' ');
      const flags = words.filter((w) => w.startsWith('--'));
      const paths = words.filter((w) => !w.startsWith('--'));
      const from = flags.find((f) => f.startsWith('--from='))?.slice('--from='.length);
      return { from, sources: paths.slice(0, -1), dest: paths.at(-1)! };
    });
}

test('the Dockerfile builds on node:20-bookworm and runs on node:20-bookworm-slim', () => {
  const stages = dockerfile();
  assert.ok(stages.length >= 2, 'multi-stage');
  const runtime = stages.at(-1)!;
  assert.equal(runtime.base, 'node:20-bookworm-slim', 'the last stage (what docker build produces) is the slim runtime');
  const copies = copiesFrom(runtime).filter((c) => c.from !== undefined);
  assert.ok(copies.length > 0, 'the runtime takes its files from the build stage');
  const buildName = copies[0]!.from!;
  assert.ok(copies.every((c) => c.from === buildName), 'all from one build stage');
  const build = stageOf(stages, buildName);
  assert.ok(build, `stage ${buildName} exists`);
  assert.ok(stages.indexOf(build) < stages.length - 1, 'the build stage comes before the runtime');
  assert.equal(build.base, 'node:20-bookworm');
  const packages = aptPackages(build);
  for (const p of ['libfuse3-dev', 'pkg-config', 'g++', 'make', 'python3']) assert.ok(packages.includes(p), `the build stage installs ${p}`);
  const run = runText(build);
  assert.match(run, /\bnpm ci\b/);
  assert.match(run, /\bnpm prune --omit=dev\b/, 'dev dependencies (TypeScript) are pruned before the copy');
  assert.ok(run.indexOf('npm prune') > run.indexOf('npm ci'));
  const copied = copies.flatMap((c) => c.sources).join(' ');
  for (const need of ['package.json', 'node_modules', 'dist', 'bin', 'native/build/Release/stria_fuse.node']) {
    assert.ok(copied.includes(need), `the runtime gets ${need} from the build`);
  }
});

test('the runtime stage has libfuse3 and an init, and no compiler', () => {
  const runtime = dockerfile().at(-1)!;
  const packages = aptPackages(runtime);
  for (const p of COMPILERS) assert.ok(!packages.includes(p), `the runtime installs ${p}`);
  assert.ok(packages.includes('fuse3'), 'fuse3 (fusermount3, which auto_unmount runs)');
  assert.ok(packages.includes('libfuse3-3'), 'libfuse3, which the native binding links');
  assert.ok(packages.includes('tini') || packages.includes('dumb-init'), 'an init that forwards signals and reaps');
  assert.ok(packages.includes('ca-certificates'));
});

test('the runtime stage runs stria, as a non-root user, with a healthcheck', () => {
  const runtime = dockerfile().at(-1)!;
  const last = (op: string) => runtime.body.filter((i) => i.op === op).at(-1);
  const entry = last('ENTRYPOINT');
  assert.ok(entry, 'ENTRYPOINT');
  const entryArgv = JSON.parse(entry.args) as string[];
  assert.ok(Array.isArray(entryArgv), 'exec form, so signals reach the init');
  assert.ok(/tini|dumb-init/.test(entryArgv[0]!), 'the init is the entrypoint');
  assert.deepEqual(entryArgv.slice(-2), ['node', '/opt/stria/bin/stria.js'], 'arguments of docker run go to stria');
  const health = last('HEALTHCHECK');
  assert.ok(health && !/^NONE\b/i.test(health.args), 'HEALTHCHECK');
  assert.match(health.args, /\bCMD\b/);
  const user = last('USER');
  assert.ok(user && !/^(0|root)(:|$)/.test(user.args), 'servers run unprivileged');
  assert.match(runtime.body.filter((i) => i.op === 'ENV').map((i) => i.args).join(' '), /\bSTRIA_RUN_DIR=\/run\/stria\b/);
  assert.ok(last('VOLUME'), 'a data volume');
  const ports = runtime.body.filter((i) => i.op === 'EXPOSE').flatMap((i) => i.args.split(' '));
  for (const p of ['988', '9881', '9882']) assert.ok(ports.includes(p), `EXPOSE ${p}`);
  for (const tool of ['stria', 'lfs', 'lctl']) {
    assert.match(runText(runtime), new RegExp(`ln -s /opt/stria/bin/${tool}\\.js /usr/local/bin/${tool}\\b`), `${tool} is on PATH`);
  }
});

test('compose builds the image the Dockerfile makes, and fio from its own stage', () => {
  const stages = dockerfile();
  const cfg = composeConfig();
  const fio = cfg.services.fio!;
  assert.ok(fio.build?.target, 'fio is built from a named stage');
  const stage = stageOf(stages, fio.build.target);
  assert.ok(stage, `the Dockerfile has the stage ${fio.build.target}`);
  assert.ok(aptPackages(stage).includes('fio'));
  assert.notEqual(stage, stages.at(-1), 'a plain docker build still produces the Stria runtime');
  assert.equal(fio.build.dockerfile, 'docker/Dockerfile');
  // the stria healthchecks call programs the runtime links onto PATH
  const linked = new Set([...runText(stages.at(-1)!).matchAll(/ln -s \S+ \/usr\/local\/bin\/(\S+)/g)].map((m) => m[1]!));
  for (const [name, s] of striaServices(cfg)) {
    const t = healthTest(s);
    if (t[0] === 'CMD') assert.ok(linked.has(t[1]!), `${name}'s healthcheck runs ${t[1]}, which the image has`);
  }
});

test('the bench service runs stria bench where client1 mounted, with fio, its control socket and its processes', () => {
  const cfg = composeConfig();
  const bench = cfg.services.bench;
  assert.ok(bench, 'service bench');
  assert.deepEqual(bench.profiles, ['bench'], 'a plain up does not start it');
  const stages = dockerfile();
  const stage = stageOf(stages, bench.build?.target ?? '');
  assert.ok(stage, 'bench is built from a named stage of docker/Dockerfile');
  assert.notEqual(stage, stages.at(-1), 'a plain docker build still produces the Stria runtime');
  assert.ok(aptPackages(stage).includes('fio'), 'the bench stage has fio');
  assert.ok(copiesFrom(stage).some((c) => c.from === undefined && c.sources.includes('bench/jobs') && c.dest === './bench/jobs'), 'and the suite\'s fio jobs, where the CLI looks for them');
  const [, client1, mountCmd] = byRole(cfg, 'mount').find(([n]) => n === 'client1')!;
  const mountpoint = parseStriaCommand('client1', mountCmd).operands[1]!;
  const cmd = argv(bench.command);
  assert.equal(cmd[0], 'bench');
  assert.deepEqual(parseStriaCommand('bench', cmd).operands, [mountpoint], 'bench works in client1\'s mountpoint');
  const seen = binds(bench).find((v) => v.target === mountpoint);
  assert.equal(seen?.source, binds(client1).find((v) => v.target === mountpoint)?.source, 'the same host directory, at the same path');
  assert.ok(['rslave', 'slave'].includes(seen?.bind?.propagation ?? ''), 'receives the mount client1 makes there');
  const runDir = volumeHolding(client1, '/run/stria');
  assert.ok(runDir, 'client1 keeps its control socket in a volume');
  assert.equal(volumeHolding(bench, '/run/stria')?.source, runDir.source, 'bench reaches that socket');
  assert.equal(bench.pid, 'service:client1', 'and sees the mount process behind it');
  assert.match(bench.user ?? '', /^0(:0)?$/, 'as root: cold runs drop caches');
  assert.equal(dependencies(bench).client1?.condition, 'service_healthy');
});

// ---- .dockerignore ----

/** Docker's rule: the last pattern that matches a path or one of its parent directories wins. */
function ignored(patterns: string[], path: string): boolean {
  const parts = path.split('/');
  const prefixes = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
  let excluded = false;
  for (const raw of patterns) {
    const negate = raw.startsWith('!');
    const pattern = posix.normalize((negate ? raw.slice(1) : raw).replace(/^\/+/, ''));
    const re = new RegExp(
      `^${pattern
        .split('**')
        .map((chunk) => chunk.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]'))
        .join('.*')}$`,
    );
    if (prefixes.some((p) => re.test(p))) excluded = !negate;
  }
  return excluded;
}

test('the build context holds the sources the Dockerfile copies and nothing built locally', () => {
  const patterns = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0 && !l.startsWith('#'));
  const sources = dockerfile().flatMap((s) => copiesFrom(s).filter((c) => c.from === undefined).flatMap((c) => c.sources));
  assert.ok(sources.length > 0);
  for (const src of sources) {
    const path = posix.normalize(src).replace(/\/$/, '');
    assert.ok(!ignored(patterns, path), `${path} reaches the build`);
    // for a directory: what is inside it too
    assert.ok(!ignored(patterns, `${path}/any/file.ts`), `files under ${path} reach the build`);
  }
  for (const junk of ['node_modules/commander/index.js', 'dist/src/cli/stria.js', 'native/build/Release/stria_fuse.node', 'stria-data/mdt0/data.mdb', 'stria-mnt', '.git/HEAD']) {
    assert.ok(ignored(patterns, junk), `${junk} stays out of the build context`);
  }
});
