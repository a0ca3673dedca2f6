/**
 * Several hosts on one machine (issue 7 §4): scripts/netns-cluster.sh gives each
 * role a network namespace of its own on a private bridge (10.254.77.0/24), so
 * servers and clients talk over real links that can be cut. MGS+MDS run on
 * "mds", one OSS on each of oss1..3 (OST index N-1), and `stria mount` on
 * client1 and client2 (entered with `nsenter --net` only, so their FUSE mounts
 * stay in this mount namespace). Then oss2 is killed and its link cut:
 * I/O to OST0000 goes on, a read from OST0001 waits instead of failing and
 * completes once oss2 is back, and `lfs check servers` on client1 tells which
 * OST is gone and when it returns. Last, client1's own link is cut: `lfs check
 * servers` on client1 (reading the mount's import states) reports every target
 * inactive while client2 goes on working, and once the link is back client1
 * reports them active again and reads client2's new file without a remount.
 *
 * Needs root, `ip netns`, nsenter and /dev/fuse; skipped (with the reason) without them.
 */
import { describe, test, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { STRIA_BIN } from './helpers/cluster.js';
import { pseudoRandomBuffer } from './helpers/data.js';

const LFS_BIN = join(dirname(STRIA_BIN), 'lfs.js');
const NETNS_SCRIPT = join(dirname(STRIA_BIN), '..', 'scripts', 'netns-cluster.sh');

/** unique per run, short enough for 15-character interface names ("st123-client1") */
const PREFIX = `st${process.pid % 1000}-`;
const SUBNET = '10.254.77';
const ADDR = { mds: `${SUBNET}.11`, oss1: `${SUBNET}.21`, oss2: `${SUBNET}.22`, oss3: `${SUBNET}.23` } as const;
const FSNAME = 'netfs';
const MGS_NID = `${ADDR.mds}@tcp`;
const SPEC = `${MGS_NID}:/${FSNAME}`;
const OSS_HOSTS = ['oss1', 'oss2', 'oss3'] as const;
type Host = 'mds' | (typeof OSS_HOSTS)[number] | 'client1' | 'client2';

const KiB = 1024;
const START_MS = 30_000;
const TOOL_MS = 60_000;
/** how long the waiting read may take once oss2 is back: reconnect backoff (<= 5 s) plus a connect attempt (<= 10 s), with room */
const RECOVERY_MS = 60_000;
const POLL_MS = 20;
/**
 * how long `lfs check servers` may take to show a change: an idle import notices a dead link
 * only through its ping (checked every 25 s, sent once idle 25 s: up to 50 s after its last
 * traffic) going unanswered for 10 s
 */
const SERVERS_WAIT_MS = 90_000;
/** pause between two `lfs check servers` polls */
const SERVERS_PAUSE_MS = 2_500;

const nsName = (host: Host): string => `${PREFIX}${host}`;
const nsPath = (host: Host): string => `/var/run/netns/${nsName(host)}`;
/** the root-namespace end of a host's veth pair: the script names it after the namespace */
const bridgePort = (host: Host): string => nsName(host);

function skipReason(): string | false {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (process.getuid?.() !== 0) return 'needs root: it creates network namespaces, a bridge and FUSE mounts';
  if (!existsSync('/dev/fuse')) return '/dev/fuse is missing: no FUSE mounts possible';
  const ip = spawnSync('ip', ['netns', 'list'], { timeout: 10_000, encoding: 'utf8' });
  if (ip.status !== 0) return `ip netns is unavailable: ${(ip.stderr || String(ip.error ?? 'ip failed')).trim()}`;
  const ns = spawnSync('nsenter', ['--version'], { timeout: 10_000 });
  if (ns.status !== 0) return 'nsenter (util-linux) is missing';
  return false;
}

interface ToolResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** short-lived tools still running (lfs, dd, ...): ended by teardown too */
const tools = new Set<ChildProcess>();

function run(argv: string[], timeoutMs = TOOL_MS, childEnv: NodeJS.ProcessEnv = process.env): Promise<ToolResult> {
  return new Promise((resolve) => {
    const child = execFile(argv[0]!, argv.slice(1), { env: childEnv, timeout: timeoutMs, maxBuffer: 16 << 20, killSignal: 'SIGKILL' }, (e, stdout, stderr) => {
      tools.delete(child);
      const code = e ? (typeof (e as { code?: unknown }).code === 'number' ? (e as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr: e && !stderr ? e.message : stderr });
    });
    tools.add(child);
  });
}

function killTools(): void {
  for (const t of tools) {
    if (t.pid !== undefined && t.exitCode === null && t.signalCode === null) t.kill('SIGKILL');
  }
}

/**
 * Runs a command "on" a host: in its network namespace, in this mount namespace, with the
 * cluster's STRIA_RUN_DIR (as on a real host, where lfs finds the mounts' control sockets
 * in the one run directory: `lfs check` reads the mounts' import states there).
 */
function onHost(host: Host, argv: string[], timeoutMs = TOOL_MS): Promise<ToolResult> {
  return run(['nsenter', `--net=${nsPath(host)}`, '--', ...argv], timeoutMs, env());
}

async function runOk(argv: string[], timeoutMs = TOOL_MS): Promise<string> {
  const r = await run(argv, timeoutMs);
  assert.equal(r.code, 0, `${argv.join(' ')} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

async function onHostOk(host: Host, argv: string[], timeoutMs = TOOL_MS): Promise<string> {
  const r = await onHost(host, argv, timeoutMs);
  assert.equal(r.code, 0, `on ${host}: ${argv.join(' ')} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** A long-running process we started: its output lines, and a bounded wait for one of them. */
class Proc {
  readonly lines: string[] = [];
  readonly exited: Promise<void>;
  private readonly child: ChildProcess;
  /** lines kept since the start, including those dropped from `lines` */
  private kept = 0;

  constructor(readonly label: string, argv: string[], env: NodeJS.ProcessEnv) {
    this.child = spawn(argv[0]!, argv.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (line: string): void => {
      this.kept++;
      this.lines.push(line);
      if (this.lines.length > 2000) this.lines.splice(0, 1000);
    };
    let buf = '';
    this.child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        keep(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
    });
    this.child.stderr!.on('data', (d: Buffer) => keep(d.toString().trimEnd()));
    this.exited = new Promise((resolve) => this.child.once('exit', () => resolve()));
    this.child.once('error', (e) => keep(`spawn failed: ${e.message}`));
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get running(): boolean {
    return this.child.pid !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  get exitStatus(): string {
    return `code ${this.child.exitCode}, signal ${this.child.signalCode}`;
  }

  /** a mark for linesSince */
  get mark(): number {
    return this.kept;
  }

  /** the lines printed after `mark` (as many as are still kept) */
  linesSince(mark: number): string[] {
    return this.lines.slice(Math.max(0, this.lines.length - (this.kept - mark)));
  }

  tail(n = 20): string {
    return this.lines.slice(-n).join('\n');
  }

  /** Waits until a JSON log line satisfies `match` (lines already printed count). */
  async waitForLog(match: (rec: Record<string, unknown>) => boolean, what: string, timeoutMs = START_MS): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (let seen = 0; ; ) {
      for (; seen < this.lines.length; seen++) {
        const line = this.lines[seen]!;
        if (!line.startsWith('{')) continue;
        try {
          if (match(JSON.parse(line) as Record<string, unknown>)) return;
        } catch {
          // a partial or non-JSON line
        }
      }
      if (!this.running) throw new Error(`${this.label} exited (${this.exitStatus}) before ${what}:\n${this.tail()}`);
      if (Date.now() > deadline) throw new Error(`${this.label}: no ${what} within ${timeoutMs} ms:\n${this.tail()}`);
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  /** SIGKILL by PID, then a bounded wait for the exit. */
  async kill9(timeoutMs = 10_000): Promise<void> {
    if (!this.running) return;
    try {
      process.kill(this.pid, 'SIGKILL');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e; // it ended meanwhile
    }
    await Promise.race([this.exited, new Promise((r) => setTimeout(r, timeoutMs).unref())]);
    if (this.running) throw new Error(`${this.label} (pid ${this.pid}) survived SIGKILL for ${timeoutMs} ms`);
  }
}

/** A file of the workload: its layout request, its content, and where it is expected to live. */
interface WorkFile {
  name: string;
  setstripe: string[];
  data: Buffer;
  osts: number[];
  stripeSize?: number;
}

let base = '';
let runDir = '';
let netnsUp = false;
const procs: Proc[] = [];
const daemons = new Map<string, Proc>();
const mounts: Array<{ host: Host; dir: string; proc: Proc }> = [];
/** the read of an OST0001 file started while oss2 is down, kept here so teardown can end it */
let waitingRead: Proc | undefined;

function env(): NodeJS.ProcessEnv {
  return { ...process.env, STRIA_LOG_LEVEL: 'info', STRIA_RUN_DIR: runDir };
}

function startProc(label: string, argv: string[]): Proc {
  const p = new Proc(label, argv, env());
  procs.push(p);
  return p;
}

/** Starts a command on a host: in its network namespace only (see onHost). */
function startOnHost(label: string, host: Host, argv: string[]): Proc {
  return startProc(label, ['nsenter', `--net=${nsPath(host)}`, '--', ...argv]);
}

/**
 * A server role on a host. Not `ip netns exec`: that also gives the process a private copy
 * of the mount table, and a copy taken while FUSE mounts exist (oss2's restart, or any
 * other test's mount on this machine) keeps those FUSE connections alive after their
 * unmount here, so their mount processes never see the unmount and do not exit.
 */
async function startDaemon(label: string, host: Host, args: string[], ready: string): Promise<Proc> {
  const p = startOnHost(label, host, [process.execPath, STRIA_BIN, ...args]);
  daemons.set(label, p);
  await p.waitForLog((r) => r.msg === ready, `"${ready}"`);
  return p;
}

function startOss(n: 1 | 2 | 3): Promise<Proc> {
  const host = OSS_HOSTS[n - 1]!;
  const args = ['oss', '--fsname', FSNAME, '--mgs', MGS_NID, '--ost', `${n - 1}:${join(base, `ost${n - 1}`)}`, '--listen', `${ADDR[host]}:9882@tcp`];
  return startDaemon(host, host, args, 'OST started');
}

/** `stria mount` entered with nsenter --net only: the mount appears in this mount namespace. */
async function startMount(host: 'client1' | 'client2'): Promise<string> {
  const dir = join(base, host);
  await mkdir(dir);
  const p = startOnHost(`mount on ${host}`, host, [process.execPath, STRIA_BIN, 'mount', SPEC, dir]);
  mounts.push({ host, dir, proc: p });
  await p.waitForLog((r) => r.msg === 'mounted', 'the "mounted" line');
  return dir;
}

function mountDir(host: 'client1' | 'client2'): string {
  const m = mounts.find((x) => x.host === host);
  assert.ok(m, `no mount on ${host}`);
  return m.dir;
}

async function procMounts(): Promise<string[]> {
  return (await readFile('/proc/mounts', 'utf8')).split('\n').filter((l) => l.length > 0);
}

async function mountedAt(dir: string): Promise<boolean> {
  return (await procMounts()).some((l) => l.split(' ')[1] === dir);
}

/** Waits (bounded) until a host's bridge port forwards again after its link came back up. */
async function waitForwarding(host: Host, timeoutMs = 10_000): Promise<void> {
  const sys = `/sys/class/net/${bridgePort(host)}`;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const oper = (await readFile(`${sys}/operstate`, 'utf8').catch(() => '')).trim();
    // 3 = BR_STATE_FORWARDING
    const state = (await readFile(`${sys}/brport/state`, 'utf8').catch(() => '')).trim();
    if (oper === 'up' && state === '3') return;
    if (Date.now() > deadline) throw new Error(`${bridgePort(host)} not forwarding within ${timeoutMs} ms (operstate ${oper}, port state ${state})`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

async function netnsScript(action: 'up' | 'down'): Promise<ToolResult> {
  return run(['bash', NETNS_SCRIPT, action, '--prefix', PREFIX], 60_000);
}

async function startCluster(): Promise<void> {
  base = await mkdtemp(join(tmpdir(), 'stria-netns-'));
  await chmod(base, 0o755);
  runDir = join(base, 'run');
  for (const d of ['run', 'data', 'mgs', 'mdt0', 'ost0', 'ost1', 'ost2']) await mkdir(join(base, d));
  netnsUp = true; // from here on teardown must take the namespaces down, even a half-built set
  const up = await netnsScript('up');
  assert.equal(up.code, 0, `netns-cluster.sh up failed:\n${up.stdout}\n${up.stderr}`);

  await startDaemon('mgs', 'mds', ['mgs', '--dir', join(base, 'mgs'), '--listen', `${ADDR.mds}@tcp`], 'MGS started');
  const mds = await startDaemon(
    'mds',
    'mds',
    ['mds', '--fsname', FSNAME, '--mgs', MGS_NID, '--store', join(base, 'mdt0'), '--listen', `${ADDR.mds}:9881@tcp`],
    'MDT started',
  );
  for (const n of [1, 2, 3] as const) await startOss(n);
  for (const ost of [0, 1, 2]) {
    await mds.waitForLog((r) => r.msg === 'OST precreate pool ready' && r.ost === ost, `precreated objects on OST${ost}`);
  }
  await startMount('client1');
  await startMount('client2');
}

/**
 * Ends everything this file started; safe to call again. Returns what it could not clean.
 * `strict`: the cluster is whole, so each mount process must also end by itself after
 * `stria umount` (with a server still gone it may take longer: it is then just killed).
 */
async function teardown(strict: boolean): Promise<string[]> {
  const problems: string[] = [];
  killTools();
  // A read stuck on a dead OST would keep its mount busy.
  if (waitingRead?.running) await waitingRead.kill9().catch((e: Error) => problems.push(e.message));
  for (const m of mounts) {
    if (m.proc.running) {
      // the mount process exits by itself once its mount is gone
      const u = await run([process.execPath, STRIA_BIN, 'umount', m.dir], 20_000);
      if (u.code !== 0 && strict) problems.push(`stria umount ${m.dir} on ${m.host}: ${u.stderr.trim()}`);
      await Promise.race([m.proc.exited, new Promise((r) => setTimeout(r, 15_000).unref())]);
      if (m.proc.running && strict) problems.push(`the mount process of ${m.host} did not exit after stria umount:\n${m.proc.tail()}`);
    }
    if (m.proc.running) await m.proc.kill9().catch((e: Error) => problems.push(e.message));
    if (await mountedAt(m.dir)) await run(['umount', '-l', m.dir], 20_000);
    if (await mountedAt(m.dir)) problems.push(`${m.dir} is still mounted`);
  }
  for (const p of [...procs].reverse()) {
    if (p.running) await p.kill9().catch((e: Error) => problems.push(e.message));
  }
  if (netnsUp) {
    const down = await netnsScript('down');
    if (down.code !== 0) problems.push(`netns-cluster.sh down failed:\n${down.stdout}\n${down.stderr}`);
    else netnsUp = false;
  }
  if (base) {
    await rm(base, { recursive: true, force: true }).catch((e: Error) => problems.push(`cannot remove ${base}: ${e.message}`));
  }
  return problems;
}

/**
 * Interrupted (Ctrl-C, or the runner's SIGTERM): no hook will run, so clean up here,
 * synchronously and best effort, before going.
 */
function cleanupOnSignal(signal: NodeJS.Signals): void {
  killTools();
  for (const p of procs) {
    try {
      if (p.running) process.kill(p.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const m of mounts) spawnSync('umount', ['-l', m.dir], { timeout: 10_000 });
  // no output: the runner that would read it may be gone already
  if (netnsUp) spawnSync('bash', [NETNS_SCRIPT, 'down', '--prefix', PREFIX], { timeout: 30_000, stdio: 'ignore' });
  if (base) rmSync(base, { recursive: true, force: true });
  process.exit(signal === 'SIGINT' ? 130 : 143);
}

// ---- the workload ----

const STRIPE = 64 * KiB;
/**
 * Created (default layout), written and read through client2's mount while client1 is cut
 * off; client1 reads it once back. Not made with `lfs setstripe`: see the client1 step.
 */
const fromClient2 = { name: 'from-client2', data: pseudoRandomBuffer(768 * KiB + 13, 0x0f02) };

const files = {
  stripedA: { name: 'striped-a', setstripe: ['-c', '3', '-S', '64K'], data: pseudoRandomBuffer(1024 * KiB + 12_345, 0x0a11), osts: [0, 1, 2], stripeSize: STRIPE },
  stripedB: { name: 'striped-b', setstripe: ['-c', '3', '-S', '64K'], data: pseudoRandomBuffer(5 * 3 * STRIPE + 777, 0x0b22), osts: [0, 1, 2], stripeSize: STRIPE },
  ost0: { name: 'on-ost0', setstripe: ['-c', '1', '-i', '0'], data: pseudoRandomBuffer(200 * KiB + 3, 0x0c00), osts: [0] },
  ost1: { name: 'on-ost1', setstripe: ['-c', '1', '-i', '1'], data: pseudoRandomBuffer(300 * KiB + 5, 0x0c01), osts: [1] },
  ost2: { name: 'on-ost2', setstripe: ['-c', '1', '-i', '2'], data: pseudoRandomBuffer(100 * KiB + 7, 0x0c02), osts: [2] },
  // Written by client1, read by nobody until oss2 is down: client2 has nothing of it cached,
  // so its read must reach OST0001.
  held: { name: 'held-on-ost1', setstripe: ['-c', '1', '-i', '1'], data: pseudoRandomBuffer(256 * KiB + 9, 0x0d01), osts: [1] },
  // Created and written while oss2 is down.
  during: { name: 'during-outage-ost0', setstripe: ['-c', '1', '-i', '0'], data: pseudoRandomBuffer(512 * KiB + 11, 0x0e00), osts: [0] },
} satisfies Record<string, WorkFile>;

function lfs(...args: string[]): string[] {
  return [process.execPath, LFS_BIN, ...args];
}

/** The data through a client's mount (dd, fsync'd so it is on the OSTs); creates the file if new. */
async function writeOn(host: 'client1' | 'client2', name: string, data: Buffer): Promise<void> {
  const src = join(base, 'data', name);
  await writeFile(src, data);
  await onHostOk(host, ['dd', `if=${src}`, `of=${join(mountDir(host), name)}`, 'bs=64k', 'conv=fsync', 'status=none']);
}

/** lfs setstripe, then the data through the mount, all on client1. */
async function createAndWrite(f: WorkFile): Promise<void> {
  await onHostOk('client1', lfs('setstripe', ...f.setstripe, join(mountDir('client1'), f.name)));
  await writeOn('client1', f.name, f.data);
}

async function checkLayout(f: WorkFile): Promise<void> {
  const out = await onHostOk('client1', lfs('getstripe', join(mountDir('client1'), f.name)));
  const count = /lmm_stripe_count:\s+(\d+)/.exec(out);
  assert.equal(Number(count?.[1]), f.osts.length, `${f.name} stripe count:\n${out}`);
  if (f.stripeSize !== undefined) assert.equal(Number(/lmm_stripe_size:\s+(\d+)/.exec(out)?.[1]), f.stripeSize, `${f.name} stripe size:\n${out}`);
  const obdidx = [...out.matchAll(/^\t\s*(\d+)\t\s*\d+\t/gm)].map((m) => Number(m[1]));
  assert.deepEqual([...obdidx].sort(), f.osts, `${f.name} objects on OSTs:\n${out}`);
}

async function readOn(host: 'client1' | 'client2', name: string): Promise<string> {
  const out = await onHostOk(host, ['sha256sum', join(mountDir(host), name)]);
  return out.split(' ')[0]!;
}

interface ServersReport {
  code: number;
  /** target line name ("netfs-OST0001-osc", "MGC10.254.77.11@tcp", ...) -> "active" | "inactive" */
  status: Map<string, string>;
  text: string;
}

/** `lfs check servers MOUNT` on client1, as lines "NAME active." / "NAME inactive." */
async function checkServers(timeoutMs = SERVERS_WAIT_MS): Promise<ServersReport> {
  const r = await onHost('client1', lfs('check', 'servers', mountDir('client1')), timeoutMs);
  const status = new Map<string, string>();
  for (const m of r.stdout.matchAll(/^(\S+) (active|inactive)\.$/gm)) status.set(m[1]!, m[2]!);
  return { code: r.code, status, text: `exit ${r.code}\n${r.stdout}${r.stderr}` };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Polls `lfs check servers` on client1 until `done` holds for its report, with a pause
 * between polls; bounded by `timeoutMs` in all (each poll by the time left) and so in count.
 * Fails with every distinct report seen, and when each of them first came.
 */
async function waitForServers(done: (r: ServersReport) => boolean, what: string, timeoutMs = SERVERS_WAIT_MS): Promise<ServersReport & { polls: number; ms: number }> {
  const start = Date.now();
  const deadline = start + timeoutMs;
  const maxPolls = Math.ceil(timeoutMs / SERVERS_PAUSE_MS) + 1;
  const history: string[] = [];
  let lastText = '';
  for (let polls = 1; ; polls++) {
    const r = await checkServers(Math.max(5_000, deadline - Date.now()));
    if (done(r)) return { ...r, polls, ms: Date.now() - start };
    if (r.text !== lastText) history.push(`after ${Date.now() - start} ms: ${r.text.trim()}`);
    lastText = r.text;
    if (polls >= maxPolls || Date.now() + SERVERS_PAUSE_MS > deadline) {
      throw new Error(`lfs check servers on client1: ${what} not reached within ${timeoutMs} ms (${polls} polls). Reports seen:\n${history.join('\n---\n')}`);
    }
    await sleep(SERVERS_PAUSE_MS);
  }
}

const ostOsc = (i: number): string => `${FSNAME}-OST${i.toString(16).toUpperCase().padStart(4, '0')}-osc`;
const MDC = `${FSNAME}-MDT0000-mdc`;
const MGC = `MGC${MGS_NID}`;
const TARGETS = [MDC, ostOsc(0), ostOsc(1), ostOsc(2)];
const allActive = (r: ServersReport): boolean => r.code === 0 && [MGC, ...TARGETS].every((n) => r.status.get(n) === 'active');

// ---- the scenario ----

const skip = skipReason();
if (skip) console.log(`# multihost-netns: skipped: ${skip}`);

describe('multi-host cluster in network namespaces', { skip }, () => {
  /** the first step that failed: the steps after it depend on it and are skipped */
  let broken: string | undefined;
  const step = (name: string, timeout: number, body: (t: TestContext) => Promise<void>): void => {
    test(name, { timeout }, async (t: TestContext) => {
      if (broken) return t.skip(`an earlier step failed: ${broken}`);
      try {
        await body(t);
      } catch (e) {
        broken = name;
        throw e;
      }
    });
  };

  before(async () => {
    process.once('SIGINT', cleanupOnSignal).once('SIGTERM', cleanupOnSignal);
    try {
      await startCluster();
    } catch (e) {
      broken = 'starting the cluster';
      throw e;
    }
  }, { timeout: 120_000 });

  after(async () => {
    process.off('SIGINT', cleanupOnSignal).off('SIGTERM', cleanupOnSignal);
    const problems = await teardown(false);
    assert.deepEqual(problems, [], 'teardown');
  }, { timeout: 120_000 });

  step('each role runs in its own namespace; both client mounts are visible here', 30_000, async () => {
    for (const [label, host] of [['mgs', 'mds'], ['mds', 'mds'], ['oss1', 'oss1'], ['oss2', 'oss2'], ['oss3', 'oss3']] as const) {
      const pids = (await runOk(['ip', 'netns', 'pids', nsName(host)])).split('\n');
      assert.ok(pids.includes(String(daemons.get(label)!.pid)), `${label} (pid ${daemons.get(label)!.pid}) is in ${nsName(host)}: ${pids.join(' ')}`);
    }
    for (const m of mounts) {
      const line = (await procMounts()).find((l) => l.split(' ')[1] === m.dir);
      assert.ok(line, `${m.dir} (mounted on ${m.host}) appears in /proc/mounts`);
      assert.equal(line.split(' ')[2], 'fuse.stria');
      assert.equal(line.split(' ')[0], SPEC);
      const pids = (await runOk(['ip', 'netns', 'pids', nsName(m.host)])).split('\n');
      assert.ok(pids.includes(String(m.proc.pid)), `the mount process is in ${nsName(m.host)}`);
    }
  });

  step('files striped over all three OSTs and files on single OSTs: written on client1, read on client2', 90_000, async () => {
    for (const f of [files.stripedA, files.stripedB, files.ost0, files.ost1, files.ost2, files.held]) {
      await createAndWrite(f);
      await checkLayout(f);
    }
    for (const f of [files.stripedA, files.stripedB, files.ost0, files.ost1, files.ost2]) {
      assert.equal(await readOn('client2', f.name), sha256(f.data), `${f.name} read on client2`);
    }
    const before = await checkServers();
    assert.equal(before.code, 0, before.text);
    for (const i of [0, 1, 2]) assert.equal(before.status.get(ostOsc(i)), 'active', before.text);
  });

  step('oss2 killed and cut off: OST0000 I/O completes, a read from OST0001 waits, lfs check servers says OST0001 inactive', 90_000, async () => {
    const oss2 = daemons.get('oss2')!;
    await oss2.kill9();
    const left = (await runOk(['ip', 'netns', 'pids', nsName('oss2')])).trim();
    assert.equal(left, '', `no process left on oss2: ${left}`);
    await runOk(['ip', 'link', 'set', bridgePort('oss2'), 'down']);

    const held = files.held;
    const read = startOnHost('read of held-on-ost1 on client2', 'client2', ['sha256sum', join(mountDir('client2'), held.name)]);
    waitingRead = read;
    let settled = false;
    void read.exited.then(() => (settled = true));

    // started after the read, finished while it still waits
    await createAndWrite(files.during);
    await checkLayout(files.during);
    assert.equal(await readOn('client1', files.during.name), sha256(files.during.data), 'new OST0000 file read back on client1');
    assert.equal(await readOn('client1', files.ost0.name), sha256(files.ost0.data), 'existing OST0000 file read on client1');
    assert.equal(settled, false, `the read from OST0001 ended while oss2 was down (${read.exitStatus}):\n${read.tail()}`);

    // client2's OST0001 import lost its connection when oss2 died; client1's too
    const down = await waitForServers((r) => r.status.get(ostOsc(1)) === 'inactive', 'OST0001 inactive');
    assert.equal(down.status.get(ostOsc(1)), 'inactive', down.text);
    assert.equal(down.status.get(ostOsc(0)), 'active', down.text);
    assert.equal(down.status.get(ostOsc(2)), 'active', down.text);
    assert.equal(down.status.get(`${FSNAME}-MDT0000-mdc`), 'active', down.text);
    assert.notEqual(down.code, 0, `an inactive target makes lfs check fail: ${down.text}`);
    assert.equal(settled, false, `the read from OST0001 ended while oss2 was down (${read.exitStatus}):\n${read.tail()}`);
  });

  step('oss2 back on the same address: the waiting read completes with the right data; lfs check servers says all active', 120_000, async () => {
    await runOk(['ip', 'link', 'set', bridgePort('oss2'), 'up']);
    await waitForwarding('oss2');
    await startOss(2);

    const read = waitingRead!;
    await Promise.race([read.exited, new Promise((r) => setTimeout(r, RECOVERY_MS).unref())]);
    assert.equal(read.running, false, `the read from OST0001 did not complete within ${RECOVERY_MS} ms of oss2's return:\n${read.tail()}`);
    assert.equal(read.exitStatus, 'code 0, signal null', `the waiting read failed:\n${read.tail()}`);
    assert.equal(read.lines[0]?.split(' ')[0], sha256(files.held.data), 'the waiting read returned the data written before the outage');
    const client2 = mounts.find((m) => m.host === 'client2')!.proc.lines.join('\n');
    assert.match(client2, new RegExp(`Connection to ${FSNAME}-OST0001 .* was lost`), 'client2 saw OST0001 go');
    assert.match(client2, new RegExp(`Connection restored to ${FSNAME}-OST0001`), 'client2 reconnected to OST0001 and resent');

    // client1 reconnects to OST0001 on its own backoff, not necessarily as soon as client2
    const up = await waitForServers(allActive, 'every target active');
    assert.equal(up.code, 0, up.text);
    for (const i of [0, 1, 2]) assert.equal(up.status.get(ostOsc(i)), 'active', up.text);
    for (const f of [files.stripedA, files.ost1]) {
      assert.equal(await readOn('client1', f.name), sha256(f.data), `${f.name} on client1 after the outage`);
      assert.equal(await readOn('client2', f.name), sha256(f.data), `${f.name} on client2 after the outage`);
    }
  });

  step("client1's link cut: lfs check servers on client1 reports its targets inactive while client2 writes and reads a new file; link back: all active again, client1 reads that file without a remount", 400_000, async (t) => {
    const client1 = mounts.find((m) => m.host === 'client1')!;
    const mds = daemons.get('mds')!;
    const client1Mark = client1.proc.mark;
    const mdsMark = mds.mark;
    await runOk(['ip', 'link', 'set', bridgePort('client1'), 'down']);
    const cutAt = Date.now();

    // Both at once: client2's work runs while client1's imports find out they are cut off.
    // The create in the root directory needs client1's lock on it: the MDS waits for client1
    // to give it back (ldlm_timeout, 20 s), then evicts client1, and the create goes on.
    // Not `lfs setstripe`: lfs's own connection gives up after 10 s, before that eviction.
    const f = fromClient2;
    const [cut, work] = await Promise.allSettled([
      waitForServers((r) => TARGETS.every((n) => r.status.get(n) === 'inactive'), 'MDT0000 and every OST inactive'),
      (async () => {
        await writeOn('client2', f.name, f.data);
        assert.equal(await readOn('client2', f.name), sha256(f.data), `${f.name} read back on client2 while client1 is cut off`);
        return Date.now() - cutAt;
      })(),
    ]);
    const failures = [
      ...(cut.status === 'rejected' ? [`client1's targets never all inactive: ${(cut.reason as Error).message}`] : []),
      ...(work.status === 'rejected' ? [`client2 could not work while client1 was cut off: ${(work.reason as Error).message}`] : []),
    ];
    if (failures.length > 0) {
      const mdsLog = mds.linesSince(mdsMark).filter((l) => /evict|callback/i.test(l)).join('\n');
      throw new Error(`${failures.join('\n\n')}\n\nclient1's mount since the cut:\n${client1.proc.linesSince(client1Mark).slice(-30).join('\n')}\n\nMDS evictions since the cut:\n${mdsLog}`);
    }
    const inactive = (cut as PromiseFulfilledResult<ServersReport & { polls: number; ms: number }>).value;
    t.diagnostic(`client1 cut: targets all inactive ${inactive.ms} ms after the cut (${inactive.polls} polls); client2's create+write+read done ${(work as PromiseFulfilledResult<number>).value} ms after the cut`);
    // the MGC line comes from a fresh connection from client1's namespace: no way through either
    assert.equal(inactive.status.get(MGC), 'inactive', inactive.text);
    assert.notEqual(inactive.code, 0, `inactive targets make lfs check fail: ${inactive.text}`);
    assert.ok(client1.proc.running, `client1's mount process is still running while cut off:\n${client1.proc.tail()}`);

    await runOk(['ip', 'link', 'set', bridgePort('client1'), 'up']);
    await waitForwarding('client1');
    const upAt = Date.now();
    const back = await waitForServers(allActive, 'every target active again');
    t.diagnostic(`client1 back: every target active ${back.ms} ms after the link came up (${back.polls} polls)`);
    assert.equal(back.code, 0, back.text);

    // recovered in place: the same mount process, still mounted
    assert.ok(client1.proc.running, `client1's mount process ended:\n${client1.proc.tail()}`);
    assert.ok(await mountedAt(client1.dir), `${client1.dir} is still mounted on client1`);
    assert.equal(await readOn('client1', f.name), sha256(f.data), `${f.name}, written on client2 during the cut, read on client1`);
    assert.equal(await readOn('client1', files.stripedA.name), sha256(files.stripedA.data), `${files.stripedA.name} read on client1 after the cut`);

    const log = client1.proc.linesSince(client1Mark).join('\n');
    for (const target of [`${FSNAME}-MDT0000`, `${FSNAME}-OST0000`, `${FSNAME}-OST0001`, `${FSNAME}-OST0002`]) {
      assert.match(log, new RegExp(`Connection to ${target} .* was lost`), `client1 saw ${target} go`);
      assert.match(log, new RegExp(`Connection restored to ${target}`), `client1 reconnected to ${target}`);
    }
    const evictions = [...new Set([...log.matchAll(/evicted by (\S+);/g)].map((m) => m[1]))];
    t.diagnostic(`client1 evicted while cut off by: ${evictions.length > 0 ? evictions.join(', ') : 'none'}; link up to client1's reads done: ${Date.now() - upAt} ms`);
  });

  test('teardown leaves no namespace, mount, interface or process behind', { timeout: 120_000 }, async () => {
    const dirs = mounts.map((m) => m.dir);
    const problems = await teardown(broken === undefined);
    assert.deepEqual(problems, [], 'teardown');
    const ns = (await runOk(['ip', 'netns', 'list'])).split('\n').filter((l) => l.startsWith(PREFIX));
    assert.deepEqual(ns, [], 'namespaces left');
    const links = (await runOk(['ip', '-o', 'link', 'show'])).split('\n').filter((l) => l.includes(` ${PREFIX}`));
    assert.deepEqual(links, [], 'interfaces left');
    const fuse = (await procMounts()).filter((l) => l.includes('fuse') && dirs.some((d) => l.split(' ')[1] === d));
    assert.deepEqual(fuse, [], 'FUSE mounts left');
    const alive = [
      ...procs.filter((p) => p.running).map((p) => `${p.label} (pid ${p.pid})`),
      ...[...tools].map((t) => `${t.spawnargs.join(' ')} (pid ${t.pid})`),
    ];
    assert.deepEqual(alive, [], 'processes left');
    assert.equal(existsSync(base), false, `${base} removed`);
  });
});
