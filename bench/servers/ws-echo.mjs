// The WebSocket bench's ceiling: one process, the `ws` package's WebSocketServer echoing
// every message back as it came (binary stays binary), no per-message compression.
//   node ws-echo.mjs [port=0]
// Prints one JSON line {"msg":"listening","addresses":["tcp://127.0.0.1:PORT"]} once it accepts.
import { WebSocketServer } from 'ws'

const wss = new WebSocketServer({ host: '127.0.0.1', port: Number(process.argv[2] ?? 0), perMessageDeflate: false })
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }))
})
wss.on('listening', () => {
  const { port } = wss.address()
  console.log(JSON.stringify({ msg: 'listening', addresses: [`tcp://127.0.0.1:${port}`] }))
})
process.on('SIGTERM', () => {
  for (const ws of wss.clients) ws.terminate()
  wss.close(() => process.exit(0))
})
