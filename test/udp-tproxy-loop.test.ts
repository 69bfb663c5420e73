// The UDP relay's own datagrams coming back to it through a real TPROXY
// (Linux): one network namespace, loopback only, and the rule the README gives
// for this host's own datagrams (TPROXY in mangle PREROUTING on lo), for a
// destination on this host (127.0.0.2). Without an exemption the relay's
// outbound datagram is diverted back to it: refused as a loop, a few lines,
// not a storm. With --mark and "-m mark ! --mark N" on the TPROXY rule it
// reaches the destination; a reply that cannot leave from an address a local
// server holds is explained once. Needs Linux, root, iproute2 and iptables;
// without them it says so loudly and is pending.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { addNetworkNamespace } from './helpers';

const NS = `wfp-redirect-udploop-${process.pid}`;
const DESTINATION_PORT = 7070;
const PROXY_PORT = 7171;
const MARK = 2;

const inNamespace = (command: string[]) => execFileSync('ip', ['netns', 'exec', NS, ...command], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

interface Outcome {
  alive: boolean;
  serverGot: number;
  replies: number;
  logs: Array<{ end: string; error?: string; datagramsUp: number }>;
  stderr: string;
  error?: string;
}

function relayOneDatagram(withServer: boolean, proxyArgs: string[]): Outcome {
  const fixture = join(__dirname, 'fixtures', 'udp-loop-e2e.js');
  const output = inNamespace([process.execPath, fixture, String(DESTINATION_PORT), String(PROXY_PORT), withServer ? 'server' : 'none', ...proxyArgs]);
  const outcome = JSON.parse(output.trim().split('\n').pop()!) as Outcome;
  if (outcome.error) throw new Error(outcome.error);
  return outcome;
}

function tproxyRule(action: '-A' | '-D', exemptMark: boolean): void {
  const exempt = exemptMark ? ['-m', 'mark', '!', '--mark', String(MARK)] : [];
  inNamespace(['iptables', '-t', 'mangle', action, 'PREROUTING', '-i', 'lo', '-p', 'udp', '-d', '127.0.0.2', '--dport', String(DESTINATION_PORT), ...exempt,
    '-j', 'TPROXY', '--on-port', String(PROXY_PORT), '--tproxy-mark', '1']);
}

describe('UDP relay loops through a real TPROXY on lo (Linux)', function () {
  this.timeout(60_000);

  before(function () {
    const reason = addNetworkNamespace(NS, ['iptables']);
    if (reason) {
      console.warn(`    !!! THE UDP TPROXY LOOP TEST WAS NOT RUN: ${reason}`);
      this.skip();
    }
    inNamespace(['ip', 'link', 'set', 'lo', 'up']);
    inNamespace(['ip', 'rule', 'add', 'fwmark', '1', 'lookup', '100']);
    inNamespace(['ip', 'route', 'add', 'local', '0.0.0.0/0', 'dev', 'lo', 'table', '100']);
  });

  after(() => spawnSync('ip', ['netns', 'del', NS]));

  it('without an exemption: the relay\'s own datagram comes back, is refused as ERR_PROXY_LOOP, at most 3 log lines in 2 s, explained on stderr', function () {
    tproxyRule('-A', false);
    try {
      const outcome = relayOneDatagram(false, []);
      assert.ok(outcome.alive, outcome.stderr);
      assert.ok(outcome.logs.length <= 3, `${outcome.logs.length} log lines: ${JSON.stringify(outcome.logs.slice(0, 5))}`);
      assert.ok(outcome.logs.some((entry) => entry.error === 'ERR_PROXY_LOOP'), JSON.stringify(outcome.logs));
      assert.match(outcome.stderr, /dropped a datagram \(ERR_PROXY_LOOP\): the relay's own datagrams came back to it/);
    } finally {
      tproxyRule('-D', false);
    }
  });

  it('with --mark and "-m mark ! --mark N" on the TPROXY rule: the datagram reaches the destination; a reply a local server\'s address blocks is explained once (EADDRINUSE)', function () {
    tproxyRule('-A', true);
    try {
      const outcome = relayOneDatagram(true, ['--mark', String(MARK)]);
      assert.ok(outcome.alive, outcome.stderr);
      assert.equal(outcome.serverGot, 1, `the destination got ${outcome.serverGot} datagrams; ${outcome.stderr}`);
      assert.ok(!outcome.logs.some((entry) => entry.error === 'ERR_PROXY_LOOP'), JSON.stringify(outcome.logs));
      assert.equal(outcome.replies, 0);
      const explained = outcome.stderr.match(/a reply cannot be sent from 127\.0\.0\.2:7070: a socket on this host holds that address and port \(EADDRINUSE\)/g) ?? [];
      assert.equal(explained.length, 1, outcome.stderr);
      assert.ok(outcome.logs.some((entry) => entry.end === 'error' && entry.error === 'EADDRINUSE'), JSON.stringify(outcome.logs));
    } finally {
      tproxyRule('-D', true);
    }
  });
});
