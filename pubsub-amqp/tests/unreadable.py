"""pika's part in tests/unreadable.rs: messages whose properties are not UTF-8, and a
queue that collects dead letters.

    unreadable.py URL publish EXCHANGE FIELD KEY=BODY...   (a BODY of poison carries
                                                             FIELD as bytes 0xff 0xfe)
    unreadable.py URL collect EXCHANGE KEY QUEUE            declare QUEUE bound to KEY
    unreadable.py URL drain QUEUE COUNT                     print COUNT bodies of QUEUE
                                                             (what comes within 20 s)
"""
import sys

import pika

url, command, args = sys.argv[1], sys.argv[2], sys.argv[3:]
conn = pika.BlockingConnection(pika.URLParameters(url))
ch = conn.channel()
# pika sends bytes as they are where a short string is due.
bad = b"\xff\xfe"
poisons = {
    "message_id": pika.BasicProperties(message_id=bad),
    "reply_to": pika.BasicProperties(reply_to=bad),
    "content_type": pika.BasicProperties(content_type=bad),
    "header_name": pika.BasicProperties(headers={bad: "value"}),
}
if command == "publish":
    exchange, field = args[0], args[1]
    for message in args[2:]:
        key, body = message.split("=", 1)
        properties = poisons[field] if body == "poison" else None
        ch.basic_publish(exchange=exchange, routing_key=key, body=body, properties=properties)
elif command == "collect":
    exchange, key, queue = args
    ch.exchange_declare(exchange=exchange, exchange_type="topic", durable=True)
    ch.queue_declare(queue=queue, auto_delete=False)
    ch.queue_bind(queue=queue, exchange=exchange, routing_key=key)
elif command == "drain":
    queue, count = args[0], int(args[1])
    for n, (method, _properties, body) in enumerate(
        ch.consume(queue, auto_ack=True, inactivity_timeout=20), start=1
    ):
        if method is None:
            break
        print(body.decode(), flush=True)
        if n == count:
            break
    ch.cancel()
    ch.queue_delete(queue=queue)
conn.close()
