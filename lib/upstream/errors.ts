// The errors of connections through an upstream proxy. A class of their own,
// not WfpRedirectError: these codes name a proxy protocol's answers, and a
// program routing through an upstream switches on them apart from the OS's.

export const UPSTREAM_ERROR_CODES = [
  /** The upstream's URL (or object) is not one this package can use; the message names what is wrong. */
  'ERR_UPSTREAM_URL_INVALID',
  /** The environment variable named for the password is not set. */
  'ERR_UPSTREAM_PASSWORD_ENV',
  /** The destination's host or port cannot be sent to an upstream. */
  'ERR_UPSTREAM_DESTINATION_INVALID',
  /** socks5:// resolves the destination here, and that lookup failed (`cause`). */
  'ERR_UPSTREAM_DESTINATION_LOOKUP',
  /** The connection to the upstream itself failed (`cause` has the OS's error). */
  'ERR_UPSTREAM_CONNECT',
  /** Connect and handshake took longer than `handshakeTimeout`. */
  'ERR_UPSTREAM_TIMEOUT',
  /** The upstream closed the connection before its answer was complete. */
  'ERR_UPSTREAM_CLOSED',
  // SOCKS5 replies (RFC 1928 section 6), X'01' to X'08'.
  'ERR_SOCKS_GENERAL_FAILURE',
  'ERR_SOCKS_NOT_ALLOWED',
  'ERR_SOCKS_NETWORK_UNREACHABLE',
  'ERR_SOCKS_HOST_UNREACHABLE',
  'ERR_SOCKS_CONNECTION_REFUSED',
  'ERR_SOCKS_TTL_EXPIRED',
  'ERR_SOCKS_COMMAND_NOT_SUPPORTED',
  'ERR_SOCKS_ADDRESS_TYPE_NOT_SUPPORTED',
  /** A reply code RFC 1928 leaves unassigned (X'09' to X'FF'); `reply` has it. */
  'ERR_SOCKS_UNASSIGNED_REPLY',
  /** RFC 1929: the upstream refused the user name and password. */
  'ERR_SOCKS_AUTH_FAILED',
  /** The upstream accepts none of the offered methods (X'FF'): give credentials, or other ones. */
  'ERR_SOCKS_NO_ACCEPTABLE_METHODS',
  /** The upstream's answer breaks RFC 1928 / 1929 (version, method, address type). */
  'ERR_SOCKS_MALFORMED_REPLY',
  /** HTTP 407 (or 401, as tinyproxy answers a wrong password) to CONNECT; `status` has it. */
  'ERR_HTTP_PROXY_AUTH_REQUIRED',
  /** Any other non-2xx answer to CONNECT; `status` has it. */
  'ERR_HTTP_PROXY_STATUS',
  /** The answer to CONNECT is not an HTTP/1.x response. */
  'ERR_HTTP_PROXY_MALFORMED_RESPONSE',
  /** The answer's header is longer than `maxHeaderSize`. */
  'ERR_HTTP_PROXY_HEADERS_TOO_LARGE',
  /** A UDP association used after it closed. */
  'ERR_SOCKS_UDP_CLOSED',
] as const;

export type UpstreamErrorCode = (typeof UPSTREAM_ERROR_CODES)[number];

export interface UpstreamErrorFields {
  code: UpstreamErrorCode;
  /** The SOCKS reply code, for the ERR_SOCKS_* reply errors. */
  reply?: number | undefined;
  /** The HTTP status, for ERR_HTTP_PROXY_*. */
  status?: number | undefined;
  cause?: unknown;
}

/** Every failure to open a connection or association through an upstream proxy. Switch on `code`. */
export class UpstreamError extends Error {
  readonly code: UpstreamErrorCode;
  declare readonly reply?: number;
  declare readonly status?: number;

  constructor(message: string, fields: UpstreamErrorFields) {
    super(message, fields.cause === undefined ? undefined : { cause: fields.cause });
    this.code = fields.code;
    if (fields.reply !== undefined) this.reply = fields.reply;
    if (fields.status !== undefined) this.status = fields.status;
  }
}
Object.defineProperty(UpstreamError.prototype, 'name', { value: 'UpstreamError', configurable: true, writable: true });

/** As Node's own: name 'AbortError', code 'ABORT_ERR', the signal's reason as `cause`. */
export function abortError(signal: AbortSignal): Error {
  const error = new Error('The operation was aborted', { cause: signal.reason });
  return Object.assign(error, { name: 'AbortError', code: 'ABORT_ERR' as const });
}

/** Text from the network, fit for a message: printable ASCII only, at most `max` characters. */
export function printable(text: string, max = 80): string {
  const clean = text.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > max ? `${clean.slice(0, max)}...` : clean;
}
