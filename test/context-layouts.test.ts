// The named layouts of the WFP redirect context (lib/context-layouts.ts): what
// each decodes, how each refuses malformed bytes (ERR_WFP_BAD_CONTEXT naming
// the layout and why), and a seeded, bounded fuzz of each decoder: a typed
// error or a valid result, never another throw, never a byte read outside the
// context. Pure JavaScript: runs on every platform.
import assert from 'node:assert/strict';
import net from 'node:net';
import {
  decodeContext,
  encodeSockaddr,
  encodeWfprContext,
  encodeWfpSamplerContext,
  originalDestinationFromContext,
  parseContextLayout,
  WfpRedirectError,
  WFPR_V1_SIZE,
  type ContextLayout,
  type DecodedContext,
} from '..';
import { prng, thrown } from './helpers';

function badContext(fn: () => unknown, layout: string, why: RegExp): WfpRedirectError {
  const error = thrown(fn);
  assert.ok(error instanceof WfpRedirectError, `expected a WfpRedirectError, got ${error}`);
  assert.equal(error.code, 'ERR_WFP_BAD_CONTEXT');
  assert.ok(error.message.startsWith(`The WFP redirect context is not a ${layout} context: `), error.message);
  assert.match(error.message, why);
  return error;
}

describe('context layouts: wfpsampler (two SOCKADDR_STORAGE: the original remote endpoint, then the local one)', function () {
  it('decodes both endpoints, IPv4 and IPv6, a link-local one with its interface', function () {
    const v4 = encodeWfpSamplerContext({ address: '192.0.2.10', port: 443 }, { address: '10.0.0.5', port: 50123 });
    assert.equal(v4.length, 256);
    assert.deepEqual(decodeContext(v4, 'wfpsampler'), {
      family: 'IPv4',
      address: '192.0.2.10',
      port: 443,
      originalSource: { family: 'IPv4', address: '10.0.0.5', port: 50123 },
    });
    const v6 = encodeWfpSamplerContext({ address: 'fe80::1', port: 22, scopeId: 7 }, { address: '2001:db8::2', port: 40000 });
    assert.deepEqual(decodeContext(v6, 'wfpsampler'), {
      family: 'IPv6',
      address: 'fe80::1%7',
      port: 22,
      originalSource: { family: 'IPv6', address: '2001:db8::2', port: 40000 },
    });
  });

  it('a local endpoint left unset (AF_UNSPEC) is no endpoint, not an error', function () {
    const context = Buffer.concat([encodeSockaddr({ address: '192.0.2.1', port: 80 }, 'storage'), Buffer.alloc(128)]);
    assert.deepEqual(decodeContext(context, 'wfpsampler'), { family: 'IPv4', address: '192.0.2.1', port: 80 });
  });

  it('refuses too few bytes and a bad family in either endpoint, saying which', function () {
    badContext(() => decodeContext(encodeSockaddr({ address: '192.0.2.1', port: 80 }, 'storage'), 'wfpsampler'), 'wfpsampler', /128 bytes, too few for two SOCKADDR_STORAGE \(256 bytes\)/);
    const remoteBad = encodeWfpSamplerContext({ address: '192.0.2.1', port: 80 }, { address: '10.0.0.1', port: 1 });
    remoteBad.writeUInt16LE(99, 0);
    badContext(() => decodeContext(remoteBad, 'wfpsampler'), 'wfpsampler', /the original remote endpoint at byte 0: .*address family 99/);
    const localBad = encodeWfpSamplerContext({ address: '192.0.2.1', port: 80 }, { address: '10.0.0.1', port: 1 });
    localBad.writeUInt16LE(10, 128); // Linux's AF_INET6: a driver built with the wrong headers
    const error = badContext(() => decodeContext(localBad, 'wfpsampler'), 'wfpsampler', /the original local endpoint at byte 128: .*address family 10/);
    assert.equal((error.cause as { code?: string }).code, 'ERR_WFP_BAD_SOCKADDR');
  });

  it('its remote endpoint is a SOCKADDR_STORAGE at offset 0, so sockaddr@0 reads the destination too', function () {
    const context = encodeWfpSamplerContext({ address: '2001:db8::7', port: 8443 }, { address: '2001:db8::1', port: 1234 });
    assert.deepEqual(decodeContext(context, 'sockaddr@0'), { family: 'IPv6', address: '2001:db8::7', port: 8443 });
  });
});

