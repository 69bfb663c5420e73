#!/usr/bin/env node
// `npm run bench:win32` (on Linux): the benchmarks inside Windows node.exe of
// the newest supported line under Wine 10 (scripts/wine.js), where the call
// overhead is compared with a raw WSAIoctl loop in C on the same socket.
// Writes bench/results-win32.json (or, with --quick, under dist-bench/).
// Needs what `npm run test:win32` needs.
'use strict';
const { execFileSync } = require('node:child_process');
const { join } = require('node:path');
const { root, cache, WIN_VERSIONS, officialNode } = require('./node-builds');
const { INSTALL_HINT, missingTools, ensureWine, runWindows, stopWineserver } = require('./wine');

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
let result;
try {
  result = runWindows(officialNode('win32', version), args, { WFP_REDIRECT_BENCH_OUT: out }, join(cache, `bench-win32-${version}.log`));
} finally {
  stopWineserver();
}
process.exit(result.status ?? 1);
