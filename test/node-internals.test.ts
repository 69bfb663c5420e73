// Pins, in the Node that runs the suite, how connectRedirected's Node
// internals (lib/node-internals.ts, `manualStart`) behave: no warning with
// default flags, DEP0111 once with --pending-deprecation, and
// ERR_WFP_NODE_INTERNALS, with nothing connected, when any of them is gone.
// Each case runs in a fresh process (fixtures/internals-probe.ts).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import type { ProbeAttempt, ProbeBreak, ProbeReport } from './fixtures/internals-probe';

const PROBE = join(__dirname, 'fixtures', 'internals-probe.js');

interface ProbeRun {
  report?: ProbeReport;
  code: number | null;
  stderr: string;
}

function probe(broken: ProbeBreak, flags: string[] = []): Promise<ProbeRun> {
  return new Promise((resolve, reject) => {
    // NODE_OPTIONS could carry flags of its own; only `flags` apply.
    const env = { ...process.env, NODE_OPTIONS: '' };
    execFile(process.execPath, [...flags, PROBE, broken], { env }, (error, stdout, stderr) => {
      const code = error ? ((error as { code?: unknown }).code as number | null) : 0;
      if (typeof code === 'string') return reject(error);
      const line = stdout.trim().split('\n').pop();
      resolve({ report: line ? (JSON.parse(line) as ProbeReport) : undefined, code, stderr });
    });
  });
}

function connected(run: ProbeRun): ProbeReport {
  assert.equal(run.code, 0, `the probe failed:\n${run.stderr}`);
  assert.ok(run.report);
  assert.deepEqual(
    run.report.attempts.map((attempt) => attempt.outcome),
    ['connect', 'connect'],
  );
  assert.equal(run.report.accepted, 2);
  return run.report;
}

function refused(run: ProbeRun, what: string): ProbeAttempt {
  assert.equal(run.code, 0, `the probe failed:\n${run.stderr}`);
  assert.ok(run.report);
  for (const attempt of run.report.attempts) {
    assert.equal(attempt.outcome, 'throw', 'connectRedirected should throw at once');
    assert.equal(attempt.code, 'ERR_WFP_NODE_INTERNALS');
    assert.ok(attempt.message?.includes(what), `the message should name ${what}: ${attempt.message}`);
    assert.ok(attempt.message?.includes(process.version), 'the message should name the Node version');
  }
  assert.equal(run.report.accepted, 0, 'nothing may connect without the records');
  assert.equal(run.stderr, '');
  return run.report.attempts[0];
}

describe(`Node internals of connectRedirected, in Node ${process.version}`, function () {
  // A node.exe starts in about a second under Wine.
  this.timeout(60_000);

  it('connects with no warning and nothing on stderr under default flags', async function () {
    const run = await probe('none');
    assert.deepEqual(connected(run).warnings, []);
    assert.equal(run.stderr, '');
  });

  it('prints DEP0111 (process.binding) exactly once under --pending-deprecation, and still connects', async function () {
    const run = await probe('none', ['--pending-deprecation']);
    assert.deepEqual(connected(run).warnings, [{ name: 'DeprecationWarning', code: 'DEP0111' }]);
    assert.equal(run.stderr.match(/DEP0111/g)?.length, 1, run.stderr);
  });

  it('is ended by DEP0111 under --pending-deprecation --throw-deprecation, as Node ends any deprecated call', async function () {
    // Node throws the warning on a later tick, where no caller can catch it.
    const run = await probe('none', ['--pending-deprecation', '--throw-deprecation']);
    assert.notEqual(run.code, 0);
    assert.equal(run.report, undefined);
    assert.match(run.stderr, /DeprecationWarning: process\.binding\(\) is deprecated/);
  });

  const missing: Array<[ProbeBreak, string]> = [
    ['process.binding', 'process.binding'],
    ['TCP', "process.binding('tcp_wrap').TCP"],
    ['constants.SOCKET', "process.binding('tcp_wrap').constants.SOCKET"],
    ['TCP.prototype.open', 'TCP.prototype.open'],
    ['net.Socket handle', 'net.Socket option `handle`'],
  ];
  for (const [broken, what] of missing) {
    it(`refuses with ERR_WFP_NODE_INTERNALS, connecting nothing, without ${broken}`, async function () {
      refused(await probe(broken), what);
    });
  }

  it('refuses with ERR_WFP_NODE_INTERNALS, its cause attached, when process.binding no longer serves tcp_wrap', async function () {
    const attempt = refused(await probe('tcp_wrap'), "process.binding('tcp_wrap')");
    assert.deepEqual(attempt.cause, { name: 'Error', message: 'No such module: tcp_wrap' });
  });

  it('refuses with ERR_WFP_NODE_INTERNALS, and no stray error event, when net.Socket ignores manualStart', async function () {
    // Ignoring it, the socket reads its unconnected handle and fails; that
    // read error is the cause, and the process must survive it.
    const attempt = refused(await probe('net.Socket manualStart'), 'net.Socket option `manualStart`');
    assert.equal(attempt.cause?.name, 'Error');
  });
});
