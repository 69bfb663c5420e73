// The typed loader of wfp_redirect.node: what the binding exports, exactly.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import bindings from 'bindings';
import { WfpRedirectError } from './errors';

export interface NativeBinding {
  /** The OS socket whose local and peer endpoints are these; throws ERR_WFP_SOCKET_NOT_FOUND. */
  getSocketHandle(localAddress: string, localPort: number, remoteAddress: string, remotePort: number): number;
  queryRedirectRecords(osSocket: number): Buffer;
  queryRedirectContext(osSocket: number): Buffer;
  setRedirectRecords(osSocket: number, records: Uint8Array): void;
  /** Throws what setRedirectRecords would for these records (type and size), without a socket. */
  checkRecords(records: Uint8Array): void;
  /** An unconnected TCP socket (overlapped on Windows), for connectRedirected. */
  createTcpSocket(family: 4 | 6): number;
  /** Closes a socket createTcpSocket made that libuv never adopted. */
  closeSocket(osSocket: number): void;
  /** Netfilter's destination before NAT (Linux); null where it keeps no record. */
  originalDestination(osSocket: number): { address: string; port: number } | null;
  /** Whether this build reads netfilter (Linux builds). */
  readonly hasNetfilter: boolean;
  /** Whether this build has the IOCTLs (Windows builds). */
  readonly hasRedirectIoctls: boolean;
  setErrorClass(errorClass: typeof WfpRedirectError): void;
  readonly SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS: number;
  readonly SIO_QUERY_WFP_CONNECTION_REDIRECT_CONTEXT: number;
  readonly SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS: number;
  readonly MAX_BLOB_SIZE: number;
  /** Which build produced the binary: 'node-gyp', 'cmake-js' or 'mingw'. */
  readonly build: string;
}

const packageRoot = join(__dirname, '..');

const FIX =
  'Run `npm rebuild wfp-redirect` (node-gyp needs Python and a C++ compiler), ' +
  'or set WFP_REDIRECT_ADDON to a wfp_redirect.node built for this platform.';

/** What the addon must fit: the platform, the architecture and this runtime's Node-API version. */
function target(): string {
  return `${process.platform}-${process.arch} (Node-API ${process.versions.napi ?? 'unknown'})`;
}

function addonError(code: 'ERR_WFP_ADDON_NOT_FOUND' | 'ERR_WFP_ADDON_LOAD_FAILED', message: string, cause?: unknown): Error {
  return Object.assign(new Error(`wfp-redirect: ${message}. ${FIX}`, cause === undefined ? undefined : { cause }), { code });
}

/** Loads an addon file that exists; the OS's refusal becomes ERR_WFP_ADDON_LOAD_FAILED with its reason. */
function open(file: string): NativeBinding {
  try {
    return require(file) as NativeBinding;
  } catch (cause) {
    const reason = cause instanceof Error ? cause.message.split('\n')[0] : String(cause);
    throw addonError('ERR_WFP_ADDON_LOAD_FAILED', `the native addon ${file} did not load for ${target()}: ${reason}`, cause);
  }
}

/**
 * The addon is looked for in WFP_REDIRECT_ADDON (a path, for testing another
 * build), then in the prebuilt folder shipped for this platform, then in
 * node-gyp's build folder.
 */
function load(): NativeBinding {
  const override = process.env.WFP_REDIRECT_ADDON;
  if (override) {
    const file = resolve(override);
    if (!existsSync(file)) throw addonError('ERR_WFP_ADDON_NOT_FOUND', `WFP_REDIRECT_ADDON names ${file}, which does not exist`);
    return open(file);
  }
  const prebuilt = join(packageRoot, 'prebuilds', `${process.platform}-${process.arch}`, 'wfp_redirect.node');
  if (existsSync(prebuilt)) return open(prebuilt);
  let found: string | undefined;
  try {
    found = (bindings({ bindings: 'wfp_redirect.node', module_root: packageRoot, path: true } as never) as unknown as string);
  } catch (cause) {
    const tried = [prebuilt, ...(((cause as { tries?: string[] }).tries) ?? [])];
    throw addonError('ERR_WFP_ADDON_NOT_FOUND', `no native addon for ${target()}; looked for ${tried.join(', ')}`, cause);
  }
  return open(found);
}

export const binding: NativeBinding = load();
binding.setErrorClass(WfpRedirectError);
