// A soak of the proxy CLI (--upstream), bounded and seeded: SOAK_CONNECTIONS
// connections (default 2,000; `npm run test:soak` runs 20,000; Windows
// node.exe under Wine 400), 50 at a time, each of one kind picked by a seeded
// generator: clean transfers (checked by hash), clients and servers resetting
// mid-transfer, half-closes from either side first, clients that stop reading
// while the server writes (backpressure), servers that never answer, and
// upstreams that refuse (a second proxy pointed at a closed port). Afterwards:
// every clean transfer intact, one log line per connection with the cause of
// each reset or refusal, no descriptor left open in either proxy, RSS growth
// under 10 MB (20,000 connections; 32 MB for shorter runs) after a warm-up of half the run, at most 2,000 (Linux: /proc), and both proxies still serving.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import net from 'node:net';
import { closedPortBelowEphemeral, isWindows, prng } from './helpers';
import { CLI, start, stop, type Running } from './proxy-process';

const TOTAL = Number(process.env.SOAK_CONNECTIONS ?? (isWindows ? 400 : 2000));
const IN_FLIGHT = 50;
// V8 sizes its heap over the first thousand or so connections (Node 24 and later
// settle some 20 MB higher than Node 20 did): RSS is compared from there on.
const WARM_UP = Math.min(2000, Math.floor(TOTAL / 2));
// The issue's goal, 10 MB, judged on the full run (20,000). Over the short
// form's 1,000 measured connections V8's heap can still be growing (one CI run
// saw +14.8 MB, others under 3 MB): there a looser bound still catches a leak
// of more than about 32 KB a connection.
const RSS_LIMIT_MB = TOTAL >= 20_000 ? 10 : 32;
const SEED = 20261123;
// Under qemu-user (npm run test:arm64) the emulated clients, upstream and proxies stall for seconds at times (V8's
// new code translated anew, a loaded machine): a live connection must not pass for an idle one there.
const IDLE_TIMEOUT = process.env.WFP_REDIRECT_QEMU_USER ? '10000' : '2000';

type Kind = 'clean' | 'client-half-close' | 'server-half-close' | 'client-reset' | 'server-reset' | 'client-stops-reading' | 'server-silent' | 'refused';
const KINDS: Kind[] = ['clean', 'client-half-close', 'server-half-close', 'client-reset', 'server-reset', 'client-stops-reading', 'server-silent', 'refused'];
/** The first byte a client sends tells the server what to do. */
const OPCODE = new Map<Kind, number>(KINDS.map((kind, index) => [kind, 0x41 + index]));

const sha = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/** The upstream: behaves as the connection's first byte says. `close()` also ends the connections still open. */
function faultServer(): Promise<net.Server> {
  const open = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    open.add(socket);
    socket.on('close', () => open.delete(socket));
    socket.on('error', () => {});
    socket.once('data', (first: Buffer) => {
      const kind = KINDS[first[0] - 0x41];
      const rest = first.subarray(1);
      switch (kind) {
        case 'clean':
        case 'client-half-close':
        case 'client-reset':
          // Echo, and end when the client ends.
          socket.write(rest);
          socket.pipe(socket);
          break;
        case 'server-half-close': {
          // Says its piece and ends its side at once, then counts what the client sends.
          socket.end(Buffer.alloc(20_000, 0x5a));
          let received = rest.length;
          socket.on('data', (data: Buffer) => (received += data.length));
          socket.on('end', () => socket.destroy());
          void received;
          break;
        }
        case 'server-reset': {
          // The first read may already hold it all (a slow reader, as under qemu-user): then no more data comes.
          let received = 0;
          const count = (data: Buffer) => {
            received += data.length;
            if (received > 10_000) socket.resetAndDestroy();
          };
          socket.on('data', count);
          count(rest);
          break;
        }
        case 'client-stops-reading':
          // Writes far more than the socket buffers hold; the client never reads.
          socket.write(Buffer.alloc(4 << 20));
          break;
        case 'server-silent':
          socket.pause(); // accepts, never reads, never answers
          break;
        default:
          socket.destroy();
      }
    });
  });
  const close = server.close.bind(server);
  server.close = (callback) => {
    for (const socket of open) socket.destroy();
    return close(callback);
  };
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

interface Outcome {
  kind: Kind;
  ok: boolean;
  detail?: string;
}

