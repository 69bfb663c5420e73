// The test-only addons (test/native/): the production buffer protocol and error
// mapping driven by a scripted Winsock provider, and the socket probe, which
// runs the production lookup with the diagnostics the production addon does
// not export.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { WfpRedirectError } from '..';

export interface Step {
  rc?: number;
  error?: number;
  bytesReturned?: number;
  data?: Uint8Array;
}

export interface Call {
  code: number;
  in: Buffer | null;
  outNull: boolean;
  outSize: number;
}

export interface Report {
  buffer?: Buffer;
  error?: Error & { code?: string; errno?: number; syscall?: string; ioctl?: string };
  calls: Call[];
  exhausted: boolean;
}

export interface SocketProbe {
  /** The addresses the OS reports for an OS socket; ERR_WFP_SOCKET_NOT_FOUND when it has none. */
  describeSocket(osSocket: number): {
    localAddress: string;
    localPort: number;
    localScope: number;
    remoteAddress: string;
    remotePort: number;
    remoteScope: number;
  };
  /** getsockname alone: port 0 for a socket not bound; ERR_WFP_SOCKET_NOT_FOUND when closed. */
  describeLocal(osSocket: number): { address: string; port: number };
  /** The production lookup on this thread's loop, and how far it went. */
  findTcpSocket(
    localAddress: string,
    localPort: number,
    remoteAddress: string,
    remotePort: number,
  ): { socket: number | null; handlesVisited: number; socketsChecked: number; usedFullWalk: boolean };
}

interface ConformanceAddon extends SocketProbe {
  query(ioctl: number, script: Step[]): Report;
  set(records: Uint8Array, script: Step[]): Report;
  setErrorClass(errorClass: typeof WfpRedirectError): void;
  readonly INITIAL_BLOB_SIZE: number;
  readonly MAX_BLOB_SIZE: number;
  readonly MAX_QUERY_ATTEMPTS: number;
  readonly SCRIPT_EXHAUSTED: number;
}

const root = join(__dirname, '..');

function loadTestAddon<T extends { setErrorClass(errorClass: typeof WfpRedirectError): void }>(name: string): T {
  const file =
    process.platform === 'win32'
      ? join(root, 'test', 'native', 'build-win32', `${name}.node`)
      : join(root, 'test', 'native', 'build', 'Release', `${name}.node`);
  if (!existsSync(file)) {
    throw new Error(`the test addon ${file} is not built: run \`npm run build:conformance\` (or \`npm run build:win32\`)`);
  }
  const addon = require(file) as T;
  addon.setErrorClass(WfpRedirectError);
  return addon;
}

export const conformance = loadTestAddon<ConformanceAddon>('wfp_conformance');

/** The socket probe over the production lookup. */
export const probe: SocketProbe = conformance;

/** The same probe over a lookup built to misread libuv's handle queue (WFP_REDIRECT_TEST_MISREAD_QUEUE). */
export function misreadingProbe(): SocketProbe {
  return loadTestAddon<SocketProbe & { setErrorClass(errorClass: typeof WfpRedirectError): void }>('wfp_lookup_fallback');
}

/** `n` bytes of a recognisable pattern. */
export function blob(n: number, seed = 1): Buffer {
  const bytes = Buffer.alloc(n);
  for (let i = 0; i < n; i++) bytes[i] = (i * 31 + seed * 7) & 0xff;
  return bytes;
}
