// The buffer protocol against every behaviour the documentation (and the
// field) describes, through a scripted provider. Runs on Linux and, built
// with mingw-w64, inside Windows node.exe.
import assert from 'node:assert/strict';
import {
  SIO_QUERY_WFP_CONNECTION_REDIRECT_CONTEXT as QUERY_CONTEXT,
  SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS as QUERY_RECORDS,
  SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS as SET_RECORDS,
  WfpRedirectError,
} from '..';
import { blob, conformance, type Report } from './conformance';

const ERROR_INSUFFICIENT_BUFFER = 122;
const WSAEFAULT = 10014;
const WSAEINVAL = 10022;
const { INITIAL_BLOB_SIZE, MAX_BLOB_SIZE, MAX_QUERY_ATTEMPTS } = conformance;

function outSizes(report: Report): number[] {
  return report.calls.map((call) => call.outSize);
}

function assertBuffer(report: Report, expected: Buffer): void {
  assert.equal(report.error, undefined, report.error?.message);
  assert.ok(Buffer.isBuffer(report.buffer));
  assert.ok(report.buffer.equals(expected), `got ${report.buffer.length} bytes, expected ${expected.length}`);
  assert.equal(report.exhausted, false, 'the code asked more often than the script answers');
}

function assertFailure(report: Report, code: string, errno: number | undefined, ioctl = 'SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS'): WfpRedirectError {
  assert.equal(report.buffer, undefined);
  const error = report.error;
  assert.ok(error instanceof WfpRedirectError, `expected WfpRedirectError, got ${error}`);
  assert.equal(error.code, code, error.message);
  assert.equal(error.errno, errno);
  // The call's own answer is the failure, except where this process could not allocate.
  assert.equal(error.syscall, code === 'ERR_WFP_OUT_OF_MEMORY' ? undefined : 'WSAIoctl');
  assert.equal(error.ioctl, ioctl);
  assert.equal(report.exhausted, false, 'the code asked more often than the script answers');
  return error;
}

/** Every query call: no input, an output buffer. */
function assertQueryCalls(report: Report, ioctl: number): void {
  for (const call of report.calls) {
    assert.equal(call.code, ioctl);
    assert.equal(call.in, null);
    assert.equal(call.outNull, false);
  }
}

