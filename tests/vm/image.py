"""The VM's kernel and initramfs, built from Debian's stock kernel package and
cached under build/vm-cache/ (or $LABGW_VM_CACHE).

The cache holds, per kernel package version, only what a boot needs:
vmlinuz (and the uncompressed vmlinux inside it when qemu can boot that
directly, which saves ~3 s per boot under TCG), a subset of the modules (the ones below with their dependencies from
modules.dep, plus whole folders the kernel may request_module() from), and
the initramfs built from them. The unpacked package (~400 MB) and the .deb are
deleted once the subset is taken.

Nothing here touches /boot or the host's /lib/modules, and nothing needs root.
"""

import fcntl
import hashlib
import json
import lzma
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

# Loaded by the initramfs, in dependency order: the 9p root and the overlay.
BOOT_MODULES = ["virtio_pci", "9pnet_virtio", "9p", "overlay"]
# Loaded by the initramfs too: the radios and the crypto they need. Without
# AF_ALG, btvirt fails with a misleading "Failed to open Virtual HCI device".
RADIO_MODULES = [
    "bluetooth", "hci_vhci",
    "cfg80211", "mac80211",
    "ccm", "gcm", "cmac", "ctr", "ecb",
    "af_alg", "algif_skcipher", "algif_hash", "algif_aead",
]
# In the subset but loaded only on request: its `radios=` parameter is the
# test's choice (vm.run_in_vm(hwsim_radios=N), or modprobe inside the VM).
ON_REQUEST_MODULES = ["mac80211_hwsim"]
# Whole folders (with their dependencies) copied too, so that the kernel's own
# request_module() finds what it asks for at run time (e.g. CCMP asks for
# "ccm", GCM for "ghash", BlueZ sockets for "bt-proto-N").
MODULE_DIRS = ["kernel/crypto", "kernel/net/bluetooth"]

INIT_FILES = [HERE / "initramfs" / "init", HERE / "initramfs" / "stage2"]
BUSYBOX = Path("/bin/busybox")
# cfg80211 loads the regulatory database while the initramfs is the root
# (package wireless-regdb; without it, the world domain only)
FIRMWARE = [Path("/lib/firmware/regulatory.db"), Path("/lib/firmware/regulatory.db.p7s")]


class VmUnavailable(Exception):
    """The VM cannot run on this machine (no qemu, no kernel, ...): a reason
    for a skip, never for a pass."""


@dataclass(frozen=True)
class Image:
    kver: str          # uname -r inside the VM
    package: str       # e.g. linux-image-6.1.0-56-amd64
    version: str       # the package version
    kernel: Path       # what qemu boots: vmlinux (PVH entry) if usable, else vmlinuz
    initramfs: Path
    modules: Path      # lib/modules/<kver> subset (with modules.dep)


def cache_dir():
    d = os.environ.get("LABGW_VM_CACHE")
    return Path(d).resolve() if d else REPO / "build" / "vm-cache"


def _run(argv, what, **kw):
    try:
        return subprocess.run(argv, check=True, capture_output=True, text=True, **kw).stdout
    except FileNotFoundError:
        raise VmUnavailable("%s: %s not found" % (what, argv[0])) from None
    except subprocess.CalledProcessError as e:
        msg = (e.stderr or e.stdout or "").strip().splitlines()
        raise VmUnavailable("%s failed (%s): %s" % (what, " ".join(argv),
                                                    msg[-1] if msg else "exit %d" % e.returncode)) from None


def resolve_kernel_package():
    """(package, version) of the versioned kernel that linux-image-amd64
    depends on now, from the local apt lists (no network)."""
    out = _run(["apt-cache", "depends", "linux-image-amd64"], "resolving the kernel package")
    m = re.search(r"Depends:\s*(linux-image-[0-9][^\s]*-amd64)\s*$", out, re.M)
    if not m:
        raise VmUnavailable("apt-cache depends linux-image-amd64 names no versioned kernel "
                            "(apt lists missing? run apt-get update)")
    pkg = m.group(1)
    out = _run(["apt-cache", "show", "--no-all-versions", pkg], "reading %s" % pkg)
    v = re.search(r"^Version:\s*(\S+)", out, re.M)
    if not v:
        raise VmUnavailable("apt-cache show %s gives no version" % pkg)
    return pkg, v.group(1)


