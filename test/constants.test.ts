// The constants are fixed numbers defined in TypeScript (so that they need no
// addon); the addon defines the same ones in native/redirect_protocol.h.
// This checks that the two agree, in every runtime the suite runs in.
import assert from 'node:assert/strict';
import * as constants from '../dist/constants';
import { binding } from '../dist/native';

describe('the constants without the addon', function () {
  for (const name of ['SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS', 'SIO_QUERY_WFP_CONNECTION_REDIRECT_CONTEXT', 'SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS', 'MAX_BLOB_SIZE'] as const) {
    it(`${name} is the addon's value`, function () {
      assert.equal(typeof constants[name], 'number');
      assert.equal(constants[name], binding[name], `lib/constants.ts says ${constants[name]}, the addon (${binding.build}) says ${binding[name]}`);
    });
  }
});
