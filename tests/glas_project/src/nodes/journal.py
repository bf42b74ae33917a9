import json
import os
import threading
import time

_lock = threading.Lock()


def write(**entry):
    """One line of the lab's journal (what the test reads): every hook call and driver run."""
    entry["at"] = time.time()
    with _lock, open(os.environ.get("LAB_JOURNAL", "journal.jsonl"), "a") as file:
        file.write(json.dumps(entry) + "\n")


def node_id(node):
    return None if node is None else node.id
