#!/usr/bin/env node
// `npm run test:win32` (on Linux): cross-builds the addon for win32-x64 and
// runs the compiled mocha suite inside the official Windows node.exe of each
// supported Node line (22, 24, 26), under Wine 10 (scripts/wine.js). Fails
// when any test fails or any run ends without a mocha summary.
//
// With --if-available (what `npm test` uses) a machine without the tools gets
// a loud notice that the Windows suite did NOT run, instead of a failure.
// With --newest, only the newest line runs (a quicker check while working).
'use strict';
const { execFileSync } = require('node:child_process');
const { join } = require('node:path');
const { root, cache, WIN_VERSIONS, officialNode } = require('./node-builds');
const { MOCHA, banner, runSuite } = require('./suite');
const { INSTALL_HINT, missingTools, ensureWine, spawnWindows, stopWineserver, wineVersion } = require('./wine');

function main() {
  const ifAvailable = process.argv.includes('--if-available');
  // Off Linux, `npm test` has already run the suite in this machine's own Node (on Windows, natively).
  if (process.platform !== 'linux' && ifAvailable) process.exit(0);
  const missing = missingTools();
  if (missing.length) {
    banner([
      'THE WINDOWS SUITE WAS NOT RUN: ' + missing.join(', ') + ' missing.',
      'Nothing Windows-specific was tested. Install the tools and run `npm test` again:',
      INSTALL_HINT,
    ]);
    process.exit(ifAvailable ? 0 : 1);
  }

  execFileSync(process.execPath, [join(__dirname, 'build-win32.js')], { cwd: root, stdio: 'inherit' });
  ensureWine();
  const wine = wineVersion();
  const passed = [];
  const failed = [];
  try {
    const versions = process.argv.includes('--newest') ? WIN_VERSIONS.slice(-1) : WIN_VERSIONS;
    for (const version of versions) {
      const exe = officialNode('win32', version);
      const runtime = `Windows node.exe ${version} under ${wine}`;
      const ok = runSuite(runtime, join(cache, `win32-node-${version}.log`), (log) =>
        spawnWindows(exe, [MOCHA], { WFP_REDIRECT_EXPECT_BUILD: 'mingw' }, log),
      );
      (ok ? passed : failed).push(version);
    }
  } finally {
    stopWineserver();
  }
  console.log(
    failed.length === 0
      ? `\ntest:win32: the Windows suite passed in node.exe ${passed.join(', ')}`
      : `\ntest:win32: the Windows suite FAILED in node.exe ${failed.join(', ')}`,
  );
  process.exit(failed.length === 0 ? 0 : 1);
}

main();
