// WFP's HRESULTs as WSAGetLastError() carries them after the redirect IOCTLs
// (native/wsa_errors.cc), through the scripted provider of the conformance
// addon: named codes, the HRESULT as an unsigned errno, a meaning per IOCTL.
// Runs on Linux and, built with mingw-w64, inside Windows node.exe.
import assert from 'node:assert/strict';
import {
  SIO_QUERY_WFP_CONNECTION_REDIRECT_CONTEXT as QUERY_CONTEXT,
  SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS as QUERY_RECORDS,
  WFP_HRESULT_CODES,
  WfpRedirectError,
} from '..';
import { conformance } from './conformance';

const FWP_E_NOT_FOUND = 0x80320008;

describe('WFP HRESULTs from the redirect IOCTLs', function () {
  it('FWP_E_NOT_FOUND on the context query: its own code, the HRESULT as errno, "redirected, but no context", one call', function () {
    const report = conformance.query(QUERY_CONTEXT, [{ error: FWP_E_NOT_FOUND, bytesReturned: 0 }]);
    const error = report.error;
    assert.ok(error instanceof WfpRedirectError, String(error));
    assert.equal(error.code, 'FWP_E_NOT_FOUND');
    assert.equal(error.errno, FWP_E_NOT_FOUND, 'errno is the HRESULT, unsigned');
    assert.equal(error.ioctl, 'SIO_QUERY_WFP_CONNECTION_REDIRECT_CONTEXT');
    assert.equal(error.syscall, 'WSAIoctl');
    assert.match(error.message, /failed with FWP_E_NOT_FOUND \(0x80320008\): the connection was redirected, but its callout driver stored no redirect context/);
    assert.equal(report.calls.length, 1, 'not a "buffer too small" answer: no retry');
    assert.ok(WFP_HRESULT_CODES.includes(error.code as (typeof WFP_HRESULT_CODES)[number]));
  });

  it('FWP_E_NOT_FOUND on the records query: the same code, meaning "not redirected"', function () {
    const error = conformance.query(QUERY_RECORDS, [{ error: FWP_E_NOT_FOUND }]).error!;
    assert.equal(error.code, 'FWP_E_NOT_FOUND');
    assert.match(error.message, /WFP holds no such object for this socket: it was probably not redirected/);
  });

  it('a WFP HRESULT this package does not name: ERR_WFP_SYSTEM_ERROR, shown in hex and pointed at winerror.h', function () {
    const error = conformance.query(QUERY_CONTEXT, [{ error: 0x80320035 }]).error!;
    assert.equal(error.code, 'ERR_WFP_SYSTEM_ERROR');
    assert.equal(error.errno, 0x80320035);
    assert.match(error.message, /WFP error 0x80320035, .*FWP_E_\* codes/);
  });
});
