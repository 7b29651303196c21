// An OpenPaaS ESN node's AMQP side, written from the contract sheet
// (shared/contracts/esn.md): amqplib with the calls and options ESN makes.
//
//   node esn.js receive URL CHANNEL      point-to-point receiver on queue CHANNEL
//   node esn.js subscribe URL TOPIC N    global subscriber: prints N bodies, exits
//   node esn.js publish URL TOPIC JSON   global (and point-to-point) publish
//
// `receive` and `subscribe` print "ready" once consuming, then one line per message
// (its JSON body, re-serialised). `receive` runs until its standard input closes.
// Any channel or connection error ends the script with status 1: a second ack of
// one delivery, or a declare the broker refuses, shows as a failure.
'use strict';

const amqp = require('amqplib');

const [role, url, name, extra] = process.argv.slice(2);

function fail(what) {
  return (error) => {
    console.error(`${what}: ${error && error.message ? error.message : error}`);
    process.exit(1);
  };
}

async function open(confirm) {
  const connection = await amqp.connect(url);
  connection.on('error', fail('connection error'));
  const channel = confirm ? await connection.createConfirmChannel() : await connection.createChannel();
  channel.on('error', fail('channel error'));
  return { connection, channel };
}

// backend/core/amqp/client.js: JSON.parse the body, run the handler, then ack once
// (after the promise it returns resolves).
function consumer(channel, handler) {
  return (message) => {
    const data = JSON.parse(message.content.toString());
    Promise.resolve(handler(data)).then(() => channel.ack(message));
  };
}

async function receive() {
  const { connection, channel } = await open(false);
  // pubsubclient.js / constants.js: fanout exchange with amqplib's defaults, queue
  // named after the channel, durable, not exclusive, not auto-delete, no arguments.
  await channel.assertExchange(name, 'fanout');
  await channel.assertQueue(name, { exclusive: false, durable: true, autoDelete: false });
  await channel.bindQueue(name, name);
  await channel.consume(name, consumer(channel, (data) => console.log(JSON.stringify(data))), { noAck: false });
  console.log('ready');
  process.stdin.resume();
  process.stdin.on('end', async () => {
    await channel.close();
    await connection.close();
    process.exit(0);
  });
}

async function subscribe() {
  const { connection, channel } = await open(false);
  let left = Number(extra);
  await channel.assertExchange(name, 'fanout');
  // constants.js: a server-named queue, exclusive, not durable, auto-delete.
  const { queue } = await channel.assertQueue(undefined, { exclusive: true, durable: false, autoDelete: true });
  await channel.bindQueue(queue, name);
  await channel.consume(queue, consumer(channel, async (data) => {
    console.log(JSON.stringify(data));
    left -= 1;
    if (left === 0) {
      setImmediate(async () => {
        await connection.close();
        process.exit(0);
      });
    }
  }), { noAck: false });
  console.log('ready');
}

async function publish() {
  // amqp-connection-manager publishes on a confirm channel; waiting for the confirm
  // here only makes sure the message left before the connection closes.
  const { connection, channel } = await open(true);
  await channel.assertExchange(name, 'fanout');
  channel.publish(name, '', Buffer.from(JSON.stringify(JSON.parse(extra))));
  await channel.waitForConfirms();
  await connection.close();
}

const roles = { receive, subscribe, publish };
if (!roles[role]) {
  fail('usage')(`unknown role ${role}`);
}
roles[role]().catch(fail(role));
