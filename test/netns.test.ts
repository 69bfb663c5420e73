// End to end through a real kernel redirect: in a network namespace of its
// own, an iptables REDIRECT sends a client's connections to the proxy CLI in
// --transparent mode, which learns the original destination from netfilter
// and relays to the server listening there. Only addresses inside that
// namespace are used. Needs Linux, root, iproute2 and iptables (.ci/run
// installs them); without them it says so loudly and is reported pending.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { addNetworkNamespace } from './helpers';

const NAMESPACE = `wfp-redirect-e2e-${process.pid}`;
const ORIGIN_PORT = 7070;
const PROXY_PORT = 7171;
const SETUPS = {
  IPv4: { iptables: 'iptables', server: '127.0.0.1', client: '127.0.0.5' },
  IPv6: { iptables: 'ip6tables', server: '::1', client: 'fd00:77::5' },
} as const;

function inNamespace(command: string[]): string {
  return execFileSync('ip', ['netns', 'exec', NAMESPACE, ...command], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

describe('end to end through an iptables REDIRECT in a network namespace (Linux)', function () {
  this.timeout(120_000);

  before(function () {
    const reason = addNetworkNamespace(NAMESPACE, ['iptables', 'ip6tables']);
    if (reason) {
      console.warn(`    !!! THE NETWORK-NAMESPACE END-TO-END TEST WAS NOT RUN: ${reason}`);
      this.skip();
    }
    inNamespace(['ip', 'link', 'set', 'lo', 'up']);
    inNamespace(['ip', '-6', 'addr', 'add', `${SETUPS.IPv6.client}/128`, 'dev', 'lo', 'nodad']);
    for (const setup of Object.values(SETUPS)) {
      // Only the client's connections are redirected, not the proxy's own.
      inNamespace([setup.iptables, '-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '-s', setup.client, '-d', setup.server,
        '--dport', String(ORIGIN_PORT), '-j', 'REDIRECT', '--to-ports', String(PROXY_PORT)]);
    }
  });

  after(function () {
    spawnSync('ip', ['netns', 'del', NAMESPACE]);
  });

  for (const [family, setup] of Object.entries(SETUPS)) {
    it(`${family}: the proxy learns the original destination and relays 20 MB both ways intact`, function () {
      const fixture = join(__dirname, 'fixtures', 'netns-e2e.js');
      const run = spawnSync('ip', ['netns', 'exec', NAMESPACE, process.execPath, fixture, setup.server, String(ORIGIN_PORT), String(PROXY_PORT), setup.client, '20'], {
        encoding: 'utf8',
        timeout: 100_000,
      });
      const line = run.stdout.trim().split('\n').pop() ?? '';
      assert.ok(line.startsWith('{'), `no result from the namespace: ${run.stdout}\n${run.stderr}`);
      const result = JSON.parse(line);
      assert.equal(result.ok, true, result.error);
      assert.equal(result.clientLocal, setup.client);
      // The origin was reached by the proxy, not by the client.
      assert.notEqual(result.originSawPeer, setup.client);
      const bracket = setup.server.includes(':') ? `[${setup.server}]` : setup.server;
      const [relayed, direct] = result.logs;
      assert.equal(relayed.error, undefined, JSON.stringify(relayed));
      assert.equal(relayed.destination, `${bracket}:${ORIGIN_PORT}`);
      assert.equal(relayed.bytesUp, 20 * 1024 * 1024);
      assert.equal(relayed.bytesDown, 20 * 1024 * 1024);
      assert.equal(direct.error, 'ERR_NOT_REDIRECTED', 'a connection nobody redirected must be told apart');
    });
  }
});
