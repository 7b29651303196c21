"""Inthe.AM's side of the Redis bus, as Inthe.AM writes it with redis-py.

Publishes a changed task and a sync with changes for a user, exactly as Inthe.AM
does (json.dumps to '<kind>.<username>'), then prints the local_sync message the
sync listener answers with.

Usage: intheam_client.py PORT USERNAME
"""
import json
import sys
import time

import redis

port, username = int(sys.argv[1]), sys.argv[2]
client = redis.Redis(host="127.0.0.1", port=port)
listener = client.pubsub()
listener.subscribe(f"local_sync.{username}")
# Wait for the subscribe confirmation, so the answer cannot be missed.
while listener.get_message(timeout=5) is None:
    pass

client.publish(f"changed_task.{username}", json.dumps({
    "username": username,
    "start": "2d4f9c1",
    "head": "8e1b7a0",
    "task_id": "0b7c1ee0-0c8b-4f3f-9a3e-3b1d2a4c5e6f",
    "task_data": {"description": "Buy milk", "status": "pending", "urgency": 1.8},
}))
client.publish(f"sync.{username}", json.dumps({
    "action": "sync", "username": username, "org": "inthe_am",
    "client": "taskwarrior 2.6.2", "ip": "127.0.0.1", "port": 53589,
    "client_key": "6a8e0a61", "record_count": 12, "branch_point": "2d4f9c1",
    "branch_record_count": 10, "delta_count": 1, "stored_count": 1,
    "merged_count": 0, "service_duration": 0.031,
}))

deadline = time.monotonic() + 10
while time.monotonic() < deadline:
    message = listener.get_message(timeout=1)
    if message and message["type"] == "message":
        print(message["data"].decode())
        sys.exit(0)
sys.exit("no local_sync within 10 s")
