import assert from 'node:assert/strict';
import { decodeSockaddr, encodeSockaddr, SOCKADDR_IN6_SIZE, SOCKADDR_IN_SIZE, SOCKADDR_STORAGE_SIZE } from '..';
import { prng } from './helpers';

describe('decodeSockaddr / encodeSockaddr', function () {
  const known: Array<[string, string]> = [
    ['127.0.0.1', '127.0.0.1'],
    ['255.255.255.255', '255.255.255.255'],
    ['::1', '::1'],
    ['::', '::'],
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:0db8:0000:0001:0001:0001:0001:0001', '2001:db8:0:1:1:1:1:1'],
    ['fe80::1%eth0', 'fe80::1'],
    ['::ffff:192.0.2.128', '::ffff:192.0.2.128'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
  ];
  for (const [input, canonical] of known) {
    for (const layout of ['sockaddr', 'storage'] as const) {
      it(`round-trips ${input} as a ${layout === 'storage' ? 'SOCKADDR_STORAGE' : 'SOCKADDR_IN/IN6'}, at offset 0 and 5`, function () {
        const encoded = encodeSockaddr({ address: input, port: 8443, flowInfo: 0x12345, scopeId: 7 }, layout);
        const v6 = input.includes(':');
        assert.equal(encoded.length, layout === 'storage' ? SOCKADDR_STORAGE_SIZE : v6 ? SOCKADDR_IN6_SIZE : SOCKADDR_IN_SIZE);
        const expected = v6
          ? { family: 'IPv6', address: canonical, port: 8443, flowInfo: 0x12345, scopeId: 7 }
          : { family: 'IPv4', address: canonical, port: 8443 };
        assert.deepEqual(decodeSockaddr(encoded), expected);
        const shifted = Buffer.concat([Buffer.alloc(5, 0xff), encoded]);
        assert.deepEqual(decodeSockaddr(shifted, 5), expected);
      });
    }
  }

  it('reads the Windows layout: family little-endian, port in network order', function () {
    const sin = Buffer.from([2, 0, 0x01, 0xbb, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert.deepEqual(decodeSockaddr(sin), { family: 'IPv4', address: '10.0.0.1', port: 443 });
    const sin6 = Buffer.alloc(28);
    sin6.writeUInt16LE(23, 0);
    sin6.writeUInt16BE(80, 2);
    sin6[23] = 1;
    sin6.writeUInt32LE(4, 24);
    assert.deepEqual(decodeSockaddr(sin6), { family: 'IPv6', address: '::1', port: 80, flowInfo: 0, scopeId: 4 });
  });

  it('round-trips 2,000 random IPv4 and IPv6 addresses byte for byte', function () {
    const random = prng(0xadd2);
    for (let i = 0; i < 2000; i++) {
      const raw = Buffer.alloc(SOCKADDR_IN6_SIZE);
      const v6 = random() < 0.5;
      raw.writeUInt16LE(v6 ? 23 : 2, 0);
      raw.writeUInt16BE(Math.floor(random() * 65536), 2);
      for (let b = 4; b < (v6 ? 28 : 8); b++) raw[b] = Math.floor(random() * 256);
      // Runs of zero groups, so compression is exercised.
      if (v6 && random() < 0.5) raw.fill(0, 8 + 2 * Math.floor(random() * 8), 8 + 2 * Math.floor(random() * 8) + 4);
      const bytes = v6 ? raw : raw.subarray(0, SOCKADDR_IN_SIZE).fill(0, 8);
      const decoded = decodeSockaddr(bytes);
      assert.ok(encodeSockaddr(decoded).equals(bytes), `${bytes.toString('hex')} -> ${JSON.stringify(decoded)}`);
    }
  });

  it('rejects 10,000 fuzzed malformed inputs with a RangeError that says why, and nothing else', function () {
    const random = prng(0xbad5);
    const below = (n: number) => Math.floor(random() * n);
    for (let i = 0; i < 10_000; i++) {
      let input: Buffer;
      let offset = 0;
      switch (i % 4) {
        case 0: {
          // A known family, cut short.
          const full = encodeSockaddr({ address: below(2) ? '10.1.2.3' : 'fe80::7', port: below(65536) });
          input = full.subarray(0, below(full.length));
          break;
        }
        case 1: {
          // An unknown family.
          input = Buffer.alloc(2 + below(140));
          for (let b = 0; b < input.length; b++) input[b] = below(256);
          let family = input.readUInt16LE(0);
          if (family === 2 || family === 23) family += 1;
          input.writeUInt16LE(family, 0);
          break;
        }
        case 2: {
          // A valid address, but the offset leaves too little of it.
          input = encodeSockaddr({ address: below(2) ? '192.0.2.1' : '2001:db8::5', port: 1 });
          offset = input.length - 1 - below(input.length - 1) + (below(3) === 0 ? below(1000) : 0);
          break;
        }
        default: {
          // A nonsense offset.
          input = encodeSockaddr({ address: '192.0.2.1', port: 1 }, 'storage');
          offset = [-1, 0.5, NaN, Infinity, -Infinity, 2 ** 60][below(6)];
        }
      }
      assert.throws(
        () => decodeSockaddr(input, offset),
        (error: Error & { code?: string }) => error instanceof RangeError && error.code === 'ERR_WFP_BAD_SOCKADDR' && error.message.startsWith('Not a SOCKADDR: '),
        `input ${input.toString('hex')} at offset ${offset}`,
      );
    }
  });

  it('never reads past a view into a larger buffer', function () {
    const full = encodeSockaddr({ address: '2001:db8::1', port: 1 }, 'storage');
    assert.throws(() => decodeSockaddr(full.subarray(0, SOCKADDR_IN6_SIZE - 1)), RangeError);
    assert.equal(decodeSockaddr(full.subarray(0, SOCKADDR_IN6_SIZE)).address, '2001:db8::1');
  });

  it('refuses what is not bytes with ERR_INVALID_ARG_TYPE', function () {
    assert.throws(() => decodeSockaddr('0200' as unknown as Uint8Array), { code: 'ERR_INVALID_ARG_TYPE' });
  });
});
