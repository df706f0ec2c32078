"""Start moto_server with SQS queues' messages changed under one lock.

moto 5.2.5 changes a queue's messages from its server threads without a lock:
two concurrent ReceiveMessage calls can hand out the same message, and a
DeleteMessage that rebuilds the queue's list can undo a concurrent delete or
drop a concurrent send. Real SQS does none of this, and esmd's tests run many
pollers against one queue, so the harness starts moto through this file.

One lock, for all queues, is held while a receive scans a queue and marks
what it hands out, and while a message is sent, deleted or purged or has its
visibility changed. (A scan can move a message to its dead-letter queue, so
per-queue locks would deadlock on two queues that redrive to each other.)
A long poll waits between scans on its queue's condition of that lock. moto
wakes every waiting poll on each send, and each woken poll scans the whole
queue, so with hundreds of pollers (as esmd scales to) sends nearly stopped.
Here a send wakes one poll, and so do a visibility change and a delete from a
FIFO queue (either can free a message). Every poll also scans once a second,
as moto's does, for messages whose visibility timeout or delay ended.

It also takes out two costs that made each receive slow in proportion to the
queue's depth, without changing what moto answers: checking a received
message's retention period computed every queue attribute three times (nine
scans of the queue) per message, and each message's visibility was read
through datetime arithmetic. Both now read the same values directly.

Arguments are moto_server's own.
"""

import sys
import threading
import time

from moto.server import main
from moto.sqs import models

_receive = models.SQSBackend.receive_message
_change_visibility = models.SQSBackend.change_message_visibility
_add = models.Queue.add_message
_delete = models.Queue.delete_message
_purge = models.SQSBackend.purge_queue

# A waiting long poll scans the queue again at least this often.
RESCAN_SECONDS = 1.0

_lock = threading.RLock()


def _cond(queue):
    """Return the queue's condition of the shim's lock, made on first use."""
    cond = queue.__dict__.get("_shim_cond")
    if cond is None:
        with _lock:
            cond = queue.__dict__.setdefault("_shim_cond", threading.Condition(_lock))
    return cond


def receive_message(self, queue_name, count, wait_seconds_timeout, visibility_timeout,
                    message_attribute_names=None):
    queue = self.get_queue(queue_name)
    deadline = time.monotonic() + (wait_seconds_timeout or 0)
    cond = _cond(queue)
    with cond:
        while True:
            # With no wait, moto scans the queue once and returns.
            got = _receive(self, queue_name, count, 0, visibility_timeout, message_attribute_names)
            left = deadline - time.monotonic()
            if got or left <= 0:
                return got
            cond.wait(min(left, RESCAN_SECONDS))


def change_message_visibility(self, queue_name, receipt_handle, visibility_timeout):
    cond = _cond(self.get_queue(queue_name))
    with cond:
        _change_visibility(self, queue_name, receipt_handle, visibility_timeout)
        cond.notify()


def add_message(self, message):
    cond = _cond(self)
    with cond:
        _add(self, message)
        cond.notify()


def delete_message(self, receipt_handle):
    cond = _cond(self)
    with cond:
        _delete(self, receipt_handle)
        if self.fifo_queue:
            cond.notify()


def purge_queue(self, queue_name):
    with _lock:
        return _purge(self, queue_name)


def is_message_valid_based_on_retention_period(self, queue_name, message):
    retention = self.get_queue(queue_name).message_retention_period
    return retention + message.sent_timestamp / 1000 > time.time()


def _now_millis():
    # What moto's unix_time_millis returns, without building datetimes.
    return time.time() * 1000.0


def visible(self):
    return _now_millis() > self.visible_at


def delayed(self):
    return _now_millis() < self.delayed_until


models.SQSBackend.receive_message = receive_message
models.SQSBackend.change_message_visibility = change_message_visibility
models.Queue.add_message = add_message
models.Queue.delete_message = delete_message
models.SQSBackend.purge_queue = purge_queue
models.SQSBackend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period
models.Message.visible = property(visible)
models.Message.delayed = property(delayed)

if __name__ == "__main__":
    sys.exit(main())
