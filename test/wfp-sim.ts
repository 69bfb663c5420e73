// The simulated WFP redirect service (test/native/wfp_sim.cc), put under the
// unmodified production wfp_redirect.node in Windows node.exe: it answers the
// three WFP IOCTLs through that module's import of WS2_32!WSAIoctl, and UDP's
// redirect control messages through its WSARecvMsg and WSASendMsg.
import { join } from 'node:path';
import { binding } from '../dist/native';

export type TooSmall = 'ERROR_INSUFFICIENT_BUFFER' | 'WSAEINVAL' | 'WSAEFAULT';
export const TOO_SMALL: readonly TooSmall[] = ['ERROR_INSUFFICIENT_BUFFER', 'WSAEINVAL', 'WSAEFAULT'];

export interface SetRecordsCall {
  socket: number;
  records: Buffer;
  /** Whether getpeername succeeded on the socket when the records were set. */
  connectedAtSet: boolean;
  /** The socket's endpoints as the OS reports them when sets() is called (absent once it is closed). */
  localAddress?: string;
  localPort?: number;
  remoteAddress?: string;
  remotePort?: number;
}

/** How the control data of a redirected UDP flow's first datagram is laid out. */
export type ControlForm = 'well-formed' | 'truncated-header' | 'length-past-buffer' | 'wrong-level';

export interface UdpSendCall {
  socket: number;
  /** The sending socket's local port (getsockname at the send). */
  localPort: number;
  address: string;
  port: number;
  size: number;
  /** The IP_WFP_REDIRECT_RECORDS control message the datagram carried; null when none. */
  records: Buffer | null;
}

export interface WfpSim {
  /** A redirected connection, named by the client's end: what getpeername reports for its accepted socket. */
  redirect(peerAddress: string, peerPort: number, records: Uint8Array, context: Uint8Array): void;
  /** Every connection redirected with these (the relay benchmark): no lookup by peer; set calls counted, not kept. */
  redirectEvery(records: Uint8Array, context: Uint8Array): void;
  /** How a query with a buffer too small for the blob is answered. */
  tooSmall(mode: TooSmall): void;
  /** Forgets redirects, set calls and counts. */
  reset(): void;
  /** Every SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS since the last reset, in order. */
  sets(): SetRecordsCall[];
  calls(): { queryRecords: number; queryContext: number; setRecords: number; shortBuffer: number; receiveMsg: number; sendMsg: number; udpDelivered: number };
  /** A redirected UDP flow, named by its sender: its next datagram carries the records and context (laid out as `form`), once. */
  udpRedirect(peerAddress: string, peerPort: number, records: Uint8Array, context: Uint8Array, form: ControlForm): void;
  /** Every WSASendMsg of the production addon since the last reset, in order. */
  udpSends(): UdpSendCall[];
}

interface SimAddon extends WfpSim {
  install(moduleName: string): void;
  uninstall(): void;
}

let installed: SimAddon | undefined;

/** The simulation, installed under this process's wfp_redirect.node (if it is not yet). Windows only. */
export function wfpSim(): WfpSim {
  if (installed) return installed;
  if (process.platform !== 'win32') throw new Error('the simulated WFP service runs in Windows node.exe only');
  if (binding.build !== 'mingw' && binding.build !== 'node-gyp') throw new Error(`unexpected addon build ${binding.build}`);
  const sim = require(join(__dirname, '..', 'test', 'native', 'build-win32', 'wfp_sim.node')) as SimAddon;
  sim.install('wfp_redirect.node');
  installed = sim;
  return sim;
}

/** Puts the real WSAIoctl back, so that the tests after these see Winsock's own answers. */
export function removeWfpSim(): void {
  installed?.reset();
  installed?.uninstall();
  installed = undefined;
}
