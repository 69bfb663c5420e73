// lookupProcess against real client processes on this host: curl over TCP
// (IPv4 and IPv6), node and bash over UDP, a process that exited, a port
// taken again by another process, a socket handed from one process to
// another (the cache must check before it answers), a remote client, the
// budget, and caller mistakes. Linux (sock_diag and /proc) here; in node.exe
// under Wine the owner-pid tables (the Windows block below).
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { readdirSync, readFileSync, readlinkSync, realpathSync } from 'node:fs';
import net from 'node:net';
import { once } from 'node:events';
import { lookupProcess, ProcessLookup, describeProcess, TransparentProxy, type ConnectionLog, type RouteRequest } from '../dist/index';
import { closedPortBelowEphemeral, OWN_IMAGE, rejection, spy } from './helpers';

/**
 * The sender of the first datagram `server` receives that reads `payload`. Others are passed over: the Windows suite
 * runs beside this one on the same loopback, and a datagram of its own can reach a port this test was just given.
 */
async function senderOf(server: dgram.Socket, payload: string): Promise<dgram.RemoteInfo> {
  for (;;) {
    const [data, rinfo] = (await once(server, 'message')) as [Buffer, dgram.RemoteInfo];
    if (data.toString() === payload) return rinfo;
  }
}

/** A UDP socket on 127.0.0.1, bound to a port of the OS's choosing, and that port. */
async function udpServer(): Promise<{ server: dgram.Socket; port: number }> {
  const server = dgram.createSocket('udp4');
  server.bind(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: server.address().port };
}

const linux = process.platform === 'linux';
const windows = process.platform === 'win32';

function which(program: string): string | undefined {
  const found = spawnSync('sh', ['-c', `command -v ${program}`], { encoding: 'utf8' });
  return found.status === 0 ? realpathSync(found.stdout.trim()) : undefined;
}

/** Rejects when `client` exits: its code says why it did not connect (curl's 45: it could not bind its local port). */
class ClientExited extends Error {
  constructor(readonly exitCode: number | null) {
    super(`the client exited (code ${exitCode}) before its connection arrived`);
  }
}

/**
 * A TCP server that holds each connection open; `next(client)` resolves the next accepted socket, and rejects when
 * `client` exits first or after 10 s, so that a client that never connects fails the spec at once and its `finally`
 * still closes the server (a listener left open keeps mocha from exiting).
 */
async function holdingServer(host: string): Promise<{ server: net.Server; port: number; next(client: ChildProcess): Promise<net.Socket> }> {
  const waiting: Array<(socket: net.Socket) => void> = [];
  const queued: net.Socket[] = [];
  const server = net.createServer((socket) => {
    socket.on('error', () => {});
    const take = waiting.shift();
    if (take) take(socket);
    else queued.push(socket);
  });
  server.listen(0, host);
  await once(server, 'listening');
  const next = (client: ChildProcess) =>
    new Promise<net.Socket>((resolve, reject) => {
      if (queued.length) return resolve(queued.shift()!);
      if (client.exitCode !== null || client.signalCode !== null) return reject(new ClientExited(client.exitCode));
      const timer = setTimeout(() => settle(new Error('no connection from the client within 10 s')), 10_000);
      const onExit = (code: number | null) => settle(new ClientExited(code));
      const take = (socket: net.Socket) => settle(undefined, socket);
      function settle(error?: Error, socket?: net.Socket) {
        clearTimeout(timer);
        client.off('exit', onExit);
        const at = waiting.indexOf(take);
        if (at >= 0) waiting.splice(at, 1);
        if (socket) resolve(socket);
        else if (error) reject(error);
      }
      waiting.push(take);
      client.once('exit', onExit);
    });
  return { server, port: (server.address() as net.AddressInfo).port, next };
}

const clientOf = (socket: net.Socket) => ({ address: socket.remoteAddress!, port: socket.remotePort! });
const serverOf = (socket: net.Socket) => ({ address: socket.localAddress!, port: socket.localPort! });

