// MQTT.js from Node against a running tern: one client over WebSocket
// (MQTT 5.0), one over plain TCP (3.1.1), each subscribed to what the other
// publishes at QoS 1. Prints one JSON line of what each received; exits
// non-zero on an error or after 10 s. Run by tests/it/ws_js.rs:
//   node node_clients.mjs ws://127.0.0.1:PORT/mqtt mqtt://127.0.0.1:PORT
import mqtt from "mqtt";

const [wsUrl, tcpUrl] = process.argv.slice(2);
const timer = setTimeout(() => fail("timed out after 10 s"), 10_000);

function fail(why) {
  console.error(`node_clients: ${why}`);
  process.exit(1);
}

function connect(url, clientId, protocolVersion) {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(url, { clientId, protocolVersion, reconnectPeriod: 0 });
    client.once("connect", () => resolve(client));
    client.once("error", reject);
    client.once("close", () => reject(new Error(`${clientId} closed before CONNACK`)));
  });
}

function firstMessage(client) {
  return new Promise((resolve) =>
    client.once("message", (topic, payload) => resolve({ topic, payload: payload.toString() })),
  );
}

try {
  const web = await connect(wsUrl, "node-ws", 5);
  const tcp = await connect(tcpUrl, "node-tcp", 4);
  await web.subscribeAsync("to-ws/#", { qos: 1 });
  await tcp.subscribeAsync("to-tcp/#", { qos: 1 });
  const webGot = firstMessage(web);
  const tcpGot = firstMessage(tcp);
  // A payload larger than one WebSocket message of the broker's.
  await tcp.publishAsync("to-ws/big", "w".repeat(40_000), { qos: 1 });
  await web.publishAsync("to-tcp/hello", "from the websocket", { qos: 1 });
  const received = { ws: await webGot, tcp: await tcpGot };
  received.ws.payload = `${received.ws.payload.length} x ${received.ws.payload[0]}`;
  await web.endAsync();
  await tcp.endAsync();
  clearTimeout(timer);
  console.log(JSON.stringify(received));
} catch (error) {
  fail(error.message ?? String(error));
}
