// 10,000 random provider scripts through the conformance addon (the production
// protocol and error mapping), with a fixed seed. Each run is checked against
// a model of the documented protocol, written here from the documentation's
// rules: the same buffer sizes asked for, and the same outcome (exactly the
// scripted blob, or the error the script implies). Memory safety of the same
// code under AddressSanitizer is checked in conformance-asan.test.ts.
import assert from 'node:assert/strict';
import { SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS as QUERY_RECORDS, WfpRedirectError } from '..';
import { conformance, type Step } from './conformance';
import { prng } from './helpers';

const ERROR_INSUFFICIENT_BUFFER = 122;
const WSAEFAULT = 10014;
const WSAEINVAL = 10022;
// The documented limits (README, "How a query reads a blob"), not the addon's
// own constants, so that a wrong constant in the addon is caught too.
const INITIAL_BLOB_SIZE = 1024;
const MAX_BLOB_SIZE = 64 * 1024;
const MAX_QUERY_ATTEMPTS = 10;

interface Expected {
  sizes: number[];
  blob?: Buffer;
  code?: 'system' | 'ERR_WFP_BLOB_TOO_LARGE' | 'ERR_WFP_BLOB_UNSTABLE' | 'ERR_WFP_BAD_BYTES_RETURNED';
  errno?: number;
}

/** The documented protocol: what the query must ask for and end in, given the provider's script. */
function model(script: Step[]): Expected {
  const { SCRIPT_EXHAUSTED } = conformance;
  const sizes: number[] = [];
  let size = INITIAL_BLOB_SIZE;
  for (let attempt = 0; attempt < MAX_QUERY_ATTEMPTS; attempt++) {
    sizes.push(size);
    const step = script[attempt];
    const error = step ? (step.error ?? 0) : SCRIPT_EXHAUSTED;
    const returned = step?.bytesReturned ?? 0;
    const failed = step ? (step.rc ?? (error !== 0 ? -1 : 0)) !== 0 : true;
    if (!failed) {
      if (returned > size) return { sizes, code: 'ERR_WFP_BAD_BYTES_RETURNED' };
      const blob = Buffer.alloc(returned); // zeroed scratch, then what the provider wrote
      step!.data?.subarray(0, returned).forEach((byte, i) => (blob[i] = byte));
      return { sizes, blob };
    }
    let next = 0;
    if (error === ERROR_INSUFFICIENT_BUFFER) next = returned > size ? returned : size * 2;
    else if (error === WSAEFAULT) next = returned > size ? returned : 0;
    else if (error === WSAEINVAL) next = returned > size ? returned : returned !== 0 ? 0 : size < MAX_BLOB_SIZE ? MAX_BLOB_SIZE : size * 2;
    if (next === 0) return { sizes, code: 'system', errno: error };
    if (next > MAX_BLOB_SIZE) {
      return error === WSAEINVAL && returned === 0 ? { sizes, code: 'system', errno: error } : { sizes, code: 'ERR_WFP_BLOB_TOO_LARGE', errno: error };
    }
    size = next;
  }
  return { sizes, code: 'ERR_WFP_BLOB_UNSTABLE' };
}

const RUNS = 10_000;
const SEED = 0x5eed;
const HARD_ERRORS = [995, 997, 10004, 10014, 10036, 10038, 10042, 10045, 10050, 10057, 12345];

describe('conformance: fuzzing the query protocol', function () {
  this.timeout(120_000);

  it(`${RUNS.toLocaleString('en')} random provider scripts (seed ${SEED}) ask for the buffers and end as the documented protocol says`, function () {
    const random = prng(SEED);
    const below = (n: number) => Math.floor(random() * n);
    const someSize = () => [below(64), below(1100), below(1100), below(9000), below(80000)][below(5)];
    let blobs = 0;
    let failures = 0;

    for (let run = 0; run < RUNS; run++) {
      let size = someSize();
      const script: Step[] = [];
      for (let i = 1 + below(14); i > 0; i--) {
        const kind = below(10);
        if (kind < 3) script.push({ data: Buffer.alloc(size, run & 0xff), bytesReturned: size });
        else if (kind < 5) script.push({ error: 122, bytesReturned: below(2) ? size : 0 });
        else if (kind < 6) script.push({ error: 10022, bytesReturned: 0 });
        else if (kind < 7) script.push({ error: 10014, bytesReturned: below(2) ? size : 0 });
        else if (kind < 8) script.push({ error: 122, bytesReturned: (size += below(3000)) });
        else if (kind < 9) script.push({ error: HARD_ERRORS[below(HARD_ERRORS.length)], bytesReturned: below(100) });
        else script.push({ rc: 0, data: Buffer.alloc(below(100), 0xab), bytesReturned: below(90000) });
      }

      const report = conformance.query(QUERY_RECORDS, script);
      const where = `run ${run}: ${JSON.stringify(script.map((s) => ({ ...s, data: s.data?.length })))}`;
      const expected = model(script);
      assert.deepEqual(report.calls.map((call) => call.outSize), expected.sizes, `buffer sizes asked for, ${where}`);
      assert.ok((report.buffer === undefined) !== (report.error === undefined), where);

      if (expected.blob) {
        blobs++;
        assert.ok(report.buffer?.equals(expected.blob), `expected the ${expected.blob.length}-byte blob, ${where}: ${report.error?.message}`);
      } else {
        failures++;
        const error = report.error;
        assert.ok(error instanceof WfpRedirectError, `expected an error, ${where}`);
        if (expected.code === 'system') {
          assert.equal(error.errno, expected.errno, `${error.code}: ${where}`);
          assert.doesNotMatch(error.code, /^ERR_WFP_(BLOB|BAD)/, where);
        } else {
          assert.equal(error.code, expected.code, where);
          if (expected.errno !== undefined) assert.equal(error.errno, expected.errno, where);
        }
        assert.equal(error.syscall, 'WSAIoctl', where);
      }
    }
    console.log(`      (${blobs} blobs, ${failures} typed errors)`);
    assert.ok(blobs > 1000 && failures > 1000, 'the scripts did not exercise both outcomes');
  });
});
