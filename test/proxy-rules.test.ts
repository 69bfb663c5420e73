// The CLI with --config, end to end with real clients through real kernel
// redirects (Linux). Two network namespaces joined by a veth pair: "server"
// (10.88.0.2) runs HTTP, HTTPS, a server that speaks first and a UDP server;
// "client" runs the proxy (--transparent --udp --mark 7), dante (a real SOCKS5
// upstream, going out from 10.88.0.3), curl, openssl s_client and a UDP client
// that sends QUIC Initials this test builds. An iptables REDIRECT sends the
// client's TCP to the proxy (not the proxy's own, marked 7, nor dante's), and
// a TPROXY rule the UDP client's datagrams (from 10.88.0.5). Needs Linux,
// root, iproute2, iptables, curl, openssl and dante; says so loudly without.
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { addNetworkNamespace } from './helpers';
import { CLI, start, stop, type Running } from './proxy-process';
import { clientHelloMessage, cryptoFrame, protectedInitial, serverNameExtension } from './sniff-helpers';

const CLIENT_NS = `wfp-rules-c-${process.pid}`;
const SERVER_NS = `wfp-rules-s-${process.pid}`;
const SERVER = '10.88.0.2';
const SERVER6 = 'fd88::2';
const DANTE_OUT = '10.88.0.3';
const UDP_CLIENT = '10.88.0.5';
const PROXY_PORT = 7171;
const DANTE_PORT = 1080;
const MARK = '7';

const execAsync = promisify(execFile);
const inClient = (command: string[]) => execFileSync('ip', ['netns', 'exec', CLIENT_NS, ...command], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const inServer = (command: string[]) => execFileSync('ip', ['netns', 'exec', SERVER_NS, ...command], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/** A command in the client namespace, asynchronously (the proxy's output is read meanwhile); never rejects. */
async function client(command: string[], timeout = 15_000): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execAsync('ip', ['netns', 'exec', CLIENT_NS, ...command], { encoding: 'utf8', timeout });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof failed.code === 'number' ? failed.code : -1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
  }
}

const curl = (...args: string[]) => client(['curl', '-sS', '--max-time', '10', ...args]);

interface Line {
  id: number;
  protocol?: 'udp';
  destination?: string;
  domain?: string;
  learned?: string;
  via?: string;
  rule?: string;
  error?: string;
  end?: string;
  process?: { pid: number; name: string; path?: string };
  client?: string;
}

/** The proxy's JSON log lines once `count` have come that satisfy `until`. */
async function lines(proxy: Running, until: (lines: Line[]) => boolean): Promise<Line[]> {
  const parsed = () => proxy.stdout.map((line) => JSON.parse(line) as Line);
  for (let waited = 0; !until(parsed()) && waited < 10_000; waited += 50) await new Promise((resolve) => setTimeout(resolve, 50));
  return parsed();
}

/** A QUIC v1 client Initial whose ClientHello names `name`, as a client's first datagram. */
const quicInitial = (name: string, dcid: string) => protectedInitial(cryptoFrame(0, clientHelloMessage([serverNameExtension(name)])), { dcid: Buffer.from(dcid, 'hex') }).toString('hex');

