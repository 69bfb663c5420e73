// UDP end to end through a real kernel TPROXY (Linux). Two network namespaces
// joined by a veth pair: "client" holds the client and the proxy CLI
// (--udp --transparent), "server" a request/response server. In the client
// namespace the client's datagrams for the server are marked in mangle
// OUTPUT, routed back in through lo (fwmark rule, local route) and diverted by
// an iptables TPROXY rule to the proxy, which learns each datagram's original
// destination (IP_ORIGDSTADDR) and answers from that address (IP_TRANSPARENT).
// The rules match the client's own address, so the proxy's outbound datagrams
// (from the namespace's other address) are not diverted again. Needs Linux,
// root, iproute2 and iptables; without them it says so loudly and is pending.
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { addNetworkNamespace } from './helpers';

const CLIENT_NS = `wfp-redirect-udp-c-${process.pid}`;
const SERVER_NS = `wfp-redirect-udp-s-${process.pid}`;
const SERVER_PORT = 7070;
const PROXY_PORT = 7171;
const FLOWS = 10;
const DATAGRAMS = 100;
const SETUPS = {
  IPv4: { iptables: 'iptables', ip: ['ip'], any: '0.0.0.0/0', proxyListen: '0.0.0.0', proxyAddress: '10.77.0.1', client: '10.77.0.5', server: '10.77.0.2', prefix: 24 },
  IPv6: { iptables: 'ip6tables', ip: ['ip', '-6'], any: '::/0', proxyListen: '::', proxyAddress: 'fd77::1', client: 'fd77::5', server: 'fd77::2', prefix: 64 },
} as const;

