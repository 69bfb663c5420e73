// Windows SOCKADDR_IN / SOCKADDR_IN6 / SOCKADDR_STORAGE, the layout most WFP
// callout drivers put in the redirect context (they see the original
// destination as a SOCKADDR). Fields are little-endian as on every Windows
// target, except the port (and IPv6 flow info), which are in network order.
import net from 'node:net';
import { invalidArgType, outOfRange } from './errors';

export const AF_INET = 2;
/** AF_INET6 on Windows (10 on Linux, 30 on macOS: this is the Windows layout). */
export const AF_INET6 = 23;
export const SOCKADDR_IN_SIZE = 16;
export const SOCKADDR_IN6_SIZE = 28;
export const SOCKADDR_STORAGE_SIZE = 128;

export interface SocketAddressInfo {
  family: 'IPv4' | 'IPv6';
  address: string;
  port: number;
  /** IPv6 only: sin6_flowinfo. */
  flowInfo?: number | undefined;
  /** IPv6 only: sin6_scope_id. */
  scopeId?: number | undefined;
}

function malformed(reason: string): RangeError {
  return outOfRange('ERR_WFP_BAD_SOCKADDR', `Not a SOCKADDR: ${reason}`);
}

/** RFC 5952 text of 16 bytes: lower case, the longest run of two or more zero groups as `::`. */
function formatIpv6(bytes: Uint8Array): string {
  const groups = Array.from({ length: 8 }, (_, i) => (bytes[2 * i] << 8) | bytes[2 * i + 1]);
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `::ffff:${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}`;
  }
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) [bestStart, bestLength] = [i, j - i];
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

/** 16 bytes of an IPv6 address in any textual form `net.isIPv6` accepts. */
function parseIpv6(text: string): Uint8Array {
  const bytes = new Uint8Array(16);
  let body = text;
  const tail: number[] = [];
  const lastColon = body.lastIndexOf(':');
  if (body.includes('.')) {
    tail.push(...body.slice(lastColon + 1).split('.').map(Number));
    body = `${body.slice(0, lastColon + 1)}0:0`;
  }
  const [head, rest] = body.includes('::') ? body.split('::') : [body, undefined];
  const headGroups = head ? head.split(':') : [];
  const restGroups = rest ? rest.split(':') : [];
  const groups = [...headGroups, ...Array(8 - headGroups.length - restGroups.length).fill('0'), ...restGroups];
  groups.forEach((group, i) => {
    const value = parseInt(group, 16);
    bytes[2 * i] = value >> 8;
    bytes[2 * i + 1] = value & 0xff;
  });
  if (tail.length) bytes.set(tail, 12);
  return bytes;
}

/**
 * Decodes a Windows SOCKADDR_IN, SOCKADDR_IN6 or SOCKADDR_STORAGE (by its
 * family field) starting at `offset`. Anything malformed is a `RangeError`
 * (code `ERR_WFP_BAD_SOCKADDR`) that says why; nothing outside the buffer is read.
 */
export function decodeSockaddr(buf: Uint8Array, offset = 0): SocketAddressInfo {
  if (!(buf instanceof Uint8Array)) throw invalidArgType('buf', 'a Uint8Array', buf);
  if (!Number.isSafeInteger(offset) || offset < 0) throw malformed(`offset ${offset} is not a non-negative integer`);
  const available = buf.byteLength - offset;
  if (available < 2) throw malformed(`${Math.max(available, 0)} bytes at offset ${offset}, too few for the family field`);
  const view = new DataView(buf.buffer, buf.byteOffset + offset, available);
  const family = view.getUint16(0, true);
  if (family === AF_INET) {
    if (available < SOCKADDR_IN_SIZE) throw malformed(`SOCKADDR_IN needs ${SOCKADDR_IN_SIZE} bytes, ${available} remain`);
    const address = `${view.getUint8(4)}.${view.getUint8(5)}.${view.getUint8(6)}.${view.getUint8(7)}`;
    return { family: 'IPv4', address, port: view.getUint16(2, false) };
  }
  if (family === AF_INET6) {
    if (available < SOCKADDR_IN6_SIZE) throw malformed(`SOCKADDR_IN6 needs ${SOCKADDR_IN6_SIZE} bytes, ${available} remain`);
    const address = formatIpv6(buf.subarray(offset + 8, offset + 24));
    return {
      family: 'IPv6',
      address,
      port: view.getUint16(2, false),
      flowInfo: view.getUint32(4, false),
      scopeId: view.getUint32(24, true),
    };
  }
  throw malformed(`address family ${family} is neither AF_INET (2) nor AF_INET6 (23)`);
}

/**
 * Encodes an address as a Windows SOCKADDR_IN / SOCKADDR_IN6, or padded to a
 * SOCKADDR_STORAGE (128 bytes): what a driver would write, for tests and tools.
 */
export function encodeSockaddr(info: Pick<SocketAddressInfo, 'address' | 'port' | 'flowInfo' | 'scopeId'>, layout: 'sockaddr' | 'storage' = 'sockaddr'): Buffer {
  const kind = net.isIP(info?.address);
  if (kind === 0) throw invalidArgType('info.address', 'an IPv4 or IPv6 address', info?.address);
  if (!Number.isInteger(info.port) || info.port < 0 || info.port > 65535) {
    throw outOfRange('ERR_OUT_OF_RANGE', `info.port must be 0 to 65535. Received ${info.port}`);
  }
  const size = layout === 'storage' ? SOCKADDR_STORAGE_SIZE : kind === 4 ? SOCKADDR_IN_SIZE : SOCKADDR_IN6_SIZE;
  const out = Buffer.alloc(size);
  out.writeUInt16BE(info.port, 2);
  if (kind === 4) {
    out.writeUInt16LE(AF_INET, 0);
    out.set(info.address.split('.').map(Number), 4);
  } else {
    out.writeUInt16LE(AF_INET6, 0);
    out.writeUInt32BE((info.flowInfo ?? 0) >>> 0, 4);
    out.set(parseIpv6(info.address.split('%')[0]), 8);
    out.writeUInt32LE((info.scopeId ?? 0) >>> 0, 24);
  }
  return out;
}

/**
 * '::ffff:10.0.0.1' -> '10.0.0.1': an IPv4 address as itself, however a
 * dual-stack socket (or the addon, for one) spelt it.
 */
export function unmapped(address: string): string {
  return address.startsWith('::ffff:') && net.isIPv4(address.slice(7)) ? address.slice(7) : address;
}
