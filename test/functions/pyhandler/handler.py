"""A Lambda function in Python for esmd's invoker tests.

Run through AWS's runtime interface client (python -m awslambdaric
handler.handle) it proves esmd's Runtime API is AWS's. Run as a script it is
an exec function: the event on stdin, the response on stdout, and on failure
Lambda's error object on stdout and exit status 1.

What it does with an event is driven by its "esmdtest" command; the actions
mirror the Go test functions (package functions).
"""

import hashlib
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request

_lock = threading.Lock()
_inflight = 0
_max_inflight = 0


class HandlerError(Exception):
    """The error of the "error" action; its class name is the errorType."""


def _forward(event_bytes):
    """POST an event without a command to $ESMD_TEST_FORWARD (see the Go
    HandleWith): 200 gives the body as the response, anything else fails."""
    req = urllib.request.Request(os.environ["ESMD_TEST_FORWARD"], data=event_bytes,
                                 headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req) as resp:
            body = resp.read()
    except urllib.error.HTTPError as e:
        raise HandlerError("sink answered %d: %s" % (e.code, e.read().decode(errors="replace")))
    return json.loads(body) if body.strip() else {}


def _respond(event_bytes, cmd):
    global _inflight, _max_inflight
    do = cmd.get("do", "")
    if do == "" and os.environ.get("ESMD_TEST_FORWARD"):
        return _forward(event_bytes)
    if do == "":
        do = "ok"
    ms = cmd.get("ms", 0)
    if do == "ok":
        return {}
    if do == "sleep":
        time.sleep(ms / 1000.0)
        return {"slept": ms}
    if do == "error":
        raise HandlerError(cmd.get("message", ""))
    if do == "panic":
        raise RuntimeError(cmd.get("message", ""))
    if do == "exit":
        sys.stdout.flush()
        os._exit(3)
    if do == "partial":
        return cmd.get("response")
    if do == "size":
        return {"bytes": len(event_bytes), "sha256": hashlib.sha256(event_bytes).hexdigest()}
    if do == "pid":
        with _lock:
            _inflight += 1
            _max_inflight = max(_max_inflight, _inflight)
        start = time.time_ns()
        time.sleep(ms / 1000.0)
        end = time.time_ns()
        with _lock:
            _inflight -= 1
        return {"pid": os.getpid(), "inflight": _max_inflight, "start": start, "end": end}
    if do == "env":
        env = {k: v for k, v in os.environ.items()
               if k.startswith(("AWS_", "LAMBDA_", "ESMD_TEST_")) or k == "_HANDLER"}
        env["cwd"] = os.getcwd()
        return {"env": env}
    if do == "log":
        print(cmd.get("message", ""), flush=True)
        print(cmd.get("message", ""), file=sys.stderr, flush=True)
        return {}
    raise ValueError("unknown action %r" % do)


def handle(event, context):
    """The Lambda handler: awslambdaric passes the decoded event."""
    # awslambdaric gives only the decoded event: re-encode it compactly, in
    # its key order, which is how Go built the test's events.
    raw = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
    return _respond(raw, event.get("esmdtest") or {})


def main():
    raw = sys.stdin.buffer.read()
    try:
        event = json.loads(raw)
        out = _respond(raw, event.get("esmdtest") or {})
    except Exception as e:  # reported as Lambda's error object
        json.dump({"errorType": type(e).__name__, "errorMessage": str(e)}, sys.stdout)
        print(type(e).__name__ + ": " + str(e), file=sys.stderr)
        sys.exit(1)
    json.dump(out, sys.stdout, separators=(",", ":"))


if __name__ == "__main__":
    main()
