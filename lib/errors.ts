import { inspect } from 'node:util';
import type { IoctlName } from './constants';

/** Symbolic names of the Windows error codes the IOCTLs are documented or seen to return. */
export const WSA_ERROR_CODES = [
  'ERROR_INSUFFICIENT_BUFFER', 'WSA_OPERATION_ABORTED', 'WSA_IO_PENDING', 'WSAEINTR', 'WSAEBADF', 'WSAEACCES', 'WSAEFAULT', 'WSAEINVAL',
  'WSAEMFILE', 'WSAEWOULDBLOCK', 'WSAEINPROGRESS', 'WSAENOTSOCK', 'WSAENOPROTOOPT', 'WSAEOPNOTSUPP', 'WSAENETDOWN', 'WSAENOBUFS',
  'WSAENOTCONN', 'WSANOTINITIALISED',
] as const;
export type WsaErrorCode = (typeof WSA_ERROR_CODES)[number];

/**
 * Names of the WFP HRESULTs (winerror.h's FWP_E_*) that WSAGetLastError() is
 * seen to carry after a WFP redirect IOCTL; `errno` holds the HRESULT as an
 * unsigned number (FWP_E_NOT_FOUND: 0x80320008).
 */
export const WFP_HRESULT_CODES = [
  /** The context query: the connection was redirected, but its callout stored no redirect context. */
  'FWP_E_NOT_FOUND',
] as const;
export type WfpHresultCode = (typeof WFP_HRESULT_CODES)[number];

/**
 * libuv's names for OS errors (uv.h's UV_ERRNO_MAP), which the addon gives an
 * OS error on a socket (`socket`, `bind`, `sendmsg`, `uv_tcp_open`, ...) on
 * every platform; test/errors.test.ts checks the list against uv.h.
 */
export const SYSTEM_ERROR_CODES = [
  'E2BIG', 'EACCES', 'EADDRINUSE', 'EADDRNOTAVAIL', 'EAFNOSUPPORT', 'EAGAIN', 'EAI_ADDRFAMILY', 'EAI_AGAIN', 'EAI_BADFLAGS',
  'EAI_BADHINTS', 'EAI_CANCELED', 'EAI_FAIL', 'EAI_FAMILY', 'EAI_MEMORY', 'EAI_NODATA', 'EAI_NONAME', 'EAI_OVERFLOW', 'EAI_PROTOCOL',
  'EAI_SERVICE', 'EAI_SOCKTYPE', 'EALREADY', 'EBADF', 'EBUSY', 'ECANCELED', 'ECHARSET', 'ECONNABORTED', 'ECONNREFUSED', 'ECONNRESET',
  'EDESTADDRREQ', 'EEXIST', 'EFAULT', 'EFBIG', 'EHOSTUNREACH', 'EINTR', 'EINVAL', 'EIO', 'EISCONN', 'EISDIR', 'ELOOP', 'EMFILE',
  'EMSGSIZE', 'ENAMETOOLONG', 'ENETDOWN', 'ENETUNREACH', 'ENFILE', 'ENOBUFS', 'ENODEV', 'ENOENT', 'ENOMEM', 'ENONET', 'ENOPROTOOPT',
  'ENOSPC', 'ENOSYS', 'ENOTCONN', 'ENOTDIR', 'ENOTEMPTY', 'ENOTSOCK', 'ENOTSUP', 'EOVERFLOW', 'EPERM', 'EPIPE', 'EPROTO',
  'EPROTONOSUPPORT', 'EPROTOTYPE', 'ERANGE', 'EROFS', 'ESHUTDOWN', 'ESPIPE', 'ESRCH', 'ETIMEDOUT', 'ETXTBSY', 'EXDEV', 'UNKNOWN', 'EOF',
  'ENXIO', 'EMLINK', 'EHOSTDOWN', 'EREMOTEIO', 'ENOTTY', 'EFTYPE', 'EILSEQ', 'ESOCKTNOSUPPORT', 'ENODATA', 'EUNATCH', 'ENOEXEC',
] as const;
export type SystemErrorCode = (typeof SYSTEM_ERROR_CODES)[number];

/** This package's own codes. */
export const WFP_ERROR_CODES = [
  /** A Windows error outside WSA_ERROR_CODES, or an OS error outside SYSTEM_ERROR_CODES; `errno` has its number. */
  'ERR_WFP_SYSTEM_ERROR',
  /** No WFP redirect IOCTLs here (not Windows 8 / Server 2012 or later), or the platform lacks what was asked (SO_MARK, TPROXY). */
  'ERR_WFP_UNSUPPORTED_PLATFORM',
  /** The redirect data is larger than `MAX_BLOB_SIZE`. */
  'ERR_WFP_BLOB_TOO_LARGE',
  /** The provider reported a different size on every retry. */
  'ERR_WFP_BLOB_UNSTABLE',
  /** The provider claimed to return more bytes than the buffer holds. */
  'ERR_WFP_BAD_BYTES_RETURNED',
  'ERR_WFP_OUT_OF_MEMORY',
  /** The `net.Socket` was destroyed. */
  'ERR_WFP_SOCKET_CLOSED',
  /** The `net.Socket` is not connected (yet, or any more). */
  'ERR_WFP_SOCKET_NOT_CONNECTED',
  /** The `net.Socket` is not TCP (a pipe or IPC socket). */
  'ERR_WFP_NOT_TCP_SOCKET',
  /** No open TCP socket of this thread has the `net.Socket`'s addresses. */
  'ERR_WFP_SOCKET_NOT_FOUND',
  /** A Node internal that connectRedirected relies on is missing or changed. */
  'ERR_WFP_NODE_INTERNALS',
  /** The original destination could not be learnt: the connection was not redirected. */
  'ERR_NOT_REDIRECTED',
  /** The connection was redirected, but its callout stored no redirect context (FWP_E_NOT_FOUND, the `cause`). */
  'ERR_REDIRECTED_WITHOUT_CONTEXT',
  /** The redirect context is not in the layout it was decoded as; the message names the layout and why. */
  'ERR_WFP_BAD_CONTEXT',
  /** A UDP socket used after `close()` (as Node's dgram names it). */
  'ERR_SOCKET_DGRAM_NOT_RUNNING',
  /** `bind()` on a UDP socket that is already bound. */
  'ERR_SOCKET_ALREADY_BOUND',
  /** `address()` on a UDP socket that is not bound. */
  'ERR_SOCKET_DGRAM_NOT_BOUND',
  /** libuv refused to watch a UDP socket. */
  'ERR_WFP_UDP_POLL',
  /** Watching a UDP socket kept failing: it was closed. */
  'ERR_WFP_UDP_POLL_CLOSED',
  /** A UDP send found the socket's buffer full and its queue at its limit. */
  'ERR_WFP_UDP_SEND_QUEUE_FULL',
  /** The addon met a state it never should; a bug to report. */
  'ERR_WFP_INTERNAL',
] as const;

