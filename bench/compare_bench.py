"""Benchmark: migcheck side by side with the tools people use instead, on the same hosts.

One run, as root (the SSH lab needs mount namespaces):  .venv/bin/python bench/compare_bench.py

  1. `migcheck pair A B --cmdline X -f json` over SSH (two lab hosts, gathered in parallel)
     vs `ansible A -m setup` (one of the two hosts), both through the lab's ssh_config;
  2. `migcheck host local -f json` vs `virsh domcapabilities --virttype kvm`, each cold
     (migcheck --refresh; libvirtd restarted with an empty capabilities cache) and warm;
  3. `migcheck gather` of 200 aliases of one sshd, --jobs 32, vs `ansible -f 32 -m setup`;
  4. start-up: `migcheck --help`, offline `migcheck pair` of the bundled fixtures;
  5. bench/fleet_bench.py (10,000 hosts).

Every timing is the wall time of the whole process (interpreter start-up included), median
of --runs runs (--fanout-runs for the 200-host rows) after one untimed warm-up run; cold rows
are cold on every run. The commands of a section run in interleaved rounds (A B, A B, ...)
so that load from other processes hits both tools alike, and each round first waits up to
--settle seconds for at most one runnable task per CPU; the load is printed at the start,
with every step and at the end, and client CPU (user+sys) next to the wall times.
ansible-core is installed once into a throwaway venv outside the repository (--venv,
default /var/tmp/migcheck-bench-ansible) and reused by later runs.
migcheck's probe cache goes to a temporary XDG_CACHE_HOME, so ~/.cache is not touched.
A libvirtd this script starts is stopped at the end; one that was already running is used
as is (warm rows only). Targets that are missed are profiled (cProfile of the migcheck
process, plus py-spy of all threads when it installs) unless --no-profile.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import pstats
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from lab import Lab, alias_names, hostdata  # noqa: E402

BIN = Path(sys.executable).parent
MIGCHECK = (
    [str(BIN / "migcheck")]
    if (BIN / "migcheck").exists()
    else [sys.executable, "-m", "migcheck.cli"]
)
CMDLINE = "qemu-system-x86_64 -machine pc-q35-8.2 -accel kvm -cpu EPYC-Rome -m 2048\n"
FIXTURE_SRC = ROOT / "fixtures/hosts/debian13-qemu10.0-epyc-pvm.json"
FIXTURE_DST = ROOT / "fixtures/hosts/debian12-qemu7.2-epyc-pvm.json"
FIXTURE_CMDLINE = ROOT / "fixtures/cmdlines/web01-q35.cmdline"
DEFAULT_VENV = Path("/var/tmp/migcheck-bench-ansible")
VIRSH_URI = "qemu:///system"
LIBVIRT_CAPS = Path("/var/cache/libvirt/qemu/capabilities")
TIMEOUT = 900.0  # per timed command: the 200-host ansible run is the slow one


class BenchError(RuntimeError):
    pass


# --- measuring -------------------------------------------------------------------------------
@dataclass
class Sample:
    wall: float
    cpu: float  # user + sys of the command and every descendant it reaped


@dataclass
class Cmd:
    argv: list[str]
    env: dict[str, str] | None = None
    ok: tuple[int, ...] = (0,)
    check: Callable[[subprocess.CompletedProcess[str]], str | None] | None = None  # -> error
    before: Callable[[], None] | None = None  # untimed, before every timed run (cold rows)
    warmup: bool = True  # one untimed run first (page cache, probe cache)
    samples: list[Sample] = field(default_factory=list)

    def run(self) -> Sample:
        used = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run(
            self.argv,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=TIMEOUT,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - used.ru_utime) + (after.ru_stime - used.ru_stime)
        problem = None
        if proc.returncode not in self.ok:
            problem = f"exit {proc.returncode}"
        elif self.check is not None:
            problem = self.check(proc)
        if problem:
            tail = (proc.stderr or proc.stdout)[-1500:]
            raise BenchError(f"{' '.join(self.argv[:6])} ...: {problem}\n{tail}")
        return Sample(wall, cpu)

    @property
    def walls(self) -> list[float]:
        return [s.wall for s in self.samples]

    @property
    def cpus(self) -> list[float]:
        return [s.cpu for s in self.samples]


def runnable() -> float:
    """Mean number of runnable tasks over ~1 s (/proc/loadavg's 4th field), minus ourselves:
    what the 1-minute load average reports a minute late."""
    counts = []
    for _ in range(10):
        with contextlib.suppress(OSError, ValueError):
            counts.append(int(Path("/proc/loadavg").read_text().split()[3].split("/")[0]) - 1)
        time.sleep(0.1)
    return statistics.mean(counts) if counts else 0.0


class Rounds:
    """Runs commands in interleaved rounds (A B C, A B C, ...), so load from other processes
    hits every command alike; before each round waits up to ``settle`` s for the machine to
    have at most one runnable task per CPU."""

    def __init__(self, settle: float):
        self.settle = settle
        self.busy: list[float] = []  # runnable tasks when each round started

    def quiet(self) -> None:
        deadline = time.monotonic() + self.settle
        busy = runnable()
        while busy > (os.cpu_count() or 1) and time.monotonic() < deadline:
            busy = runnable()
        self.busy.append(busy)

    def __call__(self, cmds: Sequence[Cmd], runs: int) -> None:
        for cmd in cmds:
            if cmd.warmup:
                cmd.run()
        for _ in range(runs):
            self.quiet()
            for cmd in cmds:
                if cmd.before is not None:
                    cmd.before()
                cmd.samples.append(cmd.run())


def stat(samples: Sequence[float] | None, n: int | None = None) -> str:
    if not samples:
        return "-"
    med = statistics.median(samples)
    return f"{med:.3f} s ({min(samples):.3f}-{max(samples):.3f}, n={n or len(samples)})"


@dataclass
class Row:
    what: str
    ours: Cmd | list[float] | None
    other_what: str = "-"
    other: Cmd | None = None
    target: str = ""
    # met(ours_median, other_median) -> bool; None: nothing to judge
    met: Callable[[float, float | None], bool] | None = None
    ours_extra: str = ""
    section: str = ""
    n: int | None = None  # runs behind ours, when ours is only (min, median, max)

    @property
    def ours_walls(self) -> list[float]:
        if isinstance(self.ours, Cmd):
            return self.ours.walls
        return list(self.ours or [])

    @property
    def other_walls(self) -> list[float]:
        return self.other.walls if self.other is not None else []

    @property
    def ratio(self) -> float | None:
        if self.ours_walls and self.other_walls:
            return statistics.median(self.ours_walls) / statistics.median(self.other_walls)
        return None

    @property
    def verdict(self) -> bool | None:
        if self.met is None or not self.ours_walls:
            return None
        other = statistics.median(self.other_walls) if self.other_walls else None
        return self.met(statistics.median(self.ours_walls), other)


def ratio_at_most(limit: float) -> Callable[[float, float | None], bool]:
    return lambda ours, other: other is not None and ours / other <= limit


def seconds_at_most(limit: float) -> Callable[[float, float | None], bool]:
    return lambda ours, _other: ours <= limit


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} load {load()}] {msg}", flush=True)


# --- environment ----------------------------------------------------------------------------
def machine() -> str:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kib / 1024 / 1024:.0f} GiB"
    return (
        f"{os.cpu_count()} CPUs ({cpu}), {mem} RAM, Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def tool_version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else "?"


def ensure_venv(venv: Path, *packages: str) -> Path:
    """A venv with ``packages`` installed (once; reruns find them). Returns its bin dir."""
    py = venv / "bin" / "python"
    if not py.exists():
        log(f"creating the throwaway venv {venv}")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    for package in packages:
        probe = subprocess.run(
            [str(py), "-m", "pip", "show", "--quiet", package], capture_output=True, check=False
        )
        if probe.returncode != 0:
            log(f"pip install {package} into {venv}")
            subprocess.run(
                [
                    str(py),
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    package,
                ],
                check=True,
            )
    return venv / "bin"


def ansible_env(tmp: Path, ssh_config: Path) -> dict[str, str]:
    home = tmp / "ansible-home"
    (home / "tmp").mkdir(parents=True, exist_ok=True)
    empty_cfg = tmp / "ansible.cfg"
    empty_cfg.write_text("[defaults]\n")
    env = dict(os.environ)
    env.update(
        {
            "ANSIBLE_CONFIG": str(empty_cfg),  # no ansible.cfg from cwd or ~ leaks in
            "ANSIBLE_HOME": str(home),
            "ANSIBLE_LOCAL_TEMP": str(home / "tmp"),
            # The lab's config: HostName/Port/User/IdentityFile and UserKnownHostsFile with
            # StrictHostKeyChecking yes, so host keys stay checked. No ControlPersist: every
            # ansible run opens fresh connections, like every migcheck run.
            "ANSIBLE_SSH_ARGS": f"-F {ssh_config}",
            "ANSIBLE_HOST_KEY_CHECKING": "True",
            "ANSIBLE_PIPELINING": "True",
            "ANSIBLE_SSH_RETRIES": "0",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_DEPRECATION_WARNINGS": "False",
        }
    )
    return env


def write_inventory(path: Path, names: Sequence[str]) -> Path:
    lines = ["[lab]", *names, "", "[all:vars]", "ansible_python_interpreter=/usr/bin/python3", ""]
    path.write_text("\n".join(lines))
    return path


def successes(expected: int) -> Callable[[subprocess.CompletedProcess[str]], str | None]:
    def check(proc: subprocess.CompletedProcess[str]) -> str | None:
        got = len(re.findall(r"^\S+ \| SUCCESS", proc.stdout, re.M))
        return None if got == expected else f"{got} of {expected} hosts answered SUCCESS"

    return check


def files_in(directory: Path, expected: int) -> Callable[[subprocess.CompletedProcess], str | None]:
    def check(_proc: subprocess.CompletedProcess) -> str | None:
        got = len(list(directory.glob("*.json")))
        return None if got == expected else f"{got} of {expected} facts files written"

    return check


# --- libvirt --------------------------------------------------------------------------------
def virsh(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["virsh", "-c", VIRSH_URI, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class Libvirtd:
    """Our own libvirtd (started only if none answers), restartable for cold runs.

    Readiness is checked with `virsh uri`: it connects to the QEMU driver without asking for
    capabilities (unlike `virsh version`, which makes libvirt probe QEMU and fill its cache).
    """

    def __init__(self, tmp: Path):
        self.pid_file = tmp / "libvirtd.pid"
        self.pid: int | None = None
        self.foreign = virsh("uri", timeout=20).returncode == 0

    def start(self) -> None:
        if self.foreign:
            return
        subprocess.run(["libvirtd", "--daemon", "--pid-file", str(self.pid_file)], check=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.pid is None and self.pid_file.exists():
                with contextlib.suppress(ValueError):
                    self.pid = int(self.pid_file.read_text().strip())
            if self.pid is not None and virsh("uri", timeout=20).returncode == 0:
                return
            time.sleep(0.05)
        raise BenchError("libvirtd did not answer `virsh uri` within 30 s")

    def stop(self) -> None:
        if self.foreign or self.pid is None:
            return
        pid, self.pid = self.pid, None
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            time.sleep(0.05)
        if Path(f"/proc/{pid}").exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    def cold_restart(self) -> None:
        """Stop, empty libvirt's QEMU capabilities cache, start: the next query probes QEMU."""
        self.stop()
        for entry in LIBVIRT_CAPS.glob("*"):
            entry.unlink()
        self.start()
        if any(LIBVIRT_CAPS.glob("*")):
            raise BenchError("libvirt's capabilities cache filled before the timed query")


# --- sections -------------------------------------------------------------------------------
@dataclass
class Bench:
    args: argparse.Namespace
    tmp: Path
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    ansible_bin: Path | None = None
    lab: Lab | None = None
    cpu_rows: list[tuple[str, str, Cmd]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rounds = Rounds(self.args.settle)

    def migcheck_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["XDG_CACHE_HOME"] = str(self.tmp / "xdg-cache")  # migcheck's probe cache
        env.pop("MIGCHECK_PLATFORMS", None)
        return env

    def mig(self, *argv: str, **kw) -> Cmd:
        return Cmd([*MIGCHECK, *argv], env=self.migcheck_env(), **kw)

    def ansible(self) -> Path:
        if self.ansible_bin is None:
            self.ansible_bin = ensure_venv(self.args.venv, "ansible-core")
            version = tool_version([str(self.ansible_bin / "ansible"), "--version"])
            self.notes.append(f"ansible: {version}, from {self.args.venv}")
        return self.ansible_bin

    def start_lab(self) -> Lab:
        if self.lab is None:
            log("starting the SSH lab (one real sshd per host)")
            lab = Lab(self.tmp / "lab")
            self.lab = lab
            lab.add_host("bench-a", qemu="8.2.0", kernel="6.1.0-18-amd64")
            lab.add_host(
                "bench-b", qemu="9.1.0", kernel="6.8.0-45-generic", os_release=hostdata.UBUNTU_2204
            )
            lab.add_host("bench-fan", qemu="9.1.0", max_startups="300")
        return self.lab

    # 1 ------------------------------------------------------------------------------------
    def pair_vs_setup(self) -> None:
        lab = self.start_lab()
        ansible = self.ansible()
        cmdline = self.tmp / "vm.cmdline"
        cmdline.write_text(CMDLINE)
        pair = ["pair", "bench-a", "bench-b", "-F", str(lab.ssh_config), "-c", str(cmdline)]
        pair += ["-f", "json"]
        inv = write_inventory(self.tmp / "inventory.ini", ["bench-a", "bench-b"])
        env = ansible_env(self.tmp, lab.ssh_config)
        adhoc = [str(ansible / "ansible"), "bench-a", "-i", str(inv), "-m"]
        setup = Cmd([*adhoc, "setup"], env=env, check=successes(1))
        ping = Cmd([*adhoc, "ping"], env=env, check=successes(1))
        refresh = self.mig(*pair, "--refresh", ok=(0, 1))
        warm = self.mig(*pair, ok=(0, 1))  # after a --refresh run: the probe cache is warm
        log(f"1. pair over SSH / ansible -m setup, -m ping: {self.args.runs} rounds")
        self.rounds([setup, refresh, warm, ping], self.args.runs)
        other = "`ansible A -m setup` (1 host, pipelining)"
        self.rows += [
            Row(
                "`pair A B -f json` over SSH `--refresh` (QEMU started on both)",
                refresh,
                other,
                setup,
                "<= 0.5x",
                ratio_at_most(0.5),
                section="1",
            ),
            Row(
                "`pair A B -f json` over SSH, probe cache warm",
                warm,
                other,
                setup,
                "<= 0.5x",
                ratio_at_most(0.5),
                section="1",
            ),
        ]
        self.notes.append(
            "1. `ansible A -m ping` (ansible's floor: start-up, one SSH connection, one remote "
            f"python): {stat(ping.walls)}"
        )
        self.cpu_rows += [("1", "pair --refresh", refresh), ("1", "pair, cache warm", warm)]
        self.cpu_rows += [("1", "ansible -m setup", setup), ("1", "ansible -m ping", ping)]

    # 2 ------------------------------------------------------------------------------------
    def local_vs_virsh(self) -> None:
        host = ["host", "local", "-f", "json"]
        refresh = self.mig(*host, "--refresh")
        warm = self.mig(*host)
        cmds = [refresh, warm]
        virsh_cold = virsh_warm = None
        other = "`virsh domcapabilities --virttype kvm`"
        daemon = None
        if shutil.which("virsh") is None or shutil.which("libvirtd") is None:
            self.notes.append("2. libvirt is not installed: no virsh column (migcheck only).")
        elif not os.access("/dev/kvm", os.R_OK | os.W_OK):
            self.notes.append("2. /dev/kvm is not usable: no virsh column (migcheck only).")
        else:
            daemon = Libvirtd(self.tmp)
            argv = ["virsh", "-c", VIRSH_URI, "domcapabilities", "--virttype", "kvm"]

            def xml(proc: subprocess.CompletedProcess[str]) -> str | None:
                return None if "<domainCapabilities>" in proc.stdout else "no XML"

            if daemon.foreign:
                self.notes.append(
                    "2. a libvirtd was already running (not started here): no cold virsh row; "
                    "the warm row uses that daemon."
                )
            else:
                virsh_cold = Cmd(argv, check=xml, before=daemon.cold_restart, warmup=False)
                # first query after a restart with the cache on disk (e.g. after a reboot)
                disk = Cmd(argv, check=xml, before=daemon.restart, warmup=False)
                cmds += [virsh_cold, disk]
            virsh_warm = Cmd(argv, check=xml, warmup=False)  # right after cold/disk: in memory
            cmds.append(virsh_warm)
        log(f"2. host local (--refresh, warm) / virsh domcapabilities: {self.args.runs} rounds")
        try:
            if daemon is not None:
                daemon.start()
                virsh_warm.run()  # the daemon answers from memory from now on
            self.rounds(cmds, self.args.runs)
        finally:
            if daemon is not None:
                daemon.stop()
        if daemon is not None and not daemon.foreign:
            self.notes.append(
                f"2. {tool_version(['libvirtd', '--version'])}. Cold: libvirtd stopped, "
                f"`{LIBVIRT_CAPS}/*` removed, libvirtd started and ready per `virsh uri` (which "
                "does not ask for capabilities; checked: the cache is still empty), then the "
                "timed query makes libvirt probe QEMU. First query after a restart with the "
                f"cache on disk (as after a reboot): {stat(disk.walls)}"
            )
        self.rows += [
            Row(
                "`host local -f json --refresh` (QEMU started)",
                refresh,
                f"{other}, cold (libvirt probes QEMU)",
                virsh_cold,
                "<= 0.25x",
                ratio_at_most(0.25) if virsh_cold else None,
                section="2",
            ),
            Row(
                "`host local -f json`, probe cache warm (no QEMU start)",
                warm,
                f"{other}, warm (libvirtd answers from memory)",
                virsh_warm,
                "<= 0.25x",
                ratio_at_most(0.25) if virsh_warm else None,
                section="2",
            ),
        ]
        self.cpu_rows += [("2", "host local --refresh", refresh), ("2", "host local, warm", warm)]

    # 3 ------------------------------------------------------------------------------------
    def fanout(self) -> None:
        lab = self.start_lab()
        ansible = self.ansible()
        n, jobs, runs = self.args.aliases, self.args.jobs, self.args.fanout_runs
        cfg = lab.alias_config(n, "bench-fan", prefix="fan")
        names = alias_names(n, "fan")
        out = self.tmp / "facts"

        def clean() -> None:
            shutil.rmtree(out, ignore_errors=True)

        gather = ["gather", *names, "-F", str(cfg), "--out-dir", str(out), "--jobs", str(jobs)]
        inv = write_inventory(self.tmp / f"inventory-{n}.ini", names)
        env = ansible_env(self.tmp, cfg)
        setup = Cmd(
            [str(ansible / "ansible"), "all", "-i", str(inv), "-f", str(jobs), "-m", "setup"],
            env=env,
            check=successes(n),
            warmup=False,
        )
        # warm-up without 200 setups: ansible's files in the page cache, one module run
        Cmd([str(ansible / "ansible"), names[0], "-i", str(inv), "-m", "setup"], env=env).run()
        refresh = self.mig(*gather, "--refresh", check=files_in(out, n), before=clean)
        warm = self.mig(*gather, check=files_in(out, n), before=clean)
        log(f"3. {n} aliases: ansible -f {jobs} -m setup / gather --jobs {jobs}: {runs} rounds")
        self.rounds([setup, refresh, warm], runs)
        other = f"`ansible all -f {jobs} -m setup` (pipelining)"
        for what, cmd in [("`--refresh`", refresh), ("probe cache warm", warm)]:
            self.rows.append(
                Row(
                    f"`gather` of {n} aliases `--jobs {jobs}`, {what}",
                    cmd,
                    other,
                    setup,
                    "<= 0.33x (>= 3x faster)",
                    ratio_at_most(1 / 3),
                    ours_extra=f"{n / statistics.median(cmd.walls):.0f} hosts/s",
                    section="3",
                )
            )
        self.notes.append(
            f"3. {n} aliases of one sshd (MaxStartups 300), {runs} rounds (--fanout-runs; "
            f"ansible takes long here): every host is a full SSH handshake, a session and a "
            f"remote python3 (migcheck: plus a QEMU stand-in start with --refresh). Ansible: "
            f"{n / statistics.median(setup.walls):.1f} hosts/s."
        )
        self.cpu_rows += [("3", "gather --refresh", refresh), ("3", "gather, warm", warm)]
        self.cpu_rows += [("3", "ansible -m setup", setup)]

    # 4 ------------------------------------------------------------------------------------
    def startup(self) -> None:
        help_cmd = self.mig("--help")
        offline = self.mig(
            "pair", str(FIXTURE_SRC), str(FIXTURE_DST), "--cmdline", str(FIXTURE_CMDLINE), ok=(1,)
        )
        cmds = [help_cmd, offline]
        version = None
        if self.args.ansible:
            version = Cmd([str(self.ansible() / "ansible"), "--version"])
            cmds.append(version)
        log(f"4. migcheck --help / offline pair / ansible --version: {self.args.runs} rounds")
        self.rounds(cmds, self.args.runs)
        self.rows += [
            Row(
                "`migcheck --help`",
                help_cmd,
                "`ansible --version` (for scale)" if version else "-",
                version,
                "<= 0.3 s",
                seconds_at_most(0.3),
                section="4",
            ),
            Row(
                "offline `pair` of the two fixture hosts, `web01-q35.cmdline`",
                offline,
                target="<= 0.5 s",
                met=seconds_at_most(0.5),
                section="4",
            ),
        ]
        self.cpu_rows += [("4", "--help", help_cmd), ("4", "offline pair", offline)]

    # 5 ------------------------------------------------------------------------------------
    def fleet(self) -> None:
        runs = self.args.runs
        log(f"5. bench/fleet_bench.py --runs {runs}")
        self.rounds.quiet()
        proc = subprocess.run(
            [sys.executable, str(ROOT / "bench" / "fleet_bench.py"), "--runs", str(runs)],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=True,
        )
        print(proc.stdout.rstrip())
        m = re.search(r"median ([\d.]+) s, min ([\d.]+) s, max ([\d.]+) s", proc.stdout)
        rss = re.search(r"peak RSS: (\d+) MiB", proc.stdout)
        if not m or not rss:
            raise BenchError(f"fleet_bench.py printed something unexpected:\n{proc.stdout}")
        med, lo, hi = (float(x) for x in m.groups())
        mib = int(rss.group(1))
        mb = mib * 1024 * 1024 / 1e6
        self.rows.append(
            Row(
                "`fleet_bench.py`: 10,000 hosts, 3 guests (classify + matrix + baseline)",
                [lo, med, hi],  # it prints only these three; their median is its median
                target="<= 2 s, <= 500 MB",
                met=lambda ours, _o: ours <= 2.0 and mb <= 500,
                ours_extra=f"peak RSS {mib} MiB = {mb:.0f} MB",
                section="5",
                n=runs,
            )
        )

    # profiling ----------------------------------------------------------------------------
    def profile(self, row: Row) -> None:
        cmd = row.ours
        if not isinstance(cmd, Cmd):
            return
        args = cmd.argv[len(MIGCHECK) :]
        self.rounds.quiet()
        if cmd.before is not None:
            cmd.before()
        prof = self.tmp / f"profile-{id(row)}.pstats"
        print(f"\n### profile: {row.what}\n")
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "migcheck.cli", *args],
            capture_output=True,
            env=cmd.env,
            timeout=TIMEOUT,
            check=False,
        )
        print(f"cProfile (main thread only; {time.perf_counter() - start:.3f} s wall under it):")
        if prof.exists():
            stats = pstats.Stats(str(prof), stream=sys.stdout)
            # migcheck's own functions (module bodies, i.e. imports, are in the list below)
            stats.sort_stats("cumulative").print_stats(r"/migcheck/[^:]*:\d+\((?!<module>)", 12)
        if cmd.before is not None:
            cmd.before()
        imp = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "migcheck.cli", *args],
            capture_output=True,
            text=True,
            env=cmd.env,
            timeout=TIMEOUT,
            check=False,
        )
        top = []
        for line in imp.stderr.splitlines():
            parts = line.split("|")
            # "import time: self [us] | cumulative | imported package"; depth = indentation
            if len(parts) == 3 and parts[1].strip().isdigit() and not parts[2].startswith("  "):
                top.append((int(parts[1]), parts[2].strip()))
        top.sort(reverse=True)
        total = sum(us for us, _ in top)
        print(f"imports (-X importtime): {total / 1000:.0f} ms in all; top level by cumulative:")
        for us, name in top[:10]:
            print(f"  {us / 1000:8.1f} ms  {name}")
        if self.args.py_spy and row.section in ("1", "2", "3"):
            self.py_spy(cmd)

    def py_spy(self, cmd: Cmd) -> None:
        """All threads and subprocesses: where a parallel gather waits or burns CPU."""
        try:
            bindir = ensure_venv(self.args.venv, "py-spy")
        except subprocess.CalledProcessError:
            print("(py-spy could not be installed: skipped)")
            return
        raw = self.tmp / f"py-spy-{id(cmd)}.txt"
        if cmd.before is not None:
            cmd.before()
        spy = [str(bindir / "py-spy"), "record", "--format", "raw", "--rate", "250", "--idle"]
        proc = subprocess.run(
            [*spy, "--subprocesses", "-o", str(raw), "--", *cmd.argv],
            capture_output=True,
            text=True,
            env=cmd.env,
            timeout=TIMEOUT,
            check=False,
        )
        if not raw.exists():
            print(f"(py-spy failed: {proc.stderr[-300:]})")
            return
        kinds: dict[str, int] = {}
        own: dict[str, int] = {}
        total = 0
        for line in raw.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            n = int(count)
            total += n
            kind = next((k for k, marks in PHASES if any(m in stack for m in marks)), "other")
            kinds[kind] = kinds.get(kind, 0) + n
            leaf = stack.split(";")[-1]
            own[leaf] = own.get(leaf, 0) + n
        print(f"py-spy: {total} thread samples (all threads and subprocesses, idle included)")
        for kind, n in sorted(kinds.items(), key=lambda kv: -kv[1]):
            print(f"  {100 * n / max(total, 1):5.1f}%  {kind}")
        print("  top frames by own samples:")
        for frame, n in sorted(own.items(), key=lambda kv: -kv[1])[:10]:
            print(f"  {100 * n / max(total, 1):5.1f}%  {frame}")


