/**
 * What a worker thread loads. Every thread start (at boot, and at each --max-requests or
 * --max-uncaught recycle) pays for the modules the worker imports; the worker side imports
 * @ferry/protocol/core, so the session and its generated protobufjs code (≈ 9 ms of a start's
 * ≈ 70 ms measured) stay out of it. Checked in a real worker thread, as piscina starts one.
 */
import assert from 'node:assert/strict'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import { test } from 'node:test'

const WORKER = fileURLToPath(new URL('../../packages/app-server/dist/worker.js', import.meta.url))

/** Imports `file` in a fresh worker thread; returns the CommonJS modules it loaded. */
async function loadedBy (file: string): Promise<{ cjs: string[] }> {
  const code = `
    const { parentPort } = require('node:worker_threads')
    import(${JSON.stringify(file)}).then(() => {
      parentPort.postMessage({ cjs: Object.keys(require('node:module')._cache) })
    }, (err) => parentPort.postMessage({ error: String(err) }))`
  const w = new Worker(code, { eval: true })
  try {
    const msg = await new Promise<{ cjs: string[], error?: string }>((resolve, reject) => {
      w.once('message', resolve)
      w.once('error', reject)
    })
    assert.equal(msg.error, undefined)
    return msg
  } finally {
    await w.terminate()
  }
}

test('the worker module does not load protobufjs (the protocol session) when a thread starts', async () => {
  const { cjs } = await loadedBy(WORKER)
  assert.ok(cjs.some((p) => p.includes('/pino/')), 'pino is loaded (the worker logs with it): the check sees CommonJS modules')
  assert.deepEqual(cjs.filter((p) => p.includes('protobufjs')), [])
})

test('the protocol index does load protobufjs (so the test above can fail)', async () => {
  const { cjs } = await loadedBy(fileURLToPath(new URL('../../packages/protocol/dist/index.js', import.meta.url)))
  assert.ok(cjs.some((p) => p.includes('protobufjs')))
})
