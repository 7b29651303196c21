// The gateway demo: connect with a token over WebSocket or SSE, bind, and show every
// frame as it arrives. Both transports carry the same JSON frames. Its binds ask for
// an answer ("ack": true), which brainlife's own pages never do.
"use strict";

const $ = (id) => document.getElementById(id);
const query = new URLSearchParams(location.search);
if (query.get("jwt")) $("token").value = query.get("jwt");

let socket = null; // the WebSocket, when that is the transport
let stream = null; // the EventSource, when SSE is
const sseBinds = []; // SSE takes its binds at connect time, so they are kept here

function token() {
  return $("token").value.trim();
}

function setStatus(text) {
  $("status").textContent = text;
}

function log(kind, text) {
  const item = document.createElement("li");
  item.className = kind;
  item.textContent = text;
  $("log").prepend(item);
}

function show(frame) {
  if (frame.dinfo) {
    const where = frame.dinfo.exchange + ":" + frame.dinfo.routingKey;
    log("message", where + " " + JSON.stringify(frame.msg));
  } else if (frame.bound) {
    log("bound", "bound " + frame.bound.ex + ":" + frame.bound.key);
    setStatus("bound " + frame.bound.ex + ":" + frame.bound.key);
  } else if (frame.error) {
    const bind = frame.bind ? " (" + frame.bind.ex + ":" + frame.bind.key + ")" : "";
    const reason = frame.reason ? " (" + frame.reason + ")" : "";
    log("error", "error " + frame.code + ": " + frame.error + reason + bind);
  } else if (frame.lagged) {
    log("lagged", "lagged: " + frame.lagged.missed + " messages were dropped");
  } else if (frame.gap) {
    log("gap", "gap: " + frame.gap.reason);
  }
}

function disconnect() {
  if (socket) socket.close();
  if (stream) stream.close();
  socket = stream = null;
}

function connectWebSocket() {
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  socket = new WebSocket(scheme + location.host + "/subscribe?jwt=" + encodeURIComponent(token()));
  socket.onopen = () => setStatus("connected");
  socket.onmessage = (event) => show(JSON.parse(event.data));
  socket.onclose = (event) => {
    setStatus("closed");
    log("closed", "closed " + event.code + (event.reason ? ": " + event.reason : ""));
  };
}

function connectEvents() {
  if (sseBinds.length === 0) {
    setStatus("SSE: bind first, the stream opens with its binds");
    return;
  }
  const binds = sseBinds.map((b) => "&bind=" + encodeURIComponent(b.ex + ":" + b.key)).join("");
  stream = new EventSource("/events?jwt=" + encodeURIComponent(token()) + binds);
  stream.onopen = () => setStatus("connected (SSE)");
  stream.onmessage = (event) => show(JSON.parse(event.data));
  // EventSource cannot read the HTTP status: a refused token shows as an error.
  stream.onerror = () => setStatus("SSE error: token refused or connection lost");
}

$("connect").onclick = () => {
  disconnect();
  if ($("transport").value === "ws") connectWebSocket();
  else connectEvents();
};

$("bind").onclick = () => {
  const bind = { ex: $("ex").value.trim(), key: $("key").value.trim() };
  if ($("transport").value === "ws") {
    if (!socket || socket.readyState !== WebSocket.OPEN) {
      setStatus("connect first");
      return;
    }
    socket.send(JSON.stringify({ bind, ack: true }));
  } else {
    sseBinds.push(bind);
    disconnect();
    connectEvents();
  }
};

$("publish").onclick = async () => {
  let msg;
  try {
    msg = JSON.parse($("pub-msg").value);
  } catch (e) {
    log("error", "the message is not JSON: " + e.message);
    return;
  }
  const body = { ex: $("pub-ex").value.trim(), key: $("pub-key").value.trim(), msg };
  const response = await fetch("/publish?jwt=" + encodeURIComponent(token()), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!response.ok) log("error", "publish: HTTP " + response.status + " " + (await response.text()));
};