# py-spy stacks by phase: the first whose marks occur in a stack names it
PHASES = [
    ("imports", ("_find_and_load",)),
    ("probe subprocess (local python3 -)", ('python -"', 'python3 -"')),
    ("catalog (TOML)", ("catalog.py",)),
    ("waiting (SSH host, probe subprocess)", ("_drain", "read_all", "Condition.wait", "select")),
    ("SSH: handshake, crypto", ("paramiko",)),
    ("checks", ("checks/",)),
    ("report", ("report/",)),
]


# --- report ---------------------------------------------------------------------------------
def table(rows: list[Row]) -> str:
    lines = [
        "| # | what | migcheck median (min-max) | other tool | other median (min-max) | ratio "
        "| target | met? |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ours = stat(row.ours_walls, row.n)
        if row.ours_extra:
            ours += f"; {row.ours_extra}"
        ratio = f"{row.ratio:.2f}x" if row.ratio is not None else "-"
        verdict = {True: "yes", False: "**no**", None: "-"}[row.verdict]
        lines.append(
            f"| {row.section} | {row.what} | {ours} | {row.other_what} | {stat(row.other_walls)} "
            f"| {ratio} | {row.target} | {verdict} |"
        )
    return "\n".join(lines)


def cpu_table(rows: list[tuple[str, str, Cmd]]) -> str:
    lines = ["| # | command | client CPU (user+sys) median | wall median |", "|---|---|---|---|"]
    for section, what, cmd in rows:
        if cmd.samples:
            cpu, wall = statistics.median(cmd.cpus), statistics.median(cmd.walls)
            lines.append(f"| {section} | {what} | {cpu:.3f} s | {wall:.3f} s |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed rounds per row (default 5)")
    parser.add_argument("--fanout-runs", type=int, default=3, help="rounds of the 200-host rows")
    parser.add_argument("--aliases", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=32)
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV, help="ansible's venv")
    parser.add_argument(
        "--settle",
        type=float,
        default=60.0,
        help="before each round, wait up to this many seconds for at most one runnable task "
        "per CPU (default 60; 0: never wait)",
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="run the benchmark and everything it starts (both tools alike) at this nice "
        "value, e.g. -10 on a busy shared machine (default 0: as users run them)",
    )
    parser.add_argument("--sections", default="1,2,3,4,5", help="subset of 1-5 (default all)")
    parser.add_argument("--no-profile", dest="profile", action="store_false")
    parser.add_argument("--no-py-spy", dest="py_spy", action="store_false")
    parser.add_argument("--no-ansible", dest="ansible", action="store_false", help="skip 1, 3")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the SSH lab needs mount namespaces, libvirtd root")
    sections = set(args.sections.split(","))
    if args.nice:
        os.setpriority(os.PRIO_PROCESS, 0, args.nice)  # inherited by the lab, libvirtd, tools
    if not args.ansible:
        sections -= {"1", "3"}

    uptime = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout
    print(f"machine: {machine()}")
    print(f"migcheck: {tool_version([*MIGCHECK, '--version'])} ({MIGCHECK[0]})")
    print(f"start: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; uptime: {uptime.strip()}")
    print(f"nice: {os.getpriority(os.PRIO_PROCESS, 0)}; settle: up to {args.settle:.0f} s/round")
    start_load = load()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="migcheck-compare-") as tmp:
        bench = Bench(args, Path(tmp))
        try:
            steps = [("4", bench.startup), ("5", bench.fleet), ("2", bench.local_vs_virsh)]
            steps += [("1", bench.pair_vs_setup), ("3", bench.fanout)]
            for key, step in steps:
                if key in sections:
                    step()
            end_load = load()
            bench.rows.sort(key=lambda r: r.section)
            busy = bench.rounds.busy
            print("\n## Side by side\n")
            print(table(bench.rows))
            print()
            print(f"- load average (1, 5, 15 min) at start: {start_load}; at end: {end_load}")
            if busy:
                print(
                    f"- runnable tasks when a round started (2 = one per CPU): median "
                    f"{statistics.median(busy):.1f}, max {max(busy):.1f}, "
                    f"{sum(b > (os.cpu_count() or 1) for b in busy)} of {len(busy)} rounds "
                    f"started busy after waiting {args.settle:.0f} s"
                )
            print(f"- whole benchmark: {time.monotonic() - started:.0f} s")
            for note in bench.notes:
                print(f"- {note}")
            print("\nClient-side CPU (the command and its children; remote sshd work excluded):\n")
            print(cpu_table(bench.cpu_rows))
            missed = [r for r in bench.rows if r.verdict is False]
            if missed and args.profile:
                print(f"\n## Missed targets: {len(missed)}; where their time goes")
                for row in missed:
                    bench.profile(row)
        finally:
            if bench.lab is not None:
                bench.lab.close()


if __name__ == "__main__":
    main()