/** Waits (at most 5 s) until process `pid` runs `program`: a fork is its parent's image until it execs. */
async function execed(pid: number, program: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== program) {
    if (Date.now() > deadline) throw new Error(`process ${pid} did not exec ${program} within 5 s`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function exited(child: ChildProcess): Promise<unknown> {
  return child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : once(child, 'exit');
}

/**
 * The time bound these specs give a lookup: what they test is whom it finds, not how fast. With the default (1 s), a
 * fresh-clone CI run (the Linux suites beside Wine's set-up and the mingw build) once had a cached lookup answer
 * unknown at its bound.
 */
const LOOKUP_MS = 10_000;

describe('lookupProcess: the process behind a connection on this host (Linux: sock_diag and /proc)', function () {
  this.timeout(30_000);
  const children: ChildProcess[] = [];

  before(function () {
    if (!linux) {
      console.warn('    (the Linux process lookup is tested on Linux; in node.exe the owner-pid tables are, below)');
      this.skip();
    }
    if (!which('curl')) {
      console.warn('    !!! THE LINUX PROCESS-LOOKUP TESTS WERE NOT RUN: curl is not installed (apt-get install curl)');
      this.skip();
    }
  });
  afterEach(() => {
    for (const child of children.splice(0)) child.kill('SIGKILL');
  });

  for (const [family, host, url] of [['IPv4', '127.0.0.1', '127.0.0.1'], ['IPv6', '::1', '[::1]']] as const) {
    it(`${family}: a curl connection is curl's, with its pid and path; the same connection asked the other way round is this process's own socket`, async function () {
      const { server, port, next } = await holdingServer(host);
      try {
        const curl = spawn('curl', ['-s', '--max-time', '20', `http://${url}:${port}/`], { stdio: 'ignore' });
        children.push(curl);
        const socket = await next(curl);
        const found = await lookupProcess({ protocol: 'tcp', local: clientOf(socket), remote: serverOf(socket) });
        assert.deepEqual(found, { pid: curl.pid, name: 'curl', path: which('curl') });
        // The server's end is this process's: the direction of the tuple matters.
        const mine = await lookupProcess({ protocol: 'tcp', local: serverOf(socket), remote: clientOf(socket) });
        assert.equal(mine?.pid, process.pid);
        // A connection that does not exist is unknown (the listener on the port is not it).
        assert.equal(await lookupProcess({ protocol: 'tcp', local: { address: host, port }, remote: { address: host, port: 1 } }), undefined);
        socket.destroy();
      } finally {
        server.close();
      }
    });
  }

  it('a process that exited is unknown', async function () {
    const { server, port, next } = await holdingServer('127.0.0.1');
    try {
      const curl = spawn('curl', ['-s', '--max-time', '20', `http://127.0.0.1:${port}/`], { stdio: 'ignore' });
      children.push(curl);
      const socket = await next(curl);
      const query = { protocol: 'tcp', local: clientOf(socket), remote: serverOf(socket) } as const;
      assert.equal((await lookupProcess(query))?.pid, curl.pid);
      curl.kill('SIGKILL');
      await exited(curl);
      assert.equal(await lookupProcess(query), undefined, 'the cached holder is gone: unknown, not its old pid');
      socket.destroy();
    } finally {
      server.close();
    }
  });

  it('a local port taken again by another process answers that process, not the cached one', async function () {
    // A port below the ephemeral range, free when chosen; another suite running beside this one can still take it
    // before curl binds it (curl's exit code 45), and then the spec starts again on another.
    for (let attempt = 1; ; attempt++) {
      const pids = await twoClientsOnOnePort(await closedPortBelowEphemeral()).catch((error) => {
        if (error instanceof ClientExited && error.exitCode === 45 && attempt < 5) return undefined;
        throw error;
      });
      if (!pids) continue;
      assert.notEqual(pids[0], pids[1]);
      return;
    }
  });

  /** Two curl processes in turn from `localPort`, each asked of one ProcessLookup; the pids it found. */
  async function twoClientsOnOnePort(localPort: number): Promise<number[]> {
    const lookup = new ProcessLookup({ timeoutMs: LOOKUP_MS });
    const pids: number[] = [];
    for (let round = 0; round < 2; round++) {
      const { server, port, next } = await holdingServer('127.0.0.1');
      try {
        const curl = spawn('curl', ['-s', '--max-time', '20', '--local-port', String(localPort), `http://127.0.0.1:${port}/`], { stdio: 'ignore' });
        children.push(curl);
        const socket = await next(curl);
        assert.equal(socket.remotePort, localPort);
        const found = await lookup.lookup({ protocol: 'tcp', local: clientOf(socket), remote: serverOf(socket) });
        assert.equal(found?.pid, curl.pid, `round ${round}`);
        pids.push(found!.pid);
        // The server closes first, so that the client's port is free again at once (no TIME_WAIT on its side).
        socket.destroy();
        await exited(curl);
      } finally {
        server.close();
      }
    }
    return pids;
  }

  for (const connected of [false, true]) {
    it(`UDP: a node process's ${connected ? 'connected' : 'unconnected'} socket`, async function () {
      const { server, port } = await udpServer();
      const script = connected
        ? `const s=require('dgram').createSocket('udp4');s.connect(${port},'127.0.0.1',()=>s.send('lookup me'));setTimeout(()=>{},20000)`
        : `const s=require('dgram').createSocket('udp4');s.send('lookup me',${port},'127.0.0.1');setTimeout(()=>{},20000)`;
      const child = spawn(process.execPath, ['-e', script], { stdio: 'ignore' });
      children.push(child);
      try {
        const rinfo = await senderOf(server, 'lookup me');
        const found = await lookupProcess({ protocol: 'udp', local: { address: rinfo.address, port: rinfo.port }, remote: { address: '127.0.0.1', port } });
        assert.deepEqual(found, { pid: child.pid, name: 'node', path: realpathSync(process.execPath) });
        // A peer the connected socket is not connected to reaches no socket; the unconnected one answers any.
        const other = await lookupProcess({ protocol: 'udp', local: { address: rinfo.address, port: rinfo.port }, remote: { address: '127.0.0.1', port: 9 } });
        assert.equal(other?.pid, connected ? undefined : child.pid);
      } finally {
        server.close();
      }
    });
  }

  it('UDP: a socket handed to another process is that process\'s once the first lets go: the cache checks before it answers', async function () {
    if (!which('bash')) return this.skip();
    const { server, port } = await udpServer();
    // bash sends from fd 3, starts `sleep` holding fd 3 too, closes its own and waits.
    const script = `exec 3<>/dev/udp/127.0.0.1/${port}; echo lookup me >&3; read -r _; sleep 30 & exec 3>&-; echo "$!"; wait`;
    const bash = spawn('bash', ['-c', script], { stdio: ['pipe', 'pipe', 'ignore'] });
    children.push(bash);
    let sleeper: number | undefined;
    try {
      const rinfo = await senderOf(server, 'lookup me\n');
      const lookup = new ProcessLookup({ timeoutMs: LOOKUP_MS });
      const query = { protocol: 'udp', local: { address: rinfo.address, port: rinfo.port }, remote: { address: '127.0.0.1', port } } as const;
      // The stats say why where it is not found (a scan cut at its budget, nothing examined, ...).
      const identity = spy('socketIdentity');
      const first = await lookup.lookup(query).finally(() => identity.restore());
      // This first lookup used to miss now and then (CI; here 1 run in 6 after process-netns): the scan found bash's
      // fd 1 while echo's `>&3` held the socket there, gone by the check (the spec below). What sock_diag named and
      // who holds it now are what a miss says.
      if (first?.pid !== bash.pid) {
        const named = identity.calls[0]?.result as { inode: number } | undefined;
        assert.fail(`first lookup: ${first?.pid}; stats ${JSON.stringify(lookup.stats)}; sock_diag named ${JSON.stringify(named)}; bash's fd 3 is ${linkOf(`/proc/${bash.pid}/fd/3`)}; now held by ${named ? holdersOf(named.inode) : '-'}`);
      }
      assert.equal((await lookup.lookup(query))?.pid, bash.pid);
      assert.equal(lookup.stats.cacheHits, 1);
      bash.stdin!.write('go\n');
      const [line] = (await once(bash.stdout!, 'data')) as [Buffer];
      sleeper = Number(line.toString().trim());
      // $! is the forked child, which is still a bash until it has exec'd sleep.
      await execed(sleeper, 'sleep');
      const found = await lookup.lookup(query);
      assert.deepEqual([found?.pid, found?.name], [sleeper, 'sleep']);
      assert.equal(lookup.stats.cacheStale, 1, 'the cached holder was checked and found stale');
    } finally {
      if (sleeper) process.kill(sleeper, 'SIGKILL');
      server.close();
    }
  });

  it('a holder found through a descriptor it has closed by the check is looked for again, once: a shell that dup2()s the socket for one command', async function () {
    if (!which('bash')) return this.skip();
    const { server, port } = await udpServer();
    const bash = spawn('bash', ['-c', `exec 3<>/dev/udp/127.0.0.1/${port}; echo lookup me >&3; read -r _`], { stdio: ['pipe', 'ignore', 'ignore'] });
    children.push(bash);
    // The race CI met: the scan found bash's fd 1 (echo's `>&3`), restored to what it was before the check ran.
    // Here the first scan answers a descriptor bash never had; the second is the real one.
    const scans = spy('findSocketHolder', (original, ...args) =>
      scans.calls.length === 1 ? Promise.resolve({ pid: bash.pid, fd: 987, examined: 1, exhausted: false }) : original(...args),
    );
    try {
      const rinfo = await senderOf(server, 'lookup me\n');
      const lookup = new ProcessLookup({ timeoutMs: LOOKUP_MS });
      const found = await lookup.lookup({ protocol: 'udp', local: { address: rinfo.address, port: rinfo.port }, remote: { address: '127.0.0.1', port } });
      assert.equal(found?.pid, bash.pid, `stats ${JSON.stringify(lookup.stats)}`);
      assert.equal(scans.calls.length, 2);
    } finally {
      scans.restore();
      bash.stdin!.end('go\n');
      server.close();
    }
  });

  it('a client that is not on this host is unknown without asking the OS; the budget bounds a scan', async function () {
    const diag = spy('socketIdentity');
    try {
      assert.equal(await lookupProcess({ protocol: 'tcp', local: { address: '192.0.2.7', port: 40000 }, remote: { address: '127.0.0.1', port: 80 } }), undefined);
      assert.equal(diag.calls.length, 0);
    } finally {
      diag.restore();
    }
    const { server, port, next } = await holdingServer('127.0.0.1');
    try {
      const curl = spawn('curl', ['-s', '--max-time', '20', `http://127.0.0.1:${port}/`], { stdio: 'ignore' });
      children.push(curl);
      const socket = await next(curl);
      const tight = new ProcessLookup({ budget: 1 });
      assert.equal(await tight.lookup({ protocol: 'tcp', local: clientOf(socket), remote: serverOf(socket) }), undefined);
      assert.equal(tight.stats.exhausted, 1);
      assert.equal(tight.stats.examined, 1);
      socket.destroy();
    } finally {
      server.close();
    }
  });

  it("TransparentProxy with processLookup: a client that connected straight to the proxy is named for the route hook and the log", async function () {
    const server = net.createServer((socket) => socket.once('data', () => socket.end('HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok')).on('error', () => {}));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as net.AddressInfo).port;
    const logs: ConnectionLog[] = [];
    const seen: Array<RouteRequest['process']> = [];
    const proxy = new TransparentProxy({
      listen: { host: '127.0.0.1', port: 0 },
      destination: { kind: 'upstream', upstream: { host: '127.0.0.1', port } },
      processLookup: true,
      route: ({ process: found }) => void seen.push(found),
      log: (entry) => logs.push(entry),
    });
    const listening = await proxy.listen();
    try {
      const curl = spawn('curl', ['-s', '--max-time', '2', `http://127.0.0.1:${listening.port}/`], { stdio: 'ignore' });
      children.push(curl);
      await exited(curl);
      for (let i = 0; i < 100 && logs.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 20));
      assert.deepEqual(seen.map((found) => found?.pid), [curl.pid]);
      assert.equal(logs[0]?.process?.name, 'curl', JSON.stringify(logs));
    } finally {
      await proxy.shutdown(0);
      server.close();
    }
  });

  it('a lookup that does not answer is unknown at its bound: the proxy relays the connection without a process, inside its route deadline', async function () {
    const stuck = spy('findSocketHolder', () => new Promise(() => {}));
    const server = net.createServer((socket) => socket.once('data', () => socket.end('HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok')).on('error', () => {}));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const logs: ConnectionLog[] = [];
    const proxy = new TransparentProxy({
      listen: { host: '127.0.0.1', port: 0 },
      destination: { kind: 'upstream', upstream: { host: '127.0.0.1', port: (server.address() as net.AddressInfo).port } },
      processLookup: true,
      routeTimeout: 2000,
      log: (entry) => logs.push(entry),
    });
    const listening = await proxy.listen();
    try {
      const lookup = new ProcessLookup({ timeoutMs: 50 });
      const curl = spawn('curl', ['-s', '--max-time', '5', `http://127.0.0.1:${listening.port}/`], { stdio: ['ignore', 'pipe', 'ignore'] });
      children.push(curl);
      let body = '';
      curl.stdout!.on('data', (chunk) => (body += chunk));
      await exited(curl);
      assert.equal(body, 'ok');
      for (let i = 0; i < 100 && logs.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 20));
      assert.equal(logs[0]?.error, undefined, JSON.stringify(logs));
      assert.equal(logs[0]?.process, undefined);
      assert.ok(stuck.calls.length >= 1, 'the scan was asked for');
      // The library's own bound, alone.
      const held = net.connect(listening.port, '127.0.0.1');
      await once(held, 'connect');
      assert.equal(await lookup.lookup({ protocol: 'tcp', local: { address: '127.0.0.1', port: held.localPort! }, remote: { address: '127.0.0.1', port: listening.port } }), undefined);
      assert.equal(lookup.stats.timedOut, 1);
      held.destroy();
    } finally {
      stuck.restore();
      await proxy.shutdown(0);
      server.close();
    }
  });

  it('describeProcess names a pid', async function () {
    assert.deepEqual(await describeProcess(process.pid), { pid: process.pid, name: 'node', path: realpathSync(process.execPath) });
  });
});

