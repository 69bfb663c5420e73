// bin/wfp-redirect-proxy and examples/transparent-proxy.ts, run as their own
// processes against a local upstream.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { once } from 'node:events';
import net from 'node:net';
import { join } from 'node:path';
import { main, SHUTDOWN_SIGNALS } from '../dist/proxy/cli';
import { isWindows, Loopback } from './helpers';
import { CLI, connect, EchoCheck, echoServer, root, roundTrip, start, stop } from './proxy-process';

// Wine's sockets are far slower than Linux's: the Windows suite runs a smaller load, and says so.
const LOAD = isWindows ? { connections: 20, megabytes: 1 } : { connections: 100, megabytes: 10 };

describe('bin/wfp-redirect-proxy', function () {
  this.timeout(120_000);
  let upstream: net.Server;
  let upstreamPort: number;

  before(async () => {
    upstream = await echoServer();
    upstreamPort = (upstream.address() as net.AddressInfo).port;
  });
  after(() => upstream.close());

  for (const flag of ['--help', '-h']) {
    it(`${flag} prints the usage and exits 0`, function () {
      const run = spawnSync(process.execPath, [CLI, flag], { encoding: 'utf8', timeout: 20_000 });
      assert.equal(run.status, 0);
      assert.match(run.stdout, /Usage: wfp-redirect-proxy --listen HOST:PORT/);
      assert.match(run.stdout, /--upstream HOST:PORT/);
    });
  }

  it('--listen PORT and :PORT listen on 127.0.0.1; the listening line says where connections go', async function () {
    for (const listen of ['0', ':0']) {
      const proxy = await start([CLI, '--listen', listen, '--upstream', `127.0.0.1:${upstreamPort}`], /listening on .*:(\d+)$/);
      try {
        const line = proxy.stderr.find((text) => text.includes('listening on'))!;
        assert.match(line, new RegExp(`relaying to the upstream 127\\.0\\.0\\.1:${upstreamPort}; listening on 127\\.0\\.0\\.1:${proxy.port}$`));
        await roundTrip(proxy.port, 1);
      } finally {
        await stop(proxy);
      }
    }
  });

  it('--log-start: a line as each connection starts, then its line as it ends; records only where the platform has them', async function () {
    const proxy = await start([CLI, '--listen', '127.0.0.1:0', '--upstream', `127.0.0.1:${upstreamPort}`, '--log-start'], /listening on .*:(\d+)$/);
    try {
      await roundTrip(proxy.port, 1);
      for (let waited = 0; proxy.stdout.length < 2 && waited < 10_000; waited += 50) await new Promise((resolve) => setTimeout(resolve, 50));
      const [started, ended] = proxy.stdout;
      assert.match(started, /#1 127\.0\.0\.1:\d+ -> 127\.0\.0\.1:\d+ start$/);
      assert.match(ended, /#1 127\.0\.0\.1:\d+ -> 127\.0\.0\.1:\d+ up=\d+ down=\d+ .*ok$/);
      assert.equal(/ records=/.test(ended), isWindows, ended);
    } finally {
      await stop(proxy);
    }
  });

  const badUsages: Array<[string, string[], RegExp]> = [
    ['no --listen', ['--upstream', '127.0.0.1:1'], /--listen HOST:PORT is required/],
    ['no destination', ['--listen', '127.0.0.1:0'], /exactly one of --transparent, --context and --upstream/],
    ['both destinations', ['--listen', '127.0.0.1:0', '--upstream', 'a:1', '--context', 'sockaddr'], /exactly one/],
    ['a bad endpoint', ['--listen', 'nowhere', '--upstream', 'a:1'], /--listen wants HOST:PORT/],
    ['a bad --log', ['--listen', '127.0.0.1:0', '--upstream', 'a:1', '--log', 'xml'], /--log wants text or json/],
    ['a bad --relay', ['--listen', '127.0.0.1:0', '--upstream', 'a:1', '--relay', 'fast'], /--relay wants auto, native or streams, not "fast"/],
    ['an unknown option', ['--listen', '127.0.0.1:0', '--upstream', 'a:1', '--frobnicate'], /frobnicate/],
    ['--max-connections 0', ['--listen', '127.0.0.1:0', '--upstream', 'a:1', '--max-connections', '0'], /--max-connections wants a whole number of at least 1, not "0"/],
    ['an empty --idle-timeout', ['--listen', '127.0.0.1:0', '--upstream', 'a:1', '--idle-timeout', ''], /--idle-timeout wants a whole number of at least 0, not ""/],
    ['--udp-idle-timeout without --udp', ['--listen', '127.0.0.1:0', '--upstream', 'a:1', '--udp-idle-timeout', '5'], /--udp-idle-timeout, --max-udp-flows and --max-udp-flows-per-source need --udp/],
    ['--max-udp-flows 0', ['--listen', '127.0.0.1:0', '--upstream', 'a:1', '--udp', '--max-udp-flows', '0'], /--max-udp-flows wants a whole number of at least 1, not "0"/],
    ['--udp on a host name', ['--listen', 'localhost:0', '--upstream', 'a:1', '--udp'], /--udp needs --listen with an IP address/],
    ['a port out of range', ['--listen', '127.0.0.1:99999', '--upstream', 'a:1'], /--listen: port 99999 is out of range \(0 to 65535\)/],
    ['a port that is not a number', ['--listen', ':http', '--upstream', 'a:1'], /--listen: "http" is not a port \(a whole number from 0 to 65535\)/],
    ['a negative timeout, for its value', ['--listen', '0', '--upstream', 'a:1', '--idle-timeout', '-5'], /--idle-timeout wants a whole number of at least 0, not "-5"/],
    ['--listen given twice', ['--listen', '127.0.0.1:1', '--listen', '127.0.0.1:2', '--upstream', 'a:1'], /--listen was given more than once; give it once/],
    ['--upstream given twice', ['--listen', '0', '--upstream', 'a:1', '--upstream', 'b:2'], /--upstream was given more than once/],
    ['--mark out of range', ['--listen', '0', '--upstream', 'a:1', '--mark', '4294967296'], process.platform === 'linux' ? /--mark wants a whole number from 0 to 4294967295, not "4294967296"/ : /--mark sets SO_MARK/],
    ['--workers 0', ['--listen', '0', '--upstream', 'a:1', '--workers', '0'], /--workers wants a whole number from 1 to 1024, not "0"/],
    ['--transparent with --upstream', ['--listen', '0', '--transparent', '--upstream', 'a:1'], /exactly one of --transparent, --context and --upstream \(got --transparent and --upstream\)/],
    ['--without-context with --upstream', ['--listen', '0', '--upstream', 'a:1', '--without-context', '127.0.0.1:80'], /--without-context goes with --transparent or --context/],
    ['an unknown context layout', ['--listen', '0', '--context', 'sockaddr@x'], /--context wants sockaddr, sockaddr@OFFSET, wfpsampler, wfpr \(OFFSET 0 to 65535\), not "sockaddr@x"/],
  ];
  for (const [label, args, message] of badUsages) {
    it(`refuses ${label} with exit code 2 and a message`, function () {
      // A CLI that takes the bad usage would listen forever: the timeout makes that a failure.
      const run = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 20_000 });
      assert.equal(run.status, 2, run.stderr);
      assert.match(run.stderr, message);
    });
  }

  if (isWindows) {
    it('refuses --mark on Windows, where the records keep the proxy from being redirected', function () {
      const run = spawnSync(process.execPath, [CLI, '--listen', '127.0.0.1:0', '--upstream', 'a:1', '--mark', '7'], { encoding: 'utf8', timeout: 20_000 });
      assert.equal(run.status, 2);
      assert.match(run.stderr, /--mark sets SO_MARK, which is Linux's/);
    });
  }

  if (!isWindows) {
    it('--mark without CAP_NET_ADMIN: one clear error at start-up, exit 1 (run as nobody)', function () {
      if (process.getuid?.() !== 0) {
        console.warn('    !!! not root: cannot run the proxy as another user, so the --mark permission test is NOT run');
        this.skip();
      }
      const run = spawnSync(process.execPath, [CLI, '--listen', '127.0.0.1:0', '--upstream', '127.0.0.1:9', '--mark', '7'], { encoding: 'utf8', timeout: 20_000, uid: 65534, gid: 65534 });
      assert.equal(run.status, 1, run.stderr);
      assert.match(run.stderr, /cannot start: setsockopt\(SO_MARK\) failed with EPERM: marking sockets needs CAP_NET_ADMIN/);
    });

    it('refuses --context where there is no WFP', function () {
      const run = spawnSync(process.execPath, [CLI, '--listen', '127.0.0.1:0', '--context', 'sockaddr'], { encoding: 'utf8', timeout: 20_000 });
      assert.equal(run.status, 2);
      assert.match(run.stderr, /only on Windows 8/);
      assert.match(run.stderr, /use --transparent or --upstream/);
    });
  }

  it('--udp --upstream relays datagrams both ways on the TCP port, one flow per client, logged when idle', async function () {
    const server = dgram.createSocket('udp4');
    server.on('message', (data, rinfo) => server.send(Buffer.from(data).reverse(), rinfo.port, rinfo.address));
    await new Promise<void>((resolve) => server.bind(0, '127.0.0.1', resolve));
    const proxy = await start(
      [CLI, '--listen', '127.0.0.1:0', '--upstream', `127.0.0.1:${server.address().port}`, '--udp', '--udp-idle-timeout', '300', '--log', 'json'],
      /relaying UDP on .*:(\d+)$/,
    );
    const clients = await Promise.all(
      Array.from({ length: 3 }, async () => {
        const socket = dgram.createSocket('udp4');
        await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
        return socket;
      }),
    );
    try {
      assert.ok(proxy.stderr.some((line) => line.includes(`listening on 127.0.0.1:${proxy.port}`)), 'TCP and UDP share the port');
      for (const [index, socket] of clients.entries()) {
        for (let i = 0; i < 5; i++) {
          const request = Buffer.from(`client ${index} datagram ${i} `.repeat(i * 40 + 1));
          const reply = once(socket, 'message');
          socket.send(request, proxy.port, '127.0.0.1');
          const [data] = (await reply) as [Buffer];
          assert.ok(data.equals(request.reverse()), `client ${index} datagram ${i}`);
        }
      }
      const deadline = Date.now() + 10_000;
      while (proxy.stdout.length < clients.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const entries = proxy.stdout.map((line) => JSON.parse(line));
      assert.equal(entries.length, clients.length);
      for (const [index, socket] of clients.entries()) {
        const entry = entries.find((candidate) => candidate.client === `127.0.0.1:${socket.address().port}`);
        assert.ok(entry, `a log line for client ${index}`);
        assert.equal(entry.protocol, 'udp');
        assert.equal(entry.destination, `127.0.0.1:${server.address().port}`);
        assert.equal(entry.datagramsUp, 5);
        assert.equal(entry.datagramsDown, 5);
        assert.equal(entry.end, 'idle');
        assert.equal(entry.records, 0);
      }
    } finally {
      for (const socket of clients) socket.close();
      server.close();
      await stop(proxy);
    }
  });

  it(`--upstream relays ${LOAD.connections} parallel connections of ${LOAD.megabytes} MB each, intact, with one JSON log line each`, async function () {
    if (isWindows) console.warn(`    !!! Windows (Wine): a reduced load of ${LOAD.connections} x ${LOAD.megabytes} MB; Linux runs 100 x 10 MB`);
    const proxy = await start([CLI, '--listen', '127.0.0.1:0', '--upstream', `127.0.0.1:${upstreamPort}`, '--log', 'json'], /listening on .*:(\d+)$/);
    try {
      await Promise.all(Array.from({ length: LOAD.connections }, () => roundTrip(proxy.port, LOAD.megabytes)));
      const bytes = LOAD.megabytes * 1024 * 1024;
      const deadline = Date.now() + 10_000;
      while (proxy.stdout.length < LOAD.connections && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const entries = proxy.stdout.map((line) => JSON.parse(line));
      assert.equal(entries.length, LOAD.connections);
      for (const entry of entries) {
        assert.equal(entry.error, undefined, JSON.stringify(entry));
        assert.equal(entry.bytesUp, bytes);
        assert.equal(entry.bytesDown, bytes);
        assert.equal(entry.destination, `127.0.0.1:${upstreamPort}`);
      }
    } finally {
      await stop(proxy);
    }
  });

  it('one failing connection touches no other: an unreachable upstream is logged, the proxy keeps serving', async function () {
    const dead = await Loopback.listen('IPv4');
    const deadPort = dead.port;
    await dead.close();
    const proxy = await start([CLI, '--listen', '127.0.0.1:0', '--upstream', `127.0.0.1:${deadPort}`], /listening on .*:(\d+)$/);
    try {
      const closedByProxy = async () => {
        const client = await connect(proxy.port);
        client.on('error', () => {});
        client.on('end', () => client.end());
        client.resume();
        await once(client, 'close');
      };
      await closedByProxy();
      while (proxy.stdout.length < 1) await new Promise((r) => setTimeout(r, 20));
      assert.match(proxy.stdout[0], /error=ECONNREFUSED/);
      // Still accepting, and still answering each connection on its own.
      await closedByProxy();
      while (proxy.stdout.length < 2) await new Promise((r) => setTimeout(r, 20));
      assert.match(proxy.stdout[1], /#2 .* error=ECONNREFUSED/);
    } finally {
      await stop(proxy);
    }
  });

  it('on SIGTERM stops accepting, lets an open connection finish, and exits 0', async function () {
    if (isWindows) {
      console.warn('    !!! Windows: no POSIX signals to send; the graceful shutdown is tested on Linux only');
      this.skip();
    }
    const proxy = await start([CLI, '--listen', '127.0.0.1:0', '--upstream', `127.0.0.1:${upstreamPort}`, '--shutdown-timeout', '20000'], /listening on .*:(\d+)$/);
    const client = await connect(proxy.port);
    const check = new EchoCheck(client);
    await new Promise((r) => setTimeout(r, 100));
    proxy.child.kill('SIGTERM');
    while (!proxy.stderr.some((line) => line.includes('SIGTERM'))) await new Promise((r) => setTimeout(r, 20));
    // New connections are refused now; the open one still works.
    const refused = net.connect(proxy.port, '127.0.0.1');
    const [error] = (await once(refused, 'error')) as [NodeJS.ErrnoException];
    assert.equal(error.code, 'ECONNREFUSED');
    await Promise.all([check.send(1024 * 1024), check.received]);
    assert.equal(check.count, 1024 * 1024);
    assert.ok(check.intact);
    const [code] = await once(proxy.child, 'exit');
    assert.equal(code, 0);
    assert.match(proxy.stderr.join('\n'), /stopped$/m);
  });

  it('at the shutdown deadline cuts what is still open, logs it ERR_PROXY_SHUTDOWN, and exits 0', async function () {
    if (isWindows) this.skip();
    const proxy = await start([CLI, '--listen', '127.0.0.1:0', '--upstream', `127.0.0.1:${upstreamPort}`, '--shutdown-timeout', '300'], /listening on .*:(\d+)$/);
    const client = await connect(proxy.port);
    client.on('error', () => {});
    await new Promise((r) => setTimeout(r, 100));
    proxy.child.kill('SIGTERM');
    const [code] = await once(proxy.child, 'exit');
    assert.equal(code, 0);
    // One connection, though both of its sockets were open.
    assert.match(proxy.stderr.join('\n'), /letting 1 open connection\(s\) finish/);
    assert.match(proxy.stderr.join('\n'), /, 1 connection\(s\) cut at the deadline/);
    // Its log line says why it ended, as a timeout's does.
    assert.match(proxy.stdout.join('\n'), / error=ERR_PROXY_SHUTDOWN$/m);
  });
});

describe('examples/transparent-proxy.ts', function () {
  this.timeout(60_000);

  it('compiles, runs, and relays to its fallback destination', async function () {
    const upstream = await echoServer();
    const example = await start(
      [join(root, 'dist-examples', 'transparent-proxy.js'), '0', `127.0.0.1:${(upstream.address() as net.AddressInfo).port}`],
      /listening on port (\d+)/,
    );
    try {
      await roundTrip(example.port, 2);
    } finally {
      await stop(example);
      upstream.close();
    }
  });
});

// The CLI's main() in this process, stopped by emitting each of its shutdown
// signals: this checks the handling, the same on every platform. It cannot
// check that the OS delivers them: under Wine no test can press Ctrl+Break or
// close a console for a node.exe, and Windows has no kill() for them.
describe('wfp-redirect-proxy shutdown signals, emitted in this process', function () {
  this.timeout(30_000);

  // Written out, not taken from the CLI, so that a signal it stops handling fails here.
  const signals: NodeJS.Signals[] = isWindows ? ['SIGINT', 'SIGTERM', 'SIGBREAK', 'SIGHUP'] : ['SIGINT', 'SIGTERM'];
  it('the CLI names exactly these', function () {
    assert.deepEqual([...SHUTDOWN_SIGNALS], signals);
  });

  for (const signal of signals) {
    it(`${signal}: stops accepting, lets an open connection finish, exits 0, and leaves no listener behind`, async function () {
      const upstream = await echoServer();
      const saved = process.rawListeners(signal) as Array<(...args: unknown[]) => void>;
      process.removeAllListeners(signal);
      const written: string[] = [];
      // The CLI's own output: its stderr is read here, its log lines on stdout are not wanted in the report.
      const [stderrWrite, stdoutWrite] = [process.stderr.write, process.stdout.write];
      process.stderr.write = ((chunk: string) => written.push(String(chunk)) > 0) as typeof process.stderr.write;
      // Written at once, as far as the CLI can tell: its stop waits for its log to be written.
      process.stdout.write = ((_chunk: unknown, ...rest: unknown[]) => {
        const callback = rest.find((arg) => typeof arg === 'function') as (() => void) | undefined;
        if (callback) process.nextTick(callback);
        return true;
      }) as typeof process.stdout.write;
      let running: Promise<number> | undefined;
      let stopped = false;
      try {
        const exited = main(['--listen', '127.0.0.1:0', '--upstream', `127.0.0.1:${(upstream.address() as net.AddressInfo).port}`, '--log', 'json', '--shutdown-timeout', '5000']);
        running = exited.finally(() => (stopped = true));
        let port = 0;
        while (!port) {
          port = Number(/listening on .*:(\d+)$/m.exec(written.join(''))?.[1] ?? 0);
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        const client = await connect(port);
        client.write('before');
        await once(client, 'data');
        process.emit(signal as 'SIGINT', signal as 'SIGINT');
        // Still relaying after the signal, until the client is done.
        client.end('after');
        const echoed: Buffer[] = [];
        client.on('data', (data) => echoed.push(data));
        await once(client, 'end');
        assert.equal(Buffer.concat(echoed).toString(), 'after');
        const timeout = new Promise<string>((resolve) => setTimeout(resolve, 10_000, 'still running after 10 s').unref());
        assert.equal(await Promise.race([exited, timeout]), 0);
        assert.match(written.join(''), new RegExp(`${signal}: not accepting; letting 1 open connection`));
        assert.match(written.join(''), /stopped$/m);
        assert.equal(process.listenerCount(signal), 0, 'main() left a listener behind');
      } finally {
        // If the signal was not handled, main() still listens and would keep
        // this process alive: stop it with the first signal it does handle.
        if (running && !stopped) {
          process.emit(SHUTDOWN_SIGNALS[0] as 'SIGINT', SHUTDOWN_SIGNALS[0] as 'SIGINT');
          await running;
        }
        process.stderr.write = stderrWrite;
        process.stdout.write = stdoutWrite;
        for (const listener of saved) process.on(signal, listener);
        upstream.close();
      }
    });
  }
});
