/**
 * What a worker logs for failed requests: every failure gets its own line (reqId, code,
 * message), and the same error's stack is formatted once per --log-stack-interval per
 * thread — repeats name the request whose line has it (0 = every stack). And a request
 * abandoned before its handler looked at request.signal still shows an aborted signal
 * (AbortError with the reason) when the handler looks later.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { type LogLine, startFerry } from '../helpers/proc.ts'
import { connect, head, request } from './client.ts'

const HANDLER = 'test/fixtures/handlers/errors.ts'

interface LoggedErr { type: string, message: string, stack: string, code?: string }

function errOf (l: LogLine): LoggedErr {
  return l.err as LoggedErr
}

test('the same error logs its stack once per interval; repeats keep type, message, code and name the request with the stack', async (t) => {
  const app = await startFerry(['app', HANDLER, '--listen', 'tcp://127.0.0.1:0', '--threads', '1', '--log-stack-interval', '60'])
  t.after(() => app.stop())
  const s = await connect(app.addresses[0]!)
  t.after(() => s.destroy())
  for (const id of ['a-1', 'a-2', 'a-3']) {
    const r = await request(s, head('/throw?msg=same&code=E_SAME', { requestId: id }))
    assert.equal(r.status, 500)
    assert.equal(r.get('x-ferry-error'), 'FERRY_ERR_APP_HANDLER_THREW')
  }
  const other = await request(s, head('/throw?msg=different', { requestId: 'b-1' }))
  assert.equal(other.status, 500)
  const lines = await Promise.all(['a-1', 'a-2', 'a-3', 'b-1'].map((id) => app.waitForLog((l) => l.reqId === id && l.code === 'FERRY_ERR_APP_HANDLER_THREW')))
  const [a1, a2, a3, b1] = lines.map(errOf) as [LoggedErr, LoggedErr, LoggedErr, LoggedErr]
  assert.match(a1.stack, /^Error: same\n\s+at raise \(.*errors\.ts/)
  assert.equal(a1.code, 'E_SAME')
  for (const e of [a2, a3]) {
    assert.equal(e.type, 'Error')
    assert.equal(e.message, 'same')
    assert.equal(e.code, 'E_SAME')
    assert.equal(e.stack, '(stack omitted: the same error was logged with its stack for request a-1 within --log-stack-interval)')
  }
  assert.match(b1.stack, /^Error: different\n\s+at raise/, 'another error has its own stack')
})

test('--log-stack-interval 0: every failure logs its stack', async (t) => {
  const app = await startFerry(['app', HANDLER, '--listen', 'tcp://127.0.0.1:0', '--threads', '1', '--log-stack-interval', '0'])
  t.after(() => app.stop())
  const s = await connect(app.addresses[0]!)
  t.after(() => s.destroy())
  for (const id of ['c-1', 'c-2']) assert.equal((await request(s, head('/throw?msg=again', { requestId: id }))).status, 500)
  for (const id of ['c-1', 'c-2']) {
    const line = await app.waitForLog((l) => l.reqId === id && l.code === 'FERRY_ERR_APP_HANDLER_THREW')
    assert.match(errOf(line).stack, /^Error: again\n\s+at raise/)
  }
})

test('a request abandoned (504) before its handler read request.signal: the signal it reads later is aborted, with an AbortError', async (t) => {
  const app = await startFerry(['app', HANDLER, '--listen', 'tcp://127.0.0.1:0', '--threads', '1', '--timeout', '0.3'])
  t.after(() => app.stop())
  const s = await connect(app.addresses[0]!)
  t.after(() => s.destroy())
  const r = await request(s, head('/late?ms=900', { requestId: 'late-1' }))
  assert.equal(r.status, 504)
  const line = await app.waitForLog((l) => l.reqId === 'late-1' && l.msg === 'late look at the signal', 5000)
  assert.equal(line.aborted, true)
  assert.equal(line.reason, 'AbortError')
  assert.equal(typeof line.reasonMessage, 'string')
})
