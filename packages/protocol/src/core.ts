/**
 * The part of the protocol a worker thread needs (constants, coded errors, WebSocket records),
 * without the session (which loads protobufjs's generated code) or node:crypto and node:http:
 * a worker thread imports this, not the index, so a thread start — at boot, and at every
 * --max-requests / --max-uncaught recycle — does not compile modules it never runs. The
 * index re-exports the same modules, so their classes are the same (instanceof holds).
 */
export * from './constants.js'
export * from './errors.js'
export * from './int-table.js'
export * from './ws-record.js'
