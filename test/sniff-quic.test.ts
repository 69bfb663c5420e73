import assert from 'node:assert/strict';
import { createCipheriv } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import tls from 'node:tls';
import { clientInitialKeys, clientInitialSecret, sniffQuicInitial, type QuicInitialResult } from '../dist/sniff';
import {
  FIXTURES,
  captureFirstFlight,
  clientHelloMessage,
  cryptoFrame,
  handshakeOf,
  protectedInitial,
  serverNameExtension,
  u8,
  varint,
} from './sniff-helpers';

// RFC 9001 Appendix A: the keys for DCID 0x8394c8f03e515708 (A.1), and the
// client's first Initial (A.2), whose 1200 bytes are in the fixture. AES-GCM
// authenticates every byte of it, so a transcription slip cannot pass.
const RFC_DCID = Buffer.from('8394c8f03e515708', 'hex');
const RFC_CLIENT_INITIAL = Buffer.from(readFileSync(join(FIXTURES, 'rfc9001-a2-client-initial.hex'), 'latin1').replace(/\s/g, ''), 'hex');

const reasonOf = (result: QuicInitialResult) => (result.kind === 'none' ? result.reason : result.kind);
const nameOf = (result: QuicInitialResult) => (result.kind === 'found' ? result.name : JSON.stringify(result));

