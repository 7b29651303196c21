"""Inthe.AM's two sides of our status stream, as Inthe.AM's own code does them.

The browser: an EventSource client (sseclient-py, which follows the HTML spec's
event-stream parsing) on GET /status/USERNAME. Inthe.AM's services: redis-py
publishing json.dumps bodies (and Taskd's indented ones) on '<kind>.<username>',
and reading the sync listener's local_sync as Inthe.AM's SSE server does.

Prints one JSON line per event the browser received, in order, then the local_sync
body redis-py read; exits non-zero if the events do not come within 10 s.

Usage: intheam_browser.py REDIS_PORT HTTP_ADDRESS USERNAME
"""
import json
import sys
import time

import redis
import sseclient
import urllib3

port, address, username = int(sys.argv[1]), sys.argv[2], sys.argv[3]
bus = redis.Redis(host="127.0.0.1", port=port)
answers = bus.pubsub()
answers.subscribe(f"local_sync.{username}")
while answers.get_message(timeout=5) is None:  # the subscribe confirmation
    pass

http = urllib3.PoolManager()
response = http.request(
    "GET", f"http://{address}/status/{username}", preload_content=False,
    headers={"Accept": "text/event-stream"}, timeout=urllib3.Timeout(connect=5, read=10),
)
assert response.status == 200, response.status
assert response.headers["Content-Type"] == "text/event-stream", response.headers
events = sseclient.SSEClient(response).events()
first = next(events)
assert (first.event, first.data) == ("heartbeat", ""), (first.event, first.data)

task_id = "0b7c1ee0-0c8b-4f3f-9a3e-3b1d2a4c5e6f"
# Someone else's channels first: nothing of them may reach this user's stream.
for other in (f"bob.{username}", f"{username}.jr"):
    bus.publish(f"personal.{other}", json.dumps({"title": "no", "message": "not yours", "username": other}))
bus.publish(f"changed_task.{username}", json.dumps({
    "username": username, "start": "2d4f9c1", "head": "8e1b7a0", "task_id": task_id,
    "task_data": {"description": "Buy milk", "status": "pending", "urgency": 1.8},
    "changes": {"description": [None, "Buy milk"]},
}))
bus.publish(f"log_message.{username}", json.dumps({
    "username": username, "md5hash": "d41d8cd9", "last_seen": None, "created": None,
    "error": True, "silent": False, "message": "Taskd refused the sync", "count": 1,
}))
bus.publish(f"personal.{username}", json.dumps({
    "title": "Trello", "message": "Synchronization completed successfully.", "username": username,
}))
# Taskd's sync: jsoncpp's indented output, from a remote client, with changes.
bus.publish(f"sync.{username}", json.dumps({
    "action": "sync", "username": username, "org": "inthe_am", "client": "taskwarrior 2.6.2",
    "ip": "203.0.113.7", "port": 53589, "client_key": "6a8e0a61", "record_count": 12,
    "branch_point": "6a8e0a61", "branch_record_count": 10, "delta_count": 1,
    "stored_count": 1, "merged_count": 0, "service_duration": 0.031,
}, indent=3))

wanted = {"task_changed", "error_logged", "personal_announcement", "local_sync", "head_changed"}
deadline = time.monotonic() + 10
for event in events:
    if event.event != "heartbeat":
        print(json.dumps({"event": event.event, "data": event.data}), flush=True)
        wanted.discard(event.event)
    if not wanted or time.monotonic() > deadline:
        break
if wanted:
    sys.exit(f"no {sorted(wanted)} within 10 s")
message = answers.get_message(timeout=5)
while message and message["type"] != "message":
    message = answers.get_message(timeout=5)
if not message:
    sys.exit("no local_sync read by redis-py")
print(json.dumps({"redis_py_read": json.loads(message["data"])}))
