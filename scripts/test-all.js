#!/usr/bin/env node
// `npm test` after the builds: the Linux suite (scripts/test-linux.js) and the
// Windows suite under Wine (scripts/test-win32.js --if-available) side by side,
// then the package check (scripts/test-package.js --if-available). Side by
// side because most of each run is spent waiting (timers, peers, Wine's
// server), so together they take little longer than the Windows suite alone;
// they share nothing (the Linux tests' kernel redirects live in network
// namespaces of their own, the Windows suite in Wine's loopback). The package
// check comes last, alone: it starts Wine too, and the Windows suite stops
// Wine's server when it ends.
//
// The Linux suite's output is shown as it comes; the Windows suite's is held
// until the Linux suite has ended, so neither is interleaved with the other.
// Exits 1 when any of the three failed; each prints its own RESULT lines.
//
//   node scripts/test-all.js            side by side
//   node scripts/test-all.js --serial   one after the other (a machine too small for both)
'use strict';
const { spawn, spawnSync } = require('node:child_process');
const { join } = require('node:path');

const script = (name) => join(__dirname, name);

/** Runs `file args` with its output held (or passed through); resolves with its exit code and what it held. */
function start(args, hold) {
  const child = spawn(process.execPath, args, { stdio: ['ignore', hold ? 'pipe' : 'inherit', hold ? 'pipe' : 'inherit'] });
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
  });
  return {
    done,
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
    const windows = start([script('test-win32.js'), '--if-available'], true);
    statuses.push(await linux.done);
    console.log('\ntest: the Linux suite has ended; the Windows suite, which ran beside it:');
    windows.release();
    statuses.push(await windows.done);
  }
  statuses.push(spawnSync(process.execPath, [script('test-package.js'), '--if-available'], { stdio: 'inherit' }).status);
  const failed = ['the Linux suite', 'the Windows suite', 'the package check'].filter((_, i) => statuses[i] !== 0);
  console.log(failed.length ? `\ntest: FAILED: ${failed.join(', ')}` : '\ntest: the Linux suite, the Windows suite and the package check passed (or said loudly what they could not run)');
  process.exit(failed.length ? 1 : 0);
}

void main();
