/**
 * WebSocket records (docs/protocol.md §7.1): exact bytes, decoding whole / byte by byte /
 * at random splits, the limits (unknown opcode, control record over 125, message over the
 * maximum: each refused with its code as soon as the 5 header bytes are in), close payloads.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import {
  decodeWsClose, encodeWsClose, encodeWsRecord, type FerryError, isValidCloseCode, WsClose, WsOp, WsRecordDecoder, wsRecordHeader
} from '@ferry/protocol'
import { bytewise, splitAtWrapped } from '../helpers/chunks.ts'

function decodeAll (chunks: Buffer[], max = 1 << 20): Array<[number, string]> {
  const out: Array<[number, string]> = []
  const d = new WsRecordDecoder(max, (op, payload) => { out.push([op, Buffer.from(payload).toString('hex')]) })
  for (const c of chunks) d.push(c)
  assert.ok(d.idle, 'the decoder ends between records')
  return out
}

test('record bytes: opcode, u32 BE length, payload', () => {
  assert.equal(encodeWsRecord(WsOp.TEXT, 'hi').toString('hex'), '01000000026869')
  assert.equal(encodeWsRecord(WsOp.BINARY, Buffer.from([0xff])).toString('hex'), '0200000001ff')
  assert.equal(encodeWsRecord(WsOp.CLOSE).toString('hex'), '0800000000')
  assert.equal(encodeWsClose(4001, 'bye').toString('hex'), '08000000050fa1627965')
  assert.equal(wsRecordHeader(WsOp.BINARY, 70000).toString('hex'), '0200011170')
  assert.deepEqual(decodeWsClose(Buffer.from('0fa1627965', 'hex')), { code: 4001, reason: 'bye' })
  assert.deepEqual(decodeWsClose(Buffer.alloc(0)), { code: WsClose.NO_STATUS, reason: '' })
  // a close reason is cut to fit a control frame (125 bytes with the code)
  assert.equal(encodeWsClose(1000, 'x'.repeat(200)).length, 5 + 2 + 123)
})

test('close codes an endpoint may send', () => {
  for (const c of [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999]) assert.ok(isValidCloseCode(c), String(c))
  for (const c of [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000]) assert.ok(!isValidCloseCode(c), String(c))
})

test('a stream of records decodes the same whole, byte by byte, and at any split', () => {
  const records = [
    encodeWsRecord(WsOp.TEXT, 'hello'),
    encodeWsRecord(WsOp.BINARY, Buffer.alloc(0)),
    encodeWsRecord(WsOp.PING, 'p'),
    encodeWsRecord(WsOp.BINARY, Buffer.alloc(10000, 7)),
    encodeWsRecord(WsOp.PONG),
    encodeWsClose(1000, 'done')
  ]
  const all = Buffer.concat(records)
  const expected = decodeAll([all])
  assert.equal(expected.length, 6)
  assert.deepEqual(expected[0], [WsOp.TEXT, Buffer.from('hello').toString('hex')])
  assert.deepEqual(expected[3]![1].length, 20000)
  assert.deepEqual(decodeAll(bytewise(all)), expected)
  fc.assert(fc.property(fc.array(fc.nat(), { maxLength: 12 }), (cuts) => {
    assert.deepEqual(decodeAll(splitAtWrapped(all, cuts)), expected)
  }), { numRuns: 300 })
})

test('limits: unknown opcode, oversized control record, message past the maximum', () => {
  const cases: Array<[Buffer, string]> = [
    [Buffer.from('0300000000', 'hex'), 'FERRY_ERR_WS_RECORD'],
    [Buffer.from('0000000000', 'hex'), 'FERRY_ERR_WS_RECORD'],
    [Buffer.from('090000007e', 'hex'), 'FERRY_ERR_WS_RECORD'],
    [Buffer.from('0200000401', 'hex'), 'FERRY_ERR_WS_TOO_LARGE']
  ]
  for (const [bytes, code] of cases) {
    const d = new WsRecordDecoder(1024, () => assert.fail('no record'))
    // refused as soon as the header is complete: no payload byte is needed
    assert.throws(() => { for (const c of bytewise(bytes)) d.push(c) }, (e: FerryError) => e.code === code, bytes.toString('hex'))
  }
  // exactly the maximum is fine
  let got = 0
  new WsRecordDecoder(1024, (_op, p) => { got = p.length }).push(encodeWsRecord(WsOp.BINARY, Buffer.alloc(1024)))
  assert.equal(got, 1024)
})
