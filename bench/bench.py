#!/usr/bin/env python3
"""rdsiam against the AWS CLI and boto3, side by side, from one run.

Started by bench/bench (which makes the venv and finds or builds rdsiam);
see bench/README.md. Standard library only: it runs in the venv that holds
awscli and boto3, but never imports them itself.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HOST = "h.example"
PORT = 5432
USER = "iamuserapp"
REGION = "us-east-1"
ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TOKEN_PREFIX = f"{HOST}:{PORT}/?Action=connect&DBUser={USER}&"

# The targets from the issue.
MIN_SPEEDUP_VS_AWSCLI = 100.0  # rdsiam median at least this many times faster
MAX_RATIO_VS_TRUE = 3.0  # rdsiam median within this factor of /bin/true's
MAX_RSS_MIB = 12.0  # rdsiam peak RSS
MAX_NOCREDS_S = 1.0  # the "no credentials anywhere" error, p90


# ------------------------------------------------------------------ model


@dataclass
class Case:
    key: str
    label: str
    argv: list[str]
    env: dict[str, str]
    expect_exit: int = 0
    expect_stdout_prefix: str | None = None
    # Run inside a private network namespace whose only route is a black hole
    # (a laptop off EC2: the metadata service never answers).
    netns: bool = False


@dataclass
class Result:
    case: Case
    times: list[float] = field(default_factory=list)  # seconds
    exits: list[int] = field(default_factory=list)
    rss_kib: list[int] = field(default_factory=list)
    timer: str = ""
    rss_method: str = ""
    note: str = ""

    @property
    def median_ms(self) -> float:
        return statistics.median(self.times) * 1000

    @property
    def p90_ms(self) -> float:
        return percentile(self.times, 90) * 1000

    @property
    def max_ms(self) -> float:
        return max(self.times) * 1000

    @property
    def peak_mib(self) -> float:
        return max(self.rss_kib) / 1024 if self.rss_kib else float("nan")


@dataclass
class Ctx:
    root: Path
    venv: Path
    rdsiam: Path
    runs: int
    warmup: int
    timer: str  # "hyperfine" or "python"
    hyperfine: str | None
    gnu_time: str | None
    home: Path


def percentile(xs: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(xs)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


# ------------------------------------------------------------- measuring


def spawn_wait(argv: list[str], env: dict[str, str]) -> tuple[float, int, int]:
    """Run argv once, output to /dev/null: (wall seconds, exit code, ru_maxrss KiB).

    posix_spawn + wait4 is the least a parent can add to a child's wall time,
    and wait4's rusage is that one child's peak RSS (the number GNU time's %M
    prints).
    """
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
    ]
    t0 = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, env, file_actions=actions)
    _, status, rusage = os.wait4(pid, 0)
    t1 = time.perf_counter()
    return t1 - t0, os.waitstatus_to_exitcode(status), rusage.ru_maxrss


def time_python_interleaved(results: list[Result], ctx: Ctx) -> None:
    """Round-robin: run i of every command before run i+1 of any, so a burst
    of load on a shared machine lands on all of them alike."""
    for res in results:
        for _ in range(ctx.warmup):
            spawn_wait(res.case.argv, res.case.env)
    for _ in range(ctx.runs):
        for res in results:
            wall, code, rss = spawn_wait(res.case.argv, res.case.env)
            res.times.append(wall)
            res.exits.append(code)
            res.rss_kib.append(rss)
    for res in results:
        res.timer = "python posix_spawn+wait4, interleaved"
        res.rss_method = "wait4 ru_maxrss"


def time_hyperfine(case: Case, ctx: Ctx, res: Result) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "hf.json"
        cmd = [
            ctx.hyperfine, "-N", "--style", "none",
            "--warmup", str(ctx.warmup), "--runs", str(ctx.runs),
            "--export-json", str(out),
        ]
        if case.expect_exit != 0:
            cmd.append("-i")
        cmd.append(shlex.join(case.argv))
        subprocess.run(cmd, env=case.env, check=True, stdout=subprocess.DEVNULL)
        data = json.loads(out.read_text())["results"][0]
    res.times = list(data["times"])
    res.exits = [int(c) for c in data.get("exit_codes") or [case.expect_exit] * len(res.times)]
    res.timer = "hyperfine -N"


def measure_rss(case: Case, ctx: Ctx, res: Result) -> None:
    """Peak RSS over a few separate runs (so the timed runs carry no wrapper)."""
    n = min(ctx.runs, 5)
    if ctx.gnu_time:
        res.rss_kib = []
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "rss"
            for _ in range(n):
                subprocess.run(
                    [ctx.gnu_time, "-f", "%M", "-o", str(out), *case.argv],
                    env=case.env, stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )
                res.rss_kib.append(int(out.read_text().split()[-1]))
        res.rss_method = "/usr/bin/time -f %M"
    elif not res.rss_kib:
        for _ in range(n):
            res.rss_kib.append(spawn_wait(case.argv, case.env)[2])
        res.rss_method = "wait4 ru_maxrss"


def sanity(case: Case) -> str | None:
    """Run once and check exit code and output; return a complaint or None."""
    proc = subprocess.run(
        case.argv, env=case.env, capture_output=True, text=True,
        stdin=subprocess.DEVNULL, timeout=120,
    )
    if proc.returncode != case.expect_exit:
        return (f"exit {proc.returncode}, expected {case.expect_exit}\n"
                f"  stdout: {proc.stdout.strip()[:300]}\n  stderr: {proc.stderr.strip()[:600]}")
    if case.expect_stdout_prefix and not proc.stdout.startswith(case.expect_stdout_prefix):
        return f"stdout does not start with {case.expect_stdout_prefix!r}: {proc.stdout[:200]!r}"
    return None


def measure_all(cases: list[Case], ctx: Ctx) -> list[Result]:
    """Check each command once, time them all, then take their peak RSS."""
    for case in cases:
        if not case.netns:
            problem = sanity(case)
            if problem:
                sys.exit(f"bench: {case.label}: {problem}")
    local = [Result(c) for c in cases if not c.netns]
    if ctx.timer == "hyperfine":
        for res in local:
            print(f"  timing: {res.case.label} …", file=sys.stderr, flush=True)
            time_hyperfine(res.case, ctx, res)
    else:
        print(f"  timing {len(local)} commands, interleaved …", file=sys.stderr, flush=True)
        time_python_interleaved(local, ctx)
    for res in local:
        measure_rss(res.case, ctx, res)
    done = {r.case.key: r for r in local}
    out = []
    for case in cases:
        if case.netns:
            print(f"  timing: {case.label} (network namespace) …", file=sys.stderr, flush=True)
            out.append(measure_in_netns(case, ctx))
        else:
            out.append(done[case.key])
    return out


# ---------------------------------------- the "no credentials anywhere" case
#
# With AWS_EC2_METADATA_DISABLED unset, rdsiam (like every AWS SDK) asks the
# instance metadata service at 169.254.169.254 as its last resort. On a laptop
# that address is a black hole: the SYN goes out and nothing answers. The
# bench reproduces that without sending a packet off this machine: the runs
# happen in a private network namespace (unshare --net) whose only link
# besides lo is a veth pair with both ends inside it; the default route
# points at one end (ARP off), and the other end, having no address and no
# forwarding, swallows every SYN. So connect() waits for its timeout exactly
# as on a laptop, and nothing leaves the namespace.


def netns_available() -> bool:
    if os.environ.get("BENCH_NETNS") == "0":  # force the loopback fallback
        return False
    if not shutil.which("unshare") or not shutil.which("ip"):
        return False
    try:
        return subprocess.run(
            ["unshare", "--net", "--", "true"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10,
        ).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def inner_netns_main(spec_json: str) -> None:
    """Runs inside `unshare --net`: make the black hole, time, print JSON."""
    spec = json.loads(spec_json)
    for cmd in (
        ["ip", "link", "set", "lo", "up"],
        ["ip", "link", "add", "bh0", "type", "veth", "peer", "name", "bh1"],
        ["ip", "link", "set", "bh0", "arp", "off"],
        ["ip", "link", "set", "bh0", "up"],
        ["ip", "link", "set", "bh1", "up"],
        ["ip", "addr", "add", "192.0.2.10/24", "dev", "bh0"],
        ["ip", "route", "add", "default", "dev", "bh0"],
    ):
        subprocess.run(cmd, check=True)
    argv, env = spec["argv"], spec["env"]
    first = subprocess.run(argv, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    for _ in range(spec["warmup"]):
        spawn_wait(argv, env)
    times, exits, rss = [], [], []
    for _ in range(spec["runs"]):
        wall, code, kib = spawn_wait(argv, env)
        times.append(wall)
        exits.append(code)
        rss.append(kib)
    json.dump(
        {"times": times, "exits": exits, "rss": rss,
         "first_exit": first.returncode, "first_stderr": first.stderr},
        sys.stdout,
    )


class LoopbackBlackHole:
    """Fallback when no network namespace can be made: a loopback listener
    whose accept queue is full, so a further SYN is dropped and connect()
    times out, as with no metadata service. Reached through
    AWS_EC2_METADATA_SERVICE_ENDPOINT."""

    def __enter__(self):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(0)
        self.port = self.listener.getsockname()[1]
        self.fillers = []
        for _ in range(2):  # fill the accept queue (backlog 0 holds one)
            s = socket.socket()
            s.setblocking(False)
            try:
                s.connect(("127.0.0.1", self.port))
            except BlockingIOError:
                pass
            self.fillers.append(s)
        return self

    def __exit__(self, *exc):
        for s in self.fillers:
            s.close()
        self.listener.close()


def measure_in_netns(case: Case, ctx: Ctx) -> Result:
    res = Result(case, timer="python posix_spawn+wait4", rss_method="wait4 ru_maxrss")
    spec = {"argv": case.argv, "env": case.env, "runs": ctx.runs, "warmup": min(ctx.warmup, 1)}
    if netns_available():
        proc = subprocess.run(
            ["unshare", "--net", "--", sys.executable, str(Path(__file__).resolve()),
             "--inner-netns", json.dumps(spec)],
            capture_output=True, text=True,
        )
        if proc.returncode != 0:
            sys.exit(f"bench: {case.label}: network namespace run failed:\n{proc.stderr}")
        data = json.loads(proc.stdout)
        res.note = "private netns, metadata address black-holed"
    else:
        with LoopbackBlackHole() as hole:
            env = dict(case.env, AWS_EC2_METADATA_SERVICE_ENDPOINT=f"http://127.0.0.1:{hole.port}")
            first = subprocess.run(case.argv, env=env, capture_output=True, text=True,
                                   stdin=subprocess.DEVNULL)
            times, exits, rss = [], [], []
            for _ in range(spec["warmup"]):
                spawn_wait(case.argv, env)
            for _ in range(ctx.runs):
                wall, code, kib = spawn_wait(case.argv, env)
                times.append(wall)
                exits.append(code)
                rss.append(kib)
        data = {"times": times, "exits": exits, "rss": rss,
                "first_exit": first.returncode, "first_stderr": first.stderr}
        res.note = "no netns here: IMDS endpoint pointed at a loopback black hole"
    res.times, res.exits, res.rss_kib = data["times"], data["exits"], data["rss"]
    if data["first_exit"] != case.expect_exit:
        sys.exit(f"bench: {case.label}: exit {data['first_exit']}, expected {case.expect_exit}\n"
                 f"  stderr: {data['first_stderr'].strip()[:600]}")
    first_line = (data["first_stderr"].strip().splitlines() or ["(empty)"])[0]
    res.note += f"; stderr: {first_line[:100]}"
    return res


# ------------------------------------------------------------- the cases


def hermetic_env(home: Path, *, creds: bool, imds_disabled: bool) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "AWS_CONFIG_FILE": str(home / ".aws/config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / ".aws/credentials"),
        "RDSIAM_CONFIG": str(home / "no-such-rdsiam-config.toml"),
    }
    if creds:
        env["AWS_ACCESS_KEY_ID"] = ACCESS_KEY
        env["AWS_SECRET_ACCESS_KEY"] = SECRET_KEY
    if imds_disabled:
        env["AWS_EC2_METADATA_DISABLED"] = "true"
    return env


def token_cases(ctx: Ctx) -> list[Case]:
    env = hermetic_env(ctx.home, creds=True, imds_disabled=True)
    py = str(ctx.venv / "bin/python")
    rdsiam_token = [str(ctx.rdsiam), "token", "--host", HOST, "--port", str(PORT),
                    "-U", USER, "--region", REGION]
    boto3_oneliner = (
        "import boto3;"
        f"print(boto3.client('rds',region_name='{REGION}')"
        f".generate_db_auth_token('{HOST}',{PORT},'{USER}'))"
    )
    # The realistic laptop: no credentials anywhere, a fresh HOME, and the
    # metadata service not switched off.
    empty_home = ctx.home / "empty-home"
    empty_home.mkdir(exist_ok=True)
    nocreds_env = {"PATH": env["PATH"], "HOME": str(empty_home), "LANG": "C.UTF-8"}
    return [
        Case("true", "/bin/true (the floor)", ["/bin/true"], env),
        Case("rdsiam", "rdsiam token --host (creds in env)", rdsiam_token, env,
             expect_stdout_prefix=TOKEN_PREFIX),
        Case("awscli", "aws rds generate-db-auth-token",
             [str(ctx.venv / "bin/aws"), "rds", "generate-db-auth-token",
              "--hostname", HOST, "--port", str(PORT), "--username", USER,
              "--region", REGION],
             env, expect_stdout_prefix=TOKEN_PREFIX),
        Case("boto3", "python -c boto3 generate_db_auth_token",
             [py, "-c", boto3_oneliner], env, expect_stdout_prefix=TOKEN_PREFIX),
        Case("nocreds", "rdsiam token, no credentials anywhere",
             rdsiam_token, nocreds_env, expect_exit=3, netns=True),
    ]


# ----------------------------------------------------------- the report


def render_table(title: str, results: list[Result]) -> None:
    print(title)
    head = f"{'command':<42} {'median ms':>10} {'p90 ms':>9} {'max ms':>9} {'peak RSS MiB':>13} {'exit':>5} {'runs':>5}"
    print(head)
    print("-" * len(head))
    for r in results:
        codes = sorted(set(r.exits))
        exit_s = ",".join(map(str, codes))
        print(f"{r.case.label:<42} {r.median_ms:>10.2f} {r.p90_ms:>9.2f} {r.max_ms:>9.2f} "
              f"{r.peak_mib:>13.2f} {exit_s:>5} {len(r.times):>5}")
    print()


def check_targets(by: dict[str, Result]) -> list[tuple[str, bool, str]]:
    rd, true, aws, boto, nc = (by[k] for k in ("rdsiam", "true", "awscli", "boto3", "nocreds"))
    speedup = aws.median_ms / rd.median_ms
    vs_true = rd.median_ms / true.median_ms
    nc_exits = set(nc.exits)
    return [
        (f"rdsiam >= {MIN_SPEEDUP_VS_AWSCLI:.0f}x faster than the AWS CLI (median)",
         speedup >= MIN_SPEEDUP_VS_AWSCLI, f"{speedup:.1f}x"),
        (f"rdsiam within {MAX_RATIO_VS_TRUE:.0f}x of /bin/true (median)",
         vs_true <= MAX_RATIO_VS_TRUE, f"{vs_true:.2f}x"),
        (f"rdsiam peak RSS < {MAX_RSS_MIB:.0f} MiB",
         rd.peak_mib < MAX_RSS_MIB, f"{rd.peak_mib:.2f} MiB"),
        (f"no-credentials error < {MAX_NOCREDS_S:.0f} s (p90) and exit 3",
         nc.p90_ms < MAX_NOCREDS_S * 1000 and nc_exits == {3},
         f"p90 {nc.p90_ms:.0f} ms, max {nc.max_ms:.0f} ms, exit {','.join(map(str, sorted(nc_exits)))}"),
    ]


# ---------------------------------------------------- the check benchmark
#
# HOOK: the second table, `rdsiam check` against
# `aws rds generate-db-auth-token … | psql -c 'select current_user'`.
# It needs a database that takes IAM tokens: scripts/sandbox (being built)
# will start the IAM gate in front of a throwaway PostgreSQL. To add it:
#   1. start the sandbox here and read its host/port/CA/credentials,
#   2. build two Cases: `rdsiam check --host … --port … -U … --ca-bundle …`
#      and `sh -c 'PGPASSWORD="$(aws rds generate-db-auth-token …)" psql
#      "host=… sslmode=verify-full sslrootcert=…" -c "select current_user"'`
#      (env from hermetic_env(), plus the sandbox's endpoint variables),
#   3. return measure_all(cases, ctx); main() renders it with render_table() and
#      stops the sandbox.


def check_benchmark(ctx: Ctx) -> list[Result] | None:
    sandbox = ctx.root / "scripts" / "sandbox"
    if not sandbox.exists():
        print("check benchmark: needs scripts/sandbox (not yet available)")
        return None
    print("check benchmark: scripts/sandbox exists, but this table is not written yet "
          "(see check_benchmark() in bench/bench.py)")
    return None


# ------------------------------------------------------------------ main


def version_of(argv: list[str], env: dict[str, str]) -> str:
    try:
        p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
        return (p.stdout or p.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "?"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rdsiam")
    ap.add_argument("--venv")
    ap.add_argument("--root")
    ap.add_argument("--inner-netns", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inner_netns:
        inner_netns_main(args.inner_netns)
        return 0
    if not (args.rdsiam and args.venv and args.root):
        ap.error("run bench/bench, which passes --rdsiam, --venv and --root")

    want_timer = os.environ.get("BENCH_TIMER", "auto")
    hyperfine = shutil.which("hyperfine")
    if want_timer == "hyperfine" and not hyperfine:
        sys.exit("bench: BENCH_TIMER=hyperfine but hyperfine is not on PATH")
    timer = "hyperfine" if hyperfine and want_timer in ("auto", "hyperfine") else "python"
    gnu_time = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None

    with tempfile.TemporaryDirectory(prefix="rdsiam-bench-home-") as home:
        ctx = Ctx(
            root=Path(args.root), venv=Path(args.venv), rdsiam=Path(args.rdsiam),
            runs=int(os.environ.get("BENCH_RUNS", "30")),
            warmup=int(os.environ.get("BENCH_WARMUP", "3")),
            timer=timer, hyperfine=hyperfine, gnu_time=gnu_time, home=Path(home),
        )
        cases = token_cases(ctx)
        env = cases[0].env
        print(f"machine:  {os.cpu_count()} cpu, {cpu_model()}, {platform.platform()}")
        print(f"rdsiam:   {version_of([str(ctx.rdsiam), '--version'], env)} ({ctx.rdsiam})")
        print(f"awscli:   {version_of([str(ctx.venv / 'bin/aws'), '--version'], env)}")
        print(f"boto3:    {version_of([str(ctx.venv / 'bin/python'), '-c', 'import boto3,botocore;print(boto3.__version__, botocore.__version__)'], env)}")
        print(f"timer:    {'hyperfine -N' if timer == 'hyperfine' else 'python posix_spawn+wait4, interleaved'}"
              f" (no-credentials row: python, in a network namespace);"
              f" peak RSS: {'/usr/bin/time -f %M' if gnu_time else 'wait4 ru_maxrss'}")
        print(f"runs:     {ctx.runs} each after {ctx.warmup} warm-up (no-credentials row: 1 warm-up)")
        load1 = os.getloadavg()[0]
        busy = "  <- busy machine: expect noise, compare ratios" if load1 > 0.5 * (os.cpu_count() or 1) else ""
        print(f"load:     {load1:.2f} (1-min average before the run){busy}")
        print()

        results = measure_all(cases, ctx)
        by = {r.case.key: r for r in results}

        render_table("token: one IAM auth token for h.example:5432, user iamuserapp, us-east-1", results)
        nc = by["nocreds"]
        print(f"no-credentials row: {nc.note}")
        print()
        rd = by["rdsiam"]
        print("ratios (median):")
        for key in ("awscli", "boto3"):
            print(f"  {by[key].case.label:<42} {by[key].median_ms / rd.median_ms:8.1f}x rdsiam")
        print(f"  {'rdsiam token / /bin/true':<42} {rd.median_ms / by['true'].median_ms:8.2f}x")
        print()

        failed = 0
        print("targets:")
        for name, ok, value in check_targets(by):
            failed += not ok
            print(f"  {'PASS' if ok else 'FAIL'}  {name}: {value}")
        print()

        check = check_benchmark(ctx)
        if check:
            render_table("check: connect with an IAM token and run select current_user", check)

    if failed and os.environ.get("BENCH_STRICT") == "1":
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
