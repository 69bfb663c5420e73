// The server name in a QUIC version 1 client Initial (RFC 9000 17.2.2, RFC
// 9001 5): find the first Initial in a datagram, remove header protection,
// decrypt, collect the CRYPTO frames, and read the ClientHello they carry with
// the TLS parser.
import { createDecipheriv } from 'node:crypto';
import { clientInitialKeys, headerProtectionMask } from './quic-keys';
import { Malformed, Reader, requireBytes } from './reader';
import type { QuicInitialResult, QuicNone, QuicNoneReason } from './result';
import { MAX_HELLO_BYTES, parseClientHelloMessage } from './tls';

export const QUIC_V1 = 0x00000001;
/** Datagrams looked at per call: a bound on the decryptions one call can cost. */
export const MAX_QUIC_DATAGRAMS = 16;

const MAX_CID = 20; // RFC 9000 17.2: v1 connection IDs are at most 20 bytes
const SAMPLE = 16;
const TAG = 16;
const MAX_CRYPTO_END = MAX_HELLO_BYTES + 4; // the hello and its handshake header

interface InitialPacket {
  datagram: Uint8Array;
  start: number;
  pnOffset: number;
  end: number;
  dcid: Uint8Array;
}

interface CryptoChunk {
  offset: number;
  data: Uint8Array;
}

const none = (reason: QuicNoneReason, version?: number): QuicNone => (version === undefined ? { kind: 'none', reason } : { kind: 'none', reason, version });

/**
 * The server name in the client's first Initial: one datagram, or several of
 * the same connection (Initials of the same DCID) when the hello spans packets.
 * Later datagrams whose Initial does not parse, decrypt or match are skipped.
 */
export function sniffQuicInitial(datagrams: Uint8Array | readonly Uint8Array[]): QuicInitialResult {
  const list = datagrams instanceof Uint8Array ? [datagrams] : datagrams;
  if (!Array.isArray(list) || list.length === 0) throw new TypeError('datagrams must be a Uint8Array or a non-empty array of them');
  list.forEach((datagram, i) => requireBytes(datagram, `datagrams[${i}]`));
  try {
    const first = firstInitial(list[0]!);
    if (!('pnOffset' in first)) return first;
    const chunks = cryptoChunks(first);
    if (!Array.isArray(chunks)) return chunks;
    for (const datagram of list.slice(1, MAX_QUIC_DATAGRAMS)) chunks.push(...laterChunks(datagram, first.dcid));
    return helloFromCrypto(chunks, Buffer.from(first.dcid).toString('hex'));
  } catch (error) {
    if (error instanceof Malformed) return none('malformed');
    throw error;
  }
}

/** The CRYPTO chunks of a later datagram's Initial for the same DCID, or none at all. */
function laterChunks(datagram: Uint8Array, dcid: Uint8Array): CryptoChunk[] {
  try {
    const packet = firstInitial(datagram);
    if (!('pnOffset' in packet) || Buffer.compare(packet.dcid, dcid) !== 0) return [];
    const chunks = cryptoChunks(packet);
    return Array.isArray(chunks) ? chunks : [];
  } catch (error) {
    if (error instanceof Malformed) return [];
    throw error;
  }
}

/** The first Initial among the packets coalesced in a datagram (RFC 9000 12.2), skipping 0-RTT and Handshake ones before it. */
function firstInitial(datagram: Uint8Array): InitialPacket | QuicNone {
  const reader = new Reader(datagram);
  while (reader.remaining > 0) {
    const start = reader.offset;
    const first = reader.u8();
    if ((first & 0x80) === 0) return none(start === 0 ? 'short-header' : 'not-initial');
    const version = reader.u32();
    if (version === 0) return none('version-negotiation', 0);
    if (version !== QUIC_V1) return none('unsupported-version', version);
    if ((first & 0x40) === 0) return none('malformed', version); // the fixed bit
    const dcidLength = reader.u8();
    if (dcidLength > MAX_CID) return none('malformed', version);
    const dcid = reader.take(dcidLength);
    const scidLength = reader.u8();
    if (scidLength > MAX_CID) return none('malformed', version);
    reader.skip(scidLength);
    const type = (first >> 4) & 3;
    if (type === 3) return none('not-initial', version); // Retry: sent by servers, and no Length field
    if (type === 0) reader.skip(reader.varint()); // the token
    const length = reader.varint();
    const pnOffset = reader.offset;
    reader.skip(length);
    if (type === 0) return { datagram, start, pnOffset, end: pnOffset + length, dcid };
  }
  return none('not-initial', QUIC_V1);
}

