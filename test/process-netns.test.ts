// The proxy CLI's --process through real kernel redirects (Linux): in a
// network namespace "C", curl's connection redirected by iptables REDIRECT
// (nat OUTPUT) and a node client's UDP flow diverted by TPROXY (mangle) reach
// the proxy, whose JSON log must name each client's process by the pid the
// test spawned; a curl in a second namespace "R" (joined by a veth pair,
// redirected in PREROUTING) is a remote client: no process. Needs Linux, root,
// iproute2, iptables and curl; without them it says so loudly and is pending.
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { join } from 'node:path';
import { once } from 'node:events';
import { addNetworkNamespace } from './helpers';
import { formatter } from '../dist/proxy/log-format';

const C = `wfp-redirect-proc-c-${process.pid}`;
const R = `wfp-redirect-proc-r-${process.pid}`;
const ORIGIN_PORT = 7070;
const UDP_PORT = 7072;
const PROXY_PORT = 7171;
const C_ADDRESS = '10.79.0.1';
const C_CLIENT = '10.79.0.5';
const R_ADDRESS = '10.79.0.2';
const CLI = join(__dirname, '..', 'bin', 'wfp-redirect-proxy');

const run = (ns: string, command: string[]) => execFileSync('ip', ['netns', 'exec', ns, ...command], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/** Spawns `command` in `ns` (ip netns exec execs it: the child's pid is the command's) and resolves its stdout at exit. */
function runIn(ns: string, command: string[]): { child: ChildProcess; output: Promise<string> } {
  const child = spawn('ip', ['netns', 'exec', ns, ...command], { stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  child.stdout!.on('data', (chunk) => (text += chunk));
  const output = once(child, 'exit').then(() => text);
  return { child, output };
}

/** Starts a long-running program in `ns` and waits for its first line of stdout (or of stderr, for the proxy). */
async function started(ns: string, command: string[], stream: 'stdout' | 'stderr', ready: RegExp): Promise<{ child: ChildProcess; lines: string[] }> {
  const child = spawn('ip', ['netns', 'exec', ns, ...command], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  child.stdout!.on('data', (chunk: Buffer) => lines.push(...chunk.toString().split('\n').filter(Boolean)));
  let said = '';
  await new Promise<void>((resolve, reject) => {
    child[stream]!.on('data', (chunk: Buffer) => {
      said += chunk.toString();
      if (ready.test(said)) resolve();
    });
    child.once('exit', (code) => reject(new Error(`${command.join(' ')} exited with ${code}: ${said}`)));
  });
  return { child, lines };
}

describe('--process through real redirects in network namespaces (Linux)', function () {
  this.timeout(60_000);
  const running: ChildProcess[] = [];

  before(function () {
    const reason = spawnSync('curl', ['--version'], { stdio: 'ignore' }).error ? 'curl is not installed' : addNetworkNamespace(C, ['iptables']) ?? addNetworkNamespace(R);
    if (reason) {
      console.warn(`    !!! THE --process NETWORK-NAMESPACE TEST WAS NOT RUN: ${reason}`);
      this.skip();
    }
    execFileSync('ip', ['link', 'add', 'wfpproc0', 'netns', C, 'type', 'veth', 'peer', 'name', 'wfpproc1', 'netns', R]);
    for (const [ns, device] of [[C, 'wfpproc0'], [R, 'wfpproc1']]) {
      run(ns, ['ip', 'link', 'set', 'lo', 'up']);
      run(ns, ['ip', 'link', 'set', device, 'up']);
    }
    run(C, ['ip', 'addr', 'add', `${C_ADDRESS}/24`, 'dev', 'wfpproc0']);
    run(C, ['ip', 'addr', 'add', `${C_CLIENT}/32`, 'dev', 'wfpproc0']);
    run(R, ['ip', 'addr', 'add', `${R_ADDRESS}/24`, 'dev', 'wfpproc1']);
    // TCP: this namespace's client (127.0.0.5) in OUTPUT, and R's connections in PREROUTING.
    run(C, ['iptables', '-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '-s', '127.0.0.5', '-d', '127.0.0.1', '--dport', String(ORIGIN_PORT), '-j', 'REDIRECT', '--to-ports', String(PROXY_PORT)]);
    run(C, ['iptables', '-t', 'nat', '-A', 'PREROUTING', '-i', 'wfpproc0', '-p', 'tcp', '--dport', String(ORIGIN_PORT), '-j', 'REDIRECT', '--to-ports', String(PROXY_PORT)]);
    // UDP: the client's datagrams for R marked, routed back in through lo, diverted by TPROXY.
    run(C, ['ip', 'rule', 'add', 'fwmark', '1', 'lookup', '100']);
    run(C, ['ip', 'route', 'add', 'local', '0.0.0.0/0', 'dev', 'lo', 'table', '100']);
    run(C, ['iptables', '-t', 'mangle', '-A', 'OUTPUT', '-p', 'udp', '-s', C_CLIENT, '-d', R_ADDRESS, '--dport', String(UDP_PORT), '-j', 'MARK', '--set-mark', '1']);
    run(C, ['iptables', '-t', 'mangle', '-A', 'PREROUTING', '-i', 'lo', '-p', 'udp', '-d', R_ADDRESS, '--dport', String(UDP_PORT), '-j', 'TPROXY', '--on-port', String(PROXY_PORT), '--tproxy-mark', '1']);
  });

  after(function () {
    for (const child of running) child.kill('SIGKILL');
    spawnSync('ip', ['netns', 'del', C]);
    spawnSync('ip', ['netns', 'del', R]);
  });

  it("names curl (REDIRECT) and a node UDP client (TPROXY) by the pids the test spawned; a remote client's connection has no process", async function () {
    const origin = await started(C, [process.execPath, '-e',
      `require('net').createServer((s)=>{s.on('error',()=>{});s.once('data',()=>s.end('HTTP/1.0 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok'))}).listen(${ORIGIN_PORT},'0.0.0.0',()=>console.log('ready'))`], 'stdout', /ready/);
    running.push(origin.child);
    const echo = await started(R, [process.execPath, join(__dirname, 'fixtures', 'udp-reverse-server.js'), R_ADDRESS, String(UDP_PORT)], 'stdout', /./);
    running.push(echo.child);
    const proxy = await started(C, [process.execPath, CLI, '--listen', `0.0.0.0:${PROXY_PORT}`, '--transparent', '--udp', '--process', '--log', 'json'], 'stderr', /relaying UDP on/);
    running.push(proxy.child);

    const local = runIn(C, ['curl', '-s', '--max-time', '10', '--interface', '127.0.0.5', `http://127.0.0.1:${ORIGIN_PORT}/`]);
    assert.equal(await local.output, 'ok');
    const remote = runIn(R, ['curl', '-s', '--max-time', '10', `http://${C_ADDRESS}:${ORIGIN_PORT}/`]);
    assert.equal(await remote.output, 'ok');
    const udp = runIn(C, [process.execPath, '-e',
      `const s=require('dgram').createSocket('udp4');s.bind(0,'${C_CLIENT}',()=>s.send('hello',${UDP_PORT},'${R_ADDRESS}'));` +
        // It stays a moment after its reply: the relay does not hold the flow for the lookup, which a client gone already would make unknown.
        "s.on('message',(m)=>{console.log(m.toString());setTimeout(()=>process.exit(0),500)});setTimeout(()=>process.exit(3),8000)"]);
    assert.ok((await udp.output).trim().length > 0, 'the UDP client got its reply');

    proxy.child.kill('SIGTERM');
    await once(proxy.child, 'exit');
    const logs = proxy.lines.map((line) => JSON.parse(line));
    const tcp = logs.filter((entry) => entry.protocol === undefined);
    const ofLocal = tcp.find((entry) => entry.client.startsWith('127.0.0.5:'));
    const ofRemote = tcp.find((entry) => entry.client.startsWith(`${R_ADDRESS}:`));
    assert.ok(ofLocal && ofRemote, JSON.stringify(logs));
    assert.deepEqual(ofLocal.process, { pid: local.child.pid, name: 'curl', path: realpathSync(execFileSync('sh', ['-c', 'command -v curl'], { encoding: 'utf8' }).trim()) });
    assert.equal(ofRemote.process, undefined, 'a client in another namespace is not a process of this host');
    const flow = logs.find((entry) => entry.protocol === 'udp' && entry.client.startsWith(`${C_CLIENT}:`));
    assert.ok(flow, JSON.stringify(logs));
    assert.deepEqual(flow.process, { pid: udp.child.pid, name: 'node', path: realpathSync(process.execPath) });
  });
});

describe('--process in the log', function () {
  it('the text log names the process as NAME[PID], quoted where the name has spaces', function () {
    const line = formatter({ format: 'text', worker: undefined, records: false });
    const entry = { id: 1, client: '127.0.0.5:4000', destination: '127.0.0.1:80', records: 0, bytesUp: 1, bytesDown: 2, durationMs: 3 };
    assert.match(line({ ...entry, process: { pid: 4242, name: 'curl', path: '/usr/bin/curl' } }), / -> 127\.0\.0\.1:80 process=curl\[4242\] up=1 /);
    assert.match(line({ ...entry, process: { pid: 7, name: 'Web Content', path: undefined } }), / process="Web Content"\[7\] /);
    assert.doesNotMatch(line(entry), /process=/);
  });
});
