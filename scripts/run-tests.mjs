#!/usr/bin/env node
// Runs every compiled test file (dist/test/**/*.test.js) with node's test runner,
// one file at a time: cluster tests start real servers and would fight for the CPU.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';

function find(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...find(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const filter = process.argv.slice(2);
let files = find('dist/test');
if (filter.length > 0) files = files.filter((f) => filter.some((s) => f.includes(s)));
if (files.length === 0) {
  console.error('no test files found under dist/test (did the build run?)');
  process.exit(1);
}
// Control sockets of the daemons and mounts the tests start go to a private directory.
const runDir = mkdtempSync(join(tmpdir(), 'stria-run-'));
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=spec', ...files], {
  stdio: 'inherit',
  env: { ...process.env, STRIA_RUN_DIR: runDir },
});
rmSync(runDir, { recursive: true, force: true });
process.exit(r.status ?? 1);
