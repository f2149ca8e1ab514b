# migcheck probe: runs on the hypervisor and prints one JSON document of host facts.
#
# Contract (DESIGN.md): standard library only, Python 3.6+ syntax (RHEL 8's
# /usr/libexec/platform-python), LC_ALL=C, changes nothing on the host, bounded output and
# run time. It travels on stdin; the controller may prepend one line that sets CONFIG.
# Every section that fails is recorded as {"error": "..."}; the probe itself never crashes.
#
# Keep this file free of f-strings with "=", walrus, dataclasses, "from __future__
# import annotations", subprocess(capture_output=/text=): tests check the syntax.

import errno
import hashlib
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time

PROBE_VERSION = 2
SCHEMA = "migcheck.facts/1"
BUILD_SCHEMA = "migcheck.qemu-build/1"

try:
    CONFIG  # noqa: B018 - set by the controller when it prepends its config line
except NameError:
    CONFIG = {}

DEFAULT_QEMU_TIMEOUT = 20.0
MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_QMP_BYTES = 32 * 1024 * 1024
MAX_STDERR_BYTES = 64 * 1024

# KVM ioctls: _IO(KVMIO=0xAE, nr), include/uapi/linux/kvm.h.
KVM_GET_API_VERSION = 0xAE00
KVM_CHECK_EXTENSION = 0xAE03
KVM_CREATE_VM = 0xAE01
KVM_CREATE_VCPU = 0xAE41
KVM_GET_TSC_KHZ = 0xAEA3
# _IOWR(KVMIO, 0xc1, struct kvm_cpuid2): the size field is sizeof(struct kvm_cpuid2) = 8.
KVM_GET_SUPPORTED_HV_CPUID = (3 << 30) | (8 << 16) | (0xAE << 8) | 0xC1

# KVM_CAP_* numbers from include/uapi/linux/kvm.h (values are ABI, never renumbered).
# Only capabilities that bear on x86 live migration or on QEMU defaults are asked for.
KVM_CAPS = {
    "KVM_CAP_IRQCHIP": 0,
    "KVM_CAP_USER_MEMORY": 3,
    "KVM_CAP_EXT_CPUID": 7,
    "KVM_CAP_NR_VCPUS": 9,
    "KVM_CAP_NR_MEMSLOTS": 10,
    "KVM_CAP_PIT2": 33,
    "KVM_CAP_IRQFD": 32,
    "KVM_CAP_IOEVENTFD": 36,
    "KVM_CAP_XEN_HVM": 38,
    "KVM_CAP_ADJUST_CLOCK": 39,
    "KVM_CAP_VCPU_EVENTS": 41,
    "KVM_CAP_HYPERV": 44,
    "KVM_CAP_HYPERV_VAPIC": 45,
    "KVM_CAP_HYPERV_SPIN": 46,
    "KVM_CAP_DEBUGREGS": 50,
    "KVM_CAP_XSAVE": 55,
    "KVM_CAP_XCRS": 56,
    "KVM_CAP_ASYNC_PF": 59,
    "KVM_CAP_TSC_CONTROL": 60,
    "KVM_CAP_GET_TSC_KHZ": 61,
    "KVM_CAP_MAX_VCPUS": 66,
    "KVM_CAP_TSC_DEADLINE_TIMER": 72,
    "KVM_CAP_KVMCLOCK_CTRL": 76,
    "KVM_CAP_SIGNAL_MSI": 77,
    "KVM_CAP_READONLY_MEM": 81,
    "KVM_CAP_IRQFD_RESAMPLE": 82,
    "KVM_CAP_HYPERV_TIME": 96,
    "KVM_CAP_X86_SMM": 117,
    "KVM_CAP_SPLIT_IRQCHIP": 121,
    "KVM_CAP_HYPERV_SYNIC": 123,
    "KVM_CAP_MAX_VCPU_ID": 128,
    "KVM_CAP_X2APIC_API": 129,
    "KVM_CAP_IMMEDIATE_EXIT": 136,
    "KVM_CAP_X86_DISABLE_EXITS": 143,
    "KVM_CAP_HYPERV_SYNIC2": 148,
    "KVM_CAP_HYPERV_VP_INDEX": 149,
    "KVM_CAP_GET_MSR_FEATURES": 153,
    "KVM_CAP_HYPERV_EVENTFD": 154,
    "KVM_CAP_HYPERV_TLBFLUSH": 155,
    "KVM_CAP_NESTED_STATE": 157,
    "KVM_CAP_HYPERV_SEND_IPI": 161,
    "KVM_CAP_HYPERV_ENLIGHTENED_VMCS": 163,
    "KVM_CAP_EXCEPTION_PAYLOAD": 164,
    "KVM_CAP_HYPERV_CPUID": 167,
    "KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2": 168,
    "KVM_CAP_PMU_EVENT_FILTER": 173,
    "KVM_CAP_HYPERV_DIRECT_TLBFLUSH": 175,
    "KVM_CAP_HALT_POLL": 182,
    "KVM_CAP_ASYNC_PF_INT": 183,
    "KVM_CAP_SMALLER_MAXPHYADDR": 185,
    "KVM_CAP_STEAL_TIME": 187,
    "KVM_CAP_X86_USER_SPACE_MSR": 188,
    "KVM_CAP_X86_MSR_FILTER": 189,
    "KVM_CAP_ENFORCE_PV_FEATURE_CPUID": 190,
    "KVM_CAP_SYS_HYPERV_CPUID": 191,
    "KVM_CAP_DIRTY_LOG_RING": 192,
    "KVM_CAP_X86_BUS_LOCK_EXIT": 193,
    "KVM_CAP_SGX_ATTRIBUTE": 196,
    "KVM_CAP_VM_COPY_ENC_CONTEXT_FROM": 197,
    "KVM_CAP_HYPERV_ENFORCE_CPUID": 199,
    "KVM_CAP_SREGS2": 200,
    "KVM_CAP_EXIT_HYPERCALL": 201,
    "KVM_CAP_BINARY_STATS_FD": 203,
    "KVM_CAP_EXIT_ON_EMULATION_FAILURE": 204,
    "KVM_CAP_VM_MOVE_ENC_CONTEXT_FROM": 206,
    "KVM_CAP_VM_GPA_BITS": 207,
    "KVM_CAP_XSAVE2": 208,
    "KVM_CAP_SYS_ATTRIBUTES": 209,
    "KVM_CAP_PMU_CAPABILITY": 212,
    "KVM_CAP_DISABLE_QUIRKS2": 213,
    "KVM_CAP_VM_TSC_CONTROL": 214,
    "KVM_CAP_X86_TRIPLE_FAULT_EVENT": 218,
    "KVM_CAP_X86_NOTIFY_VMEXIT": 219,
    "KVM_CAP_VM_DISABLE_NX_HUGE_PAGES": 220,
    "KVM_CAP_DIRTY_LOG_RING_ACQ_REL": 223,
    "KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP": 225,
    "KVM_CAP_PMU_EVENT_MASKED_EVENTS": 226,
    "KVM_CAP_COUNTER_OFFSET": 227,
    "KVM_CAP_USER_MEMORY2": 231,
    "KVM_CAP_MEMORY_FAULT_INFO": 232,
    "KVM_CAP_MEMORY_ATTRIBUTES": 233,
    "KVM_CAP_GUEST_MEMFD": 234,
    "KVM_CAP_VM_TYPES": 235,
    "KVM_CAP_PRE_FAULT_MEMORY": 236,
    "KVM_CAP_X86_APIC_BUS_CYCLES_NS": 237,
    "KVM_CAP_X86_GUEST_MODE": 238,
}

