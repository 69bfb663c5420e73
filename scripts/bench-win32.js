#!/usr/bin/env node
// `npm run bench:win32` (on Linux): the benchmarks inside Windows node.exe
// under Wine, where the call overhead is compared with a raw WSAIoctl loop in
// C on the same socket. Writes bench/results-win32.json (or, with --quick,
// under dist-bench/). Needs what `npm run test:win32` needs.
'use strict';
const { spawnSync } = require('node:child_process');
const { closeSync, openSync, readFileSync } = require('node:fs');
const { join } = require('node:path');
const { cache, found, sh, windowsNode, winePrefix, wineEnv, WINE_CANDIDATES, VERSIONS } = require('./test-win32');

const root = join(__dirname, '..');
const quick = process.argv.includes('--quick');
const wine = WINE_CANDIDATES.find(found);
if (!wine) {
  console.error('bench:win32 needs Wine: apt-get install wine64 g++-mingw-w64-x86-64-posix binutils-mingw-w64-x86-64');
  process.exit(1);
}
sh(process.execPath, [join(__dirname, 'build-win32.js')]);
const prefix = winePrefix(wine);
const version = VERSIONS[VERSIONS.length - 1];
const logFile = join(cache, `bench-win32-${version}.log`);
const log = openSync(logFile, 'w');
const out = quick ? join(root, 'dist-bench', 'results-win32-quick.json') : join(root, 'bench', 'results-win32.json');
const env = { ...wineEnv(prefix), WFP_REDIRECT_UNDER_WINE: '1', WFP_REDIRECT_BENCH_OUT: out };
const args = ['--expose-gc', join(root, 'dist-bench', 'run.js'), ...(quick ? ['--quick'] : [])];
const result = spawnSync(wine, [windowsNode(version), ...args], { cwd: root, env, stdio: ['ignore', log, log] });
closeSync(log);
process.stdout.write(readFileSync(logFile, 'utf8').replace(/\r\n/g, '\n'));
spawnSync(wine.replace(/wine(64)?$/, 'wineserver'), ['-k'], { env: wineEnv(prefix), stdio: 'ignore' });
process.exit(result.error ? 1 : result.status ?? 1);