const run = (ns: string, command: string[]) => execFileSync('ip', ['netns', 'exec', ns, ...command], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const bracket = (host: string) => (host.includes(':') ? `[${host}]` : host);

describe('UDP end to end through an iptables TPROXY in network namespaces (Linux)', function () {
  this.timeout(120_000);
  const servers: ChildProcess[] = [];

  before(async function () {
    const reason = addNetworkNamespace(CLIENT_NS, ['iptables', 'ip6tables']) ?? addNetworkNamespace(SERVER_NS);
    if (reason) {
      console.warn(`    !!! THE UDP TPROXY END-TO-END TEST WAS NOT RUN: ${reason}`);
      this.skip();
    }
    execFileSync('ip', ['link', 'add', 'wfpudp0', 'netns', CLIENT_NS, 'type', 'veth', 'peer', 'name', 'wfpudp1', 'netns', SERVER_NS]);
    for (const [ns, device] of [[CLIENT_NS, 'wfpudp0'], [SERVER_NS, 'wfpudp1']]) {
      run(ns, ['ip', 'link', 'set', 'lo', 'up']);
      run(ns, ['ip', 'link', 'set', device, 'up']);
    }
    for (const setup of Object.values(SETUPS)) {
      const nodad = setup.ip.length > 1 ? ['nodad'] : [];
      run(CLIENT_NS, [...setup.ip, 'addr', 'add', `${setup.proxyAddress}/${setup.prefix}`, 'dev', 'wfpudp0', ...nodad]);
      // Deprecated (IPv6), so that the kernel never picks the client's address for the proxy's own datagrams.
      const deprecated = setup.ip.length > 1 ? ['preferred_lft', '0'] : [];
      run(CLIENT_NS, [...setup.ip, 'addr', 'add', `${setup.client}/${setup.ip.length > 1 ? 128 : 32}`, 'dev', 'wfpudp0', ...nodad, ...deprecated]);
      run(SERVER_NS, [...setup.ip, 'addr', 'add', `${setup.server}/${setup.prefix}`, 'dev', 'wfpudp1', ...nodad]);
      // Marked datagrams are delivered locally: back in through lo, where TPROXY sees them.
      run(CLIENT_NS, [...setup.ip, 'rule', 'add', 'fwmark', '1', 'lookup', '100']);
      run(CLIENT_NS, [...setup.ip, 'route', 'add', 'local', setup.any, 'dev', 'lo', 'table', '100']);
      // The server's port and the one after it: one client talks to both at once.
      const ports = `${SERVER_PORT}:${SERVER_PORT + 1}`;
      run(CLIENT_NS, [setup.iptables, '-t', 'mangle', '-A', 'OUTPUT', '-p', 'udp', '-s', setup.client, '-d', setup.server,
        '--dport', ports, '-j', 'MARK', '--set-mark', '1']);
      run(CLIENT_NS, [setup.iptables, '-t', 'mangle', '-A', 'PREROUTING', '-i', 'lo', '-p', 'udp', '-d', setup.server,
        '--dport', ports, '-j', 'TPROXY', '--on-port', String(PROXY_PORT), '--tproxy-mark', '1']);
      for (const port of [SERVER_PORT, SERVER_PORT + 1]) {
        const server = spawn('ip', ['netns', 'exec', SERVER_NS, process.execPath, join(__dirname, 'fixtures', 'udp-reverse-server.js'), setup.server, String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
        servers.push(server);
        await new Promise<void>((resolve, reject) => {
          server.stdout!.once('data', () => resolve());
          server.once('exit', (code) => reject(new Error(`the server in ${SERVER_NS} exited with ${code}`)));
        });
      }
    }
  });

  after(function () {
    for (const server of servers) server.kill('SIGKILL');
    spawnSync('ip', ['netns', 'del', CLIENT_NS]);
    spawnSync('ip', ['netns', 'del', SERVER_NS]);
  });

  for (const [family, setup] of Object.entries(SETUPS)) {
    it(`${family}: ${FLOWS} flows x ${DATAGRAMS} datagrams relayed, every reply intact and from the original destination; one client socket with two destinations at once is two flows; a datagram nobody redirected is dropped and logged`, function () {
      const fixture = join(__dirname, 'fixtures', 'udp-tproxy-e2e.js');
      const result = spawnSync('ip', ['netns', 'exec', CLIENT_NS, process.execPath, fixture, setup.server, String(SERVER_PORT), setup.proxyListen, String(PROXY_PORT), setup.client, String(FLOWS), String(DATAGRAMS)], {
        encoding: 'utf8',
        timeout: 100_000,
      });
      const line = result.stdout.trim().split('\n').pop() ?? '';
      assert.ok(line.startsWith('{'), `no result from the namespace: ${result.stdout}\n${result.stderr}`);
      let outcome;
      try {
        outcome = JSON.parse(line);
      } catch {
        assert.fail(`not one JSON line from the namespace: ${line.slice(0, 3000)}\n${result.stderr}`);
      }
      assert.equal(outcome.ok, true, outcome.error);
      const origin = `${bracket(setup.server)}:${SERVER_PORT}`;
      for (const flow of outcome.results) {
        assert.equal(flow.sent, DATAGRAMS);
        assert.equal(flow.intact, DATAGRAMS, 'every reply, byte for byte');
        assert.deepEqual(flow.repliesFrom, [origin], 'replies come from the original destination');
      }
      const second = `${bracket(setup.server)}:${SERVER_PORT + 1}`;
      assert.deepEqual(outcome.both, { sent: 20, intact: 20, repliesFrom: [origin, second] }, 'one socket, two destinations: each reply from its own');
      const relayed = outcome.logs.filter((entry: { end: string; client: string }) => entry.end !== 'dropped' && entry.client !== outcome.bothClient);
      const dropped = outcome.logs.filter((entry: { end: string }) => entry.end === 'dropped');
      const dual = outcome.logs.filter((entry: { client: string }) => entry.client === outcome.bothClient);
      assert.deepEqual(dual.map((entry: { destination: string; end: string; datagramsUp: number }) => [entry.destination, entry.end, entry.datagramsUp]).sort(), [[origin, 'idle', 10], [second, 'idle', 10]]);
      assert.equal(relayed.length, FLOWS, JSON.stringify(outcome.logs));
      for (const entry of relayed) {
        assert.equal(entry.destination, origin);
        assert.equal(entry.datagramsUp, DATAGRAMS);
        assert.equal(entry.datagramsDown, DATAGRAMS);
        assert.equal(entry.end, 'idle');
        assert.ok(entry.client.startsWith(bracket(setup.client)), entry.client);
      }
      assert.equal(dropped.length, 1, JSON.stringify(outcome.logs));
      assert.equal(dropped[0].error, 'ERR_NOT_REDIRECTED');
      assert.equal(outcome.directReplies, 0);
    });
  }
});