describe('lookupProcess: caller mistakes', function () {
  it('are TypeError / RangeError with a code; everything else is unknown, not an error', async function () {
    const local = { address: '127.0.0.1', port: 1 };
    assert.equal((await rejection(lookupProcess(null as never))).code, 'ERR_INVALID_ARG_TYPE');
    assert.equal((await rejection(lookupProcess({ protocol: 'sctp', local } as never))).code, 'ERR_INVALID_ARG_VALUE');
    assert.equal((await rejection(lookupProcess({ protocol: 'tcp', local: { address: 'example.com', port: 1 } }))).code, 'ERR_INVALID_ARG_VALUE');
    assert.equal((await rejection(lookupProcess({ protocol: 'tcp', local: { address: '127.0.0.1', port: 70000 } }))).code, 'ERR_OUT_OF_RANGE');
    assert.equal((await rejection(lookupProcess({ protocol: 'udp', local, remote: { address: '::1' } } as never))).code, 'ERR_INVALID_ARG_TYPE');
    assert.equal((await rejection(describeProcess(0))).code, 'ERR_OUT_OF_RANGE');
    assert.throws(() => new ProcessLookup({ budget: 0 }), { code: 'ERR_OUT_OF_RANGE' });
    // Different families: that remote says nothing (no socket has one), so TCP on Linux is unknown.
    assert.equal(await lookupProcess({ protocol: 'tcp', local, remote: { address: '::1', port: 80 } }), undefined);
  });
});

