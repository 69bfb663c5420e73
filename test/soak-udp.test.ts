// A soak of the proxy CLI's UDP relay (--udp --upstream), bounded and seeded:
// SOAK_UDP_FLOWS flows (default 1,000; `npm run test:soak` 10,000; Windows
// node.exe under Wine 200), 25 at a time, each of one kind picked by a seeded
// generator: clean flows (several datagrams, each reply checked byte for
// byte), sources that stop reading (their socket closes while replies are on
// their way), upstreams that never answer, upstreams that answer each
// datagram ten times, and (Linux) a source spraying new ports from its own
// address. Afterwards: every clean flow intact, the spraying source held to
// its cap, no flow ended by an error, the relay's descriptors back where they
// were once every flow has expired, RSS bounded, and the relay still serving.
// TPROXY replies that cannot bind are not made here (no TPROXY in --upstream
// mode): test/udp-tproxy-loop.test.ts makes them through a real TPROXY.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { readFileSync, readdirSync } from 'node:fs';
import { isWindows, prng } from './helpers';
import { CLI, start, stop, type Running } from './proxy-process';

const TOTAL = Number(process.env.SOAK_UDP_FLOWS ?? (isWindows ? 200 : 1000));
const IN_FLIGHT = 25;
const PER_SOURCE = 64;
const SEED = 20261201;
// Under qemu-user (npm run test:arm64) an emulated process stalls for seconds at times (V8's new code is translated
// anew): the upstream, on the clients' event loop, read the first 25 flows' datagrams 1.9-2.5 s after the relay
// sent them, when the relay had ended those flows as idle (500 ms) and their replies met closed ports. There, flows
// idle out after 3 s and a reply is waited for 10 s (said in the run); natively 500 ms and 2 s. Windows node.exe
// (which runs here under Wine only) gets the same: a CI-clone run (2026-12-03, node.exe 22, two cores shared by the Linux suite and two Wine runs) lost
// replies of 14 of 200 flows, clean ones among them, with 500 ms and 2 s, where every other line and run passed.
const QEMU = Boolean(process.env.WFP_REDIRECT_QEMU_USER);
const STALLS = QEMU ? 'under qemu-user' : isWindows ? 'in Windows node.exe (here under Wine)' : undefined;
const REPLY_TIMEOUT_MS = STALLS ? 10_000 : 2_000;
const IDLE_MS = STALLS ? 3_000 : 500;

type Kind = 'clean' | 'stops-reading' | 'upstream-silent' | 'upstream-floods';
const KINDS: Kind[] = ['clean', 'stops-reading', 'upstream-silent', 'upstream-floods'];
/** The first byte of a datagram tells the upstream what to do. */
const OPCODE = new Map<Kind, number>(KINDS.map((kind, index) => [kind, 0x61 + index]));

/** The upstream: answers as each datagram's first byte says (the reply is the datagram reversed). */
async function faultServer(): Promise<dgram.Socket> {
  const server = dgram.createSocket('udp4');
  server.on('message', (data, rinfo) => {
    const kind = KINDS[data[0] - 0x61];
    if (kind === 'upstream-silent') return;
    const reply = Buffer.from(data).reverse();
    for (let i = 0; i < (kind === 'upstream-floods' ? 10 : 1); i++) server.send(reply, rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve) => server.bind(0, '127.0.0.1', resolve));
  return server;
}

const settle = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function socketOn(address: string): Promise<dgram.Socket> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve, reject) => socket.once('error', reject).bind(0, address, resolve));
  return socket;
}

/** One flow of `kind` through the relay at `port`; resolves to whether every reply it waited for came back intact. */
async function flow(kind: Kind, port: number, random: () => number): Promise<boolean> {
  const socket = await socketOn('127.0.0.1');
  // A flooding upstream answers each datagram ten times: a reply is looked for among all that came, duplicates ignored.
  const arrived: Buffer[] = [];
  socket.on('message', (message) => arrived.push(message));
  try {
    const datagrams = kind === 'clean' ? 1 + Math.floor(random() * 8) : 3;
    for (let i = 0; i < datagrams; i++) {
      const request = Buffer.concat([Buffer.from([OPCODE.get(kind)!]), randomBytes(Math.floor(random() * 1400))]);
      socket.send(request, port, '127.0.0.1');
      // These kinds wait for no reply: the socket closes (stops reading) or nothing comes.
      if (kind === 'stops-reading' || kind === 'upstream-silent') continue;
      const expected = Buffer.from(request).reverse();
      const deadline = Date.now() + REPLY_TIMEOUT_MS;
      while (!arrived.some((message) => message.equals(expected))) {
        // Past the deadline, what the poll phase already holds is read first (timers run before it after a stall).
        if (Date.now() > deadline) {
          await new Promise((resolve) => setImmediate(resolve));
          return arrived.some((message) => message.equals(expected));
        }
        await settle(5);
      }
    }
    return true;
  } finally {
    socket.close();
  }
}

