// Seeded fuzzing of every sniffer: mutations of valid inputs (truncations, bit
// flips, length fields that lie, huge lengths, inserted and deleted bytes).
// Each case must answer a typed result without throwing, read nothing outside
// its input, find only valid names that the input holds, and never take back
// a decision: once a prefix is decided, the whole input is decided the same.
import assert from 'node:assert/strict';
import tls from 'node:tls';
import { sniffFirstBytes, sniffHttpHost, sniffQuicInitial, sniffTlsClientHello } from '../dist/sniff';
import {
  alpnExtension,
  captureFirstFlight,
  clientHelloMessage,
  cryptoFrame,
  echExtension,
  handshakeOf,
  inRecords,
  insideOtherBytes,
  protectedInitial,
  seeded,
  serverNameExtension,
  u8,
  varint,
  versionsExtension,
} from './sniff-helpers';

const TIME_BOUND_MS = 4000;
const NAME = /^(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;
const REASONS = new Set([
  'not-tls', 'not-client-hello', 'malformed', 'hello-too-long', 'no-server-name', 'bad-name', 'ip-literal',
  'not-http', 'http2-preface', 'head-too-long', 'no-host', 'duplicate-host',
  'short-header', 'version-negotiation', 'unsupported-version', 'not-initial', 'decrypt-failed', 'unexpected-frame', 'crypto-too-long',
]);

type Random = () => number;
const below = (random: Random, n: number) => Math.floor(random() * n);

/** One to three mutations of `seed`. */
function mutate(seed: Buffer, random: Random): Buffer {
  let bytes = Buffer.from(seed);
  for (let round = 1 + below(random, 3); round > 0; round--) {
    const at = below(random, Math.max(bytes.length, 1));
    switch (below(random, 7)) {
      case 0: // truncation
        bytes = bytes.subarray(0, below(random, bytes.length + 1));
        break;
      case 1: // bit flips
        for (let i = 1 + below(random, 4); i > 0 && bytes.length > 0; i--) bytes[below(random, bytes.length)]! ^= 1 << below(random, 8);
        break;
      case 2: // a 1, 2 or 3-byte length field that lies: small, off by one, or huge
        if (at + 3 <= bytes.length) {
          const lies = [0, 1, 0xff, 0xffff, 0xffffff, 0x4000, 0x3fff, bytes.readUIntBE(at, 2) + 1, bytes.readUIntBE(at, 2) - 1, below(random, 0x1000000)];
          const width = 1 + below(random, 3);
          bytes.writeUIntBE(lies[below(random, lies.length)]! & (2 ** (8 * width) - 1), at, width);
        }
        break;
      case 3: // a random byte
        if (bytes.length > 0) bytes[at] = below(random, 256);
        break;
      case 4: // inserted bytes
        bytes = Buffer.concat([bytes.subarray(0, at), Buffer.from(Array.from({ length: 1 + below(random, 8) }, () => below(random, 256))), bytes.subarray(at)]);
        break;
      case 5: // a deleted range
        bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + 1 + below(random, 16))]);
        break;
      default: // a repeated slice
        bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at, at + 1 + below(random, 64)), bytes.subarray(at)]);
    }
  }
  return bytes;
}

/** What a result says, checked for type; names must be valid host names (or, for HTTP, IP literals). */
function checkShape(result: { kind: string; reason?: string; name?: string; hostKind?: string }, what: string): void {
  if (result.kind === 'found') {
    assert.equal(typeof result.name, 'string', what);
    if (result.hostKind !== 'ipv6' && result.hostKind !== 'ipv4') assert.match(result.name!, NAME, what);
  } else if (result.kind === 'none') assert.ok(REASONS.has(result.reason!), `${what}: reason ${result.reason}`);
  else assert.equal(result.kind, 'need-more', what);
}

interface Tally {
  cases: number;
  kinds: Record<string, number>;
}

/**
 * Runs `check` on mutations of the seeds: `least` cases whatever the time (a slow machine, or qemu-user, takes
 * longer rather than proving less), then on until `cases` or the time bound.
 */
function fuzz(seeds: Buffer[], seed: number, least: number, cases: number, check: (input: Buffer, random: Random) => string): Tally {
  const random = seeded(seed);
  const tally: Tally = { cases: 0, kinds: {} };
  const deadline = performance.now() + TIME_BOUND_MS;
  for (; tally.cases < cases && (tally.cases < least || performance.now() < deadline); tally.cases++) {
    const kind = check(mutate(seeds[below(random, seeds.length)]!, random), random);
    tally.kinds[kind] = (tally.kinds[kind] ?? 0) + 1;
  }
  // SNIFF_FUZZ_TALLY=1: print how the cases came out, to see that mutations reach every answer.
  if (process.env.SNIFF_FUZZ_TALLY) console.log(JSON.stringify(tally));
  return tally;
}

