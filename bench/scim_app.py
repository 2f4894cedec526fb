"""One seeded scim2-server in its own process, for benches: ``python bench/scim_app.py PORT N``.

Users are devstack.demo_data.demo_users(N); each sits in one of 20 team groups. Prints
``ready`` once it serves, and runs until killed. ``PORT N RATE`` puts it behind a SaaS-like
front (bench/saas_front.py): 150 ms ± 50 ms per request and RATE requests/min, else 429.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.saas_front import SaasFront
from devstack.demo_data import demo_users
from devstack.scim_server import ScimServer

TOKEN = "bench-scim-token"


def main() -> None:
    port, count = int(sys.argv[1]), int(sys.argv[2])
    users = demo_users(count)
    groups = {f"Team {k}": [u.user_name for u in users[k::20]] for k in range(20)}
    front = SaasFront(float(sys.argv[3])) if len(sys.argv) > 3 else None
    server = ScimServer(token=TOKEN, port=port, middleware=front.wrap if front else None).start()
    server.seed(users, groups)
    print("ready", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    server.stop()


if __name__ == "__main__":
    main()