/** Linux: one address (127.0.0.2) sending one datagram from each of `count` new ports. */
async function spray(port: number, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const socket = await socketOn('127.0.0.2');
    await new Promise((resolve) => socket.send(Buffer.from([OPCODE.get('upstream-silent')!, i & 0xff]), port, '127.0.0.1', resolve));
    socket.close();
  }
}

const procStatus = (pid: number) => readFileSync(`/proc/${pid}/status`, 'utf8');
const rssOf = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(procStatus(pid))![1]) * 1024;
const fdsOf = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;

describe(`soak: ${TOTAL} UDP flows of ${KINDS.length} kinds through the relay${isWindows ? '' : ', and a spraying source'}`, function () {
  this.timeout(600_000);
  let server: dgram.Socket;
  let proxy: Running;

  before(async () => {
    server = await faultServer();
    proxy = await start(
      [CLI, '--listen', '127.0.0.1:0', '--upstream', `127.0.0.1:${server.address().port}`, '--udp', '--udp-idle-timeout', String(IDLE_MS),
        '--max-udp-flows-per-source', String(PER_SOURCE), '--max-udp-flows', '1024', '--log', 'json'],
      /relaying UDP on .*:(\d+)$/,
    );
  });
  after(async () => {
    await stop(proxy);
    server.close();
  });

  it('every clean flow intact, the sprayer held to its cap, nothing left behind, RSS bounded, still serving', async function () {
    const random = prng(SEED);
    const kinds = Array.from({ length: TOTAL }, () => KINDS[Math.floor(random() * KINDS.length)]);
    const pid = proxy.child.pid!;
    const fdsBefore = isWindows ? 0 : fdsOf(pid);
    if (STALLS) console.warn(`    !!! ${STALLS}: the relay's flows idle out after ${IDLE_MS} ms, not 500, and each reply is waited for ${REPLY_TIMEOUT_MS / 1000} s, not 2 (its processes stall for seconds under load)`);
    const results: Array<{ kind: Kind; ok: boolean }> = [];
    let rssAfterWarmUp = 0;
    let next = 0;
    const sprayer = isWindows ? Promise.resolve() : spray(proxy.port, 4 * PER_SOURCE);
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        while (next < kinds.length) {
          const index = next++;
          if (index === Math.floor(TOTAL / 2) && !isWindows) rssAfterWarmUp = rssOf(pid);
          results.push({ kind: kinds[index], ok: await flow(kinds[index], proxy.port, random) });
        }
      }),
    );
    await sprayer;
    const failed = results.filter((result) => !result.ok);
    assert.deepEqual(failed, [], `${failed.length} flow(s) lost replies: ${JSON.stringify(failed.slice(0, 5))}`);

    // Every flow expires after IDLE_MS; then nothing of them is left.
    const deadline = Date.now() + 20_000;
    let open = Infinity;
    while (Date.now() < deadline) {
      await settle(IDLE_MS);
      if (isWindows) break;
      open = fdsOf(pid) - fdsBefore;
      if (open <= 0) break;
    }
    const logs = proxy.stdout.filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as { client: string; end: string; error?: string });
    assert.ok(!logs.some((entry) => entry.end === 'error'), JSON.stringify(logs.find((entry) => entry.end === 'error')));
    if (!isWindows) {
      // The clean flows' own address reaches its cap too (finished flows wait IDLE_MS to expire): said, not per flow.
      assert.ok(logs.some((entry) => entry.client.startsWith('127.0.0.2:') && entry.end === 'evicted'), 'the sprayer reached its cap');
      assert.ok(proxy.stderr.some((line) => /reached the cap of 64 flows from one address/.test(line)), proxy.stderr.join('\n'));
      assert.ok(open <= 0, `${open} descriptor(s) more than before the soak`);
      const grown = (rssOf(pid) - rssAfterWarmUp) / 1048576;
      console.log(`      relay RSS after the second half of the flows: ${grown >= 0 ? '+' : ''}${grown.toFixed(1)} MB`);
      // Under qemu-user (npm run test:arm64) the relay's RSS holds qemu's translation cache too: tens of MB, growing as V8 compiles.
      const bound = process.env.WFP_REDIRECT_QEMU_USER ? 64 : 32;
      if (bound !== 32) console.warn(`    !!! under qemu-user: the UDP relay's RSS includes qemu's own translation cache, so its growth is bounded at ${bound} MB, not 32 (natively +11 MB)`);
      assert.ok(grown < bound, `RSS grew ${grown.toFixed(1)} MB over the second half`);
    }
    // Still serving.
    assert.ok(await flow('clean', proxy.port, random), 'a clean flow after the soak');
  });
});