describe('conformance: the query buffer protocol against a scripted provider', function () {
  it('1. a blob that fits the first buffer comes back exactly, in one call', function () {
    const expected = blob(100);
    const report = conformance.query(QUERY_RECORDS, [{ data: expected, bytesReturned: 100 }]);
    assertBuffer(report, expected);
    assert.deepEqual(outSizes(report), [INITIAL_BLOB_SIZE]);
    assertQueryCalls(report, QUERY_RECORDS);
  });

  it('1b. a blob of exactly the first buffer size needs no retry', function () {
    const expected = blob(INITIAL_BLOB_SIZE);
    const report = conformance.query(QUERY_CONTEXT, [{ data: expected, bytesReturned: INITIAL_BLOB_SIZE }]);
    assertBuffer(report, expected);
    assert.deepEqual(outSizes(report), [INITIAL_BLOB_SIZE]);
    assertQueryCalls(report, QUERY_CONTEXT);
  });

  it('2. ERROR_INSUFFICIENT_BUFFER with the required size: one retry at exactly that size', function () {
    const expected = blob(3000);
    const report = conformance.query(QUERY_CONTEXT, [
      { error: ERROR_INSUFFICIENT_BUFFER, bytesReturned: 3000 },
      { data: expected, bytesReturned: 3000 },
    ]);
    assertBuffer(report, expected);
    assert.deepEqual(outSizes(report), [INITIAL_BLOB_SIZE, 3000]);
    assertQueryCalls(report, QUERY_CONTEXT);
  });

  it('3. WSAEINVAL with 0 bytes: the next call has the cap, so the blob fits in two calls', function () {
    const expected = blob(5000);
    const report = conformance.query(QUERY_RECORDS, [
      { error: WSAEINVAL, bytesReturned: 0 },
      { data: expected, bytesReturned: 5000 },
    ]);
    assertBuffer(report, expected);
    assert.deepEqual(outSizes(report), [1024, MAX_BLOB_SIZE]);
  });

  it('4. WSAEFAULT with a size is treated like ERROR_INSUFFICIENT_BUFFER', function () {
    const expected = blob(1500);
    const report = conformance.query(QUERY_RECORDS, [
      { error: WSAEFAULT, bytesReturned: 1500 },
      { data: expected, bytesReturned: 1500 },
    ]);
    assertBuffer(report, expected);
    assert.deepEqual(outSizes(report), [INITIAL_BLOB_SIZE, 1500]);
  });

  it('5. a blob that grows between the size answer and the next call: retried, then the whole blob', function () {
    const expected = blob(5000, 3);
    const report = conformance.query(QUERY_CONTEXT, [
      { error: ERROR_INSUFFICIENT_BUFFER, bytesReturned: 3000 },
      { error: ERROR_INSUFFICIENT_BUFFER, bytesReturned: 5000 },
      { data: expected, bytesReturned: 5000 },
    ]);
    assertBuffer(report, expected);
    assert.deepEqual(outSizes(report), [INITIAL_BLOB_SIZE, 3000, 5000]);
  });

  it(`5b. a blob that never stops growing: at most ${MAX_QUERY_ATTEMPTS} calls, then ERR_WFP_BLOB_UNSTABLE`, function () {
    const script = Array.from({ length: 30 }, (_, i) => ({ error: ERROR_INSUFFICIENT_BUFFER, bytesReturned: 2000 + i }));
    const report = conformance.query(QUERY_RECORDS, script);
    const error = assertFailure(report, 'ERR_WFP_BLOB_UNSTABLE', ERROR_INSUFFICIENT_BUFFER);
    assert.equal(report.calls.length, MAX_QUERY_ATTEMPTS);
    assert.match(error.message, /try the query again/);
  });

  it('6. a provider asking for more than the cap: ERR_WFP_BLOB_TOO_LARGE at once, nothing allocated or asked', function () {
    const report = conformance.query(QUERY_RECORDS, [
      { error: ERROR_INSUFFICIENT_BUFFER, bytesReturned: MAX_BLOB_SIZE + 1 },
      { data: blob(10), bytesReturned: 10 },
    ]);
    const error = assertFailure(report, 'ERR_WFP_BLOB_TOO_LARGE', ERROR_INSUFFICIENT_BUFFER);
    assert.deepEqual(outSizes(report), [INITIAL_BLOB_SIZE]);
    assert.match(error.message, /65537 bytes/);
  });

  it('6b. a provider that keeps saying "too small" with no size: doubles up to the cap, then ERR_WFP_BLOB_TOO_LARGE', function () {
    const script = Array.from({ length: 30 }, () => ({ error: ERROR_INSUFFICIENT_BUFFER, bytesReturned: 0 }));
    const report = conformance.query(QUERY_RECORDS, script);
    assertFailure(report, 'ERR_WFP_BLOB_TOO_LARGE', ERROR_INSUFFICIENT_BUFFER);
    assert.deepEqual(outSizes(report), [1024, 2048, 4096, 8192, 16384, 32768, 65536]);
  });

  it('6c. a socket nobody redirected (WSAEINVAL with 0 bytes, at the cap too) costs two calls, and is reported as such', function () {
    const script = Array.from({ length: 30 }, () => ({ error: WSAEINVAL, bytesReturned: 0 }));
    const report = conformance.query(QUERY_RECORDS, script);
    const error = assertFailure(report, 'WSAEINVAL', WSAEINVAL);
    assert.deepEqual(outSizes(report), [1024, MAX_BLOB_SIZE]);
    assert.match(error.message, /not redirected|no WFP redirect data/);
  });

  it('7. success with 0 bytes returned: an empty Buffer (the provider has no data)', function () {
    const report = conformance.query(QUERY_CONTEXT, [{ rc: 0, bytesReturned: 0 }]);
    assertBuffer(report, Buffer.alloc(0));
    assert.equal(report.calls.length, 1);
  });

  it('8. success claiming more bytes than the buffer holds: nothing read past it, ERR_WFP_BAD_BYTES_RETURNED', function () {
    const first = conformance.query(QUERY_RECORDS, [{ data: blob(INITIAL_BLOB_SIZE), bytesReturned: INITIAL_BLOB_SIZE + 1 }]);
    assert.equal(assertFailure(first, 'ERR_WFP_BAD_BYTES_RETURNED', undefined).message.includes('1025 bytes'), true);
    const grown = conformance.query(QUERY_RECORDS, [
      { error: ERROR_INSUFFICIENT_BUFFER, bytesReturned: 2000 },
      { data: blob(2000), bytesReturned: 60000 },
    ]);
    assertFailure(grown, 'ERR_WFP_BAD_BYTES_RETURNED', undefined);
    assert.deepEqual(outSizes(grown), [INITIAL_BLOB_SIZE, 2000]);
  });

  it('11. returned Buffers own their memory: no sharing with each other or with scratch buffers', function () {
    const expected = blob(700);
    const script = [{ data: expected, bytesReturned: 700 }];
    const a = conformance.query(QUERY_RECORDS, script).buffer!;
    const b = conformance.query(QUERY_RECORDS, script).buffer!;
    assert.notEqual(a.buffer, b.buffer);
    assert.equal(a.byteOffset, 0);
    assert.equal(a.buffer.byteLength, a.length, 'the Buffer is a view over a larger allocation');
    a.fill(0xee);
    assert.ok(b.equals(expected));
    assert.ok(conformance.query(QUERY_RECORDS, script).buffer!.equals(expected));
    // A grown (heap) scratch buffer likewise.
    const large = blob(9000);
    const grownScript = [{ error: ERROR_INSUFFICIENT_BUFFER, bytesReturned: 9000 }, { data: large, bytesReturned: 9000 }];
    const c = conformance.query(QUERY_CONTEXT, grownScript).buffer!;
    c.fill(0);
    assert.ok(conformance.query(QUERY_CONTEXT, grownScript).buffer!.equals(large));
  });
});

