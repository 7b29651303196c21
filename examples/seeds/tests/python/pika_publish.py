"""Publishes a JSON body with pika, as ESN's Node.js nodes and Amaretti do.

Usage: pika_publish.py AMQP_URL EXCHANGE ROUTING_KEY BODY
"""
import sys

import pika

url, exchange, routing_key, body = sys.argv[1:5]
connection = pika.BlockingConnection(pika.URLParameters(url))
channel = connection.channel()
channel.confirm_delivery()
channel.basic_publish(
    exchange=exchange,
    routing_key=routing_key,
    body=body.encode(),
    properties=pika.BasicProperties(content_type="application/json", delivery_mode=2),
    mandatory=True,
)
connection.close()
print("published")