describe('wfp-redirect-proxy --config: real clients through iptables REDIRECT and TPROXY (Linux)', function () {
  this.timeout(120_000);
  let servers: ChildProcess | undefined;
  let dante: ChildProcess | undefined;
  let dir: string;

  /** The proxy in the client namespace with `config`; by default also relaying UDP, on 0.0.0.0 (`dualStack`: TCP alone, on [::]). */
  const startProxy = async (config: object, extra: string[] = [], dualStack = false) => {
    const file = join(dir, `rules-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(file, JSON.stringify(config));
    const listen = dualStack ? ['--listen', `[::]:${PROXY_PORT}`] : ['--listen', `0.0.0.0:${PROXY_PORT}`, '--udp'];
    const proxy = await start(
      ['netns', 'exec', CLIENT_NS, process.execPath, CLI, ...listen, '--transparent', '--mark', MARK, '--config', file, '--log', 'json', ...extra],
      dualStack ? /listening on .*:(\d+)$/ : /relaying UDP on .*:(\d+)$/,
      { command: 'ip' },
    );
    return { file, proxy };
  };

  before(async function () {
    const missing = process.platform === 'linux' ? ['curl', 'openssl', 'danted'].find((tool) => spawnSync('which', [tool]).status !== 0) : undefined;
    const reason = process.platform !== 'linux' ? 'not Linux' : missing ? `${missing} is not installed` : (addNetworkNamespace(CLIENT_NS, ['iptables', 'ip6tables']) ?? addNetworkNamespace(SERVER_NS));
    if (reason) {
      console.warn(`    !!! THE --config END-TO-END TESTS WERE NOT RUN: ${reason}`);
      this.skip();
    }
    dir = mkdtempSync(join(tmpdir(), 'wfp-rules-e2e-'));
    execFileSync('ip', ['link', 'add', 'wfprules0', 'netns', CLIENT_NS, 'type', 'veth', 'peer', 'name', 'wfprules1', 'netns', SERVER_NS]);
    for (const [ns, device] of [[CLIENT_NS, 'wfprules0'], [SERVER_NS, 'wfprules1']]) {
      execFileSync('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up']);
      execFileSync('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', device, 'up']);
    }
    inClient(['ip', 'addr', 'add', '10.88.0.1/24', 'dev', 'wfprules0']);
    for (const address of [DANTE_OUT, UDP_CLIENT]) inClient(['ip', 'addr', 'add', `${address}/32`, 'dev', 'wfprules0']);
    inServer(['ip', 'addr', 'add', `${SERVER}/24`, 'dev', 'wfprules1']);
    inClient(['ip', '-6', 'addr', 'add', 'fd88::1/64', 'dev', 'wfprules0', 'nodad']);
    inServer(['ip', '-6', 'addr', 'add', `${SERVER6}/64`, 'dev', 'wfprules1', 'nodad']);
    inClient(['ip6tables', '-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '-d', SERVER6, '-m', 'mark', '!', '--mark', MARK, '-j', 'REDIRECT', '--to-ports', String(PROXY_PORT)]);
    // TCP: every client connection to the server, but not the proxy's own (marked) nor dante's (from DANTE_OUT).
    inClient(['iptables', '-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '-d', SERVER, '!', '-s', DANTE_OUT, '-m', 'mark', '!', '--mark', MARK, '-j', 'REDIRECT', '--to-ports', String(PROXY_PORT)]);
    // UDP: the UDP client's datagrams, marked, routed back in through lo and diverted by TPROXY.
    inClient(['ip', 'rule', 'add', 'fwmark', '1', 'lookup', '100']);
    inClient(['ip', 'route', 'add', 'local', '0.0.0.0/0', 'dev', 'lo', 'table', '100']);
    inClient(['iptables', '-t', 'mangle', '-A', 'OUTPUT', '-p', 'udp', '-s', UDP_CLIENT, '-d', SERVER, '-j', 'MARK', '--set-mark', '1']);
    inClient(['iptables', '-t', 'mangle', '-A', 'PREROUTING', '-i', 'lo', '-p', 'udp', '-d', SERVER, '-j', 'TPROXY', '--on-port', String(PROXY_PORT), '--tproxy-mark', '1']);

    servers = spawn('ip', ['netns', 'exec', SERVER_NS, process.execPath, join(__dirname, 'fixtures', 'rules-servers.js'), SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      servers!.stdout!.once('data', () => resolve());
      servers!.once('exit', (code) => reject(new Error(`the servers exited with ${code}`)));
    });
    const conf = join(dir, 'danted.conf');
    writeFileSync(conf, [
      `logoutput: ${join(dir, 'danted.log')}`, `internal: 127.0.0.1 port = ${DANTE_PORT}`, `external: ${DANTE_OUT}`, 'socksmethod: none', 'clientmethod: none',
      'user.privileged: root', 'user.unprivileged: nobody',
      'client pass { from: 0.0.0.0/0 to: 0.0.0.0/0 }', 'socks pass { from: 0.0.0.0/0 to: 0.0.0.0/0 command: connect udpassociate udpreply }', '',
    ].join('\n'));
    dante = spawn('ip', ['netns', 'exec', CLIENT_NS, 'danted', '-f', conf, '-p', join(dir, 'danted.pid')], { stdio: 'ignore' });
    for (let waited = 0; !inClient(['ss', '-Hltn', `sport = :${DANTE_PORT}`]).includes(String(DANTE_PORT)); waited += 100) {
      if (waited > 10_000) throw new Error('dante did not start listening in the client namespace');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  });

  after(function () {
    servers?.kill('SIGKILL');
    dante?.kill('SIGTERM');
    spawnSync('ip', ['netns', 'del', CLIENT_NS]);
    spawnSync('ip', ['netns', 'del', SERVER_NS]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const RULES = {
    upstreams: { dante: `socks5://127.0.0.1:${DANTE_PORT}` },
    rules: [
      { name: 'no-ads', domain: ['blocked.test', '*.ads.test'], action: 'block' },
      { name: 'through-dante', domain: '*.via.test', via: 'dante' },
      { protocol: 'udp', domain: 'quic.blocked.test', action: 'block' },
      { protocol: 'udp', domain: 'quic.socks.test', via: 'dante' },
      { port: 8080, action: 'block' },
    ],
    default: 'direct',
  };

  it('curl over HTTP and HTTPS and openssl s_client: direct by default, a domain through dante, a blocked domain reset; each logged with its domain, how it was learned, and the rule', async function () {
    const { proxy } = await startProxy(RULES);
    try {
      const direct = await curl('-H', 'Host: www.example.test', `http://${SERVER}/`);
      assert.equal(direct.stdout, 'host=www.example.test peer=10.88.0.1', direct.stderr);
      const via = await curl('-k', '--resolve', `a.via.test:443:${SERVER}`, 'https://a.via.test/');
      assert.equal(via.stdout, `servername=a.via.test peer=${DANTE_OUT}`, `through dante, whose connections come from ${DANTE_OUT}: ${via.stderr}`);
      const blocked = await curl('-H', 'Host: blocked.test', `http://${SERVER}/`);
      assert.equal(blocked.code, 56, `curl: ${blocked.stderr}`);
      assert.match(blocked.stderr, /reset by peer/i);
      const s_client = await client(['openssl', 's_client', '-connect', `${SERVER}:443`, '-servername', 'x.ads.test'], 15_000);
      assert.notEqual(s_client.code, 0);
      assert.match(s_client.stdout + s_client.stderr, /errno=104|reset by peer/i, s_client.stdout + s_client.stderr);
      const port = await curl(`http://${SERVER}:8080/`);
      assert.match(port.stderr, /reset by peer/i, 'a port rule blocks too');

      const log = await lines(proxy, (all) => all.length >= 5);
      const by = (domain: string | undefined) => log.find((line) => line.domain === domain) ?? assert.fail(`no line for ${domain}: ${proxy.stdout.join('\n')}`);
      assert.deepEqual([by('www.example.test').learned, by('www.example.test').rule, by('www.example.test').error], ['http-host', 'default', undefined]);
      assert.deepEqual([by('a.via.test').learned, by('a.via.test').rule, by('a.via.test').via], ['sni', 'through-dante', `socks5://127.0.0.1:${DANTE_PORT}`]);
      // curl may close its TLS connection with the server's session tickets unread, and its kernel then resets it (seen 1
      // in ~10 runs); or close it first (a FIN) and be reset by what the server sends after, which Linux reports as EPIPE
      // on the proxy's side, then in CLOSE_WAIT (tcp_reset). Both are curl going, not the relay: seen with the native
      // relay before and after its epoll set (1 in 6 runs, and 2 in 6), and in all three lines of one CI run.
      assert.ok([undefined, 'ECONNRESET', 'EPIPE'].includes(by('a.via.test').error), JSON.stringify(by('a.via.test')));
      assert.deepEqual([by('blocked.test').rule, by('blocked.test').error], ['no-ads', 'ERR_PROXY_BLOCKED']);
      assert.deepEqual([by('x.ads.test').learned, by('x.ads.test').rule, by('x.ads.test').error], ['sni', 'no-ads', 'ERR_PROXY_BLOCKED']);
      const byPort = log.find((line) => line.destination === `${SERVER}:8080`);
      assert.deepEqual([byPort?.rule, byPort?.error], ['rules[4]', 'ERR_PROXY_BLOCKED']);
    } finally {
      await stop(proxy);
    }
  });

  it('IPv6 and a dual-stack listener: an IPv6 block matches IPv6 destinations, an IPv4 block the IPv4 connections that reach [::] as ::ffff: addresses', async function () {
    // The domain rule turns sniffing on, so that a block comes after curl's first bytes: a reset it reports as such, never a failed connect.
    const { proxy } = await startProxy(
      { rules: [{ cidr: `${SERVER6}/128`, port: 443, action: 'block', name: 'v6-tls' }, { cidr: 'fd88::/64', action: 'direct', name: 'v6' }, { cidr: '10.88.0.0/24', port: 443, action: 'block', name: 'v4-tls' }, { domain: 'never.test', action: 'block' }] },
      [],
      true,
    );
    try {
      assert.equal((await curl('-H', 'Host: six.test', `http://[${SERVER6}]/`)).stdout, 'host=six.test peer=fd88::1');
      assert.equal((await curl('-H', 'Host: four.test', `http://${SERVER}/`)).stdout, 'host=four.test peer=10.88.0.1');
      assert.match((await curl('-k', `https://[${SERVER6}]/`)).stderr, /reset by peer/i);
      assert.match((await curl('-k', `https://${SERVER}/`)).stderr, /reset by peer/i);
      const log = await lines(proxy, (all) => all.length >= 4);
      const of = (destination: string) => log.find((line) => line.destination === destination) ?? assert.fail(`no line for ${destination}: ${proxy.stdout.join('\n')}`);
      assert.deepEqual([of(`[${SERVER6}]:80`).rule, of(`${SERVER}:80`).rule, of(`[${SERVER6}]:443`).rule, of(`${SERVER}:443`).rule], ['v6', 'default', 'v6-tls', 'v4-tls']);
      assert.match((log.find((line) => line.destination === `${SERVER}:80`) as { client?: string }).client ?? '', /^\[::ffff:10\.88\.0\.1\]:/, 'the IPv4 client came in on the dual-stack socket');
    } finally {
      await stop(proxy);
    }
  });

  it('a server that speaks first is not stalled: the sniff gives up after its bound and the connection is decided by its IP', async function () {
    const { proxy } = await startProxy({ rules: [{ domain: 'x.test', action: 'block' }, { cidr: `${SERVER}/32`, port: 25, action: 'direct', name: 'smtp' }] });
    try {
      const started = Date.now();
      const banner = await client(['bash', '-c', `exec 3<>/dev/tcp/${SERVER}/25; head -c 12 <&3`], 10_000);
      const waited = Date.now() - started;
      assert.equal(banner.stdout, '220 banner\r\n', banner.stderr);
      assert.ok(waited < 3000, `the banner took ${waited} ms`);
      const [line] = await lines(proxy, (all) => all.length >= 1);
      assert.deepEqual([line.learned, line.domain, line.rule, line.error], ['none', undefined, 'smtp', undefined]);
    } finally {
      await stop(proxy);
    }
  });

  it('process rules without --process: curl (by name) through dante, a node client (by its full path) reset, wget by the default; each line names the process and the rule', async function () {
    const { proxy } = await startProxy({
      upstreams: { dante: `socks5://127.0.0.1:${DANTE_PORT}` },
      rules: [{ name: 'curl-via-dante', process: 'curl', via: 'dante' }, { name: 'no-node', process: process.execPath, protocol: 'tcp', action: 'block' }],
      default: 'direct',
    });
    try {
      const viaCurl = await curl('-H', 'Host: curl.test', `http://${SERVER}/`);
      assert.equal(viaCurl.stdout, `host=curl.test peer=${DANTE_OUT}`, `curl through dante: ${viaCurl.stderr}`);
      const wget = await client(['wget', '-qO-', '--header', 'Host: wget.test', `http://${SERVER}/`]);
      assert.equal(wget.stdout, 'host=wget.test peer=10.88.0.1', `wget direct: ${wget.stderr}`);
      const script = `const s=require('net').connect(80,'${SERVER}',()=>s.write('GET / HTTP/1.0\\r\\nHost: node.test\\r\\n\\r\\n'));let got='';s.on('data',(d)=>got+=d);s.on('error',(e)=>console.log(e.code));s.on('close',()=>console.log('got='+got.length))`;
      const node = await client([process.execPath, '-e', script]);
      assert.match(node.stdout, /ECONNRESET|got=0/, `the node client is refused: ${node.stdout} ${node.stderr}`);
      assert.doesNotMatch(node.stdout, /got=[1-9]/);
      const log = await lines(proxy, (all) => all.length >= 3);
      const of = (name: string) => log.find((line) => line.process?.name === name) ?? assert.fail(`no line for ${name}: ${proxy.stdout.join('\n')}`);
      assert.deepEqual([of('curl').rule, of('curl').via, of('curl').error], ['curl-via-dante', `socks5://127.0.0.1:${DANTE_PORT}`, undefined]);
      assert.deepEqual([of('wget').rule, of('wget').via], ['default', undefined]);
      assert.deepEqual([of('node').rule, of('node').error, of('node').process?.path], ['no-node', 'ERR_PROXY_BLOCKED', process.execPath]);
    } finally {
      await stop(proxy);
    }
  });

  it('UDP process rules through TPROXY without --process: a node client\'s flows through dante (UDP ASSOCIATE) by its name, or blocked, each line naming the process', async function () {
    const send = () => client([process.execPath, join(__dirname, 'fixtures', 'udp-send-each.js'), UDP_CLIENT, SERVER, '443', 'c0ffee*3', 'beef']);
    let { proxy } = await startProxy({ upstreams: { dante: `socks5://127.0.0.1:${DANTE_PORT}` }, rules: [{ name: 'node-udp', protocol: 'udp', process: 'node', via: 'dante' }], default: 'block' });
    try {
      const sent = await send();
      assert.deepEqual(JSON.parse(sent.stdout), [{ replied: true, intact: true }, { replied: true, intact: true }], sent.stderr);
      await stop(proxy);
      const flows = proxy.stdout.map((line) => JSON.parse(line) as Line).filter((line) => line.protocol === 'udp');
      assert.equal(flows.length, 2, proxy.stdout.join('\n'));
      for (const flow of flows) assert.deepEqual([flow.rule, flow.via, flow.process?.name], ['node-udp', `socks5://127.0.0.1:${DANTE_PORT}`, 'node'], JSON.stringify(flow));
    } finally {
      await stop(proxy);
    }
    ({ proxy } = await startProxy({ rules: [{ name: 'no-node-udp', protocol: 'udp', process: 'node', action: 'block' }], default: 'direct' }));
    try {
      const sent = await send();
      assert.deepEqual(JSON.parse(sent.stdout), [{ replied: false, intact: false }, { replied: false, intact: false }], sent.stderr);
      const log = await lines(proxy, (all) => all.some((line) => line.end === 'blocked'));
      const blocked = log.filter((line) => line.end === 'blocked');
      assert.deepEqual([blocked[0].rule, blocked[0].error, blocked[0].process?.name], ['no-node-udp', 'ERR_PROXY_BLOCKED', 'node']);
    } finally {
      await stop(proxy);
    }
  });

  it('UDP through TPROXY: a QUIC Initial\'s server name decides each flow: direct, through dante (UDP ASSOCIATE), or blocked (dropped, logged once)', async function () {
    const { proxy } = await startProxy(RULES);
    try {
      const sent = await client([process.execPath, join(__dirname, 'fixtures', 'udp-send-each.js'), UDP_CLIENT, SERVER, '443',
        quicInitial('quic.ok.test', '0102030405060708'), `${quicInitial('quic.blocked.test', '1112131415161718')}*3`, quicInitial('quic.socks.test', '2122232425262728'), 'c0ffee']);
      assert.deepEqual(JSON.parse(sent.stdout), [{ replied: true, intact: true }, { replied: false, intact: false }, { replied: true, intact: true }, { replied: true, intact: true }], sent.stderr);
      const log = await lines(proxy, (all) => all.filter((line) => line.protocol === 'udp').length >= 1);
      const blocked = log.filter((line) => line.end === 'blocked');
      assert.equal(blocked.length, 1, `three datagrams of one blocked flow, one line: ${proxy.stdout.join('\n')}`);
      assert.deepEqual([blocked[0].domain, blocked[0].learned, blocked[0].rule, blocked[0].error], ['quic.blocked.test', 'quic', 'rules[2]', 'ERR_PROXY_BLOCKED']);
      await stop(proxy);
      const ended = proxy.stdout.map((line) => JSON.parse(line) as Line).filter((line) => line.protocol === 'udp' && line.end !== 'blocked');
      const of = (domain: string | undefined) => ended.find((line) => line.domain === domain) ?? assert.fail(`no flow for ${domain}: ${proxy.stdout.join('\n')}`);
      assert.deepEqual([of('quic.ok.test').learned, of('quic.ok.test').rule, of('quic.ok.test').via], ['quic', 'default', undefined]);
      assert.deepEqual([of('quic.socks.test').rule, of('quic.socks.test').via], ['rules[3]', `socks5://127.0.0.1:${DANTE_PORT}`]);
      assert.deepEqual([of(undefined).learned, of(undefined).rule], ['none', 'default'], 'not QUIC: no name, the default');
    } finally {
      await stop(proxy);
    }
  });

  it('SIGHUP reads the file again: a good new file is in force for new connections, a bad one is refused on stderr and the old stays', async function () {
    const { proxy, file } = await startProxy({ rules: [{ domain: 'blocked.test', action: 'block' }] });
    try {
      assert.match((await curl('-H', 'Host: blocked.test', `http://${SERVER}/`)).stderr, /reset by peer/i);
      // A connection open across the reload keeps the decision it had: its second request, after the reload, is answered too.
      const request = (close: string) => `printf 'GET / HTTP/1.1\\r\\nHost: other.test\\r\\n${close}\\r\\n' >&3`;
      const open = client(['bash', '-c', `exec 3<>/dev/tcp/${SERVER}/80; ${request('')}; sleep 1.5; ${request('Connection: close\\r\\n')}; timeout 5 cat <&3`]);
      await new Promise((resolve) => setTimeout(resolve, 500));
      writeFileSync(file, JSON.stringify({ rules: [{ domain: 'other.test', action: 'block', name: 'other' }] }));
      proxy.child.kill('SIGHUP');
      await lines(proxy, () => proxy.stderr.some((line) => line.includes('reloaded')));
      assert.ok(proxy.stderr.some((line) => /reloaded .*: 1 rule/.test(line)), proxy.stderr.join('\n'));
      assert.equal((await curl('-H', 'Host: blocked.test', `http://${SERVER}/`)).stdout, 'host=blocked.test peer=10.88.0.1');
      const kept = await open;
      assert.equal(kept.stdout.match(/host=other\.test/g)?.length, 2, `the open connection: ${kept.stdout}${kept.stderr}`);
      writeFileSync(file, JSON.stringify({ rules: [{ domain: 'other.test', action: 'deny' }] }));
      proxy.child.kill('SIGHUP');
      await lines(proxy, () => proxy.stderr.some((line) => line.includes('not reloaded')));
      assert.ok(proxy.stderr.some((line) => line.includes(`not reloaded, the rules in force stay: ${file}: rules[0].action: wants "direct" or "block"`)), proxy.stderr.join('\n'));
      assert.match((await curl('-H', 'Host: other.test', `http://${SERVER}/`)).stderr, /reset by peer/i, 'the good rules stay in force');
      assert.equal(proxy.child.exitCode, null, 'the proxy runs on');
    } finally {
      await stop(proxy);
    }
  });

  it('--workers 2: SIGHUP to the primary, and every worker reads the file again', async function () {
    const { proxy, file } = await startProxy({ rules: [] }, ['--workers', '2']);
    try {
      await lines(proxy, () => proxy.stderr.filter((line) => /worker \d: relaying .*listening on/.test(line)).length >= 2);
      assert.equal((await curl('-H', 'Host: late.test', `http://${SERVER}/`)).stdout, 'host=late.test peer=10.88.0.1');
      writeFileSync(file, JSON.stringify({ rules: [{ domain: 'late.test', action: 'block' }] }));
      proxy.child.kill('SIGHUP');
      await lines(proxy, () => proxy.stderr.filter((line) => /worker \d: reloaded/.test(line)).length >= 2);
      assert.deepEqual(proxy.stderr.filter((line) => /worker \d: reloaded/.test(line)).map((line) => /worker (\d)/.exec(line)![1]).sort(), ['1', '2'], proxy.stderr.join('\n'));
      // However the kernel spreads them, every new connection meets the new rules.
      for (let i = 0; i < 6; i++) assert.match((await curl('-H', 'Host: late.test', `http://${SERVER}/`)).stderr, /reset by peer/i);
    } finally {
      await stop(proxy);
    }
  });

  it('--workers 2: the primary\'s two words to stop read by a paused worker in one read, a connection open: it still exits at once (130), not killed', async function () {
    const { proxy } = await startProxy({ rules: [] }, ['--workers', '2']);
    let pids: number[] = [];
    try {
      await lines(proxy, () => proxy.stderr.filter((line) => /worker \d: relaying .*listening on/.test(line)).length >= 2);
      pids = /pids (\d+), (\d+)/.exec(proxy.stderr.join('\n'))!.slice(1).map(Number);
      // Held open by the server (keep-alive): the first word alone would wait for it until the deadline (10 s).
      const held = client(['bash', '-c', `exec 3<>/dev/tcp/${SERVER}/80; printf 'GET / HTTP/1.1\\r\\nHost: held.test\\r\\n\\r\\n' >&3; timeout 8 cat <&3`]);
      await new Promise((resolve) => setTimeout(resolve, 500));
      // Paused, neither worker can read the primary's SHUTDOWN before its FORCE_STOP is written too.
      for (const pid of pids) process.kill(pid, 'SIGSTOP');
      const told = Date.now();
      proxy.child.kill('SIGTERM');
      await lines(proxy, () => proxy.stderr.some((line) => /SIGTERM: stopping 2 worker/.test(line)));
      proxy.child.kill('SIGTERM');
      await lines(proxy, () => proxy.stderr.some((line) => /SIGTERM again: telling 2 worker/.test(line)));
      for (const pid of pids) process.kill(pid, 'SIGCONT');
      const [code, signal] = proxy.child.exitCode === null ? await once(proxy.child, 'exit') : [proxy.child.exitCode, null];
      const took = Date.now() - told;
      const text = proxy.stderr.join('\n');
      assert.equal(code, 130, `exit ${code ?? signal} after ${took} ms:\n${text}`);
      assert.doesNotMatch(text, /killing it/, text);
      assert.ok(took < 6_000, `exited ${took} ms after the first signal: ${text}`);
      assert.match((await held).stdout, /host=held\.test/, 'the held connection was relayed');
    } finally {
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // Exited, as it should have.
        }
      }
      await stop(proxy);
    }
  });
});

