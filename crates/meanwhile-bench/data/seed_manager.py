"""The simple thing a durable runtime replaces: a background manager as the seed agent
loops write it. Each task is a Python thread running `subprocess.run` with the
output captured in memory; its end goes to an in-memory notification queue. Nothing
is written to disk, so nothing survives the process.

Usage: python3 seed_manager.py N PARALLEL
Runs `true` through the shell N times, at most PARALLEL in flight, drains the
notifications, and prints the elapsed seconds.
"""

import queue
import subprocess
import sys
import threading
import time
import uuid


class BackgroundManager:
    def __init__(self):
        self.tasks = {}
        self._notifications = queue.Queue()
        self._lock = threading.Lock()

    def run(self, command, on_done):
        task_id = uuid.uuid4().hex[:8]
        with self._lock:
            self.tasks[task_id] = {"status": "running", "command": command, "result": None}
        thread = threading.Thread(
            target=self._execute, args=(task_id, command, on_done), daemon=True
        )
        thread.start()
        return task_id

    def _execute(self, task_id, command, on_done):
        try:
            r = subprocess.run(command, shell=True, capture_output=True, timeout=300)
            output = (r.stdout + r.stderr).decode(errors="replace")[:50000]
            status = "completed" if r.returncode == 0 else "failed"
        except subprocess.TimeoutExpired:
            output, status = "Error: Timeout (300s)", "timeout"
        with self._lock:
            self.tasks[task_id]["status"] = status
            self.tasks[task_id]["result"] = output
        self._notifications.put({"task_id": task_id, "status": status, "result": output[:500]})
        on_done()

    def drain_notifications(self):
        notes = []
        while True:
            try:
                notes.append(self._notifications.get_nowait())
            except queue.Empty:
                return notes


def main():
    n, parallel = int(sys.argv[1]), int(sys.argv[2])
    manager = BackgroundManager()
    slots = threading.BoundedSemaphore(parallel)
    done = threading.Semaphore(0)

    def on_done():
        slots.release()
        done.release()

    start = time.perf_counter()
    for _ in range(n):
        slots.acquire()
        manager.run("true", on_done)
    for _ in range(n):
        done.acquire()
    notes = manager.drain_notifications()
    elapsed = time.perf_counter() - start
    failed = [t for t in manager.tasks.values() if t["status"] != "completed"]
    if len(notes) != n or failed:
        sys.exit(f"{len(notes)} notifications for {n} tasks, {len(failed)} failed")
    print(f"{elapsed:.6f}")


if __name__ == "__main__":
    main()
