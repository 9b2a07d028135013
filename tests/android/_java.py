"""Builds and runs the Java unpacker (android_demo/unpacker) for tests/android."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
UNPACKER = ROOT / "android_demo" / "unpacker"
MAIN_SOURCES = UNPACKER / "src" / "main" / "java"
TEST_SOURCES = UNPACKER / "src" / "test" / "java"
PACKAGE = "org.tfedge.unpacker"
# Debian's junit4 package puts these here; TFEDGE_JUNIT_CP overrides (a path list).
JUNIT_JARS = ("/usr/share/java/junit4.jar", "/usr/share/java/hamcrest-core.jar")
# Generous: a cold JVM on a loaded 2-core machine.
JAVA_TIMEOUT_S = 600


def junit_classpath() -> list[str] | None:
    env = os.environ.get("TFEDGE_JUNIT_CP")
    jars = env.split(os.pathsep) if env else list(JUNIT_JARS)
    return jars if all(Path(j).is_file() for j in jars) else None


def missing_jdk() -> str | None:
    """Why the Java unpacker cannot be built and run here, or None."""
    for tool in ("javac", "java"):
        if shutil.which(tool) is None:
            return (
                f"`{tool}` not found: install a JDK (Debian: openjdk-17-jdk-headless)"
            )
    return None


def missing_junit() -> str | None:
    """Why the unpacker's JUnit tests cannot run here, or None (the parity tests need
    only the JDK)."""
    if junit_classpath() is None:
        return (
            f"JUnit 4 not found at {', '.join(JUNIT_JARS)}: install it (Debian: "
            "apt-get install junit4) or set TFEDGE_JUNIT_CP"
        )
    return None


def _sources(root: Path) -> list[str]:
    return sorted(str(p) for p in root.rglob("*.java"))


def compile_unpacker(out: Path, *, with_tests: bool = True) -> str:
    """Compiles the library (and, with `with_tests`, its JUnit tests, which need
    JUnit 4) into `out`; returns the classpath."""
    main = out / "main"
    main.mkdir(parents=True, exist_ok=True)
    _javac(["-d", str(main), *_sources(MAIN_SOURCES)])
    cp = [str(main)]
    if with_tests:
        test = out / "test"
        test.mkdir(parents=True, exist_ok=True)
        jars = junit_classpath() or []
        _javac(
            [
                "-cp",
                os.pathsep.join([str(main), *jars]),
                "-d",
                str(test),
                *_sources(TEST_SOURCES),
            ]
        )
        cp += [str(test), *jars]
    return os.pathsep.join(cp)


def _javac(args: list[str]) -> None:
    # --release 8 checks against the Java 8 API too (what dx and minSdk 23 need).
    cmd = [
        "javac",
        "--release",
        "8",
        "-Xlint:all,-options",
        "-encoding",
        "UTF-8",
        *args,
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=JAVA_TIMEOUT_S)
    if r.returncode != 0:
        raise RuntimeError(f"javac failed:\n{r.stdout}\n{r.stderr}")


def java(classpath: str, main: str, *args: str, check: bool = True):
    cmd = ["java", "-Xss4m", "-cp", classpath, f"{PACKAGE}.{main}", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=JAVA_TIMEOUT_S)
    if check and r.returncode not in (0, 1):
        raise RuntimeError(
            f"{' '.join(cmd)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}"
        )
    return r


def run_batch(
    classpath: str, workdir: Path, jobs: list[tuple[str, ...]]
) -> list[str | None]:
    """Runs Main batch; returns None per successful job, else the error message."""
    listing = workdir / "jobs.txt"
    listing.write_text("".join("\t".join(j) + "\n" for j in jobs), encoding="utf-8")
    r = java(classpath, "Main", "batch", str(listing))
    if r.returncode != 0:
        raise RuntimeError(f"Main batch failed:\n{r.stdout}\n{r.stderr}")
    lines = r.stdout.splitlines()
    if len(lines) != len(jobs):
        raise RuntimeError(
            f"Main batch answered {len(lines)} of {len(jobs)} jobs:\n{r.stderr}"
        )
    return [None if line == "OK" else line.removeprefix("ERR ") for line in lines]
