// One check for a port, wherever one comes in: the API's options and the CLI's arguments.
import { outOfRange } from './errors';

/**
 * `port` as a number from `least` to 65535, as Node's net and dgram take it:
 * a number, or a string of digits; anything else is a RangeError with code
 * `ERR_SOCKET_BAD_PORT` naming `name`.
 */
export function checkPort(port: unknown, name: string, least = 0): number {
  const value = typeof port === 'string' && /^\s*\d+\s*$/.test(port) ? Number(port) : port;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < least || value > 65535) {
    throw outOfRange('ERR_SOCKET_BAD_PORT', `${name} must be a whole number from ${least} to 65535. Received ${typeof port === 'string' ? `"${port}"` : String(port)}`);
  }
  return value;
}
