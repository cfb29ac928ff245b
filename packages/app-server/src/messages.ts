/**
 * The messages between the main thread and a worker loop, on one MessagePort per worker.
 * Each side sends ONE postMessage per event-loop turn: an array of ops (tuples below), with
 * body bytes as transferred ArrayBuffers. Plain arrays, not objects: cheaper to clone.
 *
 * Each main → worker message is [batchSeq, ...ops]. Which requests a worker has started is
 * not a message: the loop bumps a counter in a SharedArrayBuffer before it runs each one, so
 * the main thread knows exactly which requests a dead or stuck thread never began.
 *
 * main → worker
 *   [REQ, rid, method, scheme, authority, path, headers, remoteAddress, remotePort, requestId, bodyLength]
 *       bodyLength: 0 no body, N exact, -1 streamed
 *   [..., bodyLength, scriptName, originalPath] for a mount below '/': path is then the path
 *       with the mount prefix (scriptName) removed, originalPath the path as the client sent it
 *   [REQ_WS, ...as REQ]        a WebSocket upgrade request this node may accept (native, under
 *       --max-websockets): context.upgradeWebSocket() works for it (docs/protocol.md §7.1)
 *   [BODY, rid, ArrayBuffer]   request body bytes
 *   [BODY_END, rid]            request body complete
 *   [CANCEL, rid]              client went away / timed out: abort request.signal, stop the body
 *   [CREDIT, rid, n]           n more response-body bytes may be sent (flow control)
 *   [PING, seq]                heartbeat (the worker's event loop answers)
 *   [WS_CLOSE, rid, code, reason]  close this request's WebSocket (node shutting down: 1001)
 *   [STOP]                     finish in-flight requests, then end the loop task
 *
 * worker → main
 *   [READY, threadId]
 *   [HEAD, rid, status, headers, bodyLength, body|null, end]   body: the whole body when known
 *   [CHUNK, rid, Uint8Array]   a response body chunk
 *   [END, rid]                 response complete
 *   [CONSUMED, rid, n]         the handler took n request-body bytes: return credit upstream
 *   [FAIL, rid, status, code, message]  the request failed after or before its head
 *   [UNCAUGHT, rid]            an uncaught exception / unhandled rejection was attributed to
 *                              this request (its 500 or FAIL follows unless it was answered);
 *                              the thread lives on, the pool counts it (--max-uncaught)
 *   [PONG, seq]
 */
export const Op = {
  // main → worker
  REQ: 1,
  BODY: 2,
  BODY_END: 3,
  CANCEL: 4,
  CREDIT: 5,
  PING: 6,
  STOP: 7,
  REQ_WS: 8,
  WS_CLOSE: 9,
  // worker → main
  READY: 10,
  HEAD: 12,
  CHUNK: 13,
  END: 14,
  CONSUMED: 15,
  FAIL: 16,
  PONG: 17,
  UNCAUGHT: 18
} as const

/** Response-body bytes a worker may send before it waits for CREDIT. */
export const RESPONSE_WINDOW = 256 * 1024

/** What a loop task needs (passed through piscina, or directly for --threads 0). */
import type { MiddlewareSpec } from './mounts.js'

export interface LoopOptions {
  /** file: URL of the handler module (with a cache-busting query after a reload). */
  handlerUrl: string
  /** Middleware around the handler, outermost first. */
  middleware: MiddlewareSpec[]
  logLevel: string
  /** ms: the same error logs its stack once per interval per thread (error-log.ts); 0 = always. */
  logStackInterval: number
  generation: number
  /** Largest WebSocket message the handler receives, bytes (close 1009 past it). */
  wsMaxMessage: number
  /**
   * --max-uncaught: > 0 attributes uncaught exceptions to their request (the thread lives);
   * 0 leaves them fatal to the thread (Node's default).
   */
  maxUncaught: number
}

/** The minimal port both a MessagePort and the inline pair implement. */
export interface Port {
  postMessage (value: unknown, transfer?: readonly ArrayBuffer[]): void
  on (event: 'message', listener: (value: unknown[]) => void): void
  close (): void
}