def _spec_hash():
    """Changes when the module subset would change."""
    spec = json.dumps([BOOT_MODULES, RADIO_MODULES, ON_REQUEST_MODULES, MODULE_DIRS])
    return hashlib.sha256(spec.encode()).hexdigest()[:12]


def _initramfs_hash(kdir):
    h = hashlib.sha256()
    h.update((kdir / "kernel.json").read_bytes())
    for f in INIT_FILES + [f for f in FIRMWARE if f.exists()]:
        h.update(f.read_bytes())
    h.update(str(BUSYBOX.stat().st_size).encode())
    return h.hexdigest()[:12]


def _parse_modules_dep(path):
    deps = {}
    for line in path.read_text().splitlines():
        mod, _, rest = line.partition(":")
        deps[mod] = rest.split()
    return deps


def _module_name(relpath):
    return Path(relpath).name.split(".ko")[0].replace("-", "_")


def _load_order(names, deps, by_name):
    """Relative paths of `names` and their dependencies, dependencies first."""
    order, seen = [], set()

    def visit(rel):
        if rel in seen:
            return
        seen.add(rel)
        for d in deps[rel]:
            visit(d)
        order.append(rel)

    for n in names:
        visit(by_name[n])
    return order


def _is_static(path):
    """True if the ELF file has no program interpreter (PT_INTERP)."""
    with open(path, "rb") as f:
        hdr = f.read(64)
        if hdr[:4] != b"\x7fELF" or hdr[4] != 2:
            return False
        phoff = int.from_bytes(hdr[32:40], "little")
        phentsize = int.from_bytes(hdr[54:56], "little")
        phnum = int.from_bytes(hdr[56:58], "little")
        f.seek(phoff)
        ph = f.read(phentsize * phnum)
    return all(int.from_bytes(ph[i:i + 4], "little") != 3
               for i in range(0, len(ph), phentsize))


def _pvh_vmlinux(vmlinuz):
    """The uncompressed kernel inside a bzImage if it can be booted directly
    (PVH entry note), else None. qemu then skips the in-guest decompression,
    which takes ~3 s under software emulation."""
    data = vmlinuz.read_bytes()
    i = data.find(b"\xfd7zXZ\x00")
    if i < 0:
        return None
    try:
        elf = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data[i:])
    except lzma.LZMAError:
        return None
    if elf[:5] != b"\x7fELF\x02":
        return None
    u16 = lambda o: int.from_bytes(elf[o:o + 2], "little")  # noqa: E731
    u32 = lambda o: int.from_bytes(elf[o:o + 4], "little")  # noqa: E731
    u64 = lambda o: int.from_bytes(elf[o:o + 8], "little")  # noqa: E731
    phoff, phentsize, phnum = u64(32), u16(54), u16(56)
    for k in range(phnum):
        ph = phoff + k * phentsize
        if u32(ph) != 4:  # PT_NOTE
            continue
        off, end = u64(ph + 8), u64(ph + 8) + u64(ph + 32)
        while off + 12 <= end:
            namesz, descsz, ntype = u32(off), u32(off + 4), u32(off + 8)
            name = elf[off + 12:off + 12 + namesz].rstrip(b"\0")
            if name == b"Xen" and ntype == 18:  # XEN_ELFNOTE_PHYS32_ENTRY
                return elf
            off += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
    return None


