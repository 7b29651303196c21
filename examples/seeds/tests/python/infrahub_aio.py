"""Infrahub 1.4.13's RabbitMQ adapter, as the contract sheet infrahub.md describes it,
on aio-pika (the client Infrahub uses).

    infrahub_aio.py URL declare            the API server's topology; prints "declared"
    infrahub_aio.py URL rpc MESSAGE        send.echo.request as rpc() sends it; prints the
                                           reply as JSON
    infrahub_aio.py URL publish KEY BODY   a publish() of BODY (JSON) with key KEY
    infrahub_aio.py URL agent              a git agent on infrahub.rpcs: prints "ready",
                                           then one JSON line per message, until stdin ends
    infrahub_aio.py URL retry KEY BODY     a retry of BODY as Infrahub's worker sends it: to
                                           infrahub.delayed, header delay = 5000
    infrahub_aio.py URL spy                a queue of its own on infrahub.delayed, bound as
                                           the five-second queue is: prints "ready", then
                                           one JSON line per retry seen, until stdin ends

Every wait is bounded (PATIENCE seconds).
"""

import asyncio
import json
import sys
import uuid

import aio_pika

PATIENCE = 10
PATTERNS = ["check.*.*", "event.*.*", "finalize.*.*", "git.*.*", "refresh.webhook.*",
            "request.*.*", "send.*.*", "schema.*.*", "transform.*.*", "trigger.*.*"]
PRIORITY = {"git.file.get": 4, "send.echo.request": 5}


def encode(body):
    return json.dumps(body, separators=(",", ":")).encode()


def message(body, key, **properties):
    """A message as Infrahub's publish() makes it (rabbitmq.py:253-265)."""
    return aio_pika.Message(body=encode(body), content_type="application/json",
                            content_encoding="utf-8", priority=PRIORITY.get(key, 3),
                            delivery_mode=aio_pika.DeliveryMode.NOT_PERSISTENT, **properties)


async def declare_api_server(channel):
    """The API server's declarations (rabbitmq.py:156-187)."""
    events = await channel.declare_exchange("infrahub.events", aio_pika.ExchangeType.TOPIC,
                                            durable=True)
    dlx = await channel.declare_exchange("infrahub.dlx", aio_pika.ExchangeType.TOPIC, durable=True)
    rpcs = await channel.declare_queue("infrahub.rpcs", durable=True,
                                       arguments={"x-max-priority": 5})
    for pattern in PATTERNS:
        await rpcs.bind(events, pattern)
        await rpcs.bind(dlx, pattern)
    delayed = await channel.declare_exchange("infrahub.delayed", aio_pika.ExchangeType.HEADERS,
                                             durable=True)
    for name, ttl in (("five", 5000), ("ten", 10000), ("twenty", 20000)):
        queue = await channel.declare_queue(
            f"infrahub.delay.{name}_seconds", durable=True,
            arguments={"x-dead-letter-exchange": "infrahub.dlx", "x-message-ttl": ttl,
                       "x-max-priority": 5})
        await queue.bind(delayed, arguments={"x-match": "all", "delay": ttl})
    return events


async def rpc(channel, text):
    events = await declare_api_server(channel)
    callback = await channel.declare_queue(f"api-callback-{uuid.uuid4()}", exclusive=True)
    correlation_id = str(uuid.uuid4())
    reply = asyncio.get_running_loop().create_future()

    async def on_reply(delivery):
        # Infrahub matches by the AMQP property only (rabbitmq.py:122-127).
        if delivery.correlation_id == correlation_id and not reply.done():
            reply.set_result(delivery)

    await callback.consume(on_reply, no_ack=True)
    body = {"meta": {"request_id": "", "correlation_id": correlation_id,
                     "reply_to": callback.name}, "message": text}
    await events.publish(message(body, "send.echo.request", correlation_id=correlation_id,
                                 reply_to=callback.name, headers={}),
                         routing_key="send.echo.request")
    delivery = await asyncio.wait_for(reply, PATIENCE)
    print(json.dumps({"exchange": delivery.exchange, "routing_key": delivery.routing_key,
                      "callback": callback.name, "body": json.loads(delivery.body)}))


async def agent(connection, channel):
    """A git agent (rabbitmq.py:196-216): the rest of the topology must exist."""
    await channel.declare_exchange("infrahub.events", aio_pika.ExchangeType.TOPIC, durable=True)
    await channel.get_exchange("infrahub.delayed")
    work = await connection.channel()
    await work.set_qos(prefetch_count=2)
    queue = await work.get_queue("infrahub.rpcs")

    async def on_message(delivery):
        async with delivery.process():
            key = delivery.routing_key
            body = json.loads(delivery.body)
            meta = body.get("meta") or {}
            print(json.dumps({"handled": key, "priority": delivery.priority,
                              "content_type": delivery.content_type, "body": body}), flush=True)
            # The responder reads only the body's meta (__init__.py:76-80).
            if not meta.get("reply_to"):
                return
            data = {"response": f"Reply to: {body.get('message')}"}
            response = {"meta": {"request_id": "", "correlation_id": meta.get("correlation_id")},
                        "passed": True, "routing_key": key, "data": data, "errors": []}
            reply = message(response, "", correlation_id=meta.get("correlation_id"), headers={})
            await channel.default_exchange.publish(reply, routing_key=meta["reply_to"])

    await queue.consume(on_message)
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


async def spy(channel):
    """Sees every five-second retry: bound to infrahub.delayed as Infrahub binds its
    delay queue (rabbitmq.py:184-187), so a retry reaches it only with a `delay`
    header RabbitMQ matches to the integer 5000."""
    delayed = await channel.get_exchange("infrahub.delayed")
    queue = await channel.declare_queue("", exclusive=True)
    await queue.bind(delayed, arguments={"x-match": "all", "delay": 5000})

    async def on_message(delivery):
        headers = {k: v for k, v in delivery.headers.items() if k != "x-death"}
        print(json.dumps({"routing_key": delivery.routing_key, "priority": delivery.priority,
                          "headers": headers, "body": json.loads(delivery.body)}), flush=True)

    await queue.consume(on_message, no_ack=True)
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


async def main(url, mode, *args):
    connection = await asyncio.wait_for(aio_pika.connect(url), PATIENCE)
    async with connection:
        channel = await connection.channel()
        if mode == "declare":
            await declare_api_server(channel)
            print("declared")
        elif mode == "rpc":
            await rpc(channel, args[0])
        elif mode == "publish":
            key, body = args
            events = await channel.declare_exchange("infrahub.events",
                                                    aio_pika.ExchangeType.TOPIC, durable=True)
            # Trace context, as the OpenTelemetry instrumentation adds it.
            headers = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
            await events.publish(message(json.loads(body), key, headers=headers), routing_key=key)
            print("published")
        elif mode == "retry":
            key, body = args
            # rabbitmq.py:228-230: the retry goes to the delayed exchange, key kept.
            delayed = await channel.get_exchange("infrahub.delayed")
            await delayed.publish(message(json.loads(body), key, headers={"delay": 5000}),
                                  routing_key=key)
            print("published")
        elif mode == "agent":
            await agent(connection, channel)
        elif mode == "spy":
            await spy(channel)
        else:
            sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
