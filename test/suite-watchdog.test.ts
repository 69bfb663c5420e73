// scripts/suite.js's watchdog: a run that printed mocha's summary and does not
// exit is described and killed within the bound, and counted as failed; a run
// that exits in time, or prints no summary, is left alone.
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { join } from 'node:path';
import { root } from './proxy-process';
import { runsInOneLineOnly } from './helpers';

interface Logged {
  result: SpawnSyncReturns<Buffer> & { hungAfterSummaryMs?: number };
  text: string;
}
interface Suite {
  runLogged(logFile: string, spawn: (fd: number) => SpawnSyncReturns<Buffer>, echo: boolean, summaryExitMs: number): Logged;
  verdictOf(result: Logged['result'], text: string): { ok: boolean; line: string };
}
/** The runner's module, loaded only where it runs (Linux). */
const suite = (): Suite => require(join(root, 'scripts', 'suite.js')) as Suite;

const FAKE_SUITE = join(__dirname, 'fixtures', 'fake-suite.js');
const BOUND_MS = 2000;

/** Runs the fake suite in `mode` through runLogged, the watchdog's bound 2 s; with the time it took. */
function runFake(mode: 'exits' | 'hangs' | 'silent', timeout = 60_000): Logged & { took: number } {
  const started = Date.now();
  const logFile = join(root, '.cache', 'suite-watchdog-test', `${mode}.log`);
  const logged = suite().runLogged(
    logFile,
    (fd) => spawnSync(process.execPath, [FAKE_SUITE, mode], { stdio: ['ignore', fd, fd], timeout }),
    false,
    BOUND_MS,
  );
  return { ...logged, took: Date.now() - started };
}

/** How .ci/run reads a RESULT line: a failure unless some test failed or it ended "exit 0". */
function ciCountsAsFailure(line: string): boolean {
  return /^=== RESULT .*no mocha summary/.test(line) || (/ 0 failing, [0-9]+ pending, exit /.test(line) && !/exit 0$/.test(line));
}

describe('the test runner\'s watchdog (scripts/suite.js)', function () {
  this.timeout(60_000);
  before(function () {
    if (process.platform !== 'linux') {
      console.warn('    !!! not Linux: the runner and its watchdog run on Linux (they find the run in /proc); not tested here');
      this.skip();
    }
    runsInOneLineOnly(this, "the test runner's watchdog (it runs in the runner's Node)");
  });

  it('kills a run still there 2 s after its summary, with its thread stacks, and counts it as failed', function () {
    const { result, text, took } = runFake('hangs');
    assert.equal(result.hungAfterSummaryMs, BOUND_MS, text);
    assert.equal(result.signal, 'SIGKILL');
    assert.ok(took >= BOUND_MS && took < 20_000, `took ${took} ms`);
    assert.match(text, /=== WATCHDOG: the run printed its summary but had not exited 2 s later/);
    assert.match(text, new RegExp(`pid ${result.pid}: .*fake-suite\\.js hangs`));
    if (process.env.WFP_REDIRECT_QEMU_USER) {
      // npm run test:arm64: the hung node runs in qemu-user, where gdb cannot show its stacks; the watchdog must say so.
      assert.match(text, new RegExp(`pids (\\d+, )*${result.pid}\\b.* run under qemu-\\w+ \\(qemu-user\\): gdb would show qemu's threads`));
      console.warn('    !!! under qemu-user: the hung process\'s gdb stacks are not verified here (gdb sees qemu, not the emulated Node); native Linux only');
    } else {
      // gdb's stacks of the hung node, or a loud line that gdb is missing.
      assert.match(text, /--- thread stacks of pid \d+ \(gdb\):\n(.*\n)*.*(Thread \d|#0 |gdb IS NOT INSTALLED)/);
    }
    assert.match(text, new RegExp(`=== WATCHDOG: killing pids ${result.pid}\\b`));
    const verdict = suite().verdictOf(result, text);
    assert.equal(verdict.ok, false);
    assert.equal(verdict.line, '3 passing, 0 failing, 1 pending, exit hung 2 s after its summary, killed, SIGKILL');
    assert.ok(ciCountsAsFailure(`=== RESULT Linux Node x: ${verdict.line}`));
  });

  it('leaves alone a run that exits within the bound after its summary (1.5 s of 2)', function () {
    const { result, text } = runFake('exits');
    assert.equal(result.hungAfterSummaryMs, undefined);
    assert.equal(result.status, 0);
    assert.doesNotMatch(text, /WATCHDOG/);
    const verdict = suite().verdictOf(result, text);
    assert.equal(verdict.ok, true, verdict.line);
    assert.ok(!ciCountsAsFailure(`=== RESULT Linux Node x: ${verdict.line}`));
  });

  it('does not kill a run before its summary (that one is the 20-minute limit\'s)', function () {
    const { result, text, took } = runFake('silent', BOUND_MS * 2);
    assert.equal(result.hungAfterSummaryMs, undefined);
    assert.equal((result.error as NodeJS.ErrnoException | undefined)?.code, 'ETIMEDOUT');
    assert.ok(took >= BOUND_MS * 2, `took ${took} ms`);
    assert.doesNotMatch(text, /WATCHDOG/);
  });
});
