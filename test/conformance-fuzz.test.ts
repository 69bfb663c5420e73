// 10,000 random provider scripts through the conformance addon (the production
// protocol and error mapping), with a fixed seed: each ends in exactly the
// scripted blob or a typed error. The same property under AddressSanitizer is
// checked in conformance-asan.test.ts.
import assert from 'node:assert/strict';
import { SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS as QUERY_RECORDS, WfpRedirectError } from '..';
import { conformance, type Step } from './conformance';
import { prng } from './helpers';

const RUNS = 10_000;
const SEED = 0x5eed;
const HARD_ERRORS = [995, 997, 10004, 10014, 10036, 10038, 10042, 10045, 10050, 10057, 12345];

describe('conformance: fuzzing the query protocol', function () {
  this.timeout(120_000);

  it(`${RUNS.toLocaleString('en')} random provider scripts (seed ${SEED}) end in the scripted blob or a typed error`, function () {
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
      const sizes = report.calls.map((call) => call.outSize);
      assert.ok(sizes.length >= 1 && sizes.length <= conformance.MAX_QUERY_ATTEMPTS, where);
      assert.ok(sizes.every((s, i) => s <= conformance.MAX_BLOB_SIZE && (i === 0 || s > sizes[i - 1])), where);
      assert.ok((report.buffer === undefined) !== (report.error === undefined), where);

      if (report.buffer) {
        blobs++;
        const answer = script[sizes.length - 1];
        const claimed = answer.bytesReturned ?? 0;
        assert.ok(claimed <= sizes[sizes.length - 1], where);
        // Zeroed scratch plus what the provider wrote: exactly the scripted blob.
        const expected = Buffer.alloc(claimed);
        answer.data?.subarray(0, claimed).forEach((byte, i) => (expected[i] = byte));
        assert.ok(report.buffer.equals(expected), where);
      } else {
        failures++;
        assert.ok(report.error instanceof WfpRedirectError, where);
        assert.match(report.error.code, /^(WSA|ERROR_|ERR_WFP_)/, where);
        assert.equal(report.error.syscall, 'WSAIoctl', where);
      }
    }
    console.log(`      (${blobs} blobs, ${failures} typed errors)`);
    assert.ok(blobs > 1000 && failures > 1000, 'the scripts did not exercise both outcomes');
  });
});
