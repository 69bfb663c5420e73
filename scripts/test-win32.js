#!/usr/bin/env node
// `npm run test:win32` (on Linux): cross-builds the addon for win32-x64 and
// runs the compiled mocha suite inside the official Windows node.exe of each
// supported Node line (22, 24, 26), under Wine 10 (scripts/wine.js), and the
// Windows-specific part of it in a renamed copy of the newest node.exe. Fails when
// any test fails or any run ends without a mocha summary.
//
// With --if-available (what `npm test` uses) a machine without the tools gets
// a loud notice that the Windows suite did NOT run, instead of a failure.
// With --newest, only the newest line runs (a quicker check while working);
// with --line=N, only line N (22, 24, 26). `npm test` (scripts/test-all.js)
// splits the lines over two runs: --lines=22,24 with the renamed host, and,
// once the Linux suite has ended, --lines=26 --prepared beside it (the first
// run built the addons and Wine's chroot, and said so over IPC); both with
// --keep-wineserver, as test-all.js stops Wine's server once both have ended.
'use strict';
const { execFileSync, spawn } = require('node:child_process');
const { join } = require('node:path');
const { root, cache, RENAMED_HOST, WIN_VERSIONS, officialNode, renamedNode } = require('./node-builds');
const { MOCHA, banner, runSuite } = require('./suite');
const { INSTALL_HINT, missingTools, ensureWine, spawnWindows, stopWineserver, wineVersion } = require('./wine');
const { exitWhenWritten } = require('./exit');

// What the renamed host runs: the lookup, the IOCTLs, the simulated WFP service and the loader.
const RENAMED_HOST_SPECS = ['windows.test.js', 'socket-handle.test.js', 'wfp-sim.test.js', 'loader.test.js'].map((spec) => `dist-test/${spec}`);

async function main() {
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

  const line = process.argv.find((arg) => arg.startsWith('--line='))?.slice('--line='.length);
  const lines = process.argv.find((arg) => arg.startsWith('--lines='))?.slice('--lines='.length).split(',');
  const newest = WIN_VERSIONS[WIN_VERSIONS.length - 1];
  const chosen = (v) => (line ? v.split('.')[0] === line : lines ? lines.includes(v.split('.')[0]) : true);
  const versions = process.argv.includes('--newest') ? [newest] : WIN_VERSIONS.filter(chosen);
  // The renamed host: a copy of the newest line's exe (of line N's with --line=N), after the lines, in a run of
  // them all, of one line, or of a list with the oldest (test-all.js's first run).
  const renamedHere = process.argv.includes('--newest') || line !== undefined || !lines || lines.includes(WIN_VERSIONS[0].split('.')[0]);
  const renamedVersion = line ? versions[0] : newest;
  // A list is test-all.js's split: the run that prepares fetches every line's node.exe for the other.
  if (!process.argv.includes('--prepared')) await prepare(lines ? WIN_VERSIONS : versions);
  if (process.send) process.send('prepared');
  const wine = wineVersion();
  const passed = [];
  const failed = [];
  try {
    for (const version of versions) {
      const exe = officialNode('win32', version);
      const runtime = `Windows node.exe ${version} under ${wine}`;
      const ok = runSuite(runtime, join(cache, `win32-node-${version}.log`), (log) =>
        spawnWindows(exe, [MOCHA], { WFP_REDIRECT_EXPECT_BUILD: 'mingw' }, log),
      );
      (ok ? passed : failed).push(version);
      if (version !== newest && !line) {
        console.log(`\n=== ${RENAMED_HOST} (node.exe ${version}, renamed): not run in this line; the newest line's renamed copy runs it (the host's name is the addon's concern, not the line's)`);
      }
    }
    // The same binary in a host not named node.exe, as Electron and single-executable apps are:
    // the newest line only. What the name changes is how the addon finds its host (its
    // delay-load hook asks for the process's own image, not "node.exe"), the addon's own code,
    // the same in every line; each line's exports are what the suite above ran against.
    if (renamedHere && renamedVersion) {
      const renamed = runSuite(`${RENAMED_HOST} (node.exe ${renamedVersion}, renamed) under ${wine}`, join(cache, `win32-renamed-${renamedVersion}.log`), (log) =>
        spawnWindows(renamedNode(renamedVersion), [MOCHA, '--no-config', '--reporter', 'spec', '--timeout', '20000', ...RENAMED_HOST_SPECS], { WFP_REDIRECT_EXPECT_BUILD: 'mingw', WFP_REDIRECT_EXPECT_HOST: RENAMED_HOST }, log),
      );
      if (!renamed) failed.push(`${renamedVersion} (renamed)`);
    }
  } finally {
    if (!process.argv.includes('--keep-wineserver')) stopWineserver();
  }
  console.log(
    failed.length === 0
      ? `\ntest:win32: the Windows suite passed in node.exe ${passed.join(', ')}`
      : `\ntest:win32: the Windows suite FAILED in node.exe ${failed.join(', ')}`,
  );
  exitWhenWritten(failed.length === 0 ? 0 : 1);
}

/**
 * Cross-builds the addons, prepares Wine's chroot, fetches the node.exe of
 * `versions` (all of them for test-all.js's split, so that its second run,
 * told --prepared, fetches nothing beside this one) and builds the
 * single-executable proxy. Throws when any fails.
 */
async function prepare(versions) {
  // Wine's chroot (a debootstrap on a fresh machine: mostly download and unpacking) is
  // prepared by a child while the cross-compiler builds the addons beside it.
  const preparing = spawn(process.execPath, ['-e', "require('./scripts/wine').ensureWine()"], { cwd: root, stdio: 'inherit' });
  const prepared = new Promise((resolve) => {
    preparing.on('error', resolve);
    preparing.on('close', resolve);
  });
  try {
    execFileSync(process.execPath, [join(__dirname, 'build-win32.js')], { cwd: root, stdio: 'inherit' });
  } catch (error) {
    preparing.kill();
    throw error;
  }
  await prepared;
  // Again in this process: a no-op when the child succeeded, and the child's failure as an exception when not.
  ensureWine();
  for (const version of versions) officialNode('win32', version);
  // The proxy as one .exe, which test/sea.test.ts runs.
  execFileSync(process.execPath, [join(__dirname, 'build-sea.js')], { cwd: root, stdio: 'inherit' });
}

void main();
