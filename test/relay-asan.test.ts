// The native relay (native/relay/) under AddressSanitizer and UBSan: the
// test-only addon wfp_relay_asan (test/native/binding.gyp, `npm run
// build:conformance`) loaded into node with libasan preloaded, driven by
// test/fixtures/relay-stress.ts through 1,200 real loopback pairs with random
// fates (full exchanges, hand-overs larger than the buffer, destroys at random
// moments, resets, idle timeouts), 1,400 accepted sockets through
// relayConnect, and 1,500 clients of a listener the addon accepts from itself
// (relayGroupListen). Any read or write outside memory aborts it.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

const root = join(__dirname, '..');
const addon = join(root, 'test', 'native', 'build', 'Release', 'wfp_relay_asan.node');

describe('the native relay under AddressSanitizer', function () {
  this.timeout(180_000);
  let libasan = '';

  before(function () {
    if (process.platform !== 'linux') {
      console.warn('    !!! not Linux: the AddressSanitizer stress of the native relay is NOT done here (the native relay is Linux only)');
      this.skip();
    }
    if (process.env.WFP_REDIRECT_QEMU_USER) {
      // The sanitizer build is the host's (x86-64 libasan, an x86-64 addon): it cannot load into an emulated arm64 node.
      console.warn('    !!! under qemu-user: the AddressSanitizer stress of the native relay is NOT done (it runs in the x64 suite, from the same sources)');
      this.skip();
    }
    libasan = execFileSync(process.env.CXX || 'g++', ['-print-file-name=libasan.so'], { encoding: 'utf8' }).trim();
    assert.ok(existsSync(libasan), `libasan not found (${libasan}): install g++ with libasan`);
    assert.ok(existsSync(addon), `${addon} is not built: run \`npm run build:conformance\``);
  });

  /** Runs the stress with `args` under the sanitizers and answers its summary line; fails on any report. */
  function stress(args: string[]): string {
    const run = spawnSync(process.execPath, [join(__dirname, 'fixtures', 'relay-stress.js'), addon, ...args], {
      encoding: 'utf8',
      timeout: 150_000,
      // Node itself is not built for leak checking; what matters here is every access the relay makes.
      env: { ...process.env, LD_PRELOAD: libasan, ASAN_OPTIONS: 'detect_leaks=0:abort_on_error=0' },
    });
    console.log(`      ${run.stdout.trim()}`);
    assert.equal(run.status, 0, `the stress failed:\n${run.stdout}\n${run.stderr}`);
    assert.doesNotMatch(run.stderr, /AddressSanitizer|runtime error/);
    return run.stdout;
  }

  it('1,200 pairs with random fates, 32 at a time: every relay ends once, exchanges are exact, no sanitizer report', function () {
    assert.match(stress(['1200', '28']), /^1200 relays, 200 exchanges exact, \d+ bytes relayed; ends: .*ERR_HALF_CLOSE_TIMEOUT \d+.*; no sanitizer report/);
  });

  it('1,400 accepted sockets through relayConnect (accept to relay in the addon) with random fates, groups destroyed and closed while open: every relay ends once, no sanitizer report', function () {
    // 1,400 and the 8 of the group closed while they were open; 200 exchanges and those 8.
    assert.match(stress(['1400', '28', 'connect']), /^1408 connected relays, 208 exchanges exact, \d+ bytes relayed; ends: ECONNREFUSED 200, .*ERR_IDLE_TIMEOUT 200.*; no sanitizer report/);
  });

  it('1,500 clients of a listener the addon accepts from itself (relayGroupListen), 32 at once past maxConnections 28, the group destroyed at random and last closed from its own onRefused: each relayed or refused, no sanitizer report', function () {
    const line = stress(['1500', '28', 'listen']);
    const [, relayed, refused, exact] = /^(\d+) listened relays and (\d+) refused, (\d+) exchanges exact, \d+ bytes relayed; ends: .*; no sanitizer report/.exec(line) ?? [];
    assert.equal(Number(relayed) + Number(refused), 1500, line);
    assert.ok(Number(refused) > 0 && Number(exact) > 0, `some refused, some exact: ${line}`);
  });
});
