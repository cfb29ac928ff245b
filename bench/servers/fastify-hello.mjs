// fastify serving the bench's hello world (and POST /echo) directly: the ceiling for one
// Node tier, and the upstream of the reply-from baseline.
//   node fastify-hello.mjs <port|unix-socket-path>
// Prints one JSON line {"msg":"listening","addresses":[…]} once it accepts connections.
import Fastify from 'fastify'

const app = Fastify({ logger: false, bodyLimit: 16 * 1024 * 1024 })
app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body))
app.get('/*', (_req, reply) => {
  reply.header('content-type', 'text/plain;charset=UTF-8').send('hello world')
})
app.post('/*', (req, reply) => {
  reply.header('content-type', 'application/octet-stream').send(req.body)
})

const where = process.argv[2] ?? '0'
const address = /^\d+$/.test(where)
  ? await app.listen({ host: '127.0.0.1', port: Number(where) })
  : await app.listen({ path: where })
console.log(JSON.stringify({ msg: 'listening', addresses: [address.startsWith('http') ? address.replace('http://', 'tcp://') : `unix:${where}`] }))
process.on('SIGTERM', () => { app.close().then(() => process.exit(0)) })
