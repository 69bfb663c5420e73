// Runs the compiled mocha suite (dist-test/) in one runtime and judges the
// run by mocha's own summary, not by the exit code alone: a runner that
// crashed before printing a summary has not passed, whatever it exited with.
//
// Each run ends with one line that .ci/run adds up:
//   === RESULT <runtime>: <n> passing, <n> failing, <n> pending, exit <code>
// or, when mocha printed no summary:
//   === RESULT <runtime>: no mocha summary (the runner crashed), exit <code>
'use strict';
const { closeSync, mkdirSync, openSync, readFileSync } = require('node:fs');
const { spawnSync } = require('node:child_process');
const { dirname, join } = require('node:path');
const { root } = require('./node-builds');

const MOCHA = join(root, 'node_modules', 'mocha', 'bin', 'mocha.js');

/** mocha's spec-reporter summary in `text`, or null when there is none. */
function summaryOf(text) {
  const count = (word) => {
    const match = new RegExp(`^ +(\\d+) ${word}\\b`, 'm').exec(text);
    return match ? Number(match[1]) : 0;
  };
  if (!/^ +\d+ passing\b/m.test(text)) return null;
  return { passing: count('passing'), failing: count('failing'), pending: count('pending') };
}

/**
 * Runs `spawn(logFd)`, which must start a program with its stdout and stderr
 * on that fd (a file: under Wine a pipe breaks console.log) and return
 * spawnSync's result; then prints what it wrote, unless `echo` is false.
 * Returns the result and the text.
 */
// A mocha run that has not ended by then is stopped and counts as failed: a
// test that leaves a handle open keeps its process alive after the summary.
const RUN_TIMEOUT_MS = 20 * 60 * 1000;

function runLogged(logFile, spawn, echo = true) {
  mkdirSync(dirname(logFile), { recursive: true });
  const log = openSync(logFile, 'w');
  let result;
  try {
    result = spawn(log);
  } finally {
    closeSync(log);
  }
  const text = readFileSync(logFile, 'utf8').replace(/\r\n/g, '\n');
  if (echo) process.stdout.write(text);
  if (result.error) console.log(`could not start: ${result.error.message}`);
  return { result, text };
}

/**
 * The verdict on one mocha run from its exit and its output: passed only with
 * a summary, no failing test and exit 0. `line` says what was seen.
 */
function verdictOf(result, text) {
  const timedOut = result.error?.code === 'ETIMEDOUT' ? `killed after ${RUN_TIMEOUT_MS / 60000} min, ` : '';
  const exit = timedOut + (result.status ?? result.signal ?? 'none');
  const summary = summaryOf(text);
  if (!summary) return { ok: false, summary, line: `no mocha summary (the runner crashed), exit ${exit}` };
  return {
    ok: result.status === 0 && summary.failing === 0,
    summary,
    line: `${summary.passing} passing, ${summary.failing} failing, ${summary.pending} pending, exit ${exit}`,
  };
}

/**
 * Runs the suite through `spawn` (as for runLogged), prints the RESULT line,
 * and returns whether the suite passed.
 */
function runSuite(runtime, logFile, spawn) {
  console.log(`\n=== ${runtime}: the mocha suite`);
  const { result, text } = runLogged(logFile, spawn);
  const verdict = verdictOf(result, text);
  console.log(`=== RESULT ${runtime}: ${verdict.line}`);
  return verdict.ok;
}

/** Runs the suite in a Linux `node` binary, with `env` added to this process's environment. */
function runLinuxSuite(runtime, node, env, logFile) {
  return runSuite(runtime, logFile, (log) =>
    spawnSync(node, [MOCHA], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', log, log], timeout: RUN_TIMEOUT_MS }),
  );
}

function banner(lines) {
  const rule = '!'.repeat(78);
  console.log(['', rule, ...lines.map((line) => `!!! ${line}`), rule, ''].join('\n'));
}

module.exports = { MOCHA, RUN_TIMEOUT_MS, runLogged, runSuite, runLinuxSuite, summaryOf, verdictOf, banner };
