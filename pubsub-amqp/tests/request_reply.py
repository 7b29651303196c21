"""pika's part in tests/request_reply.rs: request/reply as every AMQP client does it.

    request_reply.py URL respond EXCHANGE KEY COUNT
        Answers COUNT requests sent to KEY on EXCHANGE (a durable topic exchange), the
        standard way: to the default exchange, routing key = the request's reply_to,
        with its correlation_id, a body {"echo": TEXT}. A request's JSON body is
        {"text": TEXT, "hold": bool, "times": n}: a held request is answered (late)
        just before the next one; the others n times (default 1). Prints "ready" once
        listening, then each request's reply_to.
    request_reply.py URL request EXCHANGE KEY TEXT
        Sends TEXT to KEY with reply_to = its own exclusive queue api-callback-<uuid>
        and a correlation_id, and waits up to 20 s for the reply. Prints whether the
        reply's correlation_id is the request's, then the reply's body.
"""
import json
import sys
import uuid

import pika

url, command, args = sys.argv[1], sys.argv[2], sys.argv[3:]
conn = pika.BlockingConnection(pika.URLParameters(url))
ch = conn.channel()


def reply(props, text):
    answer = pika.BasicProperties(correlation_id=props.correlation_id)
    body = json.dumps({"echo": text})
    ch.basic_publish(exchange="", routing_key=props.reply_to, properties=answer, body=body)


if command == "respond":
    exchange, key, count = args[0], args[1], int(args[2])
    ch.exchange_declare(exchange=exchange, exchange_type="topic", durable=True)
    queue = ch.queue_declare(queue="", exclusive=True).method.queue
    ch.queue_bind(queue=queue, exchange=exchange, routing_key=key)
    print("ready", flush=True)
    held = []
    for method, props, body in ch.consume(queue, auto_ack=True, inactivity_timeout=30):
        if method is None:
            sys.exit("no request came within 30 s")
        print(props.reply_to, flush=True)
        request = json.loads(body)
        for late_props, late_text in held:
            reply(late_props, late_text)
        held.clear()
        if request.get("hold"):
            held.append((props, request["text"]))
        else:
            for _ in range(request.get("times", 1)):
                reply(props, request["text"])
        count -= 1
        if count == 0:
            break
elif command == "request":
    exchange, key, text = args
    callback = f"api-callback-{uuid.uuid4()}"
    ch.queue_declare(queue=callback, exclusive=True)
    correlation_id = str(uuid.uuid4())
    props = pika.BasicProperties(reply_to=callback, correlation_id=correlation_id)
    ch.basic_publish(exchange=exchange, routing_key=key, properties=props, body=json.dumps(text))
    for method, props, body in ch.consume(callback, auto_ack=True, inactivity_timeout=20):
        if method is None:
            sys.exit("no reply within 20 s")
        print(props.correlation_id == correlation_id)
        print(body.decode())
        break
else:
    sys.exit(f"unknown command {command}")
conn.close()
