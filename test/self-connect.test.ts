// An outbound connection that meets itself (Linux, in a network namespace of
// the test's own, whose ephemeral port range is one closed port): the proxy
// must refuse it as the closed port it is (ECONNREFUSED), not relay the
// client's bytes back to it as the destination's answer, nor read its own
// upstream handshake back as the upstream's. Needs Linux, root and
// iproute2; without them it says so loudly and is reported pending.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { nativeRelayUnavailable } from '../dist/proxy/native-relay';
import { addNetworkNamespace } from './helpers';

const NAMESPACE = `wfp-redirect-self-${process.pid}`;
const PROXY_PORT = 7171;

/** What each spec runs: a closed port and a client port of its own (a spec that fails leaves its tuples in TIME_WAIT). */
const CASES = [
  { relay: 'native', how: 'direct', closed: 45_000, client: 7272, refused: 'ECONNREFUSED', destination: '127.0.0.1:45000' },
  { relay: 'streams', how: 'direct', closed: 45_001, client: 7273, refused: 'ECONNREFUSED', destination: '127.0.0.1:45001' },
  // Through a SOCKS5 upstream at the closed port: the handshake would read its own greeting back as the answer.
  { relay: 'streams', how: 'via', closed: 45_002, client: 7274, refused: 'ERR_UPSTREAM_CONNECT', destination: '127.0.0.1:9' },
  // A UDP flow: no refusal (a closed UDP port does not answer), and nothing back.
  { relay: 'streams', how: 'udp', closed: 45_003, client: 7275, refused: undefined, destination: '127.0.0.1:45003' },
] as const;

describe('an outbound connection that meets itself (a closed local port in the ephemeral range, Linux)', function () {
  this.timeout(60_000);

  before(function () {
    const reason = addNetworkNamespace(NAMESPACE);
    if (reason) {
      console.warn(`    !!! THE SELF-CONNECT TEST WAS NOT RUN: ${reason}`);
      this.skip();
    }
    execFileSync('ip', ['netns', 'exec', NAMESPACE, 'ip', 'link', 'set', 'lo', 'up']);
  });

  after(function () {
    spawnSync('ip', ['netns', 'del', NAMESPACE]);
  });

  // native: connected and relayed in the addon (nothing is decided per connection); streams: Node's connect.
  for (const { relay, how, closed, client, refused, destination } of CASES) {
    const what = { direct: `--relay ${relay}`, via: `through --via socks5://127.0.0.1:${closed}`, udp: 'a UDP flow (--udp)' }[how];
    it(`${what}: ${refused ? `is refused as ${refused}` : 'gets no answer'}; the client reads nothing back, not its own bytes`, function () {
      if (relay === 'native' && nativeRelayUnavailable()) this.skip();
      const args = [String(closed), String(PROXY_PORT), relay, String(client), how];
      const run = spawnSync('ip', ['netns', 'exec', NAMESPACE, process.execPath, join(__dirname, 'fixtures', 'self-connect.js'), ...args], {
        encoding: 'utf8',
        timeout: 45_000,
      });
      const line = run.stdout.trim().split('\n').pop() ?? '';
      assert.ok(line.startsWith('{'), `no result from the namespace: ${run.stdout}\n${run.stderr}`);
      const result = JSON.parse(line) as { ok: boolean; error?: string; received: string; stderr: string; logs: { protocol?: string; destination?: string; error?: string; bytesDown?: number }[] };
      assert.equal(result.ok, true, result.error);
      // Accepted and connected in JavaScript instead, the JS check would answer for the addon's.
      if (relay === 'native') assert.doesNotMatch(result.stderr, /in JavaScript/, result.stderr);
      assert.equal(result.received, '', 'the client read its own bytes back');
      const lines = result.logs.filter((entry) => (entry.protocol === 'udp') === (how === 'udp'));
      assert.deepEqual(lines.map((entry) => [entry.destination, entry.error, entry.bytesDown]), [[destination, refused, 0]], JSON.stringify(result.logs));
    });
  }
});