/** One client connection of `kind`; resolves once it is over, with whether it went as that kind must. */
function client(port: number, kind: Kind, random: () => number): Promise<Outcome> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const received: Buffer[] = [];
    let done = false;
    const finish = (ok: boolean, detail?: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ kind, ok, detail });
    };
    const timer = setTimeout(() => finish(kind === 'server-silent' || kind === 'client-stops-reading', 'timed out'), kind === 'server-silent' || kind === 'client-stops-reading' ? 300 : 15_000);
    socket.on('error', (error: NodeJS.ErrnoException) => {
      // A reset is what these kinds expect; for the others it is a failure.
      finish(kind === 'server-reset' || kind === 'refused' || kind === 'client-reset', `${error.code} local ${socket.localPort}`);
    });
    const body = randomBytes(1 + Math.floor(random() * 64 * 1024));
    const payload = Buffer.concat([Buffer.from([OPCODE.get(kind)!]), body]);
    socket.on('connect', () => {
      switch (kind) {
        case 'clean':
          socket.write(payload);
          break;
        case 'client-half-close':
          socket.end(payload);
          break;
        case 'server-half-close':
          socket.write(payload);
          break;
        case 'client-reset':
          socket.write(payload, () => setTimeout(() => finish(true), 1 + random() * 5));
          return;
        case 'server-reset':
          socket.write(Buffer.concat([payload, Buffer.alloc(20_000)]));
          break;
        case 'client-stops-reading':
          socket.write(payload);
          socket.pause();
          return;
        case 'server-silent':
          socket.write(payload);
          return;
        case 'refused':
          socket.write(payload);
          break;
      }
    });
    socket.on('data', (data: Buffer) => {
      received.push(data);
      const length = received.reduce((sum, piece) => sum + piece.length, 0);
      if (kind === 'clean' && length === payload.length - 1) socket.end();
    });
    socket.on('end', () => {
      const all = Buffer.concat(received);
      if (kind === 'clean' || kind === 'client-half-close') return finish(sha(all) === sha(body), `${all.length} of ${body.length} bytes back`);
      if (kind === 'server-half-close') {
        // The server's side ended first; ours still goes through, then ends.
        socket.end(Buffer.alloc(5_000));
        return finish(all.length === 20_000, `${all.length} of 20000 bytes from the server`);
      }
      if (kind === 'refused') return finish(all.length === 0, 'data from a refused upstream');
      finish(kind === 'server-reset', `an end for ${kind} after ${Buffer.concat(received).length} bytes`);
    });
    socket.on('close', () => finish(kind === 'refused' || kind === 'server-reset', `closed (${kind}) after ${Buffer.concat(received).length} bytes`));
  });
}

