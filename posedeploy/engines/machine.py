"""What this machine is, as far as engines care: CPU architecture, Jetson release, GPU, CUDA,
and which TensorRT flavours are installed. Never raises: unknown parts are None."""

from __future__ import annotations

import importlib
import platform
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# The TensorRT Python packages posedeploy drives: the datacenter/Jetson one and TensorRT for RTX.
FLAVOURS: tuple[str, ...] = ("tensorrt", "tensorrt_rtx")
TEGRA_RELEASE = Path("/etc/nv_tegra_release")


@dataclass
class GPU:
    name: str
    compute_capability: str  # "8.9"
    memory_mb: int


@dataclass
class MachineInfo:
    arch: str
    system: str
    l4t: str | None = None  # Jetson Linux release, e.g. "R36.4.0"
    gpus: list[GPU] = field(default_factory=list)
    driver_version: str | None = None
    cuda_runtime_version: str | None = None
    cuda_api: str | None = None  # which Python CUDA layer answered: cuda-python or pycuda
    tensorrt: dict[str, str] = field(default_factory=dict)  # flavour -> version

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _version(code: int) -> str:
    """CUDA's integer versions: 12040 -> '12.4'."""
    return f"{code // 1000}.{(code % 1000) // 10}"


def l4t_release(path: Path = TEGRA_RELEASE) -> str | None:
    """'# R36 (release), REVISION: 4.0, GCID: ...' -> 'R36.4.0' (None off a Jetson)."""
    try:
        match = re.search(r"R(\d+) \(release\), REVISION: ([\d.]+)", path.read_text())
    except OSError:
        return None
    return f"R{match.group(1)}.{match.group(2)}" if match else None


def _cuda_python(info: MachineInfo) -> bool:
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart  # cuda-python < 12.6 layout
        except ImportError:
            return False
    try:
        err, count = cudart.cudaGetDeviceCount()
        if int(err) != 0:
            return False
        info.cuda_api = "cuda-python"
        err, driver = cudart.cudaDriverGetVersion()
        info.driver_version = _version(driver) if int(err) == 0 else None
        err, runtime = cudart.cudaRuntimeGetVersion()
        info.cuda_runtime_version = _version(runtime) if int(err) == 0 else None
        for i in range(count):
            err, prop = cudart.cudaGetDeviceProperties(i)
            if int(err) == 0:
                name = prop.name.decode() if isinstance(prop.name, bytes) else str(prop.name)
                info.gpus.append(GPU(name.strip("\x00"), f"{prop.major}.{prop.minor}", prop.totalGlobalMem // 2**20))
        return True
    except Exception:  # no driver, no device: a CPU machine
        return False


def _pycuda(info: MachineInfo) -> bool:
    try:
        import pycuda.driver as cuda

        cuda.init()
        info.cuda_api = "pycuda"
        info.driver_version = _version(cuda.get_driver_version())
        for i in range(cuda.Device.count()):
            d = cuda.Device(i)
            major, minor = d.compute_capability()
            info.gpus.append(GPU(d.name(), f"{major}.{minor}", d.total_memory() // 2**20))
        return True
    except Exception:
        return False


def tensorrt_versions() -> dict[str, str]:
    found = {}
    for flavour in FLAVOURS:
        try:
            found[flavour] = importlib.import_module(flavour).__version__
        except Exception:  # not installed, or a placeholder package that fails to import
            continue
    return found


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else what platform knows."""
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    except OSError:
        names = []
    return names[0] if names else platform.processor() or platform.machine()


def describe_machine() -> MachineInfo:
    info = MachineInfo(arch=platform.machine(), system=platform.system(), l4t=l4t_release())
    _cuda_python(info) or _pycuda(info)
    info.tensorrt = tensorrt_versions()
    return info
