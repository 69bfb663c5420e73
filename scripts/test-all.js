#!/usr/bin/env node
// `npm test` after the builds: the Linux suite (scripts/test-linux.js) and the
// Windows suite under Wine (scripts/test-win32.js --if-available) side by
// side, then the package check (scripts/test-package.js --if-available). Side
// by side because most of each run is spent waiting (timers, peers, Wine's
// server); they share nothing (the Linux tests' kernel redirects live in
// network namespaces of their own, the Windows suite in Wine's loopback).
// Two runs at a time, always: the Windows suite's lines are split over two
// runs, the older lines (with the renamed host) from the start and the newest
// once the Linux suite has ended and the first run has prepared Wine and the
// addons (it says so over IPC), so that the Linux suite's place does not sit
// idle while the Windows lines go one after another. The package check comes
// last, alone: it starts Wine too; Wine's server is stopped once both Windows
// runs have ended.
//
// The Linux suite's output is shown as it comes; each Windows run's is held
// until the run before it has ended, so that none is interleaved with another.
// Exits 1 when any failed; each prints its own RESULT lines.
//
//   node scripts/test-all.js            side by side
//   node scripts/test-all.js --serial   one after the other (a machine too small for both)
'use strict';
const { spawn, spawnSync } = require('node:child_process');
const { join } = require('node:path');
const { WIN_VERSIONS } = require('./node-builds');
const { missingTools, stopWineserver } = require('./wine');
const { exitWhenWritten } = require('./exit');

const script = (name) => join(__dirname, name);
// The Windows lines of the first run, and the newest's, which runs beside it once the Linux suite has ended
// (with one line only, the first run has it).
const lineOf = (version) => version.split('.')[0];
const SPLIT = WIN_VERSIONS.length > 1;
const OLDER_LINES = WIN_VERSIONS.slice(0, SPLIT ? -1 : undefined).map(lineOf).join(',');
const NEWEST_LINE = lineOf(WIN_VERSIONS[WIN_VERSIONS.length - 1]);

// A run that has exited is waited for this long more for the rest of its
// output: its pipes (and an IPC channel) are inherited by what it started, and
// one of those left running (Wine's server, kept for the other Windows run)
// must not hold npm test open.
const FLUSH_AFTER_EXIT_MS = 5_000;

/**
 * Runs `file args` with its output held (or passed through), and an IPC
 * channel when `ipc`; resolves with its exit code and what it held.
 */
function start(args, hold, ipc = false) {
  const child = spawn(process.execPath, args, { stdio: ['ignore', hold ? 'pipe' : 'inherit', hold ? 'pipe' : 'inherit', ...(ipc ? ['ipc'] : [])] });
  // Resolves once the child says it is prepared (test-win32.js), or false if it ends first.
  const prepared = new Promise((resolve) => {
    child.on('message', (message) => message === 'prepared' && resolve(true));
    child.on('exit', () => resolve(false));
  });
  const held = [];
  let release;
  if (hold) {
    const take = (chunk) => (release ? process.stdout.write(chunk) : held.push(chunk));
    child.stdout.on('data', take);
    child.stderr.on('data', take);
  }
  const done = new Promise((resolve) => {
    child.on('error', (error) => resolve(`could not start: ${error.message}`));
    child.on('close', (code, signal) => resolve(code ?? signal));
    child.on('exit', (code, signal) => setTimeout(() => resolve(code ?? signal), FLUSH_AFTER_EXIT_MS).unref());
  });
  return {
    done,
    prepared,
    /** From now on its output goes straight through; what it held is written first. */
    release() {
      for (const chunk of held.splice(0)) process.stdout.write(chunk);
      release = true;
    },
  };
}

async function main() {
  const serial = process.argv.includes('--serial');
  const statuses = [];
  if (serial) {
    for (const args of [[script('test-linux.js')], [script('test-win32.js'), '--if-available']]) {
      statuses.push(spawnSync(process.execPath, args, { stdio: 'inherit' }).status);
    }
  } else {
    const linux = start([script('test-linux.js')], false);
    const windows = start([script('test-win32.js'), '--if-available', `--lines=${OLDER_LINES}`, '--keep-wineserver'], true, true);
    statuses.push(await linux.done);
    // Only where the first run got as far as preparing: without the tools it has said loudly that nothing ran.
    const newest = SPLIT && process.platform === 'linux' && missingTools().length === 0 && (await windows.prepared)
      ? start([script('test-win32.js'), `--lines=${NEWEST_LINE}`, '--prepared', '--keep-wineserver'], true)
      : undefined;
    console.log('\ntest: the Linux suite has ended; the Windows suite, which ran beside it:');
    windows.release();
    const older = await windows.done;
    if (newest) {
      console.log(`\ntest: node.exe ${NEWEST_LINE}, which ran beside the other lines once the Linux suite had ended:`);
      newest.release();
    }
    const newestStatus = newest ? await newest.done : older;
    stopWineserver();
    statuses.push(older === 0 && newestStatus === 0 ? 0 : 1);
  }
  statuses.push(spawnSync(process.execPath, [script('test-package.js'), '--if-available'], { stdio: 'inherit' }).status);
  const failed = ['the Linux suite', 'the Windows suite', 'the package check'].filter((_, i) => statuses[i] !== 0);
  console.log(failed.length ? `\ntest: FAILED: ${failed.join(', ')}` : '\ntest: the Linux suite, the Windows suite and the package check passed (or said loudly what they could not run)');
  exitWhenWritten(failed.length ? 1 : 0);
}

void main();