/** The packet's CRYPTO frames, decrypted, or why there are none. */
function cryptoChunks(packet: InitialPacket): CryptoChunk[] | QuicNone {
  const plaintext = decryptInitial(packet);
  if (plaintext === undefined) return none('decrypt-failed', QUIC_V1);
  return readFrames(plaintext);
}

/** Header protection off (RFC 9001 5.4.1), then AES-128-GCM open (5.3); undefined when it does not authenticate. */
function decryptInitial(packet: InitialPacket): Buffer | undefined {
  const { datagram, start, pnOffset, end } = packet;
  if (pnOffset + 4 + SAMPLE > end) throw new Malformed('too short to sample');
  const keys = clientInitialKeys(packet.dcid);
  const mask = headerProtectionMask(keys.hp, datagram.subarray(pnOffset + 4, pnOffset + 4 + SAMPLE));
  // A copy: the caller's datagram is left as it was.
  const header = Buffer.from(datagram.subarray(start, pnOffset + 4));
  header[0] ^= mask[0]! & 0x0f;
  const pnLength = (header[0]! & 3) + 1;
  const pnAt = pnOffset - start;
  let packetNumber = 0;
  for (let i = 0; i < pnLength; i++) {
    header[pnAt + i] ^= mask[1 + i]!;
    packetNumber = packetNumber * 256 + header[pnAt + i]!;
  }
  const nonce = Buffer.from(keys.iv);
  nonce.writeUInt32BE((nonce.readUInt32BE(8) ^ packetNumber) >>> 0, 8);
  const decipher = createDecipheriv('aes-128-gcm', keys.key, nonce);
  decipher.setAAD(header.subarray(0, pnAt + pnLength));
  decipher.setAuthTag(datagram.subarray(end - TAG, end));
  const plaintext = decipher.update(datagram.subarray(pnOffset + pnLength, end - TAG));
  try {
    decipher.final();
  } catch {
    return undefined; // the tag does not match: not a client Initial for this DCID, or altered
  }
  // Reserved bits must be zero once protection is off (RFC 9000 17.2).
  if ((header[0]! & 0x0c) !== 0) throw new Malformed('reserved bits');
  return plaintext;
}

/** The frames a client Initial may carry (RFC 9000 12.4): PADDING, PING, ACK, CRYPTO. */
function readFrames(plaintext: Uint8Array): CryptoChunk[] | QuicNone {
  const frames = new Reader(plaintext);
  const chunks: CryptoChunk[] = [];
  while (frames.remaining > 0) {
    const type = frames.varint();
    if (type === 0x00 || type === 0x01) continue;
    if (type === 0x02 || type === 0x03) skipAck(frames, type === 0x03);
    else if (type === 0x06) {
      const offset = frames.varint();
      const data = frames.take(frames.varint());
      if (offset + data.length > MAX_CRYPTO_END) return none('crypto-too-long', QUIC_V1);
      chunks.push({ offset, data });
    } else return none('unexpected-frame', QUIC_V1);
  }
  return chunks;
}

/** RFC 9000 19.3: the ACK frame's fields, read past. */
function skipAck(frames: Reader, ecn: boolean): void {
  frames.varint(); // largest acknowledged
  frames.varint(); // delay
  const ranges = frames.varint();
  frames.varint(); // first range
  // Each range takes at least two bytes, so a lying count runs out of input, not of time.
  for (let i = 0; i < ranges; i++) {
    frames.varint();
    frames.varint();
  }
  if (ecn) for (let i = 0; i < 3; i++) frames.varint();
}

/** The CRYPTO stream's bytes from offset 0 as far as they run without a gap, read as a ClientHello. */
function helloFromCrypto(chunks: CryptoChunk[], dcid: string): QuicInitialResult {
  const stream = new Uint8Array(MAX_CRYPTO_END);
  let contiguous = 0;
  for (const { offset, data } of [...chunks].sort((a, b) => a.offset - b.offset)) {
    if (offset > contiguous) break;
    const overlap = Math.min(contiguous - offset, data.length);
    // Retransmitted bytes must say the same thing: two versions of a hello are two answers.
    if (Buffer.compare(stream.subarray(offset, offset + overlap), data.subarray(0, overlap)) !== 0) return none('malformed', QUIC_V1);
    stream.set(data.subarray(overlap), contiguous);
    contiguous = Math.max(contiguous, offset + data.length);
  }
  const hello = parseClientHelloMessage(stream.subarray(0, contiguous));
  if (hello.kind === 'need-more') return { kind: 'need-more', dcid, cryptoBytes: contiguous };
  if (hello.kind === 'none') return hello.reason === 'not-tls' ? none('malformed', QUIC_V1) : none(hello.reason, QUIC_V1);
  return { ...hello, protocol: 'quic', version: QUIC_V1, dcid };
}
