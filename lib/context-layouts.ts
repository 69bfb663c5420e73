// The WFP redirect context has no standard layout: each callout driver stores
// what it likes. These are the layouts of the redirectors people run, by name:
//
//   sockaddr[@OFFSET]  a SOCKADDR_IN / SOCKADDR_IN6 / SOCKADDR_STORAGE at OFFSET (default 0)
//   wfpsampler         Microsoft's WFPSampler: two SOCKADDR_STORAGE (128 bytes
//                      each), the original remote endpoint then the original local one
//   wfpr               the layout this project recommends to driver authors
//                      (docs/redirectors.md): versioned, little-endian, 40 bytes
//
// Every decoder reads only inside the bytes it is given and answers a whole
// destination or throws ERR_WFP_BAD_CONTEXT naming the layout and the reason.
import net from 'node:net';
import { invalidArgType, WfpRedirectError } from './errors';
import { decodeSockaddr, encodeSockaddr, SOCKADDR_STORAGE_SIZE, type SocketAddressInfo } from './sockaddr';

/** A layout's name as the API and the CLI's `--context` take it. */
export type ContextLayout = 'sockaddr' | `sockaddr@${number}` | 'wfpsampler' | 'wfpr';

export const CONTEXT_LAYOUT_NAMES = ['sockaddr', 'sockaddr@OFFSET', 'wfpsampler', 'wfpr'] as const;

/** An endpoint as a context names it. */
export interface ContextEndpoint {
  family: 'IPv4' | 'IPv6';
  /** A link-local IPv6 address carries its interface, as Node spells it (Windows: `fe80::1%12`). */
  address: string;
  port: number;
}

/** What a context says: the original destination, and what else its layout carries. */
export interface DecodedContext extends ContextEndpoint {
  /** `wfpsampler`: the connecting application's own endpoint, as the callout saw it before redirecting. */
  originalSource?: ContextEndpoint | undefined;
  /** `wfpr` with its process-id flag: the process that opened the connection. */
  processId?: number | undefined;
}

/** The `wfpr` layout's constants (docs/redirectors.md has the C struct). */
export const WFPR_MAGIC = 'WFPR';
export const WFPR_VERSION = 1;
/** Bytes of a version-1 context: a later writer may append fields, announced by flags, within its length. */
export const WFPR_V1_SIZE = 40;
/** Flag: the process id field holds the connecting process's id. */
export const WFPR_FLAG_PROCESS_ID = 0x1;
const WFPR_FAMILY_IPV4 = 4;
const WFPR_FAMILY_IPV6 = 6;

const WFPSAMPLER_SIZE = 2 * SOCKADDR_STORAGE_SIZE;

function badContext(layout: string, reason: string, cause?: unknown): WfpRedirectError {
  const message = `The WFP redirect context is not a ${layout} context: ${reason}. Check which layout the callout driver writes (docs/redirectors.md)`;
  return new WfpRedirectError(message, { code: 'ERR_WFP_BAD_CONTEXT', cause });
}

/** A link-local destination is reachable only through its interface; Node on Windows names it by index (fe80::1%12). */
function endpointOf({ family, address, port, scopeId }: SocketAddressInfo): ContextEndpoint {
  const linkLocal = family === 'IPv6' && scopeId !== undefined && scopeId !== 0 && /^fe[89ab]/i.test(address);
  return { family, address: linkLocal ? `${address}%${scopeId}` : address, port };
}

/** decodeSockaddr, its RangeError turned into this layout's ERR_WFP_BAD_CONTEXT. */
function sockaddrAt(context: Uint8Array, offset: number, layout: string, what: string): SocketAddressInfo {
  try {
    return decodeSockaddr(context, offset);
  } catch (error) {
    throw badContext(layout, `${what} at byte ${offset}: ${(error as Error).message}`, error);
  }
}

function decodeWfpSampler(context: Uint8Array): DecodedContext {
  if (context.byteLength < WFPSAMPLER_SIZE) {
    throw badContext('wfpsampler', `${context.byteLength} bytes, too few for two SOCKADDR_STORAGE (${WFPSAMPLER_SIZE} bytes)`);
  }
  const destination = endpointOf(sockaddrAt(context, 0, 'wfpsampler', 'the original remote endpoint'));
  // A callout that left the local endpoint unset (family AF_UNSPEC) says nothing about it; that is not malformed.
  const localFamily = context[SOCKADDR_STORAGE_SIZE] | (context[SOCKADDR_STORAGE_SIZE + 1] << 8);
  if (localFamily === 0) return destination;
  const source = endpointOf(sockaddrAt(context, SOCKADDR_STORAGE_SIZE, 'wfpsampler', 'the original local endpoint'));
  return { ...destination, originalSource: source };
}