const openFds = (proxy: Running) => (isWindows ? undefined : readdirSync(`/proc/${proxy.child.pid}/fd`).length);
const rssOf = (proxy: Running) => (isWindows ? undefined : Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${proxy.child.pid}/status`, 'utf8'))![1]) * 1024);

const BUDGET_MS = Math.max(120_000, TOTAL * 60);
// V8 grows its young generation with the allocation rate, up to 48 MB in Node 24 and later: the
// same run measured +0.6, +13.5 and +44 MB in Node 22, 26 and 24 on a loaded machine, none of it
// kept. Capped, what RSS still gains is what the proxy keeps (semi-spaces of 1 MB cost it speed only).
const SMALL_YOUNG_GENERATION = ['--max-semi-space-size=1'];

describe(`soak: ${TOTAL} connections of eight kinds through the proxy CLI (seed ${SEED})`, function () {
  this.timeout(BUDGET_MS + 30_000);

  it('clean transfers intact, every connection logged with the cause of each failure, no descriptor left, RSS flat, still serving', async function () {
    if (isWindows) console.warn(`    !!! Windows (Wine): ${TOTAL} connections, and no descriptor or RSS figures (no /proc); Linux runs 2,000, npm run test:soak 20,000`);
    const upstream = await faultServer();
    const closedPort = await closedPortBelowEphemeral();
    const args = ['--listen', '127.0.0.1:0', '--log', 'json', '--idle-timeout', IDLE_TIMEOUT];
    const proxy = await start([...SMALL_YOUNG_GENERATION, CLI, ...args, '--upstream', `127.0.0.1:${(upstream.address() as net.AddressInfo).port}`], /listening on .*:(\d+)$/);
    const refusing = await start([CLI, ...args, '--upstream', `127.0.0.1:${closedPort}`], /listening on .*:(\d+)$/);
    const random = prng(SEED);
    const outcomes: Outcome[] = [];
    let fdsBefore: number | undefined;
    let refusingFdsBefore: number | undefined;
    let rssBefore: number | undefined;
    try {
      const kinds = Array.from({ length: TOTAL }, () => KINDS[Math.floor(random() * KINDS.length)]);
      // A proxy that stalls connections must fail the run, not keep it going for hours.
      const stopAt = Date.now() + BUDGET_MS;
      /** Runs kinds[from, to) with IN_FLIGHT connections at a time. */
      const run = async (from: number, to: number) => {
        let next = from;
        const worker = async () => {
          while (next < to && Date.now() < stopAt) {
            const kind = kinds[next++];
            outcomes.push(await client(kind === 'refused' ? refusing.port : proxy.port, kind, random));
          }
        };
        await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
      };
      const settled = () => new Promise((resolve) => setTimeout(resolve, 500));
      /** Waits (20 s at most) until each of kinds[0, to) has its log line in its proxy: all closed, the idle ones timed out. */
      const loggedUpTo = async (to: number) => {
        const refused = kinds.slice(0, to).filter((kind) => kind === 'refused').length;
        const deadline = Date.now() + 20_000;
        while ((proxy.stdout.length < to - refused || refusing.stdout.length < refused) && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      };
      await run(0, WARM_UP);
      // Measured once every warm-up connection has closed and the proxy has settled.
      await loggedUpTo(WARM_UP);
      await settled();
      fdsBefore = openFds(proxy);
      refusingFdsBefore = openFds(refusing);
      rssBefore = rssOf(proxy);
      await run(WARM_UP, TOTAL);
      assert.equal(outcomes.length, TOTAL, `only ${outcomes.length} of ${TOTAL} connections ran within ${BUDGET_MS / 1000} s`);

      const failed = outcomes.filter((outcome) => !outcome.ok);
      if (failed.length) {
        for (const outcome of failed.slice(0, 3)) {
          const port = /local (\d+)/.exec(outcome.detail ?? '')?.[1];
          console.log(outcome, proxy.stdout.filter((line) => port && line.includes(`:${port}"`)));
        }
      }
      assert.deepEqual(failed.slice(0, 5), [], `${failed.length} of ${TOTAL} connections did not go as their kind must`);
      // One log line per connection, in each proxy, once the idle ones have timed out.
      const count = (kind: Kind | 'any', not?: Kind) => kinds.filter((k) => (kind === 'any' ? k !== not : k === kind)).length;
      await loggedUpTo(TOTAL);
      const logs = proxy.stdout.map((line) => JSON.parse(line));
      const refusals = refusing.stdout.map((line) => JSON.parse(line));
      assert.equal(logs.length, count('any', 'refused'));
      assert.equal(refusals.length, count('refused'));
      assert.ok(refusals.every((entry) => entry.error === 'ECONNREFUSED'), JSON.stringify(refusals.find((entry) => entry.error !== 'ECONNREFUSED')));
      const resets = logs.filter((entry) => entry.error === 'ECONNRESET').length;
      assert.ok(resets >= count('server-reset'), `${resets} resets logged for ${count('server-reset')} server resets`);
      const clean = logs.filter((entry) => entry.error === undefined && entry.bytesUp > 0).length;
      assert.ok(clean >= count('clean') + count('client-half-close'), `${clean} clean log lines`);

      if (fdsBefore !== undefined) {
        await settled();
        assert.equal(openFds(proxy), fdsBefore, 'descriptors open in the proxy, before and after');
        assert.equal(openFds(refusing), refusingFdsBefore, 'descriptors open in the refusing proxy, before and after');
        const grown = rssOf(proxy)! - rssBefore!;
        console.log(`      ${TOTAL} connections (${KINDS.map((kind) => `${kind} ${count(kind)}`).join(', ')}); proxy RSS ${grown >= 0 ? '+' : ''}${(grown / 1048576).toFixed(1)} MB after warm-up; descriptors ${fdsBefore} before and after`);
        assert.ok(grown < RSS_LIMIT_MB * 1048576, `RSS grew ${(grown / 1048576).toFixed(1)} MB (limit ${RSS_LIMIT_MB} MB for ${TOTAL} connections)`);
      }
      // Still serving.
      const last = await client(proxy.port, 'clean', random);
      assert.equal(last.ok, true, last.detail);
    } finally {
      await stop(proxy);
      await stop(refusing);
      upstream.close();
    }
  });
});
