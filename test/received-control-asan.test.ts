// The POSIX walk over a received msghdr's control messages
// (native/posix/received_control.h, the system's CMSG_* macros plus this
// package's bounds) under AddressSanitizer and UBSan: test/native/
// received_control_fuzz.cc, built with -fsanitize and run as its own process,
// so any read outside the area aborts it. Linux (g++ with libasan).
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { runsInOneLineOnly } from './helpers';

const root = join(__dirname, '..');

describe('the POSIX control-message walk under AddressSanitizer', function () {
  this.timeout(180_000);

  before(function () {
    if (process.platform !== 'linux') {
      console.warn('    !!! not Linux: the AddressSanitizer run of the POSIX control-message walk is NOT done here (it needs g++ with libasan)');
      this.skip();
    }
    runsInOneLineOnly(this, 'the AddressSanitizer run of the POSIX control-message walk (a C++ program of its own)');
  });

  it('20,000 control areas (well-formed, cut short, random, a length corrupted): none read past, well-formed ones read back exactly', function () {
    const out = join(root, 'test', 'native', 'build');
    mkdirSync(out, { recursive: true });
    const binary = join(out, 'received_control_fuzz');
    execFileSync(
      process.env.CXX || 'g++',
      ['-std=c++17', '-O1', '-g', '-fsanitize=address,undefined', '-fno-sanitize-recover=all', '-fno-omit-frame-pointer',
        '-I', join(root, 'native'), join(root, 'test', 'native', 'received_control_fuzz.cc'), '-o', binary],
      { stdio: ['ignore', 'inherit', 'inherit'] },
    );
    const run = spawnSync(binary, { encoding: 'utf8', env: { ...process.env, ASAN_OPTIONS: 'abort_on_error=0:detect_leaks=1' } });
    console.log(`      ${run.stdout.trim()}`);
    assert.equal(run.status, 0, `${binary} failed:\n${run.stdout}\n${run.stderr}`);
    assert.doesNotMatch(run.stderr, /AddressSanitizer|runtime error/);
    assert.match(run.stdout, /20000 areas, \d+ well-formed read back exactly, \d+ malformed stopped at, no sanitizer report/);
  });
});
