#!/usr/bin/env python3
"""rdsiam against the AWS CLI and boto3 (token), and against the AWS CLI
plus psql logging in through scripts/sandbox (check), side by side, from one run.

Started by bench/bench (which makes the venv and finds or builds rdsiam);
see bench/README.md. Standard library only: it runs in the venv that holds
awscli and boto3, but never imports them itself.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import shlex
import shutil
import signal
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
MYSQL_PORT = 3306
MYSQL_TOKEN_PREFIX = f"{HOST}:{MYSQL_PORT}/?Action=connect&DBUser={USER}&"

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
        # A MySQL target: the same presigned URL for port 3306 (issue 22).
        Case("rdsiam_mysql", "rdsiam token --host --engine mysql",
             [str(ctx.rdsiam), "token", "--host", HOST, "--engine", "mysql",
              "-U", USER, "--region", REGION],
             env, expect_stdout_prefix=MYSQL_TOKEN_PREFIX),
        Case("awscli_mysql", "aws rds generate-db-auth-token --port 3306",
             [str(ctx.venv / "bin/aws"), "rds", "generate-db-auth-token",
              "--hostname", HOST, "--port", str(MYSQL_PORT), "--username", USER,
              "--region", REGION],
             env, expect_stdout_prefix=MYSQL_TOKEN_PREFIX),
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
# The second table: `rdsiam check` against what people type today,
# `PGPASSWORD="$(aws rds generate-db-auth-token …)" psql … -c 'select current_user'`,
# both logging in to a real PostgreSQL through an IAM gate. The world comes
# from scripts/sandbox (testkit's rdsiam-sandbox): run with no COMMAND it
# prints `export NAME=value` lines and waits for SIGTERM; the bench starts it,
# reads those lines into an environment, runs every command of this table in
# it, and stops it again, whatever happens in between.

PROXY = "PostgreSqlProxy"
DBNAME = "app"
MIN_CHECK_SPEEDUP_VS_PSQL = 5.0  # rdsiam check median at least this many times faster
# Generous: the first scripts/sandbox run builds rdsiam-sandbox (minutes on 2 cores).
SANDBOX_START_TIMEOUT_S = float(os.environ.get("BENCH_SANDBOX_TIMEOUT", "1800"))
SANDBOX_STOP_TIMEOUT_S = 30.0


class SandboxError(Exception):
    pass


class SandboxProc:
    """`scripts/sandbox` with no COMMAND, as a context manager.

    Entering starts it and parses its `export` lines into `self.vars`; leaving
    sends SIGTERM (the sandbox then stops PostgreSQL, the gate and the API and
    removes its temp dirs) and waits; a sandbox that doesn't go in time is
    killed with its whole process group. It runs in a session of its own, so
    the group holds exactly what it started (cargo while building, then the
    sandbox); a Ctrl-C at the bench's terminal reaches the bench, whose
    cleanup then stops the sandbox in order.
    """

    def __init__(self, script: Path, args: tuple[str, ...] = ()):
        self.script = script
        self.args = list(args)
        self.proc: subprocess.Popen | None = None
        self.vars: dict[str, str] = {}
        self.startup_s = 0.0
        self._err = tempfile.TemporaryFile(mode="w+")
        self._up = False

    def __enter__(self) -> "SandboxProc":
        import queue
        import threading

        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            [str(self.script), *self.args], cwd=str(self.script.parent.parent),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._err,
            text=True, start_new_session=True,
        )
        try:
            lines: queue.Queue[str | None] = queue.Queue()

            def pump(out=self.proc.stdout) -> None:
                for line in out:
                    lines.put(line)
                lines.put(None)

            threading.Thread(target=pump, daemon=True).start()
            deadline = time.monotonic() + SANDBOX_START_TIMEOUT_S
            exports: list[str] = []
            while True:
                try:
                    line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    raise SandboxError(f"not up after {SANDBOX_START_TIMEOUT_S:.0f} s"
                                       f" (BENCH_SANDBOX_TIMEOUT):\n{self.stderr_tail()}") from None
                if line is None:
                    try:
                        self.proc.wait(timeout=SANDBOX_STOP_TIMEOUT_S)
                    except subprocess.TimeoutExpired:
                        pass
                    raise SandboxError(f"exited {self.proc.returncode} before printing "
                                       f"its environment:\n{self.stderr_tail()}")
                line = line.rstrip("\n")
                if line.startswith(("export ", "unset ")):
                    exports.append(line)
                elif exports:  # the block is printed in one write; the comment after it ends it
                    break
            self.startup_s = time.perf_counter() - t0
            self._up = True
            self.vars = parse_exports(exports)
            for name in ("RDSIAM_VIA", "PGSSLROOTCERT", "AWS_ENDPOINT_URL_RDS"):
                if name not in self.vars:
                    raise SandboxError(f"its environment has no {name}:\n" + "\n".join(exports))
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            try:
                if self._up:
                    proc.send_signal(signal.SIGTERM)  # the sandbox tears down in order
                else:  # still in scripts/sandbox's cargo build, or starting: all of it
                    os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=SANDBOX_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                print(f"bench: the sandbox (pid {proc.pid}) did not stop within "
                      f"{SANDBOX_STOP_TIMEOUT_S:.0f} s of SIGTERM; killing it", file=sys.stderr)
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
        if proc.stdout:
            proc.stdout.close()
        if self._up and proc.returncode not in (0, -signal.SIGTERM):
            print(f"bench: the sandbox exited {proc.returncode} on stopping:\n{self.stderr_tail()}",
                  file=sys.stderr)
        self._err.close()

    def stderr_tail(self, n: int = 20) -> str:
        try:
            self._err.seek(0)
            return "\n".join(self._err.read().strip().splitlines()[-n:])
        except (OSError, ValueError):
            return ""


def parse_exports(lines: list[str]) -> dict[str, str]:
    """`export NAME=value` lines (POSIX-shell quoted) to a dict; `unset` lines
    are dropped (the bench's environments start empty anyway). A `$PATH` in
    the value (the sandbox prepends and appends to the caller's PATH) is
    expanded with the bench's own PATH."""
    out: dict[str, str] = {}
    for line in lines:
        if not line.startswith("export "):
            continue
        name, _, raw = line[len("export "):].partition("=")
        words = shlex.split(raw) if raw else [""]
        if len(words) != 1:
            raise SandboxError(f"cannot parse {line!r}")
        value = words[0]
        if name == "PATH":
            own = os.environ.get("PATH", "/usr/bin:/bin")
            value = value.replace("${PATH}", own).replace("$PATH", own)
        out[name] = value
    return out


def find_psql(path: str) -> str | None:
    """psql on `path`, else where PostgreSQL installs it off PATH (Debian's
    versioned dir, RDSIAM_PG_BIN, Homebrew's keg-only formulae)."""
    found = shutil.which("psql", path=path)
    if found:
        return found
    import glob

    dirs = [os.environ["RDSIAM_PG_BIN"]] if os.environ.get("RDSIAM_PG_BIN") else []
    for pattern in ("/usr/lib/postgresql/*/bin", "/opt/homebrew/opt/*/bin", "/usr/local/opt/*/bin"):
        dirs += sorted(glob.glob(pattern), reverse=True)
    for d in dirs:
        p = Path(d) / "psql"
        if os.access(p, os.X_OK):
            return str(p)
    return None


def check_cases(ctx: Ctx, env: dict[str, str], host: str, port: int,
                psql: str) -> list[Case]:
    rdsiam = str(ctx.rdsiam)
    via_host, _, via_port = env["RDSIAM_VIA"].rpartition(":")
    aws = shlex.quote(str(ctx.venv / "bin/aws"))
    # What the AWS docs and the article have people type, with the host name
    # the token is signed for and verify-full checks, and the TCP connection
    # sent to the gate (as rdsiam's RDSIAM_VIA does). sslrootcert is expanded
    # by the shell from the sandbox's PGSSLROOTCERT.
    script = (
        f'PGPASSWORD="$({aws} rds generate-db-auth-token --hostname {host} --port {port}'
        f' --username {USER} --region {REGION})"'
        f' {shlex.quote(psql)}'
        f' "host={host} hostaddr={via_host} port={via_port} user={USER} dbname={DBNAME}'
        f' sslmode=verify-full sslrootcert=$PGSSLROOTCERT"'
        f' -Atc "select current_user"'
    )
    logged_in = f"ok: logged in as {USER} to {DBNAME}"
    return [
        Case("check", "rdsiam check --proxy (API+STS+login)",
             [rdsiam, "check", "--proxy", PROXY, "--user", USER, "--dbname", DBNAME],
             env, expect_stdout_prefix=logged_in),
        Case("check_host", "rdsiam check --host --no-aws-identity",
             [rdsiam, "check", "--host", host, "--user", USER, "--dbname", DBNAME,
              "--no-aws-identity"],
             env, expect_stdout_prefix=logged_in),
        Case("psql", "aws generate-db-auth-token + psql -c",
             ["/bin/sh", "-c", script], env, expect_stdout_prefix=f"{USER}\n"),
    ]


def check_benchmark(ctx: Ctx) -> int:
    """Start the sandbox, time the check table, print it with its ratios and
    target; return the number of failed targets."""
    title = (f"check: log in through the IAM gate (RDS Proxy {PROXY}), user {USER}, "
             f"database {DBNAME}, one query")
    script = ctx.root / "scripts" / "sandbox"
    if not os.access(script, os.X_OK):
        print(f"check benchmark: SKIP, needs {script} (not found)")
        return 0
    if not find_psql(os.environ.get("PATH", "")):
        print("check benchmark: SKIP, psql not found (Debian/Ubuntu: apt-get install "
              "postgresql-client; macOS: brew install libpq)")
        return 0

    print("  starting scripts/sandbox (builds rdsiam-sandbox first if needed) …",
          file=sys.stderr, flush=True)
    # A plain SIGTERM to the bench would end Python without any cleanup; make
    # it an exception so the sandbox is stopped on the way out.
    def on_term(signum, _frame):
        raise SystemExit(128 + signum)
    old_term = signal.signal(signal.SIGTERM, on_term)
    try:
        with SandboxProc(script) as sandbox:
            return run_check_table(ctx, sandbox, title)
    except SandboxError as e:
        print(f"check benchmark: the sandbox did not start: {e}")
        print()
        print("targets:")
        print(f"  FAIL  rdsiam check >= {MIN_CHECK_SPEEDUP_VS_PSQL:.0f}x faster than "
              "aws generate-db-auth-token + psql: not measured (no sandbox)")
        print()
        return 1
    finally:
        signal.signal(signal.SIGTERM, old_term)


def run_check_table(ctx: Ctx, sandbox: SandboxProc, title: str) -> int:
    env = hermetic_env(ctx.home, creds=False, imds_disabled=True)
    env.update(sandbox.vars)

    psql = find_psql(env["PATH"])
    if not psql:
        print("check benchmark: SKIP, psql not found on the sandbox's PATH")
        return 0

    # The proxy's endpoint host, as the RDS API reports it (and the token and
    # the certificate name it).
    proc = subprocess.run(
        [str(ctx.rdsiam), "token", "--proxy", PROXY, "--user", USER, "-o", "json"],
        env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60,
    )
    if proc.returncode != 0:
        sys.exit(f"bench: rdsiam token --proxy {PROXY} in the sandbox: exit {proc.returncode}\n"
                 f"  stderr: {proc.stderr.strip()[:600]}")
    tok = json.loads(proc.stdout)
    host, port = tok["host"], int(tok["port"])

    print(f"sandbox:  up in {sandbox.startup_s:.1f} s; {PROXY} = {host}:{port}, "
          f"TCP to the IAM gate at {env['RDSIAM_VIA']}; RDS/STS API {env['AWS_ENDPOINT_URL_RDS']}")
    print(f"psql:     {version_of([psql, '--version'], env)} ({psql})")
    print(f"runs:     {ctx.runs} each after {ctx.warmup} warm-up (BENCH_CHECK_RUNS)")
    print()

    results = measure_all(check_cases(ctx, env, host, port, psql), ctx)
    by = {r.case.key: r for r in results}
    render_table(title, results)

    full, local, tools = by["check"], by["check_host"], by["psql"]
    print("ratios (median):")
    print(f"  {'aws+psql / rdsiam check --proxy':<42} {tools.median_ms / full.median_ms:8.1f}x")
    print(f"  {'aws+psql / rdsiam check --host':<42} {tools.median_ms / local.median_ms:8.1f}x")
    print(f"  {'rdsiam check --proxy / --host':<42} {full.median_ms / local.median_ms:8.2f}x")
    print()

    speedup = tools.median_ms / full.median_ms
    ok = speedup >= MIN_CHECK_SPEEDUP_VS_PSQL
    print("targets:")
    print(f"  {'PASS' if ok else 'FAIL'}  rdsiam check --proxy >= {MIN_CHECK_SPEEDUP_VS_PSQL:.0f}x "
          f"faster than aws generate-db-auth-token + psql (median): {speedup:.1f}x")
    print()
    return 0 if ok else 1


# ------------------------------------------------ the MySQL check benchmark
#
# The same for a MySQL target (issue 22), in `scripts/sandbox --mysql`: a real
# MariaDB whose server checks the token (PAM -> the testkit's SigV4 verifier)
# plays RDS Proxy `MySqlProxy`. `rdsiam check` (API, STS, TLS, login, whoami)
# against the mariadb client given a token minted once beforehand (so the
# client row has no AWS CLI start-up in it at all).

MYSQL_PROXY = "MySqlProxy"


def find_mysql_client(path: str) -> str | None:
    return shutil.which("mariadb", path=path) or shutil.which("mysql", path=path)


def mysql_check_benchmark(ctx: Ctx) -> int:
    script = ctx.root / "scripts" / "sandbox"
    if not find_mysql_client(os.environ.get("PATH", "")):
        print("mysql check benchmark: SKIP, no mariadb/mysql client (apt-get install mariadb-client)")
        return 0
    print("  starting scripts/sandbox --mysql …", file=sys.stderr, flush=True)
    def on_term(signum, _frame):
        raise SystemExit(128 + signum)
    old_term = signal.signal(signal.SIGTERM, on_term)
    try:
        with SandboxProc(script, ("--mysql",)) as sandbox:
            return run_mysql_check_table(ctx, sandbox)
    except SandboxError as e:
        print(f"mysql check benchmark: the sandbox did not start: {e}")
        return 1
    finally:
        signal.signal(signal.SIGTERM, old_term)


def run_mysql_check_table(ctx: Ctx, sandbox: SandboxProc) -> int:
    env = hermetic_env(ctx.home, creds=False, imds_disabled=True)
    env.update(sandbox.vars)
    client = find_mysql_client(env["PATH"])
    rdsiam = str(ctx.rdsiam)
    proc = subprocess.run(
        [rdsiam, "token", "--proxy", MYSQL_PROXY, "--user", USER, "-o", "json"],
        env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60,
    )
    if proc.returncode != 0:
        sys.exit(f"bench: rdsiam token --proxy {MYSQL_PROXY} in the sandbox: exit "
                 f"{proc.returncode}\n  stderr: {proc.stderr.strip()[:600]}")
    tok = json.loads(proc.stdout)
    host, port = tok["host"], int(tok["port"])
    via_host, _, via_port = env["RDSIAM_VIA"].rpartition(":")
    # The pre-minted token, for the client row only (MYSQL_PWD: a benchmark, not advice).
    client_env = dict(env, MYSQL_PWD=tok["token"])
    print(f"sandbox:  up in {sandbox.startup_s:.1f} s; {MYSQL_PROXY} = {host}:{port}, "
          f"TCP to MariaDB at {env['RDSIAM_VIA']}")
    print(f"client:   {version_of([client, '--version'], env)} ({client})")
    print(f"runs:     {ctx.runs} each after {ctx.warmup} warm-up (BENCH_CHECK_RUNS)")
    print()
    logged_in = f"ok: logged in as {USER} to {DBNAME}"
    cases = [
        Case("mcheck", "rdsiam check --proxy MySqlProxy (API+STS+login)",
             [rdsiam, "check", "--proxy", MYSQL_PROXY, "--user", USER, "--dbname", DBNAME],
             env, expect_stdout_prefix=logged_in),
        Case("mcheck_host", "rdsiam check --host --engine mysql --no-aws-identity",
             [rdsiam, "check", "--host", host, "--port", str(port), "--engine", "mysql",
              "--user", USER, "--dbname", DBNAME, "--no-aws-identity"],
             env, expect_stdout_prefix=logged_in),
        # TLS verified against the address dialled (the certificate names 127.0.0.1 too):
        # the client cannot dial one name and verify another.
        Case("mclient", "mariadb -e 'select current_user()' (token pre-minted)",
             [client, "--no-defaults", f"--host={via_host}", f"--port={via_port}",
              f"--user={USER}", "--protocol=TCP", "--ssl", "--ssl-verify-server-cert",
              f"--ssl-ca={env['PGSSLROOTCERT']}", DBNAME, "-N", "-B",
              "-e", "select current_user()"],
             client_env, expect_stdout_prefix=f"{USER}@%"),
    ]
    results = measure_all(cases, ctx)
    by = {r.case.key: r for r in results}
    render_table(f"check, MySQL: log in to MariaDB as {MYSQL_PROXY}, user {USER}, "
                 f"database {DBNAME}, one query", results)
    full, local, cli = by["mcheck"], by["mcheck_host"], by["mclient"]
    print("ratios (median):")
    print(f"  {'rdsiam check --proxy / mariadb':<42} {full.median_ms / cli.median_ms:8.2f}x")
    print(f"  {'rdsiam check --host / mariadb':<42} {local.median_ms / cli.median_ms:8.2f}x")
    print()
    return 0


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
        print(f"  {'aws (3306) / rdsiam token --engine mysql':<42} "
              f"{by['awscli_mysql'].median_ms / by['rdsiam_mysql'].median_ms:8.1f}x")
        print()

        failed = 0
        print("targets:")
        for name, ok, value in check_targets(by):
            failed += not ok
            print(f"  {'PASS' if ok else 'FAIL'}  {name}: {value}")
        print()

        check_ctx = dataclasses.replace(
            ctx, runs=int(os.environ.get("BENCH_CHECK_RUNS", "20")))
        failed += check_benchmark(check_ctx)
        if os.environ.get("BENCH_MYSQL", "1") != "0":
            failed += mysql_check_benchmark(check_ctx)

    if failed and os.environ.get("BENCH_STRICT") == "1":
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
