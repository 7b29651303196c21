"""An OpenTelemetry-instrumented producer of another language: publishes one JSON
message with pika inside a producer span, the span's W3C context in the AMQP headers
(OpenTelemetry's default propagator), and prints the span's trace and span ids.

    python3 otel_producer.py AMQP_URL EXCHANGE ROUTING_KEY
"""

import json
import sys

import pika
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import TracerProvider

url, exchange, routing_key = sys.argv[1:4]
trace.set_tracer_provider(TracerProvider())
tracer = trace.get_tracer("otel_producer")

connection = pika.BlockingConnection(pika.URLParameters(url))
channel = connection.channel()
with tracer.start_as_current_span(
    f"publish {routing_key}", kind=trace.SpanKind.PRODUCER
) as span:
    headers = {}
    propagate.inject(headers)
    channel.basic_publish(
        exchange,
        routing_key,
        json.dumps({"from": "python"}),
        pika.BasicProperties(headers=headers, content_type="application/json"),
    )
    context = span.get_span_context()
connection.close()
print(
    json.dumps(
        {
            "trace_id": format(context.trace_id, "032x"),
            "span_id": format(context.span_id, "016x"),
            "headers": headers,
        }
    )
)
