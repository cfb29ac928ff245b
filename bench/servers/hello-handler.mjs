// The end-to-end bench's handler for `ferry app`: hello world, and POST /echo echoes the body.
// Plain JavaScript so no loader runs in the measured process.
export default {
  async fetch (request) {
    if (request.method === 'POST') {
      return new Response(await request.arrayBuffer(), { headers: { 'content-type': 'application/octet-stream' } })
    }
    return new Response('hello world', { headers: { 'content-type': 'text/plain;charset=UTF-8' } })
  }
}