describe('lookupProcess: the owner-pid tables (Windows node.exe)', function () {
  this.timeout(30_000);
  before(function () {
    if (!windows) {
      console.warn('    (the owner-pid tables are Windows\'s: tested in node.exe under Wine)');
      this.skip();
    }
  });

  for (const [family, host] of [['IPv4', '127.0.0.1'], ['IPv6', '::1']] as const) {
    it(`${family}: a node.exe client's TCP connection is its process's (pid, node.exe, path); this process's own rows are left out`, async function () {
      const { server, port, next } = await holdingServer(host);
      const child = spawn(process.execPath, ['-e', `require('net').connect(${port}, '${host}'); setTimeout(() => {}, 20000)`], { stdio: 'ignore' });
      try {
        const socket = await next(child);
        const found = await lookupProcess({ protocol: 'tcp', local: clientOf(socket), remote: serverOf(socket) });
        if (found === undefined) {
          console.warn('    !!! Wine answered no owning pid for the client\'s row (GetExtendedTcpTable TCP_TABLE_OWNER_PID_CONNECTIONS)');
        }
        assert.equal(found?.pid, child.pid, 'Wine 10 fills dwOwningPid through nsiproxy; if this fails, it does not');
        assert.equal(found?.name.toLowerCase(), OWN_IMAGE);
        assert.equal(found?.path?.toLowerCase(), process.execPath.toLowerCase());
        // The server's end is in this process: left out, so unknown.
        assert.equal(await lookupProcess({ protocol: 'tcp', local: serverOf(socket), remote: clientOf(socket) }), undefined);
        socket.destroy();
      } finally {
        child.kill();
        server.close();
      }
    });
  }

  it("UDP: a node.exe client's socket is its process's", async function () {
    const { server, port } = await udpServer();
    const child = spawn(process.execPath, ['-e', `const s=require('dgram').createSocket('udp4');s.send('lookup me',${port},'127.0.0.1');setTimeout(()=>{},20000)`], { stdio: 'ignore' });
    try {
      const rinfo = await senderOf(server, 'lookup me');
      const found = await lookupProcess({ protocol: 'udp', local: { address: rinfo.address, port: rinfo.port }, remote: { address: '127.0.0.1', port } });
      assert.equal(found?.pid, child.pid, 'the UDP owner-pid table');
      assert.equal(found?.name.toLowerCase(), OWN_IMAGE);
    } finally {
      child.kill();
      server.close();
    }
  });

  it('describeProcess names this node.exe', async function () {
    const found = await describeProcess(process.pid);
    assert.equal(found?.path?.toLowerCase(), process.execPath.toLowerCase());
  });
});

/** Where a /proc/<pid>/fd/<n> link points, or why it cannot be read. */
function linkOf(path: string): string {
  try {
    return readlinkSync(path);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code ?? String(error);
  }
}

/** Every pid:fd of this host whose descriptor links to socket `inode` (a test's failure message: a scan in JavaScript). */
function holdersOf(inode: number): string {
  const link = `socket:[${inode}]`;
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    let fds: string[] = [];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) if (linkOf(`/proc/${pid}/fd/${fd}`) === link) found.push(`${pid}:${fd}`);
  }
  return found.join(', ') || 'nobody';
}
