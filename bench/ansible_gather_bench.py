"""Benchmark: gathering at scale through Ansible against `migcheck gather` (issue 25).

The same N lab hosts (aliases of a few real sshd instances on 127.0.0.1, each in its own
mount namespace with a recorded-QMP QEMU stand-in, as in tests/lab) are gathered

* by `migcheck gather HOSTS --jobs J --out-dir DIR` (paramiko, in one process), and
* by Ansible: `migcheck probe-script > probe.py`, then
  `ansible all -f FORKS -m script -a "executable=/usr/bin/python3 probe.py" --tree TREE`,
  then `migcheck gather --from-ansible TREE --out-dir DIR`,

for several Ansible settings and forks. For each run: wall seconds, and the CPU seconds
(user + system) of every controller process, children included (ansible's forks, ssh,
ControlPersist masters that detach from ansible), counted by a cgroup (cpuacct) the command
starts in; the hosts' side (sshd, the remote python3, the QEMU stand-in) runs outside it.
The machine-wide CPU of the run is printed too: on this lab the hosts share the
controller's CPUs, so wall time on a 2-core machine says little about a real controller;
CPU-seconds per host do.

Two things the lab cannot show, so they have no row: the probe cache (the QEMU stand-in is
a script, and the probe never trusts a wrapper script's answers from its cache), and
`probe-script --skip-known-builds` (the stand-in's build data is partial, and a partial
build is fetched again by every probe). `--tree-only N` measures the latter with this
machine's real QEMU: the probe's output and time with and without the build schema, and
`gather --from-ansible` of N such results.

Run as root (the lab needs mount namespaces):
  .venv/bin/python bench/ansible_gather_bench.py [--hosts 500] [--forks 16,64,128]
ansible-core comes from --venv (default /var/tmp/migcheck-ansible, which .ci/run creates;
created here the same way when missing).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from lab import Lab  # noqa: E402

MIGCHECK = [sys.executable, "-m", "migcheck.entry"]
CPUACCT = Path("/sys/fs/cgroup/cpuacct")
TICK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    one, five, fifteen = os.getloadavg()
    print(
        f"[{time.strftime('%H:%M:%S')} load {one:.2f} {five:.2f} {fifteen:.2f}] {msg}", flush=True
    )


def machine_cpu() -> float:
    """CPU seconds the whole machine has spent busy (all CPUs), from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / TICK


@dataclass
class Sample:
    wall: float
    cpu: float  # controller: the command and everything it started (cgroup), seconds
    cpu_children: float  # the same from wait4/RUSAGE_CHILDREN (misses detached processes)
    machine: float  # every CPU of the machine during the run (hosts' side included)
    maxrss_mb: float  # the largest single controller process
    load: tuple[float, float, float]


class Cgroup:
    """A cpuacct cgroup (v1) the measured command starts in; None where there is none."""

    def __init__(self, name: str) -> None:
        self.path = CPUACCT / name
        self.path.mkdir()

    def enter(self) -> None:  # in the child, before exec
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def seconds(self) -> float:
        return int((self.path / "cpuacct.usage").read_text()) / 1e9

    def pids(self) -> list[int]:
        return [int(p) for p in (self.path / "cgroup.procs").read_text().split()]

    def close(self) -> None:
        """End what the command left running (ControlPersist masters), then remove it."""
        for _ in range(50):
            pids = self.pids()
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM if _ < 25 else signal.SIGKILL)
            time.sleep(0.1)
        with contextlib.suppress(OSError):
            self.path.rmdir()


