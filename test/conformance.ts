// The conformance-test addon (test/native/): the production buffer protocol and
// error mapping, driven by a scripted Winsock provider.
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

interface ConformanceAddon {
  query(ioctl: number, script: Step[]): Report;
  set(records: Uint8Array, script: Step[]): Report;
  setErrorClass(errorClass: typeof WfpRedirectError): void;
  readonly INITIAL_BLOB_SIZE: number;
  readonly MAX_BLOB_SIZE: number;
  readonly MAX_QUERY_ATTEMPTS: number;
  readonly SCRIPT_EXHAUSTED: number;
}

const root = join(__dirname, '..');
const file =
  process.platform === 'win32'
    ? join(root, 'test', 'native', 'build-win32', 'wfp_conformance.node')
    : join(root, 'test', 'native', 'build', 'Release', 'wfp_conformance.node');
if (!existsSync(file)) {
  throw new Error(`the conformance addon ${file} is not built: run \`npm run build:conformance\` (or \`npm run build:win32\`)`);
}

export const conformance = require(file) as ConformanceAddon;
conformance.setErrorClass(WfpRedirectError);

/** `n` bytes of a recognisable pattern. */
export function blob(n: number, seed = 1): Buffer {
  const bytes = Buffer.alloc(n);
  for (let i = 0; i < n; i++) bytes[i] = (i * 31 + seed * 7) & 0xff;
  return bytes;
}