/** Every `code` a `WfpRedirectError` can carry: switch on it. */
export type WfpRedirectErrorCode = WsaErrorCode | WfpHresultCode | SystemErrorCode | (typeof WFP_ERROR_CODES)[number];

const KNOWN_CODES: ReadonlySet<string> = new Set([...WSA_ERROR_CODES, ...WFP_HRESULT_CODES, ...SYSTEM_ERROR_CODES, ...WFP_ERROR_CODES]);

/** The fields the native addon and this package fill in. */
export interface WfpRedirectErrorFields {
  code: WfpRedirectErrorCode;
  errno?: number | undefined;
  syscall?: string | undefined;
  ioctl?: IoctlName | undefined;
  /** The error this one stands for, where there is one (as `Error#cause`; left out when undefined). */
  cause?: unknown;
}

/**
 * Every failure of an operation of this package (argument mistakes aside, which
 * are `TypeError` / `RangeError`). Switch on `code`; `errno` is the OS's own
 * error number, always positive (WSA/Win32 on Windows, errno on POSIX), where
 * the OS gave one; `syscall` names the OS call that failed, and is absent when
 * none was made; `ioctl` names the control code involved.
 */
export class WfpRedirectError extends Error {
  readonly code: WfpRedirectErrorCode;
  // Declared, not defined: a field the failure has no value for stays absent.
  declare readonly errno?: number;
  declare readonly syscall?: string;
  declare readonly ioctl?: IoctlName;

  constructor(message: string, fields: WfpRedirectErrorFields) {
    super(message, fields.cause === undefined ? undefined : { cause: fields.cause });
    // A code outside the published union (an OS error libuv has no name for) is still a system error: `errno` tells which.
    this.code = KNOWN_CODES.has(fields.code) ? fields.code : 'ERR_WFP_SYSTEM_ERROR';
    if (fields.errno !== undefined) this.errno = fields.errno;
    if (fields.syscall !== undefined) this.syscall = fields.syscall;
    if (fields.ioctl !== undefined) this.ioctl = fields.ioctl;
  }
}
Object.defineProperty(WfpRedirectError.prototype, 'name', {
  value: 'WfpRedirectError',
  configurable: true,
  writable: true,
});

function describeReceived(value: unknown): string {
  if (value === null || value === undefined) return `Received ${value}`;
  if (typeof value === 'function') return `Received function ${value.name || '<anonymous>'}`;
  if (typeof value === 'object') {
    const name = value.constructor?.name;
    return name ? `Received an instance of ${name}` : `Received ${inspect(value, { depth: -1 })}`;
  }
  return `Received type ${typeof value} (${inspect(value).slice(0, 28)})`;
}

/** `ERR_NOT_REDIRECTED`: nobody redirected the connection; `cause` is the OS's own answer, if any. */
export function notRedirected(detail: string, cause?: unknown): WfpRedirectError {
  const message = `The connection was not redirected: ${detail}`;
  return new WfpRedirectError(message, { code: 'ERR_NOT_REDIRECTED', cause });
}

/**
 * `ERR_REDIRECTED_WITHOUT_CONTEXT`: a callout redirected the connection but
 * stored no context, so where it was going is unknown here; `cause` is the
 * context query's own failure (FWP_E_NOT_FOUND).
 */
export function redirectedWithoutContext(cause: unknown): WfpRedirectError {
  const message =
    'The connection was redirected, but its callout driver stored no redirect context (SIO_QUERY_WFP_CONNECTION_REDIRECT_CONTEXT ' +
    'answered FWP_E_NOT_FOUND), so its original destination is unknown here: refuse it, or send it to a configured fallback destination';
  return new WfpRedirectError(message, { code: 'ERR_REDIRECTED_WITHOUT_CONTEXT', cause });
}

/** A `TypeError` with code `ERR_INVALID_ARG_TYPE`, worded like Node's own. */
export function invalidArgType(name: string, expected: string, actual: unknown): TypeError {
  const error = new TypeError(`The "${name}" argument must be ${expected}. ${describeReceived(actual)}`);
  return Object.assign(error, { code: 'ERR_INVALID_ARG_TYPE' as const });
}

/** A `RangeError` with the given code. */
export function outOfRange(code: string, message: string): RangeError {
  return Object.assign(new RangeError(message), { code });
}
