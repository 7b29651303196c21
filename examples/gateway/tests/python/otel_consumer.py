"""An OpenTelemetry-instrumented consumer of another language: binds a queue of its
own with pika, prints "ready", takes one message, continues the W3C context in its
AMQP headers (OpenTelemetry's default propagator) in a consumer span, and prints that
span's trace id and its parent's span id.

    python3 otel_consumer.py AMQP_URL EXCHANGE ROUTING_KEY
"""

import json
import sys

import pika
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import TracerProvider

url, exchange, routing_key = sys.argv[1:4]
trace.set_tracer_provider(TracerProvider())
tracer = trace.get_tracer("otel_consumer")

connection = pika.BlockingConnection(pika.URLParameters(url))
channel = connection.channel()
channel.exchange_declare(exchange, exchange_type="topic", durable=True)
queue = channel.queue_declare(queue="", exclusive=True).method.queue
channel.queue_bind(queue, exchange, routing_key)
print("ready", flush=True)

for _method, properties, body in channel.consume(queue, auto_ack=True):
    carrier = {
        key: value.decode() if isinstance(value, bytes) else value
        for key, value in (properties.headers or {}).items()
    }
    context = propagate.extract(carrier)
    parent = trace.get_current_span(context).get_span_context()
    with tracer.start_as_current_span(
        f"process {routing_key}", context=context, kind=trace.SpanKind.CONSUMER
    ) as span:
        ours = span.get_span_context()
    print(
        json.dumps(
            {
                "trace_id": format(ours.trace_id, "032x"),
                "parent_span_id": format(parent.span_id, "016x"),
                "body": body.decode(),
            }
        ),
        flush=True,
    )
    break
connection.close()
