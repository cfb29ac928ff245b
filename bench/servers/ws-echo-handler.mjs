// The WebSocket bench's handler for `ferry app`: every path upgrades and echoes each message
// back as it came (ArrayBuffer stays binary, string stays text). Plain JavaScript so no
// loader runs in the measured process.
export default {
  fetch (request, context) {
    const { socket, response } = context.upgradeWebSocket(request)
    socket.onmessage = (e) => socket.send(e.data)
    return response
  }
}