describe('sniffQuicInitial', function () {
  let hello: Buffer; // a real ClientHello message, from Node's TLS client

  before(async function () {
    const records = await captureFirstFlight((port) => {
      const client = tls.connect({ host: '127.0.0.1', port, servername: 'QUIC.Example', ALPNProtocols: ['h3'] });
      client.on('error', () => {});
      return () => client.destroy();
    });
    hello = handshakeOf(records);
  });

  it('derives the RFC 9001 A.1 client Initial secret, key, iv and hp', function () {
    assert.equal(clientInitialSecret(RFC_DCID).toString('hex'), 'c00cf151ca5be075ed0ebfb5c80323c42d6b7db67881289af4008f1f6c357aea');
    const keys = clientInitialKeys(RFC_DCID);
    assert.equal(keys.key.toString('hex'), '1f369613dd76d5467730efcbe3b1a22d');
    assert.equal(keys.iv.toString('hex'), 'fa044b2f42a3fd3b46fb255c');
    assert.equal(keys.hp.toString('hex'), '9f50449e04a0e810283a1e9933adedd2');
    // A.2: the header protection mask from the packet's sample.
    const mask = createCipheriv('aes-128-ecb', keys.hp, null).update(Buffer.from('d1b1c98dd7689fb8ec11d242b123dc9b', 'hex'));
    assert.equal(mask.subarray(0, 5).toString('hex'), '437b9aec36');
  });

  it("reads the RFC 9001 A.2 client Initial's server name and leaves the datagram as it was", function () {
    const before = Buffer.from(RFC_CLIENT_INITIAL);
    assert.deepEqual(sniffQuicInitial(RFC_CLIENT_INITIAL), {
      kind: 'found',
      protocol: 'quic',
      name: 'example.com',
      ech: false,
      alpn: ['alpn'],
      versions: [0x0304],
      version: 1,
      dcid: '8394c8f03e515708',
    });
    assert.deepEqual(RFC_CLIENT_INITIAL, before);
  });

  it("reads a real hello in one CRYPTO frame, at every packet number length, with DCIDs of 0 to 20 bytes", function () {
    for (const packetNumberLength of [1, 2, 3, 4] as const) {
      for (const dcid of [Buffer.alloc(0), Buffer.from('01', 'hex'), Buffer.alloc(20, 0xab)]) {
        const datagram = protectedInitial(cryptoFrame(0, hello), { packetNumberLength, packetNumber: 3, dcid, token: Buffer.from('tok') });
        const result = sniffQuicInitial(datagram);
        assert.equal(nameOf(result), 'quic.example', `pn length ${packetNumberLength}, dcid ${dcid.length}`);
        assert.ok(result.kind === 'found' && result.alpn[0] === 'h3' && result.dcid === dcid.toString('hex'));
      }
    }
  });

  it('joins CRYPTO frames out of order, with a retransmitted overlap, among PING, ACK and PADDING', function () {
    const a = hello.subarray(0, 40);
    const b = hello.subarray(40, 200);
    const c = hello.subarray(200);
    const ack = Buffer.concat([u8(0x02), varint(0), varint(0), varint(0), varint(0)]);
    const frames = Buffer.concat([cryptoFrame(200, c), u8(0x01), u8(0x00), ack, cryptoFrame(40, b), cryptoFrame(30, hello.subarray(30, 60)), cryptoFrame(0, a)]);
    assert.equal(nameOf(sniffQuicInitial(protectedInitial(frames))), 'quic.example');
  });

  it('says more packets are needed when the hello runs on into a second Initial, and reads the two together', function () {
    const first = protectedInitial(cryptoFrame(0, hello.subarray(0, 100)), { packetNumber: 0 });
    const second = protectedInitial(cryptoFrame(100, hello.subarray(100)), { packetNumber: 1 });
    assert.deepEqual(sniffQuicInitial(first), { kind: 'need-more', dcid: '8394c8f03e515708', cryptoBytes: 100 });
    assert.deepEqual(sniffQuicInitial(second), { kind: 'need-more', dcid: '8394c8f03e515708', cryptoBytes: 0 });
    assert.equal(nameOf(sniffQuicInitial([first, second])), 'quic.example');
    assert.equal(nameOf(sniffQuicInitial([second, first])), 'quic.example');
    // An Initial of another connection (another DCID) does not complete this one.
    const stranger = protectedInitial(cryptoFrame(100, hello.subarray(100)), { dcid: Buffer.from('0102030405060708', 'hex') });
    assert.equal(sniffQuicInitial([first, stranger]).kind, 'need-more');
  });

  it('takes the first Initial among coalesced packets', function () {
    const initial = protectedInitial(cryptoFrame(0, hello), { padTo: 0 });
    const zeroRtt = protectedInitial(Buffer.from([0x01]), { type: 1, padTo: 0 });
    const handshake = protectedInitial(Buffer.from([0x01]), { type: 2, padTo: 0 });
    assert.equal(nameOf(sniffQuicInitial(Buffer.concat([initial, zeroRtt]))), 'quic.example');
    assert.equal(nameOf(sniffQuicInitial(Buffer.concat([handshake, initial]))), 'quic.example');
    assert.equal(reasonOf(sniffQuicInitial(Buffer.concat([zeroRtt, handshake]))), 'not-initial');
  });

  it('recognises other versions and packet forms as none', function () {
    const v2 = protectedInitial(cryptoFrame(0, hello), { version: 0x6b3343cf });
    assert.deepEqual(sniffQuicInitial(v2), { kind: 'none', reason: 'unsupported-version', version: 0x6b3343cf });
    assert.deepEqual(sniffQuicInitial(protectedInitial(cryptoFrame(0, hello), { version: 0xff00001d })), { kind: 'none', reason: 'unsupported-version', version: 0xff00001d });
    assert.equal(reasonOf(sniffQuicInitial(Buffer.from('8000000000', 'hex'))), 'version-negotiation');
    assert.equal(reasonOf(sniffQuicInitial(Buffer.from('4011223344', 'hex'))), 'short-header');
    assert.equal(reasonOf(sniffQuicInitial(Buffer.from('f0000000010000aabbcc', 'hex'))), 'not-initial'); // Retry
  });

  it('refuses a datagram altered anywhere, or cut short', function () {
    const datagram = protectedInitial(cryptoFrame(0, hello));
    for (const at of [6, 30, 600, datagram.length - 1]) {
      const altered = Buffer.from(datagram);
      altered[at]! ^= 0x01;
      assert.equal(reasonOf(sniffQuicInitial(altered)), 'decrypt-failed', `byte ${at}`);
    }
    assert.equal(reasonOf(sniffQuicInitial(datagram.subarray(0, 1000))), 'malformed');
    const longCid = Buffer.from(datagram);
    longCid[5] = 21;
    assert.equal(reasonOf(sniffQuicInitial(longCid)), 'malformed');
  });

  it('refuses frames a client Initial cannot carry, CRYPTO past the bound, and retransmissions that disagree', function () {
    assert.equal(reasonOf(sniffQuicInitial(protectedInitial(Buffer.concat([cryptoFrame(0, hello), Buffer.from([0x08, 0x00, 0x01, 0x61])])))), 'unexpected-frame');
    assert.equal(reasonOf(sniffQuicInitial(protectedInitial(Buffer.from([0x1c, 0x00, 0x00, 0x00])))), 'unexpected-frame');
    assert.equal(reasonOf(sniffQuicInitial(protectedInitial(cryptoFrame(2 ** 40, Buffer.from('x'))))), 'crypto-too-long');
    const altered = Buffer.from(hello.subarray(30, 60));
    altered[0]! ^= 1;
    assert.equal(reasonOf(sniffQuicInitial(protectedInitial(Buffer.concat([cryptoFrame(0, hello), cryptoFrame(30, altered)])))), 'malformed');
    assert.equal(reasonOf(sniffQuicInitial(protectedInitial(cryptoFrame(0, clientHelloMessage([]))))), 'no-server-name');
    assert.equal(nameOf(sniffQuicInitial(protectedInitial(cryptoFrame(0, clientHelloMessage([serverNameExtension('Hand.Made')]))))), 'hand.made');
  });

  it('throws TypeError for arguments that are not datagrams', function () {
    assert.throws(() => sniffQuicInitial('x' as unknown as Uint8Array), TypeError);
    assert.throws(() => sniffQuicInitial([]), TypeError);
    assert.throws(() => sniffQuicInitial([RFC_CLIENT_INITIAL, 'x' as unknown as Uint8Array]), TypeError);
  });
});