def _fetch_kernel(pkg, version, kdir):
    """Download pkg, take vmlinuz and the module subset into kdir."""
    tmp = Path(tempfile.mkdtemp(prefix="kernel-", dir=kdir.parent))
    try:
        _run(["apt-get", "download", "%s=%s" % (pkg, version)], "downloading %s" % pkg, cwd=tmp)
        debs = list(tmp.glob("*.deb"))
        if len(debs) != 1:
            raise VmUnavailable("apt-get download %s left %d .deb files" % (pkg, len(debs)))
        root = tmp / "root"
        _run(["dpkg-deb", "-x", str(debs[0]), str(root)], "unpacking %s" % pkg)
        debs[0].unlink()
        vmlinuz = list((root / "boot").glob("vmlinuz-*"))
        if len(vmlinuz) != 1:
            raise VmUnavailable("%s holds %d vmlinuz files" % (pkg, len(vmlinuz)))
        kver = vmlinuz[0].name[len("vmlinuz-"):]
        mroot = root / "lib" / "modules" / kver
        _run(["depmod", "-b", str(root), kver], "depmod")
        deps = _parse_modules_dep(mroot / "modules.dep")
        by_name = {_module_name(rel): rel for rel in deps}
        builtin = {_module_name(l) for l in (mroot / "modules.builtin").read_text().split()}
        wanted = BOOT_MODULES + RADIO_MODULES + ON_REQUEST_MODULES
        missing = [n for n in wanted if n not in by_name and n not in builtin]
        if missing:
            raise VmUnavailable("%s lacks modules: %s" % (pkg, ", ".join(missing)))
        loadable = [n for n in wanted if n in by_name]
        extra = [_module_name(rel) for rel in deps
                 if any(rel.startswith(d + "/") for d in MODULE_DIRS)]
        subset = _load_order(loadable + extra, deps, by_name)

        stage = tmp / "out"
        smods = stage / "modules" / kver
        smods.mkdir(parents=True)
        for f in ("modules.builtin", "modules.builtin.modinfo", "modules.order"):
            if (mroot / f).exists():
                shutil.copy2(mroot / f, smods / f)
        for rel in subset:
            (smods / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(mroot / rel, smods / rel)
        # modules.dep etc. of the subset alone: modprobe inside sees what is there
        _depmod_subset(stage / "modules", kver)
        shutil.copy2(vmlinuz[0], stage / "vmlinuz")
        elf = _pvh_vmlinux(vmlinuz[0])
        if elf:
            (stage / "vmlinux").write_bytes(elf)
        boot = _load_order([n for n in BOOT_MODULES + RADIO_MODULES if n in by_name],
                           deps, by_name)
        hwsim = _load_order([n for n in ON_REQUEST_MODULES if n in by_name], deps, by_name)
        meta = {"package": pkg, "version": version, "kver": kver, "spec": _spec_hash(),
                "boot_modules": boot, "on_request": [r for r in hwsim if r not in boot]}
        (stage / "kernel.json").write_text(json.dumps(meta, indent=1) + "\n")
        if kdir.exists():
            shutil.rmtree(kdir)
        stage.rename(kdir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _depmod_subset(modules_parent, kver):
    """depmod over <modules_parent>/<kver> via a throwaway root whose
    lib/modules points there."""
    root = Path(tempfile.mkdtemp(prefix="depmod-", dir=modules_parent.parent))
    try:
        (root / "lib").mkdir()
        (root / "lib" / "modules").symlink_to(modules_parent.resolve())
        _run(["depmod", "-b", str(root), kver], "depmod (subset)")
    finally:
        shutil.rmtree(root)


def _build_initramfs(kdir, meta, out):
    if not BUSYBOX.exists():
        raise VmUnavailable("%s not found (apt-get install busybox-static)" % BUSYBOX)
    if not _is_static(BUSYBOX):
        raise VmUnavailable("%s is not statically linked (apt-get install busybox-static)"
                            % BUSYBOX)
    tmp = Path(tempfile.mkdtemp(prefix="initramfs-", dir=kdir))
    try:
        t = tmp / "root"
        for d in ("bin", "dev", "proc", "sys", "etc/labgw-vm", "lib/modules", "lib/firmware"):
            (t / d).mkdir(parents=True)
        for f in FIRMWARE:
            if f.exists():
                shutil.copyfile(f, t / "lib/firmware" / f.name)
        shutil.copy2(BUSYBOX, t / "bin" / "busybox")
        (t / "bin" / "sh").symlink_to("busybox")
        for f in INIT_FILES:
            shutil.copy2(f, t / f.name)
            os.chmod(t / f.name, 0o755)
        shutil.copytree(kdir / "modules" / meta["kver"], t / "lib" / "modules" / meta["kver"])
        (t / "etc/labgw-vm/boot-modules").write_text("".join(m + "\n" for m in
                                                             meta["boot_modules"]))
        (t / "etc/labgw-vm/on-request").write_text("".join(m + "\n" for m in
                                                           meta["on_request"]))
        files = subprocess.run(["find", ".", "-mindepth", "1"], cwd=t, check=True,
                               capture_output=True).stdout
        with open(tmp / "initramfs.img", "wb") as f:
            cpio = subprocess.Popen(["cpio", "-o", "-H", "newc", "-R", "0:0", "--quiet"],
                                    cwd=t, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            gz = subprocess.Popen(["gzip", "-1", "-n"], stdin=cpio.stdout, stdout=f)
            cpio.stdout.close()
            cpio.stdin.write(files)
            cpio.stdin.close()
            if cpio.wait() != 0 or gz.wait() != 0:
                raise VmUnavailable("building the initramfs failed (cpio/gzip)")
        (tmp / "initramfs.img").rename(out)
    except FileNotFoundError as e:
        raise VmUnavailable("building the initramfs: %s not found" % e.filename) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _cached_kernels(cache):
    found = []
    for meta_path in cache.glob("*/kernel.json"):
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            continue
        if meta.get("spec") == _spec_hash():
            found.append((meta_path.stat().st_mtime, meta_path.parent, meta))
    return [(d, m) for _, d, m in sorted(found, reverse=True)]


def prepare(log=None):
    """The Image to boot, building the cache if needed. Raises VmUnavailable
    with the reason when the kernel cannot be obtained."""
    log = log or (lambda msg: None)
    cache = cache_dir()
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise VmUnavailable("cannot create the VM cache %s: %s" % (cache, e)) from None
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time
        try:
            pkg, version = resolve_kernel_package()
            kdir = cache / ("%s_%s" % (pkg, version))
            meta = None
            if (kdir / "kernel.json").exists():
                meta = json.loads((kdir / "kernel.json").read_text())
                if meta.get("spec") != _spec_hash():
                    meta = None
            if meta is None:
                for stale in cache.glob("kernel-*"):  # an interrupted fetch (we hold the lock)
                    shutil.rmtree(stale, ignore_errors=True)
                log("vm: fetching %s %s into %s" % (pkg, version, cache))
                _fetch_kernel(pkg, version, kdir)
                meta = json.loads((kdir / "kernel.json").read_text())
                for old in cache.iterdir():  # keep one kernel
                    if old.is_dir() and old != kdir and (old / "kernel.json").exists():
                        shutil.rmtree(old, ignore_errors=True)
        except VmUnavailable as e:
            cached = _cached_kernels(cache)
            if not cached:
                raise
            kdir, meta = cached[0]
            log("vm: %s; using the cached %s" % (e, kdir.name))
        initramfs = kdir / ("initramfs-%s.img" % _initramfs_hash(kdir))
        if not initramfs.exists():
            log("vm: building %s" % initramfs)
            _build_initramfs(kdir, meta, initramfs)
            for old in kdir.glob("initramfs-*.img"):
                if old != initramfs:
                    old.unlink()
    return Image(kver=meta["kver"], package=meta["package"], version=meta["version"],
                 kernel=kdir / ("vmlinux" if (kdir / "vmlinux").exists() else "vmlinuz"),
                 initramfs=initramfs,
                 modules=kdir / "modules" / meta["kver"])
