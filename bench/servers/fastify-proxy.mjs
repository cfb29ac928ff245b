// The HTTP-proxy baseline a Node user picks today: fastify + @fastify/reply-from forwarding
// every request to another fastify over tcp (keep-alive pool of undici).
//   node fastify-proxy.mjs <upstream-url>
import replyFrom from '@fastify/reply-from'
import Fastify from 'fastify'

const upstream = process.argv[2]
if (upstream === undefined) {
  console.error('usage: node fastify-proxy.mjs <upstream-url>')
  process.exit(2)
}
const app = Fastify({ logger: false, bodyLimit: 16 * 1024 * 1024 })
app.addContentTypeParser('*', (_req, payload, done) => done(null, payload))
await app.register(replyFrom, { base: upstream })
app.all('/*', (req, reply) => { reply.from(req.url) })

const address = await app.listen({ host: '127.0.0.1', port: 0 })
console.log(JSON.stringify({ msg: 'listening', addresses: [address.replace('http://', 'tcp://')] }))
process.on('SIGTERM', () => { app.close().then(() => process.exit(0)) })