def run(argv: list[str], env: dict[str, str], log_to: Path, ok: tuple[int, ...] = (0,)) -> Sample:
    cgroup = None
    with contextlib.suppress(OSError):  # no cgroup v1 cpuacct (or not root): wait4 only
        cgroup = Cgroup(f"migcheck-bench-{os.getpid()}-{time.monotonic_ns()}")
    before = os.getloadavg()
    m0 = machine_cpu()
    start = time.perf_counter()
    with open(log_to, "wb") as out:
        proc = subprocess.Popen(
            argv,
            env=env,
            # cwd "/": `python -m` puts the working directory first on sys.path, and this
            # checkout would be imported instead of the code asked for (--before's).
            cwd="/",
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=cgroup.enter if cgroup else None,
        )
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    machine = machine_cpu() - m0
    rc = os.waitstatus_to_exitcode(status)
    cpu_children = usage.ru_utime + usage.ru_stime
    cpu = cpu_children
    if cgroup is not None:
        cpu = cgroup.seconds()
        cgroup.close()
    if rc not in ok:
        tail = log_to.read_text(errors="replace")[-2000:]
        raise SystemExit(f"{' '.join(argv[:5])} ...: exit {rc}\n{tail}")
    return Sample(wall, cpu, cpu_children, machine, usage.ru_maxrss / 1024, before)


@dataclass
class Row:
    what: str
    samples: list[Sample] = field(default_factory=list)
    load_step: list[Sample] = field(default_factory=list)  # gather --from-ansible after it


def med(values: list[float]) -> float:
    return statistics.median(values)


def fmt_row(row: Row, n: int) -> str:
    s = row.samples
    wall, cpu = med([x.wall for x in s]), med([x.cpu for x in s])
    machine = med([x.machine for x in s])
    loads = ", ".join(f"{x.load[0]:.2f}" for x in s)
    text = (
        f"| {row.what} | {wall:.1f} s | {n / wall:.0f} | {cpu:.1f} | {1000 * cpu / n:.0f} ms "
        f"| {machine:.0f} | {med([x.maxrss_mb for x in s]):.0f} MiB | {loads} |"
    )
    if row.load_step:
        ls = row.load_step
        lw, lc = med([x.wall for x in ls]), med([x.cpu for x in ls])
        text += (
            f"\n| ... then `gather --from-ansible` | {lw:.1f} s | - | {lc:.1f} | "
            f"{1000 * lc / n:.0f} ms | - | {med([x.maxrss_mb for x in ls]):.0f} MiB | - |"
            f"\n| ... Ansible path, total | {wall + lw:.1f} s | {n / (wall + lw):.0f} | "
            f"{cpu + lc:.1f} | {1000 * (cpu + lc) / n:.0f} ms | - | - | - |"
        )
    return text


def ensure_ansible(venv: Path) -> Path:
    tool = venv / "bin" / "ansible"
    if not tool.exists():  # as .ci/run makes it
        log(f"creating {venv} with ansible-core")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "--quiet", "ansible-core"], check=True
        )
    return tool


def ansible_env(tmp: Path, ssh_config: Path, persist: bool, extra: dict[str, str]) -> dict:
    home = tmp / "ansible-home"
    (home / "tmp").mkdir(parents=True, exist_ok=True)
    cfg = tmp / "ansible.cfg"
    cfg.write_text("[defaults]\n")
    # ssh_args replaces Ansible's default ("-C -o ControlMaster=auto -o ControlPersist=60s"):
    # the lab's ssh_config gives HostName/Port/User/IdentityFile and the checked known_hosts.
    ssh_args = f"-F {ssh_config}"
    if persist:
        ssh_args += " -o ControlMaster=auto -o ControlPersist=60s"
    env = dict(os.environ)
    env.update(
        {
            "ANSIBLE_CONFIG": str(cfg),
            "ANSIBLE_HOME": str(home),
            "ANSIBLE_LOCAL_TEMP": str(home / "tmp"),
            "ANSIBLE_SSH_ARGS": ssh_args,
            # One control socket per inventory host (%n: the name as given): the lab's
            # aliases share an address and port, which Ansible's default (%C) would turn
            # into one shared connection, as no real fleet has.
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(tmp / "cp"),
            "ANSIBLE_SSH_CONTROL_PATH": "%(directory)s/%%n",
            "ANSIBLE_HOST_KEY_CHECKING": "True",
            "ANSIBLE_SSH_RETRIES": "0",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_DEPRECATION_WARNINGS": "False",
            "ANSIBLE_PYTHON_INTERPRETER": "/usr/bin/python3",
        }
    )
    env.update(extra)
    return env