describe('context layouts: wfpr (the recommended layout, version 1)', function () {
  it('decodes the destination, with and without the process id, IPv4 and IPv6', function () {
    const v4 = encodeWfprContext({ address: '198.51.100.7', port: 53, processId: 4242 });
    assert.equal(v4.length, WFPR_V1_SIZE);
    assert.deepEqual(decodeContext(v4, 'wfpr'), { family: 'IPv4', address: '198.51.100.7', port: 53, processId: 4242 });
    const v6 = encodeWfprContext({ address: '2001:db8::53', port: 853 });
    assert.deepEqual(decodeContext(v6, 'wfpr'), { family: 'IPv6', address: '2001:db8::53', port: 853 });
    const linkLocal = encodeWfprContext({ address: 'fe80::9', port: 5353, scopeId: 3, processId: 0 });
    assert.deepEqual(decodeContext(linkLocal, 'wfpr'), { family: 'IPv6', address: 'fe80::9%3', port: 5353, processId: 0 });
  });

  it('is little-endian byte for byte as docs/redirectors.md lays it out', function () {
    const bytes = encodeWfprContext({ address: '192.0.2.1', port: 0x1234, processId: 0x01020304 });
    assert.equal(bytes.toString('hex'), [
      '57465052', // "WFPR"
      '0100', // version 1
      '2800', // length 40
      '01000000', // flags: process id
      '0400', // family 4
      '3412', // port 0x1234
      'c0000201' + '00'.repeat(12), // the address, network order
      '00000000', // scope id
      '04030201', // process id
    ].join(''));
  });

  it('reads a longer context from a later writer: fields past version 1, announced by unknown flags, are skipped', function () {
    const base = encodeWfprContext({ address: '192.0.2.1', port: 80, processId: 7 });
    const later = Buffer.concat([base, Buffer.from('new field!')]);
    later.writeUInt16LE(later.length, 6);
    later.writeUInt32LE(0x1 | 0x80, 8);
    assert.deepEqual(decodeContext(later, 'wfpr'), { family: 'IPv4', address: '192.0.2.1', port: 80, processId: 7 });
  });

  it('refuses each malformation with its reason', function () {
    const good = () => encodeWfprContext({ address: '192.0.2.1', port: 80 });
    badContext(() => decodeContext(good().subarray(0, 7), 'wfpr'), 'wfpr', /7 bytes, too few for its 8-byte header/);
    const magic = good();
    magic.write('WFPX', 0, 'latin1');
    badContext(() => decodeContext(magic, 'wfpr'), 'wfpr', /bad magic/);
    const version = good();
    version.writeUInt16LE(2, 4);
    badContext(() => decodeContext(version, 'wfpr'), 'wfpr', /version 2; this package reads version 1 \(bad version\)/);
    const short = good();
    short.writeUInt16LE(39, 6);
    badContext(() => decodeContext(short, 'wfpr'), 'wfpr', /length field says 39 bytes, less than version 1's 40/);
    badContext(() => decodeContext(good().subarray(0, 39), 'wfpr'), 'wfpr', /length field says 40 bytes, the context has 39 \(truncated\)/);
    const family = good();
    family.writeUInt16LE(2, 12); // AF_INET instead of 4
    badContext(() => decodeContext(family, 'wfpr'), 'wfpr', /address family 2 is neither 4 \(IPv4\) nor 6 \(IPv6\) \(bad family\)/);
  });
});

describe('context layouts: names, and originalDestinationFromContext / getOriginalDestination options', function () {
  it('parseContextLayout takes what --context should, and names the accepted forms otherwise', function () {
    assert.equal(parseContextLayout('sockaddr'), 'sockaddr');
    assert.equal(parseContextLayout('sockaddr@0'), 'sockaddr@0');
    assert.equal(parseContextLayout('sockaddr@65535'), 'sockaddr@65535');
    assert.equal(parseContextLayout('sockaddr@007'), 'sockaddr@7');
    assert.equal(parseContextLayout('wfpsampler'), 'wfpsampler');
    assert.equal(parseContextLayout('wfpr'), 'wfpr');
    for (const bad of ['', 'sockaddr@', 'sockaddr@-1', 'sockaddr@65536', 'sockaddr@1.5', 'WFPR', 'wfpsampler@0', ' wfpr']) {
      const error = thrown(() => parseContextLayout(bad));
      assert.ok(error instanceof TypeError, bad);
      assert.ok('code' in error);
      assert.equal(error.code, 'ERR_INVALID_ARG_VALUE', bad);
      assert.match(error.message, /sockaddr, sockaddr@OFFSET, wfpsampler, wfpr/);
    }
    assert.equal(thrown(() => parseContextLayout(8)).code, 'ERR_INVALID_ARG_TYPE');
  });

  it('the layout option decodes in that layout; layout with decode or contextOffset is refused', function () {
    const context = encodeWfprContext({ address: '192.0.2.1', port: 80, processId: 9 });
    assert.deepEqual(originalDestinationFromContext(context, { layout: 'wfpr' }), { family: 'IPv4', address: '192.0.2.1', port: 80, processId: 9 });
    const both = thrown(() => originalDestinationFromContext(context, { layout: 'wfpr', contextOffset: 0 }));
    assert.equal(both.code, 'ERR_INVALID_ARG_VALUE');
    assert.equal(thrown(() => originalDestinationFromContext(context, { layout: 'wfpr', decode: () => ({ address: '1.1.1.1', port: 1 }) })).code, 'ERR_INVALID_ARG_VALUE');
  });

  it('without a layout, a SOCKADDR at contextOffset as before; malformed bytes are ERR_WFP_BAD_CONTEXT with the SOCKADDR error as cause', function () {
    const context = Buffer.concat([Buffer.from('HDR'), encodeSockaddr({ address: '203.0.113.9', port: 993 })]);
    assert.deepEqual(originalDestinationFromContext(context, { contextOffset: 3 }), { family: 'IPv4', address: '203.0.113.9', port: 993 });
    const error = badContext(() => originalDestinationFromContext(context), 'sockaddr@0', /the SOCKADDR at byte 0: Not a SOCKADDR: address family/);
    assert.equal((error.cause as { code?: string }).code, 'ERR_WFP_BAD_SOCKADDR');
    for (const offset of [-1, 1.5, 65536, NaN]) {
      const range = thrown(() => originalDestinationFromContext(context, { contextOffset: offset }));
      assert.ok(range instanceof RangeError, String(offset));
      assert.equal((range as { code?: string }).code, 'ERR_OUT_OF_RANGE');
    }
  });
});

describe('context layouts: fuzz (seeded, bounded)', function () {
  const LAYOUTS: Array<{ layout: ContextLayout; valid: () => Buffer }> = [
    { layout: 'sockaddr', valid: () => encodeSockaddr({ address: '2001:db8::1', port: 1 }, 'storage') },
    { layout: 'sockaddr@8', valid: () => Buffer.concat([Buffer.alloc(8), encodeSockaddr({ address: '192.0.2.1', port: 2 })]) },
    { layout: 'wfpsampler', valid: () => encodeWfpSamplerContext({ address: 'fe80::1', port: 3, scopeId: 1 }, { address: '192.0.2.2', port: 4 }) },
    { layout: 'wfpr', valid: () => encodeWfprContext({ address: '2001:db8::2', port: 5, processId: 6 }) },
  ];
  const RUNS = 4000;

  function checkResult(result: DecodedContext, where: string): void {
    const endpoints = [result, ...(result.originalSource ? [result.originalSource] : [])];
    for (const { family, address, port } of endpoints) {
      const bare = address.split('%')[0];
      assert.equal(net.isIP(bare), family === 'IPv4' ? 4 : 6, `${where}: ${family} ${address}`);
      assert.ok(Number.isInteger(port) && port >= 0 && port <= 65535, `${where}: port ${port}`);
    }
    if (result.processId !== undefined) assert.ok(Number.isInteger(result.processId) && result.processId >= 0 && result.processId <= 0xffffffff, where);
  }

  /** Bytes near a valid context: flipped bytes, a cut end, an extension, or noise. */
  function mutate(random: () => number, valid: Buffer): Buffer {
    const pick = random();
    if (pick < 0.2) return Buffer.from(Array.from({ length: Math.floor(random() * 300) }, () => Math.floor(random() * 256)));
    const bytes = Buffer.from(valid);
    if (pick < 0.4) return bytes.subarray(0, Math.floor(random() * bytes.length));
    if (pick < 0.5) return Buffer.concat([bytes, Buffer.alloc(Math.floor(random() * 64), Math.floor(random() * 256))]);
    for (let flips = 1 + Math.floor(random() * 4); flips > 0; flips--) {
      // Mostly in the header fields, where the decisions are.
      const at = Math.floor(random() * (random() < 0.7 ? Math.min(40, bytes.length) : bytes.length));
      bytes[at] = random() < 0.5 ? Math.floor(random() * 256) : [0, 1, 2, 4, 6, 23, 0x28, 0xff][Math.floor(random() * 8)];
    }
    return bytes;
  }

  for (const { layout, valid } of LAYOUTS) {
    it(`${layout}: ${RUNS} inputs near a valid context each give a valid result or ERR_WFP_BAD_CONTEXT, and the same answer wherever the bytes sit in memory`, function () {
      const random = prng(0x5eed ^ layout.length);
      let decoded = 0;
      let refused = 0;
      for (let run = 0; run < RUNS; run++) {
        const input = mutate(random, valid());
        const where = `${layout} run ${run} (${input.toString('hex')})`;
        // The same bytes inside a larger buffer, with other bytes on both sides:
        // a read outside the view would see them and answer differently (or throw a RangeError).
        const host = Buffer.alloc(input.length + 512, 0xa5);
        input.copy(host, 256);
        const view = host.subarray(256, 256 + input.length);
        const answers = [input, view].map((bytes) => {
          try {
            return { result: decodeContext(bytes, layout) };
          } catch (error) {
            assert.ok(error instanceof WfpRedirectError && error.code === 'ERR_WFP_BAD_CONTEXT', `${where}: threw ${error}`);
            return { reason: error.message };
          }
        });
        assert.deepEqual(answers[1], answers[0], `${where}: the answer depends on bytes outside the context`);
        if (answers[0].result) {
          checkResult(answers[0].result, where);
          decoded++;
        } else {
          refused++;
        }
      }
      // The fuzz must reach both outcomes, or it tests nothing.
      assert.ok(decoded > RUNS / 20 && refused > RUNS / 20, `${decoded} decoded, ${refused} refused`);
    });
  }
});
