// The server name in a TLS ClientHello (RFC 8446 4.1.2, RFC 6066 3), from the
// bytes a client sends first over TCP: records (reassembling a hello split over
// several) then the handshake message. QUIC reuses the message parser on its
// CRYPTO stream, which carries handshake messages without records.
import { checkHostName } from './hostname';
import { Malformed, Reader, Short, requireBytes } from './reader';
import type { None, TlsHelloResult, TlsNoneReason } from './result';

/** The largest hello accepted; real ones are under 2 KiB (a few with post-quantum key shares, 2-4 KiB). */
export const MAX_HELLO_BYTES = 32 * 1024;

const RECORD_HANDSHAKE = 22;
const RECORD_HEADER = 5;
const MAX_RECORD_PAYLOAD = 16384; // RFC 8446 5.1: a plaintext fragment's limit
const HANDSHAKE_CLIENT_HELLO = 1;
const HANDSHAKE_HEADER = 4;

const EXT_SERVER_NAME = 0;
const EXT_ALPN = 16;
const EXT_SUPPORTED_VERSIONS = 43;
const EXT_ECH = 0xfe0d;
const HOST_NAME = 0;

const none = (reason: TlsNoneReason): None<TlsNoneReason> => ({ kind: 'none', reason });

/** The ClientHello's server name in the first bytes of a TLS-over-TCP stream. */
export function sniffTlsClientHello(bytes: Uint8Array): TlsHelloResult {
  requireBytes(bytes, 'bytes');
  const message = handshakeFromRecords(bytes);
  if (!(message instanceof Uint8Array)) return message;
  return parseClientHelloMessage(message);
}

/**
 * The handshake bytes carried by the leading handshake records, concatenated,
 * up to the end of the first message (or of the input); or why there are none.
 */
function handshakeFromRecords(bytes: Uint8Array): Uint8Array | TlsHelloResult {
  const fragments: Uint8Array[] = [];
  let gathered = 0;
  let wanted = Infinity; // the hello's total length, once its header has been seen
  for (let pos = 0; gathered < wanted; ) {
    const header = checkRecordHeader(bytes, pos);
    if (header !== undefined) return header;
    const length = (bytes[pos + 3]! << 8) | bytes[pos + 4]!;
    const fragment = bytes.subarray(pos + RECORD_HEADER, pos + RECORD_HEADER + length);
    fragments.push(fragment);
    gathered += fragment.length;
    pos += RECORD_HEADER + length;
    if (wanted === Infinity && gathered >= HANDSHAKE_HEADER) {
      const start = concat(fragments, HANDSHAKE_HEADER);
      if (start[0] !== HANDSHAKE_CLIENT_HELLO) return none('not-client-hello');
      const helloLength = (start[1]! << 16) | (start[2]! << 8) | start[3]!;
      if (helloLength > MAX_HELLO_BYTES) return none('hello-too-long');
      wanted = HANDSHAKE_HEADER + helloLength;
    }
    if (pos > bytes.length) break; // the last record is cut short
  }
  return concat(fragments, Math.min(gathered, wanted));
}

/** Why the record header at `pos` cannot continue a hello, or undefined when it can (need-more when it is cut short). */
function checkRecordHeader(bytes: Uint8Array, pos: number): TlsHelloResult | undefined {
  const available = bytes.length - pos;
  // Judge what has arrived before waiting for the rest: a non-TLS stream is told at once.
  if (available >= 1 && bytes[pos] !== RECORD_HANDSHAKE) return none(pos === 0 ? 'not-tls' : 'malformed');
  if (available >= 2 && bytes[pos + 1] !== 3) return none(pos === 0 ? 'not-tls' : 'malformed');
  if (available < RECORD_HEADER) return { kind: 'need-more' };
  const length = (bytes[pos + 3]! << 8) | bytes[pos + 4]!;
  // RFC 8446 5.1: no empty handshake fragments, none over 2^14.
  if (length === 0 || length > MAX_RECORD_PAYLOAD) return none(pos === 0 ? 'not-tls' : 'malformed');
  return undefined;
}

/** The first `length` bytes of the fragments, as one array (a view when one fragment holds them). */
function concat(fragments: Uint8Array[], length: number): Uint8Array {
  if (fragments[0]!.length >= length) return fragments[0]!.subarray(0, length);
  const joined = new Uint8Array(length);
  let at = 0;
  for (const fragment of fragments) {
    const part = fragment.subarray(0, length - at);
    joined.set(part, at);
    at += part.length;
    if (at === length) break;
  }
  return joined;
}