def tree_only(n: int, before: Path | None) -> None:
    """This machine's real probe (real QEMU) as Ansible would run it, with the full build
    schema (``probe-script``) and without (``probe-script --skip-known-builds``, the build
    already stored here): the probe's wall time (median of 5) and output size; then
    ``gather --from-ansible`` of an Ansible ``--tree`` directory of N such results (wall,
    CPU, peak RSS), this code and ``--before``'s (full outputs only)."""
    tmp = Path(tempfile.mkdtemp(prefix="migcheck-tree-bench-"))
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp / "xdg"))
    try:
        outputs = {}
        for variant, extra in (("full", []), ("skip-known-builds", ["--skip-known-builds"])):
            script = subprocess.run(
                [*MIGCHECK, "probe-script", *extra],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            walls = []
            for _ in range(5):
                start = time.perf_counter()
                out = subprocess.run(
                    ["/usr/bin/python3", "-"],
                    input=script,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
                walls.append(time.perf_counter() - start)
            sent = "build_schema" in json.loads(out)
            if variant == "full":
                if not sent:
                    raise SystemExit("this machine's probe sent no build schema (no QEMU?)")
                subprocess.run(  # stores the build here, as a first gather would
                    [*MIGCHECK, "gather", "local", "--refresh"],
                    env=env,
                    capture_output=True,
                    check=True,
                )
            outputs[variant] = out
            log(
                f"probe {variant}: {med(walls):.2f} s (median of 5), {len(out):,} bytes, "
                f"build schema sent: {sent}"
            )
        runs = [("after", sys.executable, v) for v in outputs]
        if before is not None:
            runs.append(("before", str(before / ".venv" / "bin" / "python"), "full"))
        for who, python, variant in runs:
            tree = tmp / f"tree-{variant}"
            if not tree.exists():
                tree.mkdir()
                out = outputs[variant]
                result = json.dumps(
                    {"changed": True, "rc": 0, "stdout": out, "stdout_lines": out.splitlines()}
                )
                for i in range(n):  # as `ansible -m script --tree` writes each host's result
                    (tree / f"hv{i:05d}.example.net").write_text(result)
            facts = tmp / f"facts-{who}-{variant}"
            argv = [python, "-m", "migcheck.entry", "gather", "--from-ansible", str(tree)]
            sample = run([*argv, "--out-dir", str(facts)], env, tmp / f"{who}.log")
            print(
                f"| {n:,} | {who} | {variant} | {sample.wall:.1f} s | {sample.cpu:.1f} "
                f"| {1000 * sample.cpu / n:.0f} ms | {sample.maxrss_mb:.0f} MiB "
                f"| {sample.load[0]:.2f} |",
                flush=True,
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=500)
    parser.add_argument("--sshds", type=int, default=4, help="real sshd instances behind them")
    parser.add_argument("--forks", default="16,64,128")
    parser.add_argument("--jobs", type=int, default=64, help="migcheck gather --jobs")
    parser.add_argument("--runs", type=int, default=1, help="rounds (each runs every row)")
    parser.add_argument("--qemu", default="9.1.0", help="the lab hosts' QEMU stand-in")
    parser.add_argument("--venv", type=Path, default=Path("/var/tmp/migcheck-ansible"))
    parser.add_argument("--only", default="", help="comma-separated row keys to run")
    parser.add_argument(
        "--ablation",
        action="store_true",
        help="also the tuned settings less one each (ControlPersist, piped transfer, "
        "pipelining), at the middle forks",
    )
    parser.add_argument(
        "--tree-only",
        type=int,
        metavar="N",
        help="only time gather --from-ansible of N results of this machine's real probe "
        "output (real QEMU, full build schema), this code and --before's",
    )
    parser.add_argument("--before", type=Path, help="a checkout with its own .venv")
    args = parser.parse_args()
    if args.tree_only:
        return tree_only(args.tree_only, args.before)
    if os.geteuid() != 0:
        raise SystemExit("run as root: the lab's sshd hosts need mount namespaces")
    ansible = ensure_ansible(args.venv)
    n = args.hosts
    forks = [int(f) for f in args.forks.split(",")]
    only = set(filter(None, args.only.split(",")))
    tmp = Path(tempfile.mkdtemp(prefix="migcheck-ansible-bench-"))
    lab = Lab(tmp / "lab")
    try:
        log(f"lab: {args.sshds} sshd hosts (QEMU stand-in {args.qemu}), {n} aliases")
        hosts = [f"sshd{i}" for i in range(args.sshds)]
        for name in hosts:
            lab.add_host(name, qemu=args.qemu, max_startups="1000", log_level="ERROR")
        names = [f"hv{i:04d}" for i in range(1, n + 1)]
        cfg = lab.write_ssh_config(
            tmp / "ssh_config", aliases={a: hosts[i % len(hosts)] for i, a in enumerate(names)}
        )
        inventory = tmp / "inventory.ini"
        inventory.write_text("[hypervisors]\n" + "\n".join(names) + "\n")
        xdg = tmp / "xdg"
        mig_env = dict(os.environ, XDG_CACHE_HOME=str(xdg))
        out = tmp / "facts"
        logs = tmp / "logs"
        logs.mkdir()

        def probe(path: Path, *extra: str) -> Path:
            text = subprocess.run(
                [*MIGCHECK, "probe-script", *extra],
                env=mig_env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            path.write_text(text)
            return path

        def checked(directory: Path, count: int) -> None:
            got = len([p for p in directory.iterdir() if p.is_file()])
            if got != count:
                raise SystemExit(f"{directory}: {got} of {count} results")

        def gather(label: str, prepare) -> Row:
            row = Row(label)

            def once() -> None:
                prepare()
                shutil.rmtree(out, ignore_errors=True)
                argv = [*MIGCHECK, "gather", *names, "-F", str(cfg), "--out-dir", str(out)]
                argv += ["--jobs", str(args.jobs)]
                row.samples.append(run(argv, mig_env, logs / "gather.log"))
                checked(out, n)
                log(f"{label}: {row.samples[-1]}")

            row.once = once  # type: ignore[attr-defined]
            return row

        def fresh() -> None:
            shutil.rmtree(xdg, ignore_errors=True)

        def ansible_row(
            label: str,
            fork: int,
            persist: bool,
            extra: dict,
            script: Path,
            play: dict[str, object] | None = None,
        ) -> Row:
            """``play``: run a playbook with these play keywords (its one task the script,
            results written by the tree callback, as ``--tree`` does for ad-hoc)."""
            row = Row(label)
            tree = tmp / "tree"
            env = ansible_env(tmp, cfg, persist, extra)
            book = tmp / f"probe-{len(label)}-{fork}.yml"
            if play is not None:
                task = {"script": f"{script}", "args": {"executable": "/usr/bin/python3"}}
                book.write_text(json.dumps([{"hosts": "hypervisors", **play, "tasks": [task]}]))
                env["ANSIBLE_CALLBACKS_ENABLED"] = "ansible.builtin.tree"
                env["ANSIBLE_CALLBACK_TREE_DIR"] = str(tree)

            def once() -> None:
                shutil.rmtree(tree, ignore_errors=True)
                shutil.rmtree(tmp / "cp", ignore_errors=True)
                (tmp / "cp").mkdir()
                if play is not None:
                    argv = [str(ansible) + "-playbook", "-i", str(inventory), "-f", str(fork)]
                    argv += [str(book)]
                else:
                    argv = [str(ansible), "hypervisors", "-i", str(inventory), "-f", str(fork)]
                    argv += ["-m", "script", "-a", f"executable=/usr/bin/python3 {script}"]
                    argv += ["--tree", str(tree)]
                row.samples.append(run(argv, env, logs / "ansible.log"))
                checked(tree, n)
                log(f"{label}: {row.samples[-1]}")
                shutil.rmtree(out, ignore_errors=True)
                argv = [*MIGCHECK, "gather", "--from-ansible", str(tree), "--out-dir", str(out)]
                row.load_step.append(run(argv, mig_env, logs / "from-ansible.log"))
                checked(out, n)
                log(f"  then --from-ansible: {row.load_step[-1]}")

            row.once = once  # type: ignore[attr-defined]
            return row

        # Warm-up, untimed: the page cache holds ansible, migcheck and the lab's files, and
        # the build store holds the lab's build (for the rows that need it).
        fresh()
        subprocess.run(
            [*MIGCHECK, "gather", *names[:4], "-F", str(cfg), "--out-dir", str(out)],
            env=mig_env,
            capture_output=True,
            check=True,
        )
        full = probe(tmp / "probe.py")
        subprocess.run(
            [str(ansible), names[0], "-i", str(inventory), "-m", "ping"],
            env=ansible_env(tmp, cfg, False, {}),
            capture_output=True,
            check=False,
        )
        rows: dict[str, Row] = {}
        tuned = {"ANSIBLE_PIPELINING": "True", "ANSIBLE_SSH_TRANSFER_METHOD": "piped"}
        rows["gather-first"] = gather(
            f"`migcheck gather --jobs {args.jobs}` (every host sends its build schema, as "
            "with `probe-script`)",
            fresh,
        )
        for fork in forks:
            rows[f"ansible-{fork}"] = ansible_row(
                f"Ansible `-f {fork}`, ControlPersist, pipelining, piped transfer",
                fork,
                True,
                tuned,
                full,
            )
        mid = 64 if 64 in forks else forks[len(forks) // 2]
        rows[f"ansible-{mid}-defaults"] = ansible_row(
            f"Ansible `-f {mid}`, no ControlPersist, sftp transfer (settings not tuned)",
            mid,
            False,
            {"ANSIBLE_PIPELINING": "False"},
            full,
        )
        if args.ablation:
            for key, what, persist, less in (
                ("no-persist", "no ControlPersist", False, {}),
                ("sftp", "sftp transfer", True, {"ANSIBLE_SSH_TRANSFER_METHOD": "smart"}),
                ("no-pipelining", "no pipelining", True, {"ANSIBLE_PIPELINING": "False"}),
            ):
                rows[f"ansible-{mid}-{key}"] = ansible_row(
                    f"Ansible `-f {mid}`, tuned but {what}", mid, persist, tuned | less, full
                )
        rows[f"playbook-{mid}-free"] = ansible_row(
            f"`ansible-playbook -f {mid}`, tuned, `gather_facts: false`, `strategy: free`",
            mid,
            True,
            tuned,
            full,
            {"gather_facts": False, "strategy": "free"},
        )
        rows[f"playbook-{mid}-facts"] = ansible_row(
            f"`ansible-playbook -f {mid}`, tuned, play defaults (`gather_facts: true`, linear)",
            mid,
            True,
            tuned,
            full,
            {},
        )
        chosen = [k for k in rows if not only or k in only]
        for r in range(args.runs):
            for key in chosen:
                log(f"round {r + 1}: {key}")
                rows[key].once()  # type: ignore[attr-defined]
        print()
        version = subprocess.run([str(ansible), "--version"], capture_output=True, text=True)
        print(
            f"{n} hosts ({args.sshds} sshds, QEMU stand-in {args.qemu}), "
            f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"{version.stdout.splitlines()[0]}"
        )
        print(
            "| what | wall | hosts/s | controller CPU s | per host | machine CPU s "
            "| peak RSS (largest process) | load (1 min) at start |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for key in chosen:
            print(fmt_row(rows[key], n))
    finally:
        lab.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
