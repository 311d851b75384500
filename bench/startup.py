#!/usr/bin/env python3
"""Start-up time and idle memory of a service binary.

Starts `<binary> serve` N times on a fresh, migrated SQLite database with PORT=0,
and measures the time from spawn to the first 200 from /readyz (which pings the
database, so the pool's first connection is included). After the last start it
reads the idle process's resident set size from /proc.

    cargo build --release -p accounts
    python3 bench/startup.py target/release/accounts --runs 20
"""
import argparse
import http.client
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time


def dev_env(database_url):
    """dev.env's values, with the test's own database and a free port."""
    env = {"PATH": os.environ.get("PATH", "")}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "dev.env")) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                env[key] = value
    env.update({"PORT": "0", "HOST": "127.0.0.1", "LOG_FORMAT": "json",
                "DATABASE_URL": database_url})
    return env


def ready(port):
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        conn.request("GET", "/readyz")
        return conn.getresponse().status == 200
    except OSError:
        return False


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("binary")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()

    folder = tempfile.mkdtemp()
    env = dev_env(f"sqlite://{folder}/bench.db")
    subprocess.run([args.binary, "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)

    times, rss = [], 0
    for run in range(args.runs):
        started = time.perf_counter()
        proc = subprocess.Popen([args.binary, "serve"], env=env, stdout=subprocess.PIPE)
        first = json.loads(proc.stdout.readline())
        port = first["fields"]["port"]
        while not ready(port):
            time.sleep(0.0005)
        times.append((time.perf_counter() - started) * 1000)
        if run == args.runs - 1:
            time.sleep(1)  # idle
            rss = rss_kib(proc.pid)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)

    print(f"machine: {platform.node()} {os.cpu_count()} cpus, {platform.platform()}")
    print(f"binary: {args.binary} ({os.path.getsize(args.binary) // 1024} KiB)")
    print(f"start to ready over {args.runs} runs: median {statistics.median(times):.1f} ms, "
          f"min {min(times):.1f} ms, max {max(times):.1f} ms")
    print(f"idle RSS after ready: {rss / 1024:.1f} MiB")


if __name__ == "__main__":
    sys.exit(main())
