"""Publishes as brainlife's services do through node-amqp: a topic exchange declared
durable and not auto-deleted, the body JSON with content_type application/json and no
other property (no delivery mode, headers, timestamp or message id), and not
mandatory: a key nobody binds is dropped, as for node-amqp.

Usage: amaretti_publish.py AMQP_URL EXCHANGE ROUTING_KEY JSON_BODY [ROUTING_KEY JSON_BODY ...]
"""

import sys

import pika

url, exchange = sys.argv[1:3]
pairs = sys.argv[3:]
connection = pika.BlockingConnection(pika.URLParameters(url))
channel = connection.channel()
channel.exchange_declare(exchange, exchange_type="topic", durable=True, auto_delete=False)
channel.confirm_delivery()
for key, body in zip(pairs[0::2], pairs[1::2]):
    channel.basic_publish(
        exchange,
        key,
        body.encode(),
        pika.BasicProperties(content_type="application/json"),
    )
connection.close()
