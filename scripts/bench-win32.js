#!/usr/bin/env node
// `npm run bench:win32` (on Linux): the benchmarks inside Windows node.exe of
// the newest supported line under Wine 10 (scripts/wine.js), where the call
// overhead is compared with a raw WSAIoctl loop in C on the same socket; then
// the relay benchmark with the proxies in node.exe (bench/relay.ts --windows:
// --transparent against the simulated WFP service versus --upstream).
// Writes bench/results-win32.json and bench/results-relay-win32.json (or,
// with --quick, under dist-bench/).
// Needs what `npm run test:win32` needs.
'use strict';
const { execFileSync, spawnSync } = require('node:child_process');
const { join } = require('node:path');
const { root, cache, WIN_VERSIONS, officialNode } = require('./node-builds');
const { INSTALL_HINT, missingTools, ensureWine, runWindows, stopWineserver } = require('./wine');
const { exitWhenWritten } = require('./exit');

const missing = missingTools();
if (missing.length) {
  console.error(`bench:win32 cannot run: ${missing.join(', ')} missing. ${INSTALL_HINT}`);
  process.exit(1);
}
const quick = process.argv.includes('--quick');
execFileSync(process.execPath, [join(__dirname, 'build-win32.js')], { cwd: root, stdio: 'inherit' });
ensureWine();
const version = WIN_VERSIONS[WIN_VERSIONS.length - 1];
const out = quick ? join(root, 'dist-bench', 'results-win32-quick.json') : join(root, 'bench', 'results-win32.json');
const args = ['--expose-gc', join(root, 'dist-bench', 'run.js'), ...(quick ? ['--quick'] : [])];
let status;
try {
  status = runWindows(officialNode('win32', version), args, { WFP_REDIRECT_BENCH_OUT: out }, join(cache, `bench-win32-${version}.log`)).status ?? 1;
  // The load and the server native, in the official Linux build of the same line.
  const relay = spawnSync(officialNode('linux', version), [join(root, 'dist-bench', 'relay.js'), '--windows', ...(quick ? ['--quick'] : [])], { stdio: 'inherit' });
  if (relay.status !== 0) status = relay.status ?? 1;
} finally {
  stopWineserver();
}
exitWhenWritten(status);
