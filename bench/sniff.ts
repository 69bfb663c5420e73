// The sniffers' cost per first flight: ns per call on a TLS ClientHello (one
// record, and cut into 100-byte records), an HTTP/1.1 request head, and a QUIC
// Initial (key derivation and AES-GCM included). Hand-made inputs, no network.
//   node dist-bench/sniff.js [--quick]
import { createCipheriv, createHmac } from 'node:crypto';
import { sniffHttpHost, sniffQuicInitial, sniffTlsClientHello } from '../dist/sniff';

const quick = process.argv.includes('--quick');
const ITERATIONS = quick ? 2_000 : 100_000;

const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
const ext = (type: number, data: Buffer) => Buffer.concat([u16(type), u16(data.length), data]);
const name = Buffer.from('bench.example.com');
const extensions = Buffer.concat([
  ext(0, Buffer.concat([u16(name.length + 3), Buffer.from([0]), u16(name.length), name])),
  ext(16, Buffer.from('000c02683208687474702f312e31', 'hex')),
  ext(43, Buffer.from('0403040303', 'hex')),
  ext(51, Buffer.alloc(1250, 7)), // a post-quantum-sized key share
]);
const body = Buffer.concat([u16(0x0303), Buffer.alloc(32, 1), Buffer.from([32]), Buffer.alloc(32, 2), u16(4), Buffer.from('13011302', 'hex'), Buffer.from([1, 0]), u16(extensions.length), extensions]);
const hello = Buffer.concat([Buffer.from([1, 0, body.length >> 8, body.length & 0xff]), body]);
const record = (fragment: Buffer) => Buffer.concat([Buffer.from([22, 3, 1]), u16(fragment.length), fragment]);
const oneRecord = record(hello);
const records = Buffer.concat(Array.from({ length: Math.ceil(hello.length / 100) }, (_, i) => record(hello.subarray(i * 100, i * 100 + 100))));
const request = Buffer.from('GET /index.html HTTP/1.1\r\nHost: bench.example.com\r\nUser-Agent: bench/1\r\nAccept: */*\r\nAccept-Encoding: gzip\r\n\r\n');

/** A QUIC v1 Initial around the hello (RFC 9001 5), made here so that the bench needs no test code. */
function initial(): Buffer {
  const dcid = Buffer.from('0011223344556677', 'hex');
  const hmac = (key: Buffer, data: Buffer) => createHmac('sha256', key).update(data).digest();
  const label = (secret: Buffer, text: string, length: number) => {
    const full = Buffer.from(`tls13 ${text}`);
    return hmac(secret, Buffer.concat([u16(length), Buffer.from([full.length]), full, Buffer.from([0, 1])])).subarray(0, length);
  };
  const client = label(hmac(Buffer.from('38762cf7f55934b34d179ae6a4c80cadccbb7f0a', 'hex'), dcid), 'client in', 32);
  const crypto = Buffer.concat([Buffer.from([6, 0]), u16(0x4000 | hello.length), hello]);
  const plaintext = Buffer.concat([crypto, Buffer.alloc(Math.max(0, 1200 - 26 - crypto.length - 16))]);
  const header = Buffer.concat([Buffer.from([0xc3, 0, 0, 0, 1, 8]), dcid, Buffer.from([0, 0]), u16(0x4000 | (4 + plaintext.length + 16)), Buffer.from([0, 0, 0, 0])]);
  const cipher = createCipheriv('aes-128-gcm', label(client, 'quic key', 16), label(client, 'quic iv', 12)).setAAD(header);
  const packet = Buffer.concat([header, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  const mask = createCipheriv('aes-128-ecb', label(client, 'quic hp', 16), null).update(packet.subarray(header.length, header.length + 16));
  packet[0]! ^= mask[0]! & 0x0f;
  for (let i = 0; i < 4; i++) packet[header.length - 4 + i]! ^= mask[1 + i]!;
  return packet;
}

function bench(label: string, call: () => { kind: string }): void {
  if (call().kind !== 'found') throw new Error(`${label}: the input does not sniff as found`);
  for (let i = 0; i < ITERATIONS / 10; i++) call();
  const started = process.hrtime.bigint();
  for (let i = 0; i < ITERATIONS; i++) call();
  const ns = Number(process.hrtime.bigint() - started) / ITERATIONS;
  console.log(`${label.padEnd(44)} ${ns.toFixed(0).padStart(8)} ns per call`);
}

const quicInitial = initial();
console.log(`sniffers, ${ITERATIONS} calls each${quick ? ' (quick: not a measurement)' : ''}; hello ${hello.length} bytes`);
bench('TLS ClientHello, one record', () => sniffTlsClientHello(oneRecord));
bench(`TLS ClientHello, ${Math.ceil(hello.length / 100)} records of 100 bytes`, () => sniffTlsClientHello(records));
bench('HTTP/1.1 request head', () => sniffHttpHost(request));
bench('QUIC v1 Initial, 1200 bytes', () => sniffQuicInitial(quicInitial));