# Host devices a guest's configuration may need on the destination.
DEVICE_NODES = ["/dev/kvm", "/dev/vhost-net", "/dev/vhost-vsock", "/dev/net/tun", "/dev/sev",
                "/dev/sgx_vepc"]


def read_text(path, limit=MAX_FILE_BYTES):
    """Read a small text file; bytes that are not UTF-8 are replaced, never fatal."""
    # Read in modest chunks: some /proc/sys files fail with ENOMEM on one huge read().
    chunks = []
    size = 0
    with open(path, "rb") as f:
        while True:
            chunk = f.read(65536)
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                raise ValueError("%s is larger than %d bytes" % (path, limit))
            chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def section(fn):
    """Run one collector; a failure becomes that section's error, never a crash."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - the probe must always print a document
        return {"error": "%s: %s" % (type(exc).__name__, exc)}


def collect_kernel():
    return {
        "release": read_text("/proc/sys/kernel/osrelease").strip(),
        "version": read_text("/proc/version").strip(),
        "arch": os.uname()[4],
    }


def parse_os_release(text):
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        out[key.strip()] = value
    return out


def collect_os():
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        if os.path.exists(path):
            fields = parse_os_release(read_text(path))
            return {
                "id": fields.get("ID", ""),
                "id_like": fields.get("ID_LIKE", "").split(),
                "version_id": fields.get("VERSION_ID", ""),
                "pretty_name": fields.get("PRETTY_NAME", ""),
                "variant_id": fields.get("VARIANT_ID", ""),
            }
    return {"error": "no /etc/os-release or /usr/lib/os-release"}


def parse_cpuinfo(text):
    """First processor's identity, the flags every processor has, and the count."""
    blocks = [b for b in text.split("\n\n") if b.strip()]
    first = None
    flags = None
    count = 0
    for block in blocks:
        fields = {}
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip()] = value.strip()
        if "processor" not in fields:
            continue
        count += 1
        if first is None:
            first = fields
        own = set(fields.get("flags", fields.get("Features", "")).split())
        flags = own if flags is None else flags & own
    if first is None:
        raise ValueError("no processor entries in /proc/cpuinfo")

    def number(key):
        value = first.get(key, "")
        try:
            return int(value, 0)
        except ValueError:
            return None

    return {
        "vendor": first.get("vendor_id", first.get("CPU implementer", "")),
        "family": number("cpu family"),
        "model": number("model"),
        "stepping": number("stepping"),
        "model_name": first.get("model name", ""),
        "microcode": first.get("microcode", ""),
        "flags": sorted(flags or ()),
        "count": count,
        "phys_bits": address_bits(first.get("address sizes", ""), "physical"),
    }


def address_bits(text, kind):
    """``48 bits physical, 48 bits virtual`` -> 48 for "physical" (arch/x86/kernel/cpu/proc.c
    prints boot_cpu_data.x86_phys_bits there); None when the line is absent."""
    for part in text.split(","):
        words = part.split()
        if len(words) == 3 and words[1] == "bits" and words[2] == kind and words[0].isdigit():
            return int(words[0])
    return None


def collect_cpu():
    return parse_cpuinfo(read_text("/proc/cpuinfo", limit=64 * 1024 * 1024))


