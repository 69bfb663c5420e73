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

/**
 * The addon is looked for in WFP_REDIRECT_ADDON (a path, for testing another
 * build), then in the prebuilt folder shipped for this platform, then in
 * node-gyp's build folder.
 */
function load(): NativeBinding {
  const override = process.env.WFP_REDIRECT_ADDON;
  if (override) {
    const file = resolve(override);
    if (!existsSync(file)) {
      throw Object.assign(new Error(`WFP_REDIRECT_ADDON names ${file}, which does not exist`), {
        code: 'ERR_WFP_ADDON_NOT_FOUND',
      });
    }
    return require(file) as NativeBinding;
  }
  const prebuilt = join(packageRoot, 'prebuilds', `${process.platform}-${process.arch}`, 'wfp_redirect.node');
  if (existsSync(prebuilt)) return require(prebuilt) as NativeBinding;
  try {
    return bindings({ bindings: 'wfp_redirect.node', module_root: packageRoot }) as NativeBinding;
  } catch (cause) {
    throw Object.assign(
      new Error(
        `wfp-redirect: no native addon for ${process.platform}-${process.arch}. ` +
          'Run `npm rebuild wfp-redirect` (node-gyp needs Python and a C++ compiler), ' +
          'or install a package that ships prebuilds for this platform.',
        { cause },
      ),
      { code: 'ERR_WFP_ADDON_NOT_FOUND' },
    );
  }
}

export const binding: NativeBinding = load();
binding.setErrorClass(WfpRedirectError);
