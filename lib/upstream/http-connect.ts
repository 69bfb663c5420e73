// HTTP CONNECT (RFC 9110 section 9.3.6) to an upstream proxy, with Basic
// auth (RFC 7617), as handshake steps (exchange.ts).
import net from 'node:net';
import { UpstreamError, printable } from './errors';
import type { Steps } from './exchange';
import type { Upstream } from './url';

export const DEFAULT_MAX_HEADER_SIZE = 16 * 1024;
const HEADER_END = Buffer.from('\r\n\r\n');
const STATUS_LINE = /^HTTP\/1\.[01] (\d{3})(?: ([^\r\n]*))?$/;

function authority(host: string, port: number): string {
  return net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}

function malformed(upstream: Upstream, what: string): UpstreamError {
  return new UpstreamError(`The HTTP upstream ${upstream.display} gave a malformed answer to CONNECT: ${what}`, { code: 'ERR_HTTP_PROXY_MALFORMED_RESPONSE' });
}

function statusError(upstream: Upstream, status: number, reason: string): UpstreamError {
  const said = reason === '' ? '' : ` ${JSON.stringify(printable(reason))}`;
  // 401 too: to CONNECT it can only be the proxy's own refusal (tinyproxy answers a wrong password so).
  if (status === 407 || status === 401) {
    const hint = upstream.username === undefined ? 'give user:password@ in the URL' : 'it refused the user name and password: check them';
    return new UpstreamError(`The HTTP upstream ${upstream.display} wants proxy authentication (${status}${said}): ${hint}`, { code: 'ERR_HTTP_PROXY_AUTH_REQUIRED', status });
  }
  return new UpstreamError(`The HTTP upstream ${upstream.display} refused CONNECT with status ${status}${said}`, { code: 'ERR_HTTP_PROXY_STATUS', status });
}

/**
 * Sends CONNECT for `host:port` (already checked: no byte of it can end a
 * header line) and reads the answer's header, at most `maxHeaderSize` bytes.
 * A 2xx is success; what follows the header belongs to the destination.
 */
export function* httpConnect(write: (bytes: Buffer) => void, upstream: Upstream, host: string, port: number, maxHeaderSize: number): Steps<void> {
  const target = authority(host, port);
  const lines = [`CONNECT ${target} HTTP/1.1`, `Host: ${target}`];
  const password = upstream.password;
  if (upstream.username !== undefined && password !== undefined) {
    lines.push(`Proxy-Authorization: Basic ${Buffer.from(`${upstream.username}:${password}`).toString('base64')}`);
  }
  write(Buffer.from(`${lines.join('\r\n')}\r\n\r\n`));

  const head = yield {
    through: HEADER_END,
    limit: maxHeaderSize,
    tooLarge: () =>
      new UpstreamError(`The HTTP upstream ${upstream.display} sent more than ${maxHeaderSize} bytes without ending its answer's header (maxHeaderSize)`, {
        code: 'ERR_HTTP_PROXY_HEADERS_TOO_LARGE',
      }),
  };
  const firstLine = head.toString('latin1', 0, head.indexOf('\r\n'));
  const match = STATUS_LINE.exec(firstLine);
  if (match === null) throw malformed(upstream, `the first line ${JSON.stringify(printable(firstLine))} is not an HTTP/1.x status line`);
  const status = Number(match[1]);
  if (status < 200 || status > 299) throw statusError(upstream, status, match[2] ?? '');
}
