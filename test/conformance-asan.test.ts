// The buffer protocol and the control-message parser under AddressSanitizer
// and UBSan: test/native/protocol_fuzz.cc (10,000 random provider scripts,
// fixed seed, each checked against a model of the documented protocol) and
// test/native/control_fuzz.cc (20,000 control areas), each built with
// -fsanitize and run as its own process, so any read or write outside a buffer
// aborts it.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { runsInOneLineOnly } from './helpers';

const root = join(__dirname, '..');

/** Builds one fuzz program from test/native/ with the sanitizers; returns its path. */
function buildSanitized(name: string, sources: string[]): string {
  const out = join(root, 'test', 'native', 'build');
  mkdirSync(out, { recursive: true });
  const binary = join(out, name);
  execFileSync(
    process.env.CXX || 'g++',
    [
      '-std=c++17', '-O1', '-g', '-fsanitize=address,undefined', '-fno-sanitize-recover=all', '-fno-omit-frame-pointer',
      '-I', join(root, 'native'), '-I', join(root, 'test', 'native'),
      ...sources.map((source) => join(root, source)),
      '-o', binary,
    ],
    { stdio: ['ignore', 'inherit', 'inherit'] },
  );
  return binary;
}

function runSanitized(binary: string) {
  const run = spawnSync(binary, { encoding: 'utf8', env: { ...process.env, ASAN_OPTIONS: 'abort_on_error=0:detect_leaks=1' } });
  console.log(`      ${run.stdout.trim()}`);
  assert.equal(run.status, 0, `${binary} failed:\n${run.stdout}\n${run.stderr}`);
  assert.doesNotMatch(run.stderr, /AddressSanitizer|runtime error/);
  return run;
}

describe('conformance: the query protocol and the control-message parser under AddressSanitizer', function () {
  this.timeout(180_000);

  before(function () {
    if (process.platform !== 'linux') {
      console.warn('    !!! not Linux: the AddressSanitizer fuzz run is NOT done here (it needs g++ with libasan); `npm test` on Linux runs it');
      this.skip();
    }
    runsInOneLineOnly(this, 'the AddressSanitizer fuzz run (a C++ program of its own)');
  });

  it('10,000 random provider scripts: no sanitizer report, each run asks for the buffers and ends as the documented protocol says', function () {
    const run = runSanitized(buildSanitized('protocol_fuzz', ['test/native/protocol_fuzz.cc', 'native/wsa_errors.cc']));
    assert.match(run.stdout, /10000 scripts, \d+ blobs, \d+ typed failures, no sanitizer report/);
  });

  it('20,000 control areas (well-formed, cut short, random, a length corrupted): none read past, well-formed ones read back exactly', function () {
    const run = runSanitized(buildSanitized('control_fuzz', ['test/native/control_fuzz.cc']));
    assert.match(run.stdout, /20000 areas, \d+ well-formed read back exactly, \d+ malformed stopped at, no sanitizer report/);
  });
});
