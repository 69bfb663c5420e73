// The README's recipe "Send one Linux user's connections through a SOCKS5
// server", run as written (test/fixtures/readme-recipe-e2e.ts takes its
// commands out of README.md) in a network namespace of its own, with a real
// dante, real iptables/ip6tables rules, curl as the user, and the proxy as
// another unprivileged user: so the README cannot drift from what works.
// Needs Linux, root, iproute2, iptables, curl, setpriv, useradd and danted;
// without them it says so loudly and is reported pending.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { addNetworkNamespace } from './helpers';
import { missingBinary } from './fixtures/upstream-servers';

const NAMESPACE = `wfp-redirect-recipe-${process.pid}`;
// Throwaway uids for "you" (the proxy) and "bob"; no accounts needed for either.
const YOU = String(47_300 + (process.pid % 500));
const BOB = String(47_900 + (process.pid % 500));
const SOCKS_USER = `wfprecipe${process.pid % 100_000}`;

interface Ran {
  status: number | null;
  stdout: string;
  stderr: string;
}

interface Result {
  error?: string;
  commands: string[];
  proxyCommand: string;
  proxyUid: string;
  proxyOutput: string;
  password: string;
  added: Ran[];
  check: Ran;
  checkPeers: string[];
  bobIPv6: Ran;
  rootCheck: Ran;
  rootPeers: string[];
  removed: Ran[];
  afterUndo: Ran;
  afterUndoPeers: string[];
  rulesLeft: string;
  danteLog: string;
}

describe("README: one Linux user's connections through a SOCKS5 server (the recipe, run as written)", function () {
  this.timeout(60_000);
  let result: Result;

  before(function () {
    const missing =
      missingBinary('danted', ['-v']) ??
      ['curl', 'setpriv', 'useradd', 'iptables', 'ip6tables'].map((tool) => (spawnSync(tool, ['--version'], { stdio: 'ignore' }).error ? `${tool} is not installed` : undefined)).find(Boolean);
    const reason = missing ?? addNetworkNamespace(NAMESPACE, ['iptables', 'ip6tables']);
    if (reason) {
      console.warn(`    !!! THE README RECIPE TEST WAS NOT RUN: ${reason}`);
      this.skip();
    }
    const inside = (command: string[]) => spawnSync('ip', ['netns', 'exec', NAMESPACE, ...command], { encoding: 'utf8' });
    inside(['ip', 'link', 'set', 'lo', 'up']);
    inside(['ip', 'addr', 'add', '192.0.2.10/32', 'dev', 'lo']);
    inside(['ip', '-6', 'addr', 'add', 'fd00:77::10/128', 'dev', 'lo', 'nodad']);
    const run = inside([process.execPath, join(__dirname, 'fixtures', 'readme-recipe-e2e.js'), YOU, BOB, SOCKS_USER]);
    const line = run.stdout.trim().split('\n').pop() ?? '';
    assert.ok(line.startsWith('{'), `no result from the namespace: ${run.stdout}\n${run.stderr}`);
    result = JSON.parse(line) as Result;
    assert.equal(result.error, undefined, `${result.error}\nproxy: ${result.proxyOutput}`);
  });

  after(function () {
    spawnSync('ip', ['netns', 'del', NAMESPACE]);
  });

  it('keeps the password off the command line: the proxy command names an environment variable', function () {
    assert.match(result.proxyCommand, /\?password_env=SOCKS_PASSWORD/);
    assert.ok(!result.commands.join('\n').includes(result.password));
  });

  it('the proxy runs as an ordinary user (not bob, not root) and starts through the SOCKS server', function () {
    assert.equal(result.proxyUid, YOU);
    assert.match(result.proxyOutput, /through socks5:\/\/127\.0\.0\.1:\d+/);
  });

  it("bob's request goes through the proxy and the SOCKS server: it works, the proxy logs it via the server, the server sees dante", function () {
    for (const added of result.added) assert.equal(added.status, 0, added.stderr);
    assert.equal(result.check.status, 0, result.check.stderr);
    assert.equal(result.check.stdout.trim(), '200');
    // Direct, bob's connection would come from 192.0.2.10 itself; through dante it comes from dante's external 127.0.0.1.
    assert.deepEqual(result.checkPeers, ['127.0.0.1'], result.danteLog);
    assert.match(result.proxyOutput, /-> 192\.0\.2\.10:8080 via socks5:\/\/127\.0\.0\.1:\d+ .*ok/);
    assert.ok(!result.proxyOutput.includes(result.password), 'the password was written out');
  });

  it("bob's IPv6 TCP is refused, not sent around the proxy; another user's connection is not redirected", function () {
    assert.notEqual(result.bobIPv6.status, 0, 'bob reached the IPv6 server directly');
    assert.equal(result.rootCheck.stdout.trim(), '200', result.rootCheck.stderr);
    assert.deepEqual(result.rootPeers, ['192.0.2.10']);
  });

  it('undo removes both rules: bob then connects directly', function () {
    for (const removed of result.removed) assert.equal(removed.status, 0, removed.stderr);
    assert.ok(!/owner/.test(result.rulesLeft), result.rulesLeft);
    assert.equal(result.afterUndo.stdout.trim(), '200', result.afterUndo.stderr);
    assert.deepEqual(result.afterUndoPeers, ['192.0.2.10']);
  });
});