def collect_kvm():
    import fcntl

    out = {"present": os.path.exists("/dev/kvm"), "usable": False, "modules": {},
           "capabilities": {}}
    base = "/sys/module"
    if os.path.isdir(base):
        for module in sorted(os.listdir(base)):
            if not module.startswith("kvm"):
                continue
            params = {}
            pdir = os.path.join(base, module, "parameters")
            if os.path.isdir(pdir):
                for name in sorted(os.listdir(pdir)):
                    try:
                        params[name] = read_text(os.path.join(pdir, name), 4096).strip()
                    except (IOError, OSError, ValueError) as exc:
                        params[name] = {"error": str(exc)}
            out["modules"][module] = params
    if not out["present"]:
        return out
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        out["error_open"] = os.strerror(exc.errno) if exc.errno else str(exc)
        return out
    try:
        out["usable"] = True
        out["api_version"] = fcntl.ioctl(fd, KVM_GET_API_VERSION, 0)
        caps = {}
        for name, number in sorted(KVM_CAPS.items(), key=lambda item: item[1]):
            try:
                caps[name] = fcntl.ioctl(fd, KVM_CHECK_EXTENSION, number)
            except OSError:
                caps[name] = 0
        out["capabilities"] = caps
        out["vm"] = section(lambda: kvm_vm_facts(fd, caps))
    finally:
        os.close(fd)
    return out


def kvm_vm_facts(fd, caps):
    """What only a VM answers: the TSC rate KVM gives a new vCPU and the Hyper-V CPUID KVM
    supports. Creates one empty VM and one vCPU (no memory, never run) and closes both, as
    QEMU does at every start; nothing on the host changes."""
    import fcntl
    import struct

    out = {}
    vm = fcntl.ioctl(fd, KVM_CREATE_VM, 0)
    try:
        vcpu = fcntl.ioctl(vm, KVM_CREATE_VCPU, 0)
        try:
            if caps.get("KVM_CAP_GET_TSC_KHZ", 0) > 0:
                # A new vCPU runs at the host's TSC rate (virtual_tsc_khz = default_tsc_khz),
                # what QEMU's kvm_arch_set_tsc_khz() compares tsc-frequency with.
                out["tsc_khz"] = fcntl.ioctl(vcpu, KVM_GET_TSC_KHZ, 0)
            hv_sys = caps.get("KVM_CAP_SYS_HYPERV_CPUID", 0) > 0
            if hv_sys or caps.get("KVM_CAP_HYPERV_CPUID", 0) > 0:
                # QEMU's get_supported_hv_cpuid(): the system ioctl when KVM has it, else the
                # vCPU one. 64 entries is far above the 11 leaves KVM reports.
                nent = 64
                buf = bytearray(struct.pack("II", nent, 0) + b"\0" * (40 * nent))
                fcntl.ioctl(fd if hv_sys else vcpu, KVM_GET_SUPPORTED_HV_CPUID, buf, True)
                count = min(struct.unpack_from("I", buf, 0)[0], nent)
                leaves = []
                for i in range(count):
                    func, index, _flags, eax, ebx, ecx, edx = struct.unpack_from(
                        "7I", buf, 8 + 40 * i)
                    leaves.append([func, index, eax, ebx, ecx, edx])
                out["hv_cpuid"] = leaves
        finally:
            os.close(vcpu)
    finally:
        os.close(vm)
    return out


def collect_devices():
    return {path: os.path.exists(path) for path in DEVICE_NODES}


MAX_GUESTS = 4096
MAX_ARGV_BYTES = 1024 * 1024


def guest_name(argv):
    """The guest name from QEMU's -name option (``guest=NAME,...`` or ``NAME``)."""
    for i, arg in enumerate(argv[:-1]):
        if arg in ("-name", "--name"):
            value = argv[i + 1]
            first = value.split(",")[0]
            for item in value.split(","):
                if item.startswith("guest="):
                    return item[len("guest="):]
            return first if "=" not in first else None
    return None


