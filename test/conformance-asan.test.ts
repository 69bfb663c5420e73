// The buffer protocol under AddressSanitizer and UBSan: test/native/protocol_fuzz.cc
// (10,000 random provider scripts, fixed seed, each checked against a model of
// the documented protocol) built with -fsanitize and run as its own process,
// so any read or write outside a buffer aborts it.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const root = join(__dirname, '..');

describe('conformance: the query protocol under AddressSanitizer', function () {
  this.timeout(180_000);

  before(function () {
    if (process.platform !== 'linux') {
      console.warn('    !!! not Linux: the AddressSanitizer fuzz run is NOT done here (it needs g++ with libasan); `npm test` on Linux runs it');
      this.skip();
    }
  });

  it('10,000 random provider scripts: no sanitizer report, each run asks for the buffers and ends as the documented protocol says', function () {
    const out = join(root, 'test', 'native', 'build');
    mkdirSync(out, { recursive: true });
    const binary = join(out, 'protocol_fuzz');
    execFileSync(
      process.env.CXX || 'g++',
      [
        '-std=c++17', '-O1', '-g', '-fsanitize=address,undefined', '-fno-sanitize-recover=all', '-fno-omit-frame-pointer',
        '-I', join(root, 'native'), '-I', join(root, 'test', 'native'),
        join(root, 'test', 'native', 'protocol_fuzz.cc'), join(root, 'native', 'wsa_errors.cc'),
        '-o', binary,
      ],
      { stdio: ['ignore', 'inherit', 'inherit'] },
    );
    const run = spawnSync(binary, { encoding: 'utf8', env: { ...process.env, ASAN_OPTIONS: 'abort_on_error=0:detect_leaks=1' } });
    console.log(`      ${run.stdout.trim()}`);
    assert.equal(run.status, 0, `protocol_fuzz failed:\n${run.stdout}\n${run.stderr}`);
    assert.match(run.stdout, /10000 scripts, \d+ blobs, \d+ typed failures, no sanitizer report/);
    assert.doesNotMatch(run.stderr, /AddressSanitizer|runtime error/);
  });
});
