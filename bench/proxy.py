#!/usr/bin/env python3
"""bench/proxy's body: runs inside scripts/sandbox (its environment: AWS keys, RDSIAM_VIA =
the gate, PGSSLROOTCERT = the sandbox CA). See bench/proxy and bench/README.md."""

import argparse
import asyncio
import atexit
import os
import re
import resource
import shutil
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

USER, DB = "iamuserapp", "app"
TARGET = ["--proxy", "PostgreSqlProxy", "-U", USER]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, what, logs, secs=60):
    deadline = time.time() + secs
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    text = "".join(open(os.path.join(logs, f)).read() for f in os.listdir(logs))
    sys.exit(f"bench/proxy: {what} does not listen on {port}:\n{text}")


def sh(cmd, env=None, **kw):
    return subprocess.run(cmd, env=env, check=True, capture_output=True, text=True, **kw).stdout


def metric(port, name):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_secs(pid):
    """User + system CPU seconds of a process so far: the scheduler's
    nanosecond count summed over its threads (/proc/PID/stat counts in 10 ms
    ticks, too coarse for a few seconds of a proxy)."""
    total, seen = 0, False
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                    total += int(f.read().split()[0])
                    seen = True
            except (OSError, ValueError, IndexError):
                pass
    except OSError:
        pass
    if seen:
        return total / 1e9
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pgbench(conninfo, clients, secs, connect_each=False, password=None):
    cmd = ["pgbench", "-n", "-S", "-T", str(secs), "-c", str(clients), "-j", str(min(clients, 2))]
    if connect_each:
        cmd.append("-C")
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("PG"):
            del env[k]
    if password:
        env["PGPASSWORD"] = password
    out = subprocess.run(cmd + [conninfo], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"bench/proxy: pgbench failed for {conninfo}:\n{out.stderr}")
    tps = float(re.search(r"tps = ([\d.]+)", out.stdout).group(1))
    lat = float(re.search(r"latency average = ([\d.]+) ms", out.stdout).group(1))
    return tps, lat


