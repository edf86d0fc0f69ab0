// MQTT.js from Node reading the topic aliases tern sets: a 5.0 client that
// allows 2 gets 8 messages over 3 topics, published in turn by a second
// client at QoS 1. Prints one JSON line: each message's topic as MQTT.js
// resolved it, its payload, and the Topic Alias it came with. Run by
// tests/it/ws_js.rs:
//   node topic_aliases.mjs mqtt://127.0.0.1:PORT
import mqtt from "mqtt";

const [url] = process.argv.slice(2);
const timer = setTimeout(() => fail("timed out after 10 s"), 10_000);
const TOPICS = ["alias/alpha", "alias/bravo", "alias/alpha", "alias/bravo",
  "alias/charlie", "alias/alpha", "alias/charlie", "alias/charlie"];

function fail(why) {
  console.error(`topic_aliases: ${why}`);
  process.exit(1);
}

function connect(clientId, properties) {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(url, { clientId, protocolVersion: 5, properties, reconnectPeriod: 0 });
    client.once("connect", () => resolve(client));
    client.once("error", reject);
  });
}

try {
  const reader = await connect("node-alias-reader", { topicAliasMaximum: 2 });
  const writer = await connect("node-alias-writer", {});
  const got = [];
  const all = new Promise((resolve) =>
    reader.on("message", (topic, payload, packet) => {
      got.push([topic, payload.toString(), packet.properties?.topicAlias ?? null]);
      if (got.length === TOPICS.length) resolve();
    }),
  );
  await reader.subscribeAsync("alias/#", { qos: 0 });
  for (const [i, topic] of TOPICS.entries()) {
    await writer.publishAsync(topic, `m${i}`, { qos: 1 });
  }
  await all;
  await reader.endAsync();
  await writer.endAsync();
  clearTimeout(timer);
  console.log(JSON.stringify(got));
} catch (error) {
  fail(error.message ?? String(error));
}