/** The checks for a parser of a stream's first bytes: shape, bounds, names from the input, and decisions that stand. */
function checkStreamParser(parse: (bytes: Uint8Array) => { kind: string; name?: string }, input: Buffer, random: Random): string {
  const what = `input ${input.toString('hex')}`;
  const result = parse(input);
  checkShape(result, what);
  const [inZeros, inOnes] = insideOtherBytes(input, parse);
  assert.deepEqual(inZeros, result, `${what}: read outside its input`);
  assert.deepEqual(inOnes, result, `${what}: read outside its input`);
  // The name is in the input, or (a hello cut into records) in the records' contents joined.
  const holds = (bytes: Buffer) => bytes.toString('latin1').toLowerCase().includes(result.name!);
  if (result.kind === 'found') assert.ok(holds(input) || holds(handshakeOf(input)), `${what}: a name the input does not hold`);
  const prefix = parse(input.subarray(0, below(random, input.length + 1)));
  if (prefix.kind !== 'need-more') assert.deepEqual(result, prefix, `${what}: a prefix decided otherwise`);
  return result.kind;
}

describe('sniffer fuzzing (seeded, time-bounded)', function () {
  this.timeout(60000);
  let tlsSeeds: Buffer[];
  let realHello: Buffer;

  before(async function () {
    const real = await captureFirstFlight((port) => {
      const client = tls.connect({ host: '127.0.0.1', port, servername: 'fuzz.example', ALPNProtocols: ['h2', 'http/1.1'] });
      client.on('error', () => {});
      return () => client.destroy();
    });
    realHello = handshakeOf(real);
    const made = clientHelloMessage([serverNameExtension('made.example'), echExtension(), alpnExtension('h3'), versionsExtension(0x0a0a, 0x0304)]);
    tlsSeeds = [real, inRecords(realHello, [50, 200]), inRecords(made, [16384]), inRecords(made, [7])];
  });

  it('sniffTlsClientHello: thousands of mutated hellos', function () {
    const tally = fuzz(tlsSeeds, 0x5eed01, 2000, 20000, (input, random) => checkStreamParser(sniffTlsClientHello, input, random));
    for (const kind of ['found', 'need-more', 'none']) assert.ok(tally.kinds[kind]! > 0, `no ${kind} in ${JSON.stringify(tally)}`);
  });

  it('sniffHttpHost and sniffFirstBytes: thousands of mutated requests and hellos', function () {
    const requests = [
      'GET /index.html HTTP/1.1\r\nHost: www.example.com:8080\r\nUser-Agent: curl/8\r\nAccept: */*\r\n\r\n',
      'GET http://[2001:db8::1]:81/x HTTP/1.1\r\nHost: a\r\n\r\n',
      'CONNECT tunnel.example:443 HTTP/1.1\r\nHost: tunnel.example:443\r\n\r\n',
      'POST /form HTTP/1.0\nhost: 192.0.2.1\ncontent-length: 3\n\nabc',
    ].map((text) => Buffer.from(text, 'latin1'));
    const http = fuzz(requests, 0x5eed02, 2000, 20000, (input, random) => checkStreamParser(sniffHttpHost, input, random));
    for (const kind of ['found', 'need-more', 'none']) assert.ok(http.kinds[kind]! > 0, `no ${kind} in ${JSON.stringify(http)}`);
    fuzz([...requests, ...tlsSeeds], 0x5eed03, 1000, 10000, (input, random) => checkStreamParser(sniffFirstBytes, input, random));
  });

  it('sniffQuicInitial: mutated datagrams, and mutated frames sealed properly', function () {
    const frames = Buffer.concat([cryptoFrame(100, realHello.subarray(100)), u8(0x01), cryptoFrame(0, realHello.subarray(0, 100))]);
    const ackThenCrypto = Buffer.concat([u8(0x03), varint(5), varint(0), varint(1), varint(0), varint(1), varint(1), varint(0), varint(0), varint(0), cryptoFrame(0, realHello)]);
    const datagrams = [protectedInitial(frames), protectedInitial(ackThenCrypto, { packetNumberLength: 1, token: Buffer.from('t') })];
    const check = (list: Buffer[]) => {
      const copies = list.map((datagram) => Buffer.from(datagram));
      const result = sniffQuicInitial(list);
      const what = `datagrams ${list.map((datagram) => datagram.toString('hex')).join(' ')}`;
      checkShape(result, what);
      const [inZeros, inOnes] = insideOtherBytes(list[0]!, (view) => sniffQuicInitial([view, ...list.slice(1)]));
      assert.deepEqual(inZeros, result, `${what}: read outside its input`);
      assert.deepEqual(inOnes, result, `${what}: read outside its input`);
      assert.deepEqual(list, copies, `${what}: changed its input`);
      return result.kind;
    };
    // Mutated on the wire: the header, lengths and tag (most no longer authenticate, as they should not).
    fuzz(datagrams, 0x5eed04, 500, 3000, (input) => check([input]));
    // Mutated before sealing: the frames and the hello inside, as the frame walker and the TLS parser meet them.
    const split = [cryptoFrame(0, realHello.subarray(0, 150)), cryptoFrame(150, realHello.subarray(150))];
    const sealed = fuzz([frames, ackThenCrypto, ...split], 0x5eed05, 500, 3000, (input, random) => {
      const second = protectedInitial(split[1]!, { packetNumber: 1 });
      return check(below(random, 2) === 0 ? [protectedInitial(input)] : [protectedInitial(input), second]);
    });
    for (const kind of ['found', 'need-more', 'none']) assert.ok(sealed.kinds[kind]! > 0, `no ${kind} in ${JSON.stringify(sealed)}`);
  });
});
