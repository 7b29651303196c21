"""An Infrahub-style RPC from pika: send.echo.request with reply_to and
correlation_id on the topic exchange, the reply read from an exclusive queue.

Prints the reply's correlation id on one line and its body on the next.

Usage: pika_echo.py AMQP_URL EXCHANGE MESSAGE
"""
import json
import sys
import uuid

import pika

url, exchange, text = sys.argv[1], sys.argv[2], sys.argv[3]
connection = pika.BlockingConnection(pika.URLParameters(url))
channel = connection.channel()
callback = channel.queue_declare(queue="", exclusive=True).method.queue
# Replies are published on the bus's exchange with the reply queue as routing key.
channel.queue_bind(queue=callback, exchange=exchange, routing_key=callback)

correlation_id = str(uuid.uuid4())
channel.basic_publish(
    exchange=exchange,
    routing_key="send.echo.request",
    properties=pika.BasicProperties(
        reply_to=callback,
        correlation_id=correlation_id,
        priority=5,
        content_type="application/json",
    ),
    body=json.dumps({"meta": None, "message": text}),
)

for method, properties, body in channel.consume(callback, auto_ack=True, inactivity_timeout=10):
    if method is None:
        sys.exit("no reply within 10 s")
    print(properties.correlation_id == correlation_id)
    print(body.decode())
    break
connection.close()
