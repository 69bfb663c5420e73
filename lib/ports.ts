// One check for a port, wherever one comes in: the API's options and the CLI's arguments.
import { invalidArgType, outOfRange } from './errors';

/**
 * `port` as a number from `least` to 65535. A string of digits counts, as
 * `net.connect` takes it; anything else that is not a number is a TypeError
 * (`ERR_INVALID_ARG_TYPE`), and a number out of range a RangeError
 * (`ERR_SOCKET_BAD_PORT`), both naming `name`.
 */
export function checkPort(port: unknown, name: string, least = 0): number {
  const value = typeof port === 'string' && /^\d+$/.test(port.trim()) ? Number(port) : port;
  if (typeof value !== 'number') throw invalidArgType(name, 'a number', port);
  if (!Number.isInteger(value) || value < least || value > 65535) {
    throw outOfRange('ERR_SOCKET_BAD_PORT', `${name} must be a whole number from ${least} to 65535. Received ${String(port)}`);
  }
  return value;
}
