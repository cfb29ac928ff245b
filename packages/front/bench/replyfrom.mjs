import Fastify from 'fastify'
import replyFrom from '@fastify/reply-from'
const app = Fastify()
await app.register(replyFrom, { base: process.argv[2] })
app.get('/*', (req, reply) => { reply.from(req.url) })
await app.listen({ host: '127.0.0.1', port: 0 })
console.log(JSON.stringify({ msg: 'listening', addresses: [`tcp://127.0.0.1:${app.server.address().port}`] }))