async def idle_memory(rdsiam, n):
    """The proxy's RSS per idle logged-in connection, against a minimal TLS server that
    accepts any password (the sandbox's PostgreSQL allows 60 connections, not 1,000)."""
    tmp = tempfile.mkdtemp()
    key, crt = os.path.join(tmp, "k.pem"), os.path.join(tmp, "c.pem")
    sh(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt,
        "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, key)
    greeting = (b"R" + struct.pack("!ii", 8, 0) + b"K" + struct.pack("!iii", 12, 1, 2)
                + b"Z" + struct.pack("!i", 5) + b"I")

    async def server(reader, writer):
        try:
            await reader.readexactly(8)  # SSLRequest
            writer.write(b"S")
            await writer.drain()
            await writer.start_tls(ctx)
            n = struct.unpack("!i", await reader.readexactly(4))[0]
            await reader.readexactly(n - 4)
            writer.write(b"R" + struct.pack("!ii", 8, 3))
            await writer.drain()
            await reader.readexactly(1)
            n = struct.unpack("!i", await reader.readexactly(4))[0]
            await reader.readexactly(n - 4)
            writer.write(greeting)
            await writer.drain()
            await reader.read()  # idle until the client goes
        except (Exception, asyncio.CancelledError):
            pass

    srv = await asyncio.start_server(server, "127.0.0.1", 0, backlog=2048)
    up = srv.sockets[0].getsockname()[1]
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "RDSIAM_VIA"}
    proc = subprocess.Popen(
        [rdsiam, "proxy", "--host", "localhost", "--port", str(up), "-U", "bench", "--sslmode",
         "require", "--listen", f"127.0.0.1:{port}", "--max-connection-rate", "1000"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    await asyncio.sleep(0.5)
    before = rss_kib(proc.pid)
    startup = b"user\0bench\0database\0bench\0\0"
    startup = struct.pack("!ii", len(startup) + 8, 196608) + startup
    clients = []
    for _ in range(n):
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(startup)
        await w.drain()
        got = b""
        while not got.endswith(b"Z\0\0\0\x05I"):
            chunk = await r.read(4096)
            if not chunk:
                sys.exit("bench/proxy: an idle connection was refused")
            got += chunk
        clients.append(w)
    await asyncio.sleep(1)
    after = rss_kib(proc.pid)
    for w in clients:
        w.close()
    proc.terminate()
    proc.wait()
    srv.close()
    shutil.rmtree(tmp)
    return before, after


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rdsiam", required=True)
    # Another rdsiam (say, main's before a change): its proxies run in the
    # same rounds, interleaved, and a before/after table is added.
    ap.add_argument("--baseline")
    a = ap.parse_args()
    rdsiam = a.rdsiam
    secs = int(os.environ.get("BENCH_SECONDS", "5"))
    rounds = int(os.environ.get("BENCH_ROUNDS", "3"))
    counts = [int(c) for c in os.environ.get("BENCH_CLIENTS", "1 8 32").split()]
    idle = int(os.environ.get("BENCH_IDLE", "1000"))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * idle + 1024)), hard))

    gate_host, gate_port = os.environ["RDSIAM_VIA"].rsplit(":", 1)
    ca = os.environ["PGSSLROOTCERT"]
    pg_port = int(sh([rdsiam, "sql", *TARGET, "-d", DB, "-o", "csv", "-c",
                      "select inet_server_port() as p"]).split()[-1])
    admin = f"host=127.0.0.1 port={pg_port} user=postgres dbname={DB} sslmode=require"
    print(f"bench/proxy: gate 127.0.0.1:{gate_port}, PostgreSQL 127.0.0.1:{pg_port}; "
          f"pgbench -i -s 10", file=sys.stderr)
    sh(["pgbench", "-i", "-q", "-s", "10", admin])
    sh(["psql", admin, "-qc", f"grant select on all tables in schema public to {USER}"])

    def token():
        return sh([rdsiam, "token", *TARGET]).strip()

    procs = []
    p_gate, h_gate, p_pg, h_pg = free_port(), free_port(), free_port(), free_port()
    q_gate, hq_gate, q_pg, hq_pg = free_port(), free_port(), free_port(), free_port()
    logs = tempfile.mkdtemp()
    procs.append(subprocess.Popen(
        [rdsiam, "proxy", *TARGET, "-d", DB, "--listen", f"127.0.0.1:{p_gate}",
         "--http-address", f"127.0.0.1:{h_gate}"],
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(logs, "gate.log"), "w")))
    env_pg = {k: v for k, v in os.environ.items() if k != "RDSIAM_VIA"}
    procs.append(subprocess.Popen(
        [rdsiam, "proxy", "--host", "localhost", "--port", str(pg_port), "-U", USER, "-d", DB,
         "--listen", f"127.0.0.1:{p_pg}", "--http-address", f"127.0.0.1:{h_pg}"],
        env=env_pg, stdout=subprocess.DEVNULL, stderr=open(os.path.join(logs, "pg.log"), "w")))

    # The same two with --pool; idle sessions go back after 1 s, like
    # pgbouncer's below, so the sandbox's 60 connections are not held.
    pool = ["--pool", "--pool-size", "40", "--pool-idle-timeout", "1"]
    procs.append(subprocess.Popen(
        [rdsiam, "proxy", *TARGET, "-d", DB, "--listen", f"127.0.0.1:{q_gate}",
         "--http-address", f"127.0.0.1:{hq_gate}", *pool],
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(logs, "gate-pool.log"), "w")))
    procs.append(subprocess.Popen(
        [rdsiam, "proxy", "--host", "localhost", "--port", str(pg_port), "-U", USER, "-d", DB,
         "--listen", f"127.0.0.1:{q_pg}", "--http-address", f"127.0.0.1:{hq_pg}", *pool],
        env=env_pg, stdout=subprocess.DEVNULL, stderr=open(os.path.join(logs, "pg-pool.log"), "w")))

    baseline_ports = {}
    if a.baseline:
        for server, extra in (("gate", []), ("plain", []), ("gate", pool), ("plain", pool)):
            port, http = free_port(), free_port()
            where = TARGET if server == "gate" else ["--host", "localhost", "--port", str(pg_port), "-U", USER]
            procs.append(subprocess.Popen(
                [a.baseline, "proxy", *where, "-d", DB, "--listen", f"127.0.0.1:{port}",
                 "--http-address", f"127.0.0.1:{http}", *extra],
                env=os.environ if server == "gate" else env_pg, stdout=subprocess.DEVNULL,
                stderr=open(os.path.join(logs, f"baseline-{server}{'-pool' if extra else ''}.log"), "w")))
            tool = "baseline --pool" if extra else "baseline proxy"
            baseline_ports[(server, tool)] = (port, procs[-1].pid)

    # pgbouncer refuses to run as root; it runs as postgres from a dir it can read.
    bdir = tempfile.mkdtemp(prefix="bench-pgbouncer-")
    os.chmod(bdir, 0o755)
    if os.geteuid() == 0:
        shutil.chown(bdir, "postgres")
    shutil.copy(ca, os.path.join(bdir, "ca.pem"))
    p_bnc = free_port()
    ini = os.path.join(bdir, "pgbouncer.ini")

    def write_ini():
        with open(ini, "w") as f:
            f.write(f"""[databases]
gate = host=127.0.0.1 port={gate_port} dbname={DB} user={USER} password={token()}
plain = host=127.0.0.1 port={pg_port} dbname={DB} user={USER}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {p_bnc}
unix_socket_dir =
auth_type = any
pool_mode = session
; the sandbox's PostgreSQL allows 60 connections: give idle ones back at once
server_idle_timeout = 1
max_client_conn = 500
default_pool_size = 40
server_tls_sslmode = verify-full
server_tls_ca_file = {bdir}/ca.pem
logfile = {bdir}/pgbouncer.log
pidfile = {bdir}/pgbouncer.pid
""")
        os.chmod(ini, 0o644)

    write_ini()
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    bouncer = subprocess.Popen(as_pg + ["pgbouncer", ini], stdout=subprocess.DEVNULL,
                               stderr=open(os.path.join(logs, "pgbouncer.err"), "w"))
    procs.append(bouncer)
    def bouncer_pid():
        # runuser's child: the pid pgbouncer writes itself.
        with open(os.path.join(bdir, "pgbouncer.pid")) as f:
            return f.read().strip()

    def cleanup():
        for p in procs:
            if p.poll() is None:
                p.terminate()
        try:
            subprocess.run(["kill", "-TERM", bouncer_pid()], stderr=subprocess.DEVNULL)
        except OSError:
            pass
        shutil.rmtree(bdir, ignore_errors=True)

    atexit.register(cleanup)
    for port, what in ((p_gate, "rdsiam proxy (gate)"), (p_pg, "rdsiam proxy (plain)"),
                       (q_gate, "rdsiam proxy --pool (gate)"), (q_pg, "rdsiam proxy --pool (plain)"),
                       (p_bnc, "pgbouncer"),
                       *((port, f"baseline {key}") for key, (port, _) in baseline_ports.items())):
        wait_port(port, what, logs)

    local = "sslmode=disable"
    tls = f"sslmode=verify-full sslrootcert={ca}"
    configs = {
        ("gate", "direct"): (f"host=127.0.0.1 port={gate_port} user={USER} dbname={DB} {tls}", True),
        ("gate", "rdsiam proxy"): (f"host=127.0.0.1 port={p_gate} user={USER} dbname={DB} {local}", False),
        ("gate", "rdsiam --pool"): (f"host=127.0.0.1 port={q_gate} user={USER} dbname={DB} {local}", False),
        ("gate", "pgbouncer"): (f"host=127.0.0.1 port={p_bnc} user={USER} dbname=gate {local}", False),
        ("plain", "direct"): (f"host=127.0.0.1 port={pg_port} user={USER} dbname={DB} {tls}", False),
        ("plain", "rdsiam proxy"): (f"host=127.0.0.1 port={p_pg} user={USER} dbname={DB} {local}", False),
        ("plain", "rdsiam --pool"): (f"host=127.0.0.1 port={q_pg} user={USER} dbname={DB} {local}", False),
        ("plain", "pgbouncer"): (f"host=127.0.0.1 port={p_bnc} user={USER} dbname=plain {local}", False),
    }
    modes = [(c, False) for c in counts] + [(4, True), (16, True)]
    proxy_pid = {("gate", "rdsiam proxy"): procs[0].pid, ("plain", "rdsiam proxy"): procs[1].pid,
                 ("gate", "rdsiam --pool"): procs[2].pid, ("plain", "rdsiam --pool"): procs[3].pid,
                 ("gate", "pgbouncer"): None, ("plain", "pgbouncer"): None}
    for key, (port, pid) in baseline_ports.items():
        configs[key] = (f"host=127.0.0.1 port={port} user={USER} dbname={DB} {local}", False)
        proxy_pid[key] = pid
    results, cpu = {}, {}
    order = list(configs)
    for rnd in range(rounds):
        # A fresh pre-minted token each round (tokens live 15 minutes).
        tok = token()
        write_ini()
        subprocess.run(["kill", "-HUP", bouncer_pid()])
        time.sleep(0.3)
        print(f"bench/proxy: round {rnd + 1}/{rounds}", file=sys.stderr)
        for clients, each in modes:
            for key in order:
                conninfo, needs_token = configs[key]
                pid = proxy_pid.get(key)
                cpu0, t0 = (cpu_secs(pid), time.time()) if pid else (0, 0)
                r = pgbench(conninfo, clients, secs, each, tok if needs_token else None)
                results.setdefault((key, clients, each), []).append(r)
                if key[1] in ("pgbouncer", "rdsiam --pool", "baseline --pool"):
                    time.sleep(2)  # its idle server connections close (server_idle_timeout)
                if pid:
                    cpu.setdefault((key, clients, each), []).append(
                        (cpu_secs(pid) - cpu0) / (time.time() - t0))
            order = order[1:] + order[:1]

    minted = metric(h_gate, "rdsiam_proxy_tokens_minted_total")
    minted_pg = metric(h_pg, "rdsiam_proxy_tokens_minted_total")
    # Upstream logins of the pooled proxies: client logins less reuses.
    pooled = {}
    for server, h in (("gate", hq_gate), ("plain", hq_pg)):
        clients = metric(h, "rdsiam_proxy_login_seconds_count")
        reuses = metric(h, "rdsiam_proxy_pool_reuses_total")
        pooled[server] = (clients, clients - reuses)
    subprocess.run(["kill", "-TERM", bouncer_pid()])
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait()
    shutil.rmtree(bdir, ignore_errors=True)
    before, after = asyncio.run(idle_memory(rdsiam, idle))

    med = lambda xs: statistics.median(xs)
    print(f"\npgbench -S, {secs} s per run, {rounds} interleaved rounds, medians "
          f"(tps | latency ms); -C rows: pgbench -C -S (a new connection per transaction)")
    print(f"{'server':6} {'clients':>8}  {'direct':>20}  {'rdsiam proxy':>20}  {'rdsiam --pool':>20}  {'pgbouncer':>20}  proxy/direct  pool/pgbouncer")
    for server in ("gate", "plain"):
        for clients, each in modes:
            cells, tps = [], {}
            for tool in ("direct", "rdsiam proxy", "rdsiam --pool", "pgbouncer"):
                rs = results[((server, tool), clients, each)]
                t, l = med([r[0] for r in rs]), med([r[1] for r in rs])
                tps[tool] = t
                cells.append(f"{t:9.0f} | {l:7.3f}")
            label = f"{clients}{' -C' if each else ''}"
            print(f"{server:6} {label:>8}  {cells[0]:>20}  {cells[1]:>20}  {cells[2]:>20}  {cells[3]:>20}  "
                  f"{tps['rdsiam proxy'] / tps['direct']:11.0%}  {tps['rdsiam --pool'] / tps['pgbouncer']:13.0%}")
    def cpu_per_txn(server, tool, clients, each):
        # The proxy's CPU share of the run over its transactions: less
        # noisy than tps on a shared machine.
        share = med(cpu[((server, tool), clients, each)])
        tps = med([r[0] for r in results[((server, tool), clients, each)]])
        return share / tps * 1e6 if tps else float("nan")

    if a.baseline:
        print(f"\nbefore/after, same rounds: baseline {a.baseline} vs {rdsiam} (tps, medians)")
        print(f"{'server':6} {'clients':>8}  {'baseline proxy':>15}  {'proxy':>9}  {'after/before':>12}"
              f"  {'baseline --pool':>15}  {'--pool':>9}  {'after/before':>12}  proxy CPU µs/txn before -> after")
        for server in ("gate", "plain"):
            for clients, each in modes:
                t = {tool: med([r[0] for r in results[((server, tool), clients, each)]])
                     for tool in ("baseline proxy", "rdsiam proxy", "baseline --pool", "rdsiam --pool")}
                label = f"{clients}{' -C' if each else ''}"
                print(f"{server:6} {label:>8}  {t['baseline proxy']:15.0f}  {t['rdsiam proxy']:9.0f}  "
                      f"{t['rdsiam proxy'] / t['baseline proxy']:12.0%}  {t['baseline --pool']:15.0f}  "
                      f"{t['rdsiam --pool']:9.0f}  {t['rdsiam --pool'] / t['baseline --pool']:12.0%}  "
                      f"{cpu_per_txn(server, 'baseline proxy', clients, each):8.1f} -> "
                      f"{cpu_per_txn(server, 'rdsiam proxy', clients, each):.1f}")
    print()
    for server in ("gate", "plain"):
        if 1 in counts:
            d = [r[1] for r in results[((server, "direct"), 1, False)]]
            p = [r[1] for r in results[((server, "rdsiam proxy"), 1, False)]]
            b = [r[1] for r in results[((server, "pgbouncer"), 1, False)]]
            added = med([(x - y) * 1000 for x, y in zip(p, d)])
            added_b = med([(x - y) * 1000 for x, y in zip(b, d)])
            print(f"{server}: added per round trip at 1 client: rdsiam proxy {added:.0f} µs, "
                  f"pgbouncer {added_b:.0f} µs (median of per-round differences)")
    print("rdsiam proxy CPU (share of one core, median): " + ", ".join(
        f"{server} {clients}{' -C' if each else ''}: {med(cpu[((server, 'rdsiam proxy'), clients, each)]):.0%}"
        for server in ("gate", "plain") for clients, each in modes))
    print(f"tokens minted for the whole run: {minted:.0f} (gate proxy), {minted_pg:.0f} (plain proxy)")
    for server, (clients, upstream) in pooled.items():
        print(f"--pool ({server}): {clients:.0f} client logins served by {upstream:.0f} upstream logins")
    print(f"idle connections: {idle} held, proxy RSS {before} KiB -> {after} KiB, "
          f"{(after - before) / idle:.1f} KiB per connection")


if __name__ == "__main__":
    main()