function wfprAddress(family: number, bytes: Uint8Array): string {
  if (family === WFPR_FAMILY_IPV4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  // decodeSockaddr formats IPv6 text (RFC 5952); a SOCKADDR_IN6 around the 16 bytes reuses it.
  const sockaddr = encodeSockaddr({ address: '::', port: 0 });
  sockaddr.set(bytes.subarray(0, 16), 8);
  return decodeSockaddr(sockaddr).address;
}

function decodeWfpr(context: Uint8Array): DecodedContext {
  if (context.byteLength < 8) throw badContext('wfpr', `${context.byteLength} bytes, too few for its 8-byte header`);
  const view = new DataView(context.buffer, context.byteOffset, context.byteLength);
  const magic = String.fromCharCode(context[0], context[1], context[2], context[3]);
  if (magic !== WFPR_MAGIC) throw badContext('wfpr', `its first 4 bytes are not "${WFPR_MAGIC}" (bad magic)`);
  const version = view.getUint16(4, true);
  if (version !== WFPR_VERSION) throw badContext('wfpr', `version ${version}; this package reads version ${WFPR_VERSION} (bad version)`);
  const length = view.getUint16(6, true);
  if (length < WFPR_V1_SIZE) throw badContext('wfpr', `its length field says ${length} bytes, less than version 1's ${WFPR_V1_SIZE}`);
  if (length > context.byteLength) throw badContext('wfpr', `its length field says ${length} bytes, the context has ${context.byteLength} (truncated)`);
  const flags = view.getUint32(8, true);
  const family = view.getUint16(12, true);
  if (family !== WFPR_FAMILY_IPV4 && family !== WFPR_FAMILY_IPV6) {
    throw badContext('wfpr', `address family ${family} is neither 4 (IPv4) nor 6 (IPv6) (bad family)`);
  }
  const address = wfprAddress(family, context.subarray(16, 32));
  const scopeId = family === WFPR_FAMILY_IPV6 ? view.getUint32(32, true) : undefined;
  const destination = endpointOf({ family: family === WFPR_FAMILY_IPV4 ? 'IPv4' : 'IPv6', address, port: view.getUint16(14, true), scopeId });
  // Unknown flags announce fields past version 1's, which this reader skips.
  if ((flags & WFPR_FLAG_PROCESS_ID) === 0) return destination;
  return { ...destination, processId: view.getUint32(36, true) };
}

const SOCKADDR_LAYOUT = /^sockaddr(?:@(\d{1,5}))?$/;

/**
 * The layout `text` names ('sockaddr', 'sockaddr@8', 'wfpsampler', 'wfpr'),
 * checked: what the CLI's `--context` takes. A `TypeError` with code
 * `ERR_INVALID_ARG_VALUE` lists the accepted forms otherwise.
 */
export function parseContextLayout(text: unknown): ContextLayout {
  if (typeof text !== 'string') throw invalidArgType('layout', 'a string', text);
  if (text === 'wfpsampler' || text === 'wfpr') return text;
  const match = SOCKADDR_LAYOUT.exec(text);
  const offset = match?.[1] === undefined ? 0 : Number(match[1]);
  if (!match || offset > 65535) {
    const error = new TypeError(`The context layout must be one of ${CONTEXT_LAYOUT_NAMES.join(', ')} (OFFSET 0 to 65535). Received "${text}"`);
    throw Object.assign(error, { code: 'ERR_INVALID_ARG_VALUE' as const });
  }
  return match[1] === undefined ? 'sockaddr' : `sockaddr@${offset}`;
}

/**
 * Decodes a WFP redirect context written in `layout`. Malformed bytes throw a
 * `WfpRedirectError` with code `ERR_WFP_BAD_CONTEXT` that names the layout and
 * why (too short, bad magic, bad version, bad family); nothing outside
 * `context` is read.
 */
export function decodeContext(context: Uint8Array, layout: ContextLayout): DecodedContext {
  if (!(context instanceof Uint8Array)) throw invalidArgType('context', 'a Uint8Array', context);
  const checked = parseContextLayout(layout);
  if (checked === 'wfpsampler') return decodeWfpSampler(context);
  if (checked === 'wfpr') return decodeWfpr(context);
  const offset = checked === 'sockaddr' ? 0 : Number(checked.slice('sockaddr@'.length));
  return endpointOf(sockaddrAt(context, offset, checked, 'the SOCKADDR'));
}

/** An endpoint to encode: an IP address (IPv6 with its scope id, if any) and a port. */
export interface EndpointInput {
  address: string;
  port: number;
  scopeId?: number | undefined;
}

/** A context as WFPSampler's callout writes it: the remote endpoint then the local one, each a SOCKADDR_STORAGE. */
export function encodeWfpSamplerContext(remote: EndpointInput, local: EndpointInput): Buffer {
  return Buffer.concat([encodeSockaddr(remote, 'storage'), encodeSockaddr(local, 'storage')]);
}

/** A version-1 `wfpr` context (40 bytes): what a driver following docs/redirectors.md writes. */
export function encodeWfprContext(destination: EndpointInput & { processId?: number | undefined }): Buffer {
  const sockaddr = encodeSockaddr(destination); // checks the address and the port
  const ipv4 = net.isIPv4(destination.address);
  const out = Buffer.alloc(WFPR_V1_SIZE);
  out.write(WFPR_MAGIC, 0, 'latin1');
  out.writeUInt16LE(WFPR_VERSION, 4);
  out.writeUInt16LE(WFPR_V1_SIZE, 6);
  out.writeUInt32LE(destination.processId === undefined ? 0 : WFPR_FLAG_PROCESS_ID, 8);
  out.writeUInt16LE(ipv4 ? WFPR_FAMILY_IPV4 : WFPR_FAMILY_IPV6, 12);
  out.writeUInt16LE(destination.port, 14);
  out.set(ipv4 ? sockaddr.subarray(4, 8) : sockaddr.subarray(8, 24), 16);
  if (!ipv4) out.writeUInt32LE((destination.scopeId ?? 0) >>> 0, 32);
  if (destination.processId !== undefined) out.writeUInt32LE(destination.processId >>> 0, 36);
  return out;
}
