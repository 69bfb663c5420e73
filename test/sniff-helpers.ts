// Inputs for the sniffers' tests: first flights recorded from real clients,
// and hand-made ClientHellos, records and QUIC Initials for what no client
// here sends (ECH, malformed hellos, QUIC itself). Written apart from
// lib/sniff, so that a shared mistake cannot pass both sides.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createCipheriv } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { clientInitialKeys } from '../dist/sniff';

export const FIXTURES = join(__dirname, '..', 'test', 'fixtures');
export const TLS_KEY = readFileSync(join(FIXTURES, 'tls-key.pem'));
export const TLS_CERT = readFileSync(join(FIXTURES, 'tls-cert.pem'));

/**
 * What a client sends first, as a plain TCP server receives it: every byte
 * until the client has been quiet for `quietMs` after its first. `start`
 * begins the client against the port and returns how to stop it.
 */
export function captureFirstFlight(start: (port: number) => () => void, quietMs = 150, limitMs = 8000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let stop = () => {};
    const chunks: Buffer[] = [];
    let quiet: NodeJS.Timeout | undefined;
    const limit = setTimeout(() => done(new Error('the client sent nothing in time')), limitMs);
    const server = net.createServer((socket) => {
      socket.on('error', () => {});
      socket.on('data', (chunk) => {
        chunks.push(chunk);
        clearTimeout(quiet);
        quiet = setTimeout(() => done(undefined), quietMs);
      });
    });
    const done = (error: Error | undefined) => {
      clearTimeout(limit);
      clearTimeout(quiet);
      stop();
      server.close();
      for (const socket of connections) socket.destroy();
      if (error) reject(error);
      else resolve(Buffer.concat(chunks));
    };
    const connections = new Set<net.Socket>();
    server.on('connection', (socket) => connections.add(socket));
    server.listen(0, '127.0.0.1', () => {
      stop = start((server.address() as net.AddressInfo).port);
    });
  });
}

/** A child process that is killed when stopped; its output is ignored. */
export function runClient(command: string, args: string[]): () => void {
  const child: ChildProcess = spawn(command, args, { stdio: ['pipe', 'ignore', 'ignore'] });
  child.on('error', () => {});
  return () => child.kill('SIGKILL');
}

export const u8 = (n: number) => Buffer.from([n]);
export const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
export const u24 = (n: number) => Buffer.from([n >> 16, (n >> 8) & 0xff, n & 0xff]);

/** One TLS extension: type, length, data. */
export const extension = (type: number, data: Buffer) => Buffer.concat([u16(type), u16(data.length), data]);
export const serverNameExtension = (...names: Array<string | Buffer>) => {
  const list = Buffer.concat(names.map((name) => (typeof name === 'string' ? Buffer.from(name, 'latin1') : name)).map((name) => Buffer.concat([u8(0), u16(name.length), name])));
  return extension(0, Buffer.concat([u16(list.length), list]));
};
export const alpnExtension = (...protocols: string[]) => {
  const list = Buffer.concat(protocols.map((p) => Buffer.concat([u8(p.length), Buffer.from(p, 'latin1')])));
  return extension(16, Buffer.concat([u16(list.length), list]));
};
export const versionsExtension = (...versions: number[]) => extension(43, Buffer.concat([u8(versions.length * 2), ...versions.map(u16)]));
/** An outer encrypted_client_hello (draft-ietf-tls-esni 5): type 0, a cipher suite, config id, enc and a payload. */
export const echExtension = () =>
  extension(0xfe0d, Buffer.concat([u8(0), u16(1), u16(1), u8(7), u16(32), Buffer.alloc(32, 0xee), u16(64), Buffer.alloc(64, 0xdd)]));

/** A ClientHello handshake message (type, 24-bit length, body) with these extensions. */
export function clientHelloMessage(extensions: Buffer[]): Buffer {
  const list = Buffer.concat(extensions);
  const body = Buffer.concat([
    u16(0x0303),
    Buffer.alloc(32, 0x42), // random
    u8(32),
    Buffer.alloc(32, 0x17), // legacy_session_id
    u16(4),
    Buffer.from([0x13, 0x01, 0x13, 0x02]),
    u8(1),
    u8(0),
    u16(list.length),
    list,
  ]);
  return Buffer.concat([u8(1), u24(body.length), body]);
}

/** A handshake message cut into handshake records of the given sizes (the last size repeats). */
export function inRecords(message: Buffer, sizes: number[]): Buffer {
  const records: Buffer[] = [];
  for (let at = 0, i = 0; at < message.length; i++) {
    const fragment = message.subarray(at, at + sizes[Math.min(i, sizes.length - 1)]!);
    records.push(Buffer.concat([Buffer.from([22, 3, 1]), u16(fragment.length), fragment]));
    at += fragment.length;
  }
  return Buffer.concat(records);
}

