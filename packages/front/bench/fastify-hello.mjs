import Fastify from 'fastify'
const app = Fastify()
app.get('/', (_req, reply) => { reply.send('hello world') })
await app.listen({ host: '127.0.0.1', port: Number(process.argv[2] ?? 0) })
console.log(JSON.stringify({ msg: 'listening', addresses: [`tcp://127.0.0.1:${app.server.address().port}`] }))
