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
export type ControlForm = 'well-formed' | 'other-ip-level' | 'truncated-header' | 'length-past-buffer' | 'wrong-level';

/** IP_WFP_REDIRECT_RECORDS / IPV6_WFP_REDIRECT_RECORDS (ws2ipdef.h): the same number at both levels. */
export const REDIRECT_RECORDS_OPTION = 60;
/** IP_WFP_REDIRECT_CONTEXT / IPV6_WFP_REDIRECT_CONTEXT. */
export const REDIRECT_CONTEXT_OPTION = 70;
export const IPPROTO_IP = 0;
export const IPPROTO_IPV6 = 41;

/** A redirect option an open socket of the production addon turned on. */
export interface SocketOption {
  socket: number;
  level: number;
  name: number;
}

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
  /** A redirected connection whose callout stored no context: the context query fails with FWP_E_NOT_FOUND (0x80320008). */
  redirectWithoutContext(peerAddress: string, peerPort: number, records: Uint8Array): void;
  /** Every connection redirected with these (the relay benchmark): no lookup by peer; set calls counted, not kept. */
  redirectEvery(records: Uint8Array, context: Uint8Array): void;
  /** How a query with a buffer too small for the blob is answered. */
  tooSmall(mode: TooSmall): void;
  /** Forgets redirects, set calls and counts. */
  reset(): void;
  /** Every SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS since the last reset, in order. */
  sets(): SetRecordsCall[];
  calls(): {
    queryRecords: number;
    queryContext: number;
    setRecords: number;
    shortBuffer: number;
    receiveMsg: number;
    sendMsg: number;
    udpDelivered: number;
    /** Flows whose first datagram reached a socket that asked for neither control message: nothing was added. */
    udpWithheld: number;
  };
  /** The redirect options each open socket turned on (setsockopt, forgotten at closesocket). */
  socketOptions(): SocketOption[];
  /**
   * A redirected UDP flow, named by its sender: its next datagram carries the
   * records and context (laid out as `form`), once, each only if the socket
   * asked for it (setsockopt) at the level it is delivered at.
   */
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