/**
 * The server name in a handshake message that should be a ClientHello, as
 * the record layer (or QUIC's CRYPTO stream) delivers it: need-more while it
 * is a valid prefix.
 */
export function parseClientHelloMessage(message: Uint8Array): TlsHelloResult {
  requireBytes(message, 'message');
  try {
    const header = new Reader(message, 0, message.length, 'short');
    if (message.length >= 1 && message[0] !== HANDSHAKE_CLIENT_HELLO) return none('not-client-hello');
    header.u8();
    const length = header.u24();
    if (length > MAX_HELLO_BYTES) return none('hello-too-long');
    if (header.remaining < length) return { kind: 'need-more' };
    return parseClientHelloBody(header.sub(length));
  } catch (error) {
    if (error instanceof Short) return { kind: 'need-more' };
    if (error instanceof Malformed) return none('malformed');
    throw error;
  }
}

/** The body after the handshake header: RFC 8446 4.1.2 (and the TLS 1.2 layout, which is the same). */
function parseClientHelloBody(body: Reader): TlsHelloResult {
  const legacyVersion = body.u16();
  if (legacyVersion >> 8 !== 3) return none('malformed');
  body.skip(32); // random
  const sessionId = body.u8();
  if (sessionId > 32) return none('malformed');
  body.skip(sessionId);
  const cipherSuites = body.u16();
  if (cipherSuites === 0 || cipherSuites % 2 !== 0) return none('malformed');
  body.skip(cipherSuites);
  const compression = body.u8();
  if (compression === 0) return none('malformed');
  body.skip(compression);
  if (body.remaining === 0) return none('no-server-name'); // an SSL 3.0-style hello: no extensions
  const extensions = body.sub(body.u16());
  if (body.remaining !== 0) return none('malformed');
  return readExtensions(extensions);
}

interface HelloFields {
  rawName: string | undefined;
  ech: boolean;
  alpn: string[];
  versions: number[];
}

function readExtensions(extensions: Reader): TlsHelloResult {
  const seen = new Set<number>();
  const fields: HelloFields = { rawName: undefined, ech: false, alpn: [], versions: [] };
  while (extensions.remaining > 0) {
    const type = extensions.u16();
    const data = extensions.sub(extensions.u16());
    // RFC 8446 4.2: one of each. Two server_names could route one way and serve another.
    if (seen.has(type)) return none('malformed');
    seen.add(type);
    if (type === EXT_SERVER_NAME) fields.rawName = readServerName(data);
    else if (type === EXT_ALPN) fields.alpn = readAlpn(data);
    else if (type === EXT_SUPPORTED_VERSIONS) fields.versions = readVersions(data);
    else if (type === EXT_ECH) fields.ech = true;
  }
  if (fields.rawName === undefined) return none('no-server-name');
  const checked = checkHostName(fields.rawName, false);
  if (!checked.ok) return none(checked.reason);
  return { kind: 'found', protocol: 'tls', name: checked.name, ech: fields.ech, alpn: fields.alpn, versions: fields.versions };
}

/** RFC 6066 3: a list of (type, name); the host_name, of which there may be one. */
function readServerName(data: Reader): string | undefined {
  const list = data.sub(data.u16());
  if (data.remaining !== 0) throw new Malformed('server_name');
  let hostName: string | undefined;
  while (list.remaining > 0) {
    const type = list.u8();
    const name = list.take(list.u16());
    if (type !== HOST_NAME) continue;
    if (hostName !== undefined) throw new Malformed('two host_names');
    hostName = Buffer.from(name.buffer, name.byteOffset, name.length).toString('latin1');
  }
  return hostName;
}

/** RFC 7301 3.1: a list of non-empty protocol names. */
function readAlpn(data: Reader): string[] {
  const list = data.sub(data.u16());
  if (data.remaining !== 0) throw new Malformed('alpn');
  const names: string[] = [];
  while (list.remaining > 0) {
    const length = list.u8();
    if (length === 0) throw new Malformed('empty alpn name');
    const name = list.take(length);
    names.push(Buffer.from(name.buffer, name.byteOffset, name.length).toString('latin1'));
  }
  return names;
}

/** RFC 8446 4.2.1, the ClientHello form: a list of 2-byte versions; GREASE (RFC 8701: 0x?a?a) left out. */
function readVersions(data: Reader): number[] {
  const list = data.sub(data.u8());
  if (data.remaining !== 0 || list.remaining % 2 !== 0) throw new Malformed('supported_versions');
  const versions: number[] = [];
  while (list.remaining > 0) {
    const version = list.u16();
    if ((version & 0x0f0f) !== 0x0a0a || version >> 8 !== (version & 0xff)) versions.push(version);
  }
  return versions;
}