describe('wfp-redirect-proxy --explain and refused configs', function () {
  this.timeout(30_000);
  let dir: string;
  before(() => (dir = mkdtempSync(join(tmpdir(), 'wfp-explain-'))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  const explain = (config: unknown, query: string) => {
    const file = join(dir, 'rules.json');
    writeFileSync(file, typeof config === 'string' ? config : JSON.stringify(config));
    return spawnSync(process.execPath, [CLI, '--config', file, '--explain', query], { encoding: 'utf8' });
  };
  const CONFIG = {
    upstreams: { corp: 'http://127.0.0.1:3128' },
    rules: [{ domain: '*.onion', action: 'block' }, { name: 'curl', process: 'curl', port: [80, 443], via: 'corp' }, { cidr: '10.0.0.0/8', action: 'direct' }],
    default: 'block',
  };

  for (const [query, answer] of [
    ['tcp example.com:443 process=curl', 'rules[1] "curl": via corp (http://127.0.0.1:3128)'],
    ['tcp a.onion:80 process=curl', 'rules[0]: block'],
    ['udp 10.1.2.3:53', 'rules[2]: direct'],
    ['tcp [2001:db8::1]:22', 'default: block'],
  ]) {
    it(`"${query}": ${answer}, exit 0`, function () {
      const run = explain(CONFIG, query);
      assert.equal(run.status, 0, run.stderr);
      assert.equal(run.stdout, `${answer}\n`);
    });
  }

  it('a bad query or a bad config: exit 2 with the reason', function () {
    const bad = explain(CONFIG, 'tcp example.com');
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /is not HOST:PORT/);
    const config = explain({ rules: [{ port: [80, 'http'], action: 'direct' }] }, 'tcp a.b:80');
    assert.equal(config.status, 2);
    assert.match(config.stderr, /rules\.json: rules\[0\]\.port\[1\]: wants a port number/);
  });

  it('a proxy with a bad config does not start: exit 2, the file, the path and the reason', function () {
    const file = join(dir, 'start.json');
    writeFileSync(file, JSON.stringify({ upstreams: {}, rules: [{ via: 'nowhere' }] }));
    const run = spawnSync(process.execPath, [CLI, '--listen', '127.0.0.1:0', '--transparent', '--config', file], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(run.status, 2);
    assert.match(run.stderr, /start\.json: rules\[0\]\.via: no upstream named "nowhere"/);
  });

  it('--config with --upstream or --via is refused (exit 2)', function () {
    for (const extra of [['--upstream', '127.0.0.1:9'], ['--transparent', '--via', 'socks5://127.0.0.1:1080']]) {
      const run = spawnSync(process.execPath, [CLI, '--listen', '127.0.0.1:0', '--config', join(dir, 'x.json'), ...extra], { encoding: 'utf8', timeout: 20_000 });
      assert.equal(run.status, 2, run.stderr);
      assert.match(run.stderr, /--config/);
    }
  });
});
