#!/usr/bin/env node
// `npm run test:package` (and part of `npm test`): packs the package and checks
// it as users install it, with no compiler and no install scripts
// (test/package.check.ts), once, in the newest supported Linux Node. Prints one
// "=== RESULT" line as the suites do.
//
// Packing builds all three prebuilds, so it needs Linux x64 with g++,
// g++-aarch64-linux-gnu and mingw-w64. With --if-available (what `npm test`
// uses) a machine without them gets a loud notice that the check did NOT run.
'use strict';
const { spawnSync } = require('node:child_process');
const { join } = require('node:path');
const { root, cache, LINUX_VERSIONS, officialNode } = require('./node-builds');
const { MOCHA, banner, runSuite } = require('./suite');
const { exitWhenWritten } = require('./exit');

const TOOLS = ['g++', 'aarch64-linux-gnu-g++', 'x86_64-w64-mingw32-g++-posix', 'x86_64-w64-mingw32-dlltool'];
const APT = 'apt-get install g++ g++-aarch64-linux-gnu g++-mingw-w64-x86-64-posix binutils-mingw-w64-x86-64 qemu-user libc6-arm64-cross';

function main() {
  const missing = TOOLS.filter((tool) => spawnSync(tool, ['--version'], { stdio: 'ignore' }).status !== 0);
  if (process.platform !== 'linux' || process.arch !== 'x64') missing.unshift('Linux x64');
  if (missing.length) {
    banner([`THE PACKAGE CHECK WAS NOT RUN: ${missing.join(', ')} missing (npm pack builds every prebuild).`, `Install them (Debian): ${APT}`]);
    process.exit(process.argv.includes('--if-available') ? 0 : 1);
  }
  const version = LINUX_VERSIONS[LINUX_VERSIONS.length - 1];
  const spec = join(root, 'dist-test', 'package.check.js');
  const ok = runSuite(`the packed package in Node ${version}`, join(cache, 'package-check.log'), (log) =>
    spawnSync(officialNode('linux', version), [MOCHA, '--no-config', '--reporter', 'spec', '--timeout', '300000', spec], {
      cwd: root,
      stdio: ['ignore', log, log],
      timeout: 15 * 60 * 1000,
    }),
  );
  exitWhenWritten(ok ? 0 : 1);
}

main();
