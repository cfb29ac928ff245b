/**
 * The demo handler for `ferry app examples/hello/app.ts`: a plain Web-standard fetch handler.
 * Routes answer with or without an `/api` prefix (`npm start` links the /api forms, so the
 * front's static index.html owns `/`):
 *   GET  /, /hello    JSON hello (with the worker thread that answered)
 *   POST /echo        streams the request body back as it arrives
 *   GET  /stream      server-sent events: ?n=5 ticks, one every ?every=200 ms
 *   GET  /slow?ms=500 answers after a delay
 *   GET  /ws          a WebSocket: echoes each message with the thread that answered
 */
interface Context {
  requestId: string
  threadId: number
  log: { info (obj: object, msg: string): void }
  upgradeWebSocket (request: Request): { socket: WebSocket, response: Response }
}

const encoder = new TextEncoder()

function sse (n: number, every: number, signal: AbortSignal): ReadableStream<Uint8Array> {
  let i = 0
  return new ReadableStream<Uint8Array>({
    async pull (controller) {
      if (i >= n || signal.aborted) {
        controller.close()
        return
      }
      if (i > 0) await new Promise((resolve) => setTimeout(resolve, every))
      controller.enqueue(encoder.encode(`id: ${i}\nevent: tick\ndata: ${JSON.stringify({ i, at: Date.now() })}\n\n`))
      i++
    }
  })
}

export default {
  async fetch (request: Request, context: Context): Promise<Response> {
    const url = new URL(request.url)
    const path = url.pathname.startsWith('/api/') || url.pathname === '/api' ? url.pathname.slice(4) || '/' : url.pathname
    switch (path) {
      case '/':
      case '/hello':
        return Response.json({ hello: 'ferry', thread: context.threadId, requestId: context.requestId })
      case '/echo':
        if (request.method !== 'POST') return new Response('POST a body to /echo\n', { status: 405, headers: { allow: 'POST' } })
        return new Response(request.body, { headers: { 'content-type': request.headers.get('content-type') ?? 'application/octet-stream' } })
      case '/stream':
        return new Response(sse(Number(url.searchParams.get('n') ?? 5), Number(url.searchParams.get('every') ?? 200), request.signal), {
          headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' }
        })
      case '/ws': {
        if (request.headers.get('upgrade')?.toLowerCase() !== 'websocket') return new Response('connect with a WebSocket client\n', { status: 426, headers: { upgrade: 'websocket' } })
        const { socket, response } = context.upgradeWebSocket(request)
        socket.onopen = () => socket.send(JSON.stringify({ hello: 'ferry', thread: context.threadId }))
        socket.onmessage = (e) => socket.send(JSON.stringify({ echo: e.data, thread: context.threadId }))
        return response
      }
      case '/slow': {
        const ms = Math.min(Number(url.searchParams.get('ms') ?? 500), 60000)
        await new Promise((resolve) => setTimeout(resolve, ms))
        return new Response(`slept ${ms} ms\n`)
      }
      default:
        return new Response('not found\n', { status: 404 })
    }
  }
}