def collect_guests():
    """Running QEMU processes and their argv (read-only: /proc/PID/cmdline)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or len(found) >= MAX_GUESTS:
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as f:
                raw = f.read(MAX_ARGV_BYTES)
        except (IOError, OSError):
            continue  # gone, or not ours to read
        argv = [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]
        if not argv or "qemu" not in os.path.basename(argv[0]):
            continue
        name = guest_name(argv)
        if name is None:
            continue
        wanted = CONFIG.get("vm")
        if wanted is not None and name != wanted:
            found.append({"name": name, "pid": int(entry)})
            continue
        item = {"name": name, "pid": int(entry)}
        if wanted is not None:
            item["argv"] = argv
            try:
                # A package upgrade replaces the binary under a running guest: Linux then
                # shows the old file as "PATH (deleted)", still reachable as /proc/PID/exe.
                exe = os.readlink("/proc/%s/exe" % entry)
                item["exe"] = exe
                item["exe_deleted"] = exe.endswith(" (deleted)")
            except OSError as exc:
                item["exe"] = {"error": os.strerror(exc.errno) if exc.errno else str(exc)}
        found.append(item)
    return {"guests": sorted(found, key=lambda g: g["name"])}


# Set by main() when the guest asked for with CONFIG["vm"] runs a binary that has since
# been deleted or replaced: QEMU's answers must then come from the binary it runs.
RUNNING_QEMU = [None]


def running_binary(guests):
    """/proc/PID/exe of the one wanted guest whose binary was deleted, else None."""
    wanted = [g for g in guests.get("guests", []) if "argv" in g]
    if len(wanted) == 1 and wanted[0].get("exe_deleted"):
        return "/proc/%d/exe" % wanted[0]["pid"]
    return None


def find_qemu(arch):
    if RUNNING_QEMU[0]:
        return RUNNING_QEMU[0]
    override = CONFIG.get("qemu")
    if override:
        if os.path.isfile(override) and os.access(override, os.X_OK):
            return override
        raise ValueError("configured QEMU %r is not an executable file" % override)
    search = os.environ.get("PATH", "") + ":/usr/local/bin:/usr/bin:/usr/libexec"
    for name in ("qemu-system-" + arch, "/usr/libexec/qemu-kvm", "qemu-kvm"):
        if name.startswith("/"):
            if os.path.isfile(name) and os.access(name, os.X_OK):
                return name
            continue
        found = shutil.which(name, path=search)
        if found:
            return found
    return None


def die_with_parent():
    """In the QEMU child: ask Linux to kill it if the probe dies (prctl PR_SET_PDEATHSIG),
    so a probe cut off by its transport never leaves a QEMU behind."""
    try:
        import ctypes
        import signal
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    except Exception:  # noqa: BLE001 - best effort; the deadline still bounds QEMU
        pass


class QmpError(Exception):
    pass


class Qmp(object):
    """A QMP conversation over QEMU's stdio with one deadline for the whole exchange."""

    def __init__(self, argv, deadline):
        self.deadline = deadline
        env = dict(os.environ)
        env["LC_ALL"] = "C"
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env, close_fds=True,
                                     preexec_fn=die_with_parent)
        self.buf = bytearray()
        self.scanned = 0
        self.err = b""
        self.total = 0
        self.next_id = 0

    def _fill(self):
        out_fd = self.proc.stdout.fileno()
        err_fd = self.proc.stderr.fileno()
        while True:
            remaining = self.deadline - time.time()
            if remaining <= 0:
                raise QmpError("QEMU did not answer within the deadline")
            ready, _, _ = select.select([out_fd, err_fd], [], [], remaining)
            if err_fd in ready:
                chunk = os.read(err_fd, 65536)
                if chunk and len(self.err) < MAX_STDERR_BYTES:
                    self.err += chunk
            if out_fd in ready:
                chunk = os.read(out_fd, 1 << 20)
                if not chunk:
                    raise QmpError("QEMU exited: %s" % self.stderr_tail())
                self.total += len(chunk)
                if self.total > MAX_QMP_BYTES:
                    raise QmpError("QEMU sent more than %d bytes" % MAX_QMP_BYTES)
                self.buf.extend(chunk)
                return

    def stderr_tail(self):
        text = self.err.decode("utf-8", "replace").strip()
        return text[-400:] if text else "(no stderr)"

    def read_message(self):
        # Scan only new bytes for the newline: a flood must not cost quadratic time.
        while True:
            end = self.buf.find(b"\n", self.scanned)
            if end >= 0:
                break
            self.scanned = len(self.buf)
            self._fill()
        line = bytes(self.buf[:end])
        del self.buf[:end + 1]
        self.scanned = 0
        try:
            return json.loads(line.decode("utf-8", "replace"))
        except ValueError:
            raise QmpError("QEMU sent a line that is not JSON: %r" % line[:200])

    def execute(self, command, arguments=None):
        self.next_id += 1
        msg = {"execute": command, "id": "migcheck-%d" % self.next_id}
        if arguments is not None:
            msg["arguments"] = arguments
        self.proc.stdin.write((json.dumps(msg) + "\n").encode())
        self.proc.stdin.flush()
        while True:
            reply = self.read_message()
            if reply.get("id") != msg["id"]:
                continue  # events and greetings
            if "error" in reply:
                err = reply["error"]
                raise QmpError("%s: %s" % (command, err.get("desc", err)))
            return reply.get("return")

    def execute_batch(self, calls):
        """Several commands written at once, replies read after: one round trip per batch.
        Batches stay small (a few KiB), so QEMU never blocks writing replies we do not read
        while we block writing commands. Returns (return value or QmpError) per call."""
        results = []
        for start in range(0, len(calls), 64):
            ids = []
            lines = []
            for command, arguments in calls[start:start + 64]:
                self.next_id += 1
                msg = {"execute": command, "id": "migcheck-%d" % self.next_id,
                       "arguments": arguments}
                ids.append(msg["id"])
                lines.append(json.dumps(msg) + "\n")
            self.proc.stdin.write("".join(lines).encode())
            self.proc.stdin.flush()
            replies = {}
            while len(replies) < len(ids):
                reply = self.read_message()
                if reply.get("id") in ids:
                    replies[reply["id"]] = reply
            for i, (command, _) in zip(ids, calls[start:start + 64]):
                reply = replies[i]
                if "error" in reply:
                    err = reply["error"]
                    results.append(QmpError("%s: %s" % (command, err.get("desc", err))))
                else:
                    results.append(reply.get("return"))
        return results

    def close(self):
        try:
            if self.proc.poll() is None:
                try:
                    self.execute("quit")
                except (QmpError, OSError, ValueError):
                    pass
            # Past the deadline there is no grace period: a hung QEMU is killed at once.
            grace = min(2.0, max(0.1, self.deadline - time.time()))
            self.proc.wait(timeout=grace)
        except Exception:  # noqa: BLE001 - last resort below
            pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                pipe.close()
            except (IOError, OSError):
                pass


# --- the build's identity and what it can build (stored once per build by the controller) --

MAX_BUILD_FILES = 20000  # firmware files and modules listed per build
MAX_DEVICE_TYPES = 4000
MAX_VMSTATE_BYTES = 16 * 1024 * 1024
# Where distributions install guest firmware and ROM images (QEMU's data directory, SeaBIOS,
# OVMF/edk2 in both spellings, iPXE). QEMU's own data directory under the binary's prefix
# is added at run time (a /usr/local build).
FIRMWARE_DIRS = ["/usr/share/qemu", "/usr/share/qemu-kvm", "/usr/share/seabios",
                 "/usr/share/OVMF", "/usr/share/ovmf", "/usr/share/edk2", "/usr/share/AAVMF",
                 "/usr/share/qemu-efi-aarch64",
                 "/usr/lib/ipxe/qemu", "/usr/share/ipxe", "/usr/share/ipxe/qemu"]


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                break
            digest.update(chunk)
    return digest.hexdigest()


