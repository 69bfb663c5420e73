// Runs the compiled mocha suite (dist-test/) in one runtime and judges the
// run by mocha's own summary, not by the exit code alone: a runner that
// crashed before printing a summary has not passed, whatever it exited with.
//
// Each run ends with one line that .ci/run adds up:
//   === RESULT <runtime>: <n> passing, <n> failing, <n> pending, exit <code>
// or, when mocha printed no summary:
//   === RESULT <runtime>: no mocha summary (the runner crashed), exit <code>
// then how long it took (=== TOOK <runtime>: <n> s) and, for a run that did
// not pass, its failures, each line as "=== | <line>".
// A run that printed its summary and then did not exit within
// SUMMARY_EXIT_MS is described and killed (scripts/suite-watchdog.js); its
// <code> then reads "hung 60 s after its summary, killed, SIGKILL".
'use strict';
const { closeSync, mkdirSync, openSync, readFileSync } = require('node:fs');
const { spawnSync } = require('node:child_process');
const { dirname, join } = require('node:path');
const { MessageChannel, Worker, receiveMessageOnPort } = require('node:worker_threads');
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

// A mocha run that has not ended by then is stopped and counts as failed.
const RUN_TIMEOUT_MS = 20 * 60 * 1000;
// Once mocha has printed its summary, the run must exit within this (a
// handle left open, or Node hung in its own exit, keeps it alive).
const SUMMARY_EXIT_MS = Number(process.env.WFP_REDIRECT_SUMMARY_EXIT_MS) || 60 * 1000;

/**
 * Starts the watchdog of a run logged to `logFile` (a worker thread: this one
 * waits in spawnSync). stop() ends it and returns how long the run had hung
 * after its summary when the watchdog killed it, or undefined.
 */
function startWatchdog(logFile, boundMs) {
  const flag = new SharedArrayBuffer(4);
  const { port1, port2 } = new MessageChannel();
  // Its stdout and stderr (it writes neither) are not piped into ours: a pipe per run, each ended only once the
  // event loop runs, piled up one 'error' listener per run on process.stdout while spawnSync held the thread.
  const worker = new Worker(join(__dirname, 'suite-watchdog.js'), {
    workerData: { logFile, boundMs, runnerPid: process.pid, flag, port: port2 },
    transferList: [port2],
    stdout: true,
    stderr: true,
  });
  // A watchdog that fails (its log unreadable, say) must not end the runner: the run goes on unwatched, said once
  // the runner's loop turns again.
  worker.on('error', (error) => process.stderr.write(`the suite watchdog failed, so ${logFile} was not watched: ${error.message}\n`));
  worker.unref();
  return {
    stop() {
      Atomics.store(new Int32Array(flag), 0, 1);
      Atomics.notify(new Int32Array(flag), 0);
      void worker.terminate();
      const message = receiveMessageOnPort(port1)?.message;
      port1.close();
      return message?.hungMs;
    },
  };
}

/**
 * Runs `spawn(logFd)`, which must start a program with its stdout and stderr
 * on that fd (a file: under Wine a pipe breaks console.log) and return
 * spawnSync's result; then prints what it wrote, unless `echo` is false.
 * A run still there `summaryExitMs` after printing mocha's summary is killed
 * by the watchdog; its result then has `hungAfterSummaryMs`. Returns the
 * result and the text.
 */
function runLogged(logFile, spawn, echo = true, summaryExitMs = SUMMARY_EXIT_MS) {
  mkdirSync(dirname(logFile), { recursive: true });
  const log = openSync(logFile, 'w');
  const watchdog = startWatchdog(logFile, summaryExitMs);
  let result;
  try {
    result = spawn(log);
  } finally {
    closeSync(log);
    const hungMs = watchdog.stop();
    if (hungMs !== undefined && result) result = { ...result, hungAfterSummaryMs: hungMs };
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
  const hung = result.hungAfterSummaryMs === undefined ? '' : `hung ${result.hungAfterSummaryMs / 1000} s after its summary, killed, `;
  const exit = (hung || timedOut) + (result.status ?? result.signal ?? 'none');
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
  const started = Date.now();
  const { result, text } = runLogged(logFile, spawn);
  const verdict = verdictOf(result, text);
  console.log(`=== RESULT ${runtime}: ${verdict.line}`);
  console.log(`=== TOOK ${runtime}: ${Math.round((Date.now() - started) / 1000)} s`);
  if (!verdict.ok) for (const line of failuresOf(text)) console.log(`=== | ${line}`);
  return verdict.ok;
}

// At most this many lines of a failed run's failures are repeated after its
// RESULT line, which .ci/run prints again at its end (a CI log is often seen only by its tail).
const FAILURE_LINES = 40;

/** mocha's list of failures (after its "N failing" line), or the run's last lines when it printed none. */
function failuresOf(text) {
  const lines = text.split('\n');
  const start = lines.findIndex((line) => /^ +\d+ failing\b/.test(line));
  const shown = start >= 0 ? lines.slice(start + 1) : lines.slice(-FAILURE_LINES);
  const kept = shown.filter((line) => line.trim() !== '' && !/^\s+at /.test(line));
  return kept.length > FAILURE_LINES ? [...kept.slice(0, FAILURE_LINES), `... (${kept.length - FAILURE_LINES} more lines in the run's log)`] : kept;
}

/** mocha's arguments for only `specs` (dist-test/x.test.js, ...), with the settings of .mocharc.json but its list of specs. */
function onlySpecs(specs) {
  return ['--no-config', '--reporter', 'spec', '--timeout', '20000', ...specs];
}

/** Runs the suite (or only `specs`) in a Linux `node` binary, with `env` added to this process's environment. */
function runLinuxSuite(runtime, node, env, logFile, specs = []) {
  const args = [MOCHA, ...(specs.length ? onlySpecs(specs) : [])];
  return runSuite(runtime, logFile, (log) =>
    spawnSync(node, args, { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', log, log], timeout: RUN_TIMEOUT_MS }),
  );
}

function banner(lines) {
  const rule = '!'.repeat(78);
  console.log(['', rule, ...lines.map((line) => `!!! ${line}`), rule, ''].join('\n'));
}

module.exports = { MOCHA, RUN_TIMEOUT_MS, onlySpecs, SUMMARY_EXIT_MS, runLogged, runSuite, runLinuxSuite, summaryOf, verdictOf, banner };