/** The handshake bytes inside a stream of records (the test's own reading, to build QUIC CRYPTO data from real hellos). */
export function handshakeOf(records: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (let at = 0; at + 5 <= records.length; at += 5 + records.readUInt16BE(at + 3)) parts.push(records.subarray(at + 5, at + 5 + records.readUInt16BE(at + 3)));
  return Buffer.concat(parts);
}

/** A QUIC variable-length integer (RFC 9000 16) in the shortest form. */
export function varint(n: number): Buffer {
  if (n < 0x40) return u8(n);
  if (n < 0x4000) return u16(0x4000 | n);
  if (n < 0x40000000) return Buffer.from([0x80 | (n >>> 24), (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]);
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n) | (0xc0n << 56n));
  return b;
}

export const cryptoFrame = (offset: number, data: Buffer) => Buffer.concat([u8(0x06), varint(offset), varint(data.length), data]);

export interface InitialOptions {
  dcid?: Buffer;
  scid?: Buffer;
  token?: Buffer;
  packetNumber?: number;
  packetNumberLength?: 1 | 2 | 3 | 4;
  version?: number;
  /** Long header packet type: 0 Initial, 1 0-RTT, 2 Handshake. */
  type?: 0 | 1 | 2;
  /** The datagram is padded (PADDING frames) to at least this size; clients send >= 1200 (RFC 9000 14.1). */
  padTo?: number;
}

/** A protected client long-header packet carrying `frames`, made with the RFC 9001 steps (keys from the library, checked against the RFC's vectors). */
export function protectedInitial(frames: Buffer, options: InitialOptions = {}): Buffer {
  const { dcid = Buffer.from('8394c8f03e515708', 'hex'), scid = Buffer.alloc(0), token = Buffer.alloc(0), packetNumber = 0 } = options;
  const pnLength = options.packetNumberLength ?? 4;
  const type = options.type ?? 0;
  const before = Buffer.concat([
    u8(0xc0 | (type << 4) | (pnLength - 1)),
    Buffer.from([0, 0, 0, 0]),
    u8(dcid.length),
    dcid,
    u8(scid.length),
    scid,
    type === 0 ? Buffer.concat([varint(token.length), token]) : Buffer.alloc(0),
  ]);
  before.writeUInt32BE(options.version ?? 1, 1);
  const headerWithoutLength = before.length + 2 + pnLength; // a 2-byte Length field
  const padding = Math.max(0, (options.padTo ?? 1200) - headerWithoutLength - frames.length - 16);
  const plaintext = Buffer.concat([frames, Buffer.alloc(padding)]);
  const pn = Buffer.alloc(4);
  pn.writeUInt32BE(packetNumber);
  const header = Buffer.concat([before, u16(0x4000 | (pnLength + plaintext.length + 16)), pn.subarray(4 - pnLength)]);
  const keys = clientInitialKeys(dcid);
  const nonce = Buffer.from(keys.iv);
  for (let i = 0; i < 4; i++) nonce[8 + i]! ^= pn[i]!;
  const cipher = createCipheriv('aes-128-gcm', keys.key, nonce);
  cipher.setAAD(header);
  const sealed = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  const packet = Buffer.concat([header, sealed]);
  const pnOffset = header.length - pnLength;
  const ecb = createCipheriv('aes-128-ecb', keys.hp, null);
  const mask = ecb.update(packet.subarray(pnOffset + 4, pnOffset + 20));
  packet[0]! ^= mask[0]! & 0x0f;
  for (let i = 0; i < pnLength; i++) packet[pnOffset + i]! ^= mask[1 + i]!;
  return packet;
}

/** The result of `parse` on `bytes` seen through two different surroundings: equal unless the parser reads outside its input. */
export function insideOtherBytes<T>(bytes: Uint8Array, parse: (view: Uint8Array) => T): [T, T] {
  const view = (fill: number) => {
    const room = Buffer.alloc(bytes.length + 80, fill);
    room.set(bytes, 16);
    return room.subarray(16, 16 + bytes.length);
  };
  return [parse(view(0x00)), parse(view(0xff))];
}

/** A seeded generator in [0, 1): test/helpers.ts's (the addon loads lazily, so importing it costs these tests nothing). */
export { prng as seeded } from './helpers';

/** Skips the test when a client program is not installed (node.exe under Wine has no curl or openssl). */
export function needsProgram(context: Mocha.Context, ...programs: string[]): void {
  for (const program of programs) {
    const probe = spawnSync(program, [program === 'openssl' ? 'version' : '--version'], { stdio: 'ignore', timeout: 5000 });
    if (probe.error !== undefined || probe.status !== 0) context.skip();
  }
}