/** The error table of the query IOCTLs' documentation, plus the Winsock codes of stale handles. */
const DOCUMENTED_ERRORS: Array<[string, number]> = [
  ['WSA_IO_PENDING', 997],
  ['WSA_OPERATION_ABORTED', 995],
  ['WSAEFAULT', 10014],
  ['WSAEINPROGRESS', 10036],
  ['WSAEINTR', 10004],
  ['WSAENETDOWN', 10050],
  ['WSAENOPROTOOPT', 10042],
  ['WSAENOTCONN', 10057],
  ['WSAENOTSOCK', 10038],
  ['WSAEOPNOTSUPP', 10045],
];

describe('conformance: 9. every documented error maps to a typed WfpRedirectError', function () {
  for (const [name, errno] of DOCUMENTED_ERRORS) {
    it(`${name} (${errno}) on a query and on a set`, function () {
      const query = conformance.query(QUERY_RECORDS, [{ error: errno, bytesReturned: 0 }]);
      const error = assertFailure(query, name, errno);
      assert.equal(query.calls.length, 1, 'a hard error must not be retried');
      assert.ok(error.message.includes(`${name} (${errno})`), error.message);
      assert.ok(error.message.includes('SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS'), error.message);
      const set = conformance.set(blob(16), [{ error: errno }]);
      assertFailure(set, name, errno, 'SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS');
    });
  }

  it('WSAEINVAL on a set: the records were refused, with advice', function () {
    const error = assertFailure(conformance.set(blob(16), [{ error: WSAEINVAL }]), 'WSAEINVAL', WSAEINVAL, 'SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS');
    assert.match(error.message, /before it connects|has not connected yet/);
  });

  it('ERROR_INSUFFICIENT_BUFFER that cannot be resolved: on a set, its own code', function () {
    assertFailure(conformance.set(blob(16), [{ error: ERROR_INSUFFICIENT_BUFFER }]), 'ERROR_INSUFFICIENT_BUFFER', ERROR_INSUFFICIENT_BUFFER, 'SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS');
  });

  it('WSAEFAULT with 0 bytes on a query is a real WSAEFAULT, not a size answer', function () {
    const report = conformance.query(QUERY_RECORDS, [{ error: WSAEFAULT, bytesReturned: 0 }]);
    assertFailure(report, 'WSAEFAULT', WSAEFAULT);
    assert.equal(report.calls.length, 1);
  });

  it('an error outside the table: ERR_WFP_SYSTEM_ERROR with its number', function () {
    const error = assertFailure(conformance.query(QUERY_RECORDS, [{ error: 12345 }]), 'ERR_WFP_SYSTEM_ERROR', 12345);
    assert.match(error.message, /12345/);
  });
});

describe('conformance: 10. setting records', function () {
  it('the provider receives the records byte for byte, with their exact length and no output buffer', function () {
    for (const size of [1, 37, INITIAL_BLOB_SIZE + 1, MAX_BLOB_SIZE]) {
      const records = blob(size, size);
      const report = conformance.set(records, [{ rc: 0 }]);
      assert.equal(report.error, undefined, report.error?.message);
      assert.equal(report.calls.length, 1);
      const [call] = report.calls;
      assert.equal(call.code, SET_RECORDS);
      assert.ok(call.in?.equals(records), `records of ${size} bytes arrived changed`);
      assert.equal(call.outNull, true);
      assert.equal(call.outSize, 0);
    }
  });

  it('a view into a larger buffer sends only its own bytes', function () {
    const backing = blob(100);
    const view = backing.subarray(10, 20);
    const [call] = conformance.set(view, [{ rc: 0 }]).calls;
    assert.ok(call.in?.equals(backing.subarray(10, 20)));
  });

  it('empty records are refused before any call: RangeError ERR_WFP_RECORDS_EMPTY', function () {
    const report = conformance.set(new Uint8Array(0), [{ rc: 0 }]);
    assert.equal(report.error?.code, 'ERR_WFP_RECORDS_EMPTY');
    assert.ok(report.error instanceof RangeError);
    assert.equal(report.calls.length, 0);
  });

  it('records over the cap are refused before any call: RangeError ERR_WFP_BLOB_TOO_LARGE', function () {
    const report = conformance.set(new Uint8Array(MAX_BLOB_SIZE + 1), [{ rc: 0 }]);
    assert.equal(report.error?.code, 'ERR_WFP_BLOB_TOO_LARGE');
    assert.ok(report.error instanceof RangeError);
    assert.equal(report.calls.length, 0);
  });
});