def module_dir(binary, arch):
    """QEMU's module directory (CONFIG_QEMU_MODDIR) for this binary's prefix: Debian's
    lib/<arch>-linux-gnu/qemu, RHEL's lib64/qemu-kvm, Fedora's lib64/qemu, lib/qemu."""
    override = CONFIG.get("qemu_module_dir")
    if override:
        return override if os.path.isdir(override) else None
    prefix = os.path.dirname(os.path.dirname(os.path.realpath(binary)))
    for sub in ("lib/%s-linux-gnu/qemu" % arch, "lib64/qemu-kvm", "lib64/qemu", "lib/qemu"):
        path = os.path.join(prefix, sub)
        if os.path.isdir(path):
            return path
    return None


def module_files(directory):
    """Module .so names and sizes: the loadable parts of the build (block-curl.so, ...)."""
    out = {}
    if directory is None:
        return out
    for name in sorted(os.listdir(directory))[:MAX_BUILD_FILES]:
        if name.endswith(".so"):
            try:
                out[name] = os.stat(os.path.join(directory, name)).st_size
            except OSError:
                continue
    return out


class Background(object):
    """Run fn in a thread: hashing a 20-30 MB binary (hashlib releases the GIL) overlaps
    QEMU's start-up instead of adding to it."""

    def __init__(self, fn, *args):
        import threading
        self.result = None
        self.error = None
        self.thread = threading.Thread(target=self._run, args=(fn,) + args)
        self.thread.daemon = True
        self.thread.start()

    def _run(self, fn, *args):
        try:
            self.result = fn(*args)
        except Exception as exc:  # noqa: BLE001 - reported by get()
            self.error = exc

    def get(self):
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.result


def build_identity(binary, arch, version, package, sha):
    """What identifies a QEMU build: version string, binary digest, module directory digest.
    The controller stores what the build can build once under ``key``."""
    st = os.stat(binary)
    mdir = module_dir(binary, arch)
    mods = module_files(mdir)
    mod_digest = hashlib.sha256("".join(
        "%s\0%d\n" % (n, mods[n]) for n in sorted(mods)).encode()).hexdigest()
    # Firmware images come from other packages (seabios, ipxe-qemu, ovmf) that update on
    # their own: two hosts with one QEMU binary can load different images, so the image
    # list (path and size) is part of what the stored build data describes.
    fw = firmware_files(binary)
    fw_digest = hashlib.sha256("".join(
        "%s\0%d\n" % (n, fw[n]) for n in sorted(fw)).encode()).hexdigest()
    sha = sha.get()
    key = hashlib.sha256(json.dumps(
        [version, package, sha, mod_digest, fw_digest]).encode()).hexdigest()
    ident = {
        "key": key[:32],
        "version": version,
        "package": package,
        "binary": {"path": binary, "size": st.st_size, "sha256": sha},
        "modules": {"dir": mdir, "count": len(mods), "digest": mod_digest},
        "firmware": {"count": len(fw), "digest": fw_digest},
    }
    return ident, mods


def firmware_files(binary, search_path=()):
    """Path -> size of every file in the firmware directories (symlinks resolved: QEMU
    loads the target). A dangling link is left out: QEMU could not load it either.
    ``search_path``: the build's own firmware search path (RHEL's /usr/share/qemu-kvm)."""
    dirs = list(FIRMWARE_DIRS) + [d for d in search_path if d not in FIRMWARE_DIRS]
    own = os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(binary))), "share/qemu")
    if own not in dirs:
        dirs.append(own)
    out = {}
    for top in dirs:
        if not os.path.isdir(top):
            continue
        for root, subdirs, files in os.walk(top, followlinks=False):
            subdirs.sort()
            if root[len(top):].count(os.sep) >= 3:
                subdirs[:] = []  # bounded depth: firmware trees are shallow
            for name in sorted(files):
                if len(out) >= MAX_BUILD_FILES:
                    return out
                path = os.path.join(root, name)
                try:
                    out[path] = os.stat(path).st_size
                except OSError:
                    continue
    return out


