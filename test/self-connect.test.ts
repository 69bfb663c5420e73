// An outbound connection that meets itself (Linux, in a network namespace of
// the test's own, whose ephemeral port range is one closed port): the proxy
// must refuse it as the closed port it is (ECONNREFUSED), not relay the
// client's bytes back to it as the destination's answer. Needs Linux, root
// and iproute2; without them it says so loudly and is reported pending.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { nativeRelayUnavailable } from '../dist/proxy/native-relay';
import { addNetworkNamespace } from './helpers';

const NAMESPACE = `wfp-redirect-self-${process.pid}`;
/** One closed port per spec: the connection that met itself leaves its one possible tuple in TIME_WAIT. */
const CLOSED_PORTS = { native: 45_000, streams: 45_001 };
const PROXY_PORT = 7171;

describe('an outbound connection that meets itself (a closed local port in the ephemeral range, Linux)', function () {
  this.timeout(60_000);

  before(function () {
    const reason = addNetworkNamespace(NAMESPACE);
    if (reason) {
      console.warn(`    !!! THE SELF-CONNECT TEST WAS NOT RUN: ${reason}`);
      this.skip();
    }
    spawnSync('ip', ['netns', 'exec', NAMESPACE, 'ip', 'link', 'set', 'lo', 'up']);
  });

  after(function () {
    spawnSync('ip', ['netns', 'del', NAMESPACE]);
  });

  // native: connected and relayed in the addon (nothing is decided per connection); streams: Node's connect.
  for (const relay of ['native', 'streams'] as const) {
    it(`--relay ${relay}: is refused as ECONNREFUSED; the client reads nothing back, not its own bytes`, function () {
      if (relay === 'native' && nativeRelayUnavailable()) this.skip();
      const run = spawnSync('ip', ['netns', 'exec', NAMESPACE, process.execPath, join(__dirname, 'fixtures', 'self-connect.js'), String(CLOSED_PORTS[relay]), String(PROXY_PORT), relay], {
        encoding: 'utf8',
        timeout: 45_000,
      });
      const line = run.stdout.trim().split('\n').pop() ?? '';
      assert.ok(line.startsWith('{'), `no result from the namespace: ${run.stdout}\n${run.stderr}`);
      const result = JSON.parse(line) as { ok: boolean; error?: string; received: string; logs: { destination?: string; error?: string; bytesDown?: number }[] };
      assert.equal(result.ok, true, result.error);
      assert.equal(result.received, '', 'the client read its own bytes back');
      assert.deepEqual(
        result.logs.map((entry) => [entry.destination, entry.error, entry.bytesDown]),
        [[`127.0.0.1:${CLOSED_PORTS[relay]}`, 'ECONNREFUSED', 0]],
        JSON.stringify(result.logs),
      );
    });
  }
});