def firmware_search_path(binary, timeout=10.0):
    """The directories QEMU searches, in order, for a firmware or ROM file named without a
    directory (``-bios bios-256k.bin``, ``romfile=efi-virtio.rom``): what ``-L help`` prints
    (softmmu/vl.c / system/vl.c qemu_add_default_firmwarepath: the configured firmware path,
    then the data directory; qemu_find_file() takes the first directory holding the name).
    Distributions set different paths, so the same name can load different files."""
    proc = subprocess.Popen([binary, "-L", "help"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise QmpError("-L help did not finish within %.0f s" % timeout)
    if proc.returncode != 0:
        raise QmpError("-L help failed (exit %d): %s" % (
            proc.returncode, err.decode("utf-8", "replace")[-300:]))
    dirs = []
    for line in out.decode("utf-8", "replace").splitlines()[:64]:
        line = line.strip()
        if line.startswith("/"):
            path = os.path.normpath(line)  # "/usr/bin/../share/qemu" (relocatable builds)
            if path not in dirs:
                dirs.append(path)
    return dirs


def schema_enum(schema, command, member):
    """Values of the enum behind ``command``'s argument ``member`` in query-qmp-schema.
    Type names in the introspection are masked numbers, so follow the command's arg-type
    (netdev_add -> Netdev.type = NetClientDriver; blockdev-add -> BlockdevOptions.driver
    = BlockdevDriver; qapi/net.json, qapi/block-core.json)."""
    by_name = dict((e.get("name"), e) for e in schema)
    cmd = by_name.get(command)
    if cmd is None or cmd.get("meta-type") != "command":
        return None
    args = by_name.get(cmd.get("arg-type"))
    if not args:
        return None
    # A union's variants are the branches compiled into this build (netmap, vde and
    # vhost-vdpa are "if: CONFIG_..." branches while the enum may still list them).
    if args.get("tag") == member and isinstance(args.get("variants"), list):
        return sorted(v.get("case") for v in args["variants"])
    for m in args.get("members", []):
        if m.get("name") == member:
            enum = by_name.get(m.get("type"))
            if enum and enum.get("meta-type") == "enum":
                if "members" in enum:  # QEMU >= 8.1 (with per-value features)
                    return sorted(v.get("name") for v in enum["members"])
                return sorted(enum.get("values", []))
    return None


def collect_device_schema(qmp, table):
    types = {}
    listed = qmp.execute("qom-list-types", {"implements": "device", "abstract": True})
    for t in listed[:MAX_DEVICE_TYPES]:
        types[t.get("name")] = {"parent": t.get("parent"), "abstract": bool(t.get("abstract"))}
    props = {}
    errors = {}
    names = [n for n in sorted(types) if not types[n]["abstract"]]
    # device-list-properties leaves out link<> properties (qom/qom-qmp-cmds.c
    # qmp_device_list_properties), yet -device sets them (iothread=, memdev=):
    # qom-list-properties lists them.
    calls = []
    for name in names:
        calls.append(("device-list-properties", {"typename": name}))
        calls.append(("qom-list-properties", {"typename": name}))
    replies = qmp.execute_batch(calls)
    for i, name in enumerate(names):
        listed, qom = replies[2 * i], replies[2 * i + 1]
        if isinstance(listed, Exception):
            errors[name] = str(listed)[:200]
            continue
        entry = []
        seen = set()
        for p in listed:
            item = [p.get("name"), p.get("type")]
            if "default-value" in p:
                item.append(p["default-value"])
            entry.append(table.intern(item))
            seen.add(p.get("name"))
        for p in qom if isinstance(qom, list) else []:
            kind = p.get("type") or ""
            if kind.startswith("link<") and p.get("name") not in seen:
                entry.append(table.intern([p.get("name"), kind]))
        props[name] = index_ranges(entry)
    return types, props, errors


def index_ranges(indexes):
    """[0, 1, 2, 7, 9, 10] -> "0-2,7,9-10": the controller decodes only the device types a
    guest uses, instead of parsing ~40,000 numbers per build."""
    out = []
    for i in sorted(set(indexes)):
        if out and out[-1][1] == i - 1:
            out[-1][1] = i
        else:
            out.append([i, i])
    return ",".join("%d" % a if a == b else "%d-%d" % (a, b) for a, b in out)


class Interned(object):
    """A table of unique JSON items, referenced by index. Device types share most of their
    properties (every virtio-*-pci variant lists the same ~100), and machine types repeat
    the compat arrays of every later release: interning cuts the schema about tenfold,
    on the wire and for the controller that parses it."""

    def __init__(self):
        self.items = []
        self.index = {}

    def intern(self, item):
        key = json.dumps(item, sort_keys=True)
        found = self.index.get(key)
        if found is None:
            found = self.index[key] = len(self.items)
            self.items.append(item)
        return found


def collect_vmstate(binary, timeout):
    """``-dump-vmstate FILE``: every device class's migration format. The device entries
    are per class, the same under any machine type (savevm.c dump_vmstate_json_to_file
    walks the device classes); only the "vmschkmachine" entry names the machine."""
    tmp = tempfile.mkdtemp(prefix="migcheck-")
    path = os.path.join(tmp, "vmstate.json")
    try:
        env = dict(os.environ)
        env["LC_ALL"] = "C"
        proc = subprocess.Popen([binary, "-no-user-config", "-nodefaults", "-display", "none",
                                 "-machine", "none", "-dump-vmstate", path],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, env=env, close_fds=True,
                                preexec_fn=die_with_parent)
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise QmpError("-dump-vmstate did not finish within %.0f s" % timeout)
        if proc.returncode != 0:
            raise QmpError("-dump-vmstate failed (exit %d): %s" % (
                proc.returncode, err.decode("utf-8", "replace")[-300:]))
        return json.loads(read_text(path, MAX_VMSTATE_BYTES))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def collect_build_schema(qmp, binary, mods, deadline):
    """What this build can build. Each part that fails is recorded in "errors"."""
    out = {"schema": BUILD_SCHEMA, "probe_version": PROBE_VERSION, "modules": mods,
           "errors": {}}
    started = time.time()

    def part(name, fn):
        try:
            out[name] = fn()
        except Exception as exc:  # noqa: BLE001 - one part failing costs only that part
            out[name] = None
            out["errors"][name] = "%s: %s" % (type(exc).__name__, exc)

    types = [None, None, None]
    # device_props: type -> indexes into "props" ([name, type] or [name, type, default]).
    props_table = Interned()
    out["props"] = props_table.items

    def devices():
        types[:] = collect_device_schema(qmp, props_table)
        return types[0]

    part("device_types", devices)
    out["device_props"] = types[1]
    if types[2]:
        out["errors"]["device_props"] = types[2]
    qschema = [None]

    def qapi(command, member):
        if qschema[0] is None:
            qschema[0] = qmp.execute("query-qmp-schema")
        return schema_enum(qschema[0], command, member)

    part("netdevs", lambda: qapi("netdev_add", "type"))
    part("block_drivers", lambda: qapi("blockdev-add", "driver"))

    def compat():
        # compat-props: QEMU >= 9.1 (qapi/machine.json, marked unstable); older builds
        # refuse the argument, and the build cannot say.
        machines = qmp.execute("query-machines", {"compat-props": True})
        # machine -> indexes into "compat" ([qom-type, property, value]).
        return dict((m.get("name"), [compat_table.intern(
            [c.get("qom-type"), c.get("property"), c.get("value")])
            for c in m.get("compat-props") or []]) for m in machines)

    compat_table = Interned()
    out["compat"] = compat_table.items

    part("machine_compat", compat)
    # Each section stays JSON text: the controller parses only the sections of the devices
    # a guest has (a dump is ~230 sections, ~0.4 MB).
    part("vmstate", lambda: dict(
        (name, json.dumps(section, sort_keys=True, separators=(",", ":")))
        for name, section in collect_vmstate(binary, max(1.0, deadline - time.time())).items()))
    out["vmstate_machine"] = "none"
    # Bounded by the probe's QEMU deadline: a binary that hung above costs nothing more.
    def search_path():
        left = deadline - time.time()
        if left <= 0:
            raise QmpError("the QEMU deadline passed before -L help")
        return firmware_search_path(binary, min(10.0, left))

    part("firmware_path", search_path)
    part("firmware", lambda: firmware_files(binary, out.get("firmware_path") or []))
    out["seconds"] = round(time.time() - started, 3)
    return out


def version_string(v):
    q = v.get("qemu", {})
    return "%d.%d.%d" % (q.get("major", 0), q.get("minor", 0), q.get("micro", 0))


def cpu_models(qmp):
    """query-cpu-definitions as facts record it (the same shape under KVM and TCG)."""
    return [
        {
            "name": c.get("name"),
            "alias_of": c.get("alias-of"),
            "unavailable_features": c.get("unavailable-features"),
            "migration_safe": c.get("migration-safe"),
            "static": c.get("static"),
            "deprecated": bool(c.get("deprecated", False)),
        }
        for c in qmp.execute("query-cpu-definitions")
    ]


def collect_qemu(arch, kvm, build_out=None):
    binary = find_qemu(arch)
    if binary is None:
        return {"error": "no QEMU found (tried qemu-system-%s, /usr/libexec/qemu-kvm, qemu-kvm)"
                % arch}
    st = os.stat(binary)
    out = {"binary": binary, "binary_size": st.st_size, "binary_mtime": int(st.st_mtime)}
    timeout = float(CONFIG.get("qemu_timeout", DEFAULT_QEMU_TIMEOUT))
    accel = ["-accel", "kvm", "-accel", "tcg"] if kvm.get("usable") else ["-accel", "tcg"]
    argv = [binary, "-S", "-no-user-config", "-nodefaults", "-display", "none",
            "-machine", "none"] + accel + ["-qmp", "stdio"]
    sha = Background(file_sha256, binary)
    qmp = Qmp(argv, time.time() + timeout)
    try:
        greeting = qmp.read_message()
        if "QMP" not in greeting:
            raise QmpError("QEMU did not greet with QMP: %r" % str(greeting)[:200])
        qmp.execute("qmp_capabilities")
        version = qmp.execute("query-version")
        out["version"] = version_string(version)
        out["package"] = version.get("package", "")
        try:
            ident, mods = build_identity(binary, arch, out["version"], out["package"], sha)
            out["build"] = ident
        except (OSError, ValueError) as exc:
            ident, mods = None, {}
            out["build"] = {"error": "%s: %s" % (type(exc).__name__, exc)}
        out["kvm"] = qmp.execute("query-kvm")
        out["machines"] = [
            {
                "name": m.get("name"),
                "alias": m.get("alias"),
                "is_default": bool(m.get("is-default", False)),
                "deprecated": bool(m.get("deprecated", False)),
                "cpu_max": m.get("cpu-max"),
                "default_cpu_type": m.get("default-cpu-type"),
            }
            for m in qmp.execute("query-machines")
        ]
        out["cpu_models"] = cpu_models(qmp)
        # "host" is what a -cpu host guest sees under KVM; TCG has no host model.
        model = "host" if out["kvm"].get("enabled") else "max"
        try:
            expansion = qmp.execute("query-cpu-model-expansion",
                                    {"type": "full", "model": {"name": model}})
            props = expansion.get("model", {}).get("props", {})
            out["host_cpu"] = {"model": model, "props": props}
        except QmpError as exc:
            out["host_cpu"] = {"error": str(exc)}
        # The schema travels only when the controller does not hold this build yet.
        known = CONFIG.get("known_builds")
        if build_out is not None and ident is not None and not CONFIG.get("skip_build") and (
                not isinstance(known, list) or ident["key"] not in known):
            build_out[0] = collect_build_schema(qmp, binary, mods, qmp.deadline)
            build_out[0]["key"] = ident["key"]
            build_out[0]["identity"] = ident
    except (QmpError, OSError, ValueError) as exc:
        out["error"] = "%s (stderr: %s)" % (exc, qmp.stderr_tail())
    finally:
        qmp.close()
    return out


def collect_qemu_tcg(qemu, started=None):
    """QEMU's CPU answers under TCG, for guests run with -accel tcg: there the CPU comes from
    QEMU's emulation, not from KVM, so the KVM answers above say nothing about it. The
    accelerator is fixed when QEMU starts, so this is a second, short QEMU run (about 0.3 s)
    unless the run above already used TCG."""
    if not (qemu.get("kvm") or {}).get("enabled"):
        return {"cpu_models": qemu.get("cpu_models"), "max_cpu": qemu.get("host_cpu"),
                "same_run": True}
    # Both runs share the QEMU budget, counted from the probe's start (the controller's
    # transport deadline allows for it); a first run that used most of it leaves 2 s.
    timeout = float(CONFIG.get("qemu_timeout", DEFAULT_QEMU_TIMEOUT))
    now = time.time()
    deadline = max((started or now) + timeout, now + min(2.0, timeout))
    argv = [qemu["binary"], "-S", "-no-user-config", "-nodefaults", "-display", "none",
            "-machine", "none", "-accel", "tcg", "-qmp", "stdio"]
    qmp = Qmp(argv, deadline)
    out = {}
    try:
        if "QMP" not in qmp.read_message():
            raise QmpError("QEMU did not greet with QMP")
        qmp.execute("qmp_capabilities")
        out["cpu_models"] = cpu_models(qmp)
        expansion = qmp.execute("query-cpu-model-expansion",
                                {"type": "full", "model": {"name": "max"}})
        out["max_cpu"] = {"model": "max", "props": expansion.get("model", {}).get("props", {})}
    except (QmpError, OSError, ValueError) as exc:
        out = {"error": "%s (stderr: %s)" % (exc, qmp.stderr_tail())}
    finally:
        qmp.close()
    return out


def file_identity(path):
    """A file's identity that survives no in-place change: device, inode, size, and mtime
    and ctime in nanoseconds (rewriting a file and restoring its mtime still moves ctime;
    a package upgrade's rename gives a new inode)."""
    st = os.stat(path)
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def is_script(path):
    """True for a ``#!`` script: what it executes is not knowable from its own identity, so
    a QEMU wrapper script is never cached."""
    with open(path, "rb") as f:
        return f.read(2) == b"#!"


def module_identity(binary, arch):
    """QEMU's module directory and the identity of every .so in it: an added, removed or
    replaced module changes which devices exist."""
    mdir = module_dir(binary, arch)
    if mdir is None:
        return None
    mods = []
    for name in sorted(os.listdir(mdir))[:MAX_BUILD_FILES]:
        if name.endswith(".so"):
            try:
                mods.append([name] + file_identity(os.path.join(mdir, name)))
            except OSError:
                continue
    digest = hashlib.sha256(json.dumps(mods).encode()).hexdigest()
    return {"dir": mdir, "count": len(mods), "digest": digest}


def microcode_by_package(text):
    """(physical id, microcode) of every processor: a package updated on its own is seen."""
    seen = set()
    for block in text.split("\n\n"):
        fields = {}
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip()] = value.strip()
        if "processor" in fields:
            seen.add((fields.get("physical id", ""), fields.get("microcode", "")))
    return sorted("%s:%s" % item for item in seen)


def fingerprint(facts, arch):
    """What QEMU's QMP answers depend on, like libvirt's capability cache validation: the
    binary's identity (see file_identity), its module directory, the kernel (release,
    build, command line), the microcode of every CPU package, the KVM module parameters and
    this probe's version. A wrapper script raises: its answers are never cached."""
    binary = find_qemu(arch)
    if binary and is_script(binary):
        raise ValueError("QEMU %s is a script; its answers are not cached" % binary)
    kvm = facts.get("kvm", {})
    return {
        "probe_version": PROBE_VERSION,
        "qemu_binary": binary,
        "qemu_realpath": os.path.realpath(binary) if binary else None,
        "qemu_identity": file_identity(binary) if binary else None,
        "qemu_modules": module_identity(binary, arch) if binary else None,
        "qemu_override": CONFIG.get("qemu"),
        "kernel_release": facts.get("kernel", {}).get("release"),
        "kernel_version": os.uname()[3],
        "kernel_cmdline": read_text("/proc/cmdline", 65536).strip(),
        "microcode": microcode_by_package(read_text("/proc/cpuinfo", limit=64 * 1024 * 1024)),
        "kvm_usable": kvm.get("usable"),
        "kvm_modules": kvm.get("modules"),
    }


def main():
    start = time.time()
    facts = {"schema": SCHEMA}
    facts["probe"] = {"version": PROBE_VERSION, "python": sys.version.split()[0],
                      "uid": os.getuid()}
    facts["kernel"] = section(collect_kernel)
    facts["os"] = section(collect_os)
    facts["cpu"] = section(collect_cpu)
    facts["kvm"] = section(collect_kvm)
    facts["devices"] = section(collect_devices)
    if CONFIG.get("vm") is not None or CONFIG.get("list_vms"):
        facts["guests"] = section(collect_guests)
        RUNNING_QEMU[0] = running_binary(facts["guests"])
    arch = facts["kernel"].get("arch") or os.uname()[4]
    kvm = facts["kvm"] if "error" not in facts["kvm"] else {}
    if RUNNING_QEMU[0]:
        # Never cached: the controller keys its cache on the installed binary.
        fp = {"error": "the guest's QEMU binary was deleted; probed through %s"
              % RUNNING_QEMU[0]}
    else:
        fp = section(lambda: fingerprint(facts, arch))
    facts["probe"]["fingerprint"] = fp
    known = CONFIG.get("known_fingerprint")
    if CONFIG.get("skip_qemu"):
        facts["qemu"] = {"error": "not probed (skip_qemu)"}
    elif known and "error" not in fp and known == fp and not CONFIG.get("refresh"):
        # Nothing QEMU's answers depend on changed: the controller has them already.
        facts["qemu"] = {"cached": True, "binary": fp.get("qemu_binary") or ""}
    else:
        build_out = [None]
        facts["qemu"] = section(lambda: collect_qemu(arch, kvm, build_out))
        if build_out[0] is not None:
            # The controller moves this into its per-build store and out of the facts.
            facts["build_schema"] = build_out[0]
        if RUNNING_QEMU[0] and "error" not in facts["qemu"]:
            facts["qemu"]["running_binary"] = RUNNING_QEMU[0]
        if "error" not in facts["qemu"]:
            facts["qemu"]["tcg"] = section(lambda: collect_qemu_tcg(facts["qemu"], start))
    facts["probe"]["seconds"] = round(time.time() - start, 3)
    out = json.dumps(facts, sort_keys=True)
    try:
        sys.stdout.write(out + "\n")
        sys.stdout.flush()
    except IOError as exc:
        if exc.errno != errno.EPIPE:
            raise


if __name__ == "__main__":
    os.environ["LC_ALL"] = "C"
    main()
