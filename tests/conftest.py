"""Shared fixtures: a real Redis server, real databases (SQLite and PostgreSQL), real workers.

PostgreSQL is found at FARM_TEST_POSTGRES_URL (default: the local server's `test` database);
when it cannot be reached, the PostgreSQL half of each parametrised test is skipped with a
message saying so.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import psutil
import psycopg
import pytest
import redis

from db.engine import dispose_engines
from farm.client.jobs import live_queues
from farm.core.redisserver import start_redis
from farm.core.settings import FarmSettings
from farm.core.waiting import TimedOut, wait_until
from queues.app import make_app

T = TypeVar("T")
POSTGRES_ADMIN_URL = os.environ.get("FARM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
WORKER_START_TIMEOUT_S = 90


# Fixtures that start or reach a service (Redis, the S3 server, PostgreSQL): tests using any of
# them are marked `services`; `make check` runs the others.
SERVICE_FIXTURES = {"redis_url", "s3_server", "postgres_farm"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if not item.get_closest_marker("integration"):
            # Under `pytest -n N --dist loadgroup` a unit module's tests share one process, so its
            # module-scoped fixtures (a loaded TensorFlow model, its ONNX export) are built once;
            # integration tests spread one by one.
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
        if item.nodeid.startswith("tests/deploy/"):
            item.add_marker(pytest.mark.deploy)  # runs Ansible and the Compose binary
        fixtures = set(getattr(item, "fixturenames", ()))
        params = getattr(getattr(item, "callspec", None), "params", {})
        on_a_server = {"postgresql", "s3"} & set(map(str, params.values()))  # a database or a store
        if fixtures & SERVICE_FIXTURES or on_a_server or item.get_closest_marker("integration"):
            item.add_marker(pytest.mark.services)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server of our own on a free port, for the whole session."""
    port = free_port()
    process = start_redis(port, tmp_path_factory.mktemp("redis"))
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(10)


@dataclass(frozen=True)
class S3Server:
    """A real S3-compatible server (moto in server mode) on a free port, with one bucket."""

    endpoint: str
    bucket: str

    @property
    def env(self) -> dict[str, str]:
        """The standard AWS variables, as any S3 tool (and farm) reads them."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "farm-test",
            "AWS_SECRET_ACCESS_KEY": "farm-test-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def url(self, prefix: str) -> str:
        return f"s3://{self.bucket}/{prefix}"


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    port = free_port()
    log = (tmp_path_factory.mktemp("s3") / "moto.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log
    )
    server = S3Server(f"http://127.0.0.1:{port}", "farm-artifacts")
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"the S3 server did not start: {Path(log.name).read_text()[-2000:]}")
            time.sleep(0.2)
    urllib.request.urlopen(urllib.request.Request(f"{server.endpoint}/{server.bucket}", method="PUT"))
    yield server
    process.terminate()
    process.wait(10)


@pytest.fixture
def aws_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """The S3 server, named by the standard AWS variables in this test process."""
    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    return s3_server


def _postgres_database() -> Iterator[str]:
    name = f"farm_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL} ({exc}); PostgreSQL half skipped")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
        try:
            yield f"{base}/{name}"
        finally:
            dispose_engines()
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'farm.db'}"
    else:
        yield from _postgres_database()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'farm.db'}"


def run_cli_in_process(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`farm ARGS` run by its own entry point (farm.cli.main) in this process, in ``env``, with its
    output and exit code captured as a child process's would be."""
    from farm.cli import main
    from farm.cli.context import celery_app
    from farm.core.settings import get_settings

    stdout, stderr = io.StringIO(), io.StringIO()
    saved_env, saved_argv = dict(os.environ), sys.argv
    os.environ.clear()
    os.environ.update(env)
    sys.argv = ["farm", *args]
    get_settings.cache_clear()  # settings and the app are read from the environment once
    celery_app.cache_clear()
    code: int | str | None = 0
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            main()
    except SystemExit as exc:
        code = exc.code
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        sys.argv = saved_argv
        get_settings.cache_clear()
        celery_app.cache_clear()
    returncode = code if isinstance(code, int) else (0 if code is None else 1)
    return subprocess.CompletedProcess(
        [sys.executable, "-m", "farm", *args], returncode, stdout.getvalue(), stderr.getvalue()
    )


def farm_environment(home: Path, broker_url: str, database_url: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("FARM_")}
    env.update(
        FARM_HOME=str(home),
        FARM_BROKER_URL=broker_url,
        FARM_DATABASE_URL=database_url,
        # Benchmarks are measured, not judged, in tests: short windows, small batches.
        FARM_BENCH_WINDOW_S="0.02",
        FARM_BENCH_SECONDS="0.2",
        FARM_BENCH_MAX_BATCH="4",
        FARM_BENCH_MAX_ROWS="16",
        FARM_CALIB_SAMPLES="32",  # the default: fewer miss a detector's ranges
        FARM_VERIFY_SAMPLES="8",
        FARM_CONFIG=str(home / "absent.toml"),
        FARM_FLOWER_PORT=str(free_port()),  # `farm up` starts Flower: never on a port another test holds
        TF_CPP_MIN_LOG_LEVEL="2",
    )
    return env


class Farm:
    """A farm for one test: its environment, CLI runner and worker processes."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.settings = FarmSettings(
            home=Path(env["FARM_HOME"]),
            broker_url=env["FARM_BROKER_URL"],
            database_url=env["FARM_DATABASE_URL"],
        )
        self.settings.home.mkdir(parents=True, exist_ok=True)
        self.app = make_app(self.settings)
        self.workers: list[subprocess.Popen] = []

    def cli(
        self, *args: str, timeout: float = 300, process: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """The `farm` command with this farm's environment: in this process (its start-up costs
        over a second, and most tests run many commands), or with ``process`` as a real child
        process, as a user runs it (the one-line, no-traceback contract is checked both ways).
        `farm worker` replaces the process that runs it, so it always gets its own."""
        if process or args[:1] == ("worker",):
            return subprocess.run(
                [sys.executable, "-m", "farm", *args],
                env=self.env,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        return run_cli_in_process(list(args), self.env)

    def start_worker(self, hardware: str = "cpu", env: dict[str, str] | None = None) -> subprocess.Popen:
        """A real `farm worker` process serving ``hardware`` (one class, or several: "cpu,arm"),
        in the farm's environment or ``env`` (a worker standing for another host)."""
        env = env or self.env
        home = Path(env["FARM_HOME"])
        home.mkdir(parents=True, exist_ok=True)
        log = (home / f"worker-{len(self.workers)}.log").open("wb")
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "farm",
                "worker",
                "--hw",
                hardware,
                "--name",
                f"{hardware.replace(',', '-')}-{uuid.uuid4().hex[:6]}@%h",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.workers.append(process)
        try:
            wait_until(
                lambda: set(hardware.split(",")) <= (live_queues(self.app, timeout_s=0.5) or set()),
                WORKER_START_TIMEOUT_S,
                f"a {hardware} worker consuming",
                interval_s=0.2,
                give_up=lambda: "it exited" if process.poll() is not None else None,
            )
        except TimedOut as exc:
            pytest.fail(f"{exc}:\n{Path(log.name).read_text()[-3000:]}")
        return process

    def worker_log(self, index: int = 0) -> str:
        return (Path(self.env["FARM_HOME"]) / f"worker-{index}.log").read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 120, index: int = 0) -> None:
        """Until the worker's log holds ``text``: an event to wait on, not a fixed sleep."""
        wait_until(lambda: text in self.worker_log(index), timeout, f"{text!r} in worker-{index}.log")

    def stop_workers(self) -> None:
        """Kill every worker of this farm with its pool processes: the test is over, and a warm
        shutdown would wait for their tasks (tests of shutdown signal the worker themselves)."""
        for process in self.workers:
            if process.poll() is None:
                with contextlib.suppress(psutil.NoSuchProcess):
                    for child in psutil.Process(process.pid).children(recursive=True):
                        with contextlib.suppress(psutil.NoSuchProcess):
                            child.kill()
                process.kill()
            process.wait(30)


@pytest.fixture
def farm(tmp_path: Path, redis_url: str, database_url: str) -> Iterator[Farm]:
    redis.Redis.from_url(redis_url).flushdb()  # no messages left over from an earlier test
    instance = Farm(farm_environment(tmp_path / "home", redis_url, database_url))
    yield instance
    instance.stop_workers()


@pytest.fixture
def postgres_farm(tmp_path: Path, redis_url: str) -> Iterator[Farm]:
    """A farm of this test's own on PostgreSQL, the database a fleet shares."""
    redis.Redis.from_url(redis_url).flushdb()
    for database in _postgres_database():
        instance = Farm(farm_environment(tmp_path / "home", redis_url, database))
        yield instance
        instance.stop_workers()


@pytest.fixture
def sqlite_farm(tmp_path: Path, redis_url: str, sqlite_url: str) -> Iterator[Farm]:
    redis.Redis.from_url(redis_url).flushdb()
    instance = Farm(farm_environment(tmp_path / "home", redis_url, sqlite_url))
    yield instance
    instance.stop_workers()


class SharedFarms:
    """Farms whose one worker (serving cpu, arm and fpga) starts once per session and database
    and is shared by every test that neither stops, limits nor reconfigures it: its pool process
    keeps TensorFlow loaded, and the conversions it made serve later tests from the farm's own
    cache (a test that must see a build passes --force). Each farm has a Redis database of its
    own, which the tests that flush theirs never touch."""

    def __init__(self, root: Path, redis_url: str) -> None:
        self.root, self.redis_url = root, redis_url
        self.farms: dict[str, Farm] = {}
        self.databases = contextlib.ExitStack()

    def get(self, kind: str) -> Farm:
        if kind not in self.farms:
            if kind == "sqlite":
                database = f"sqlite:///{self.root / 'farm.db'}"
            else:
                database = self.databases.enter_context(contextlib.contextmanager(_postgres_database)())
            broker = f"{self.redis_url.rsplit('/', 1)[0]}/{1 + len(self.farms)}"
            farm = Farm(farm_environment(self.root / kind, broker, database))
            farm.start_worker("cpu,arm,fpga")
            self.farms[kind] = farm
        farm = self.farms[kind]
        dead = [w.pid for w in farm.workers if w.poll() is not None]
        assert not dead, f"the shared {kind} worker died: see {farm.settings.home}/worker-0.log"
        return farm

    def close(self) -> None:
        for farm in self.farms.values():
            farm.stop_workers()
        self.databases.close()


@pytest.fixture(scope="session")
def shared_farms(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[SharedFarms]:
    farms = SharedFarms(tmp_path_factory.mktemp("shared"), redis_url)
    yield farms
    farms.close()


@pytest.fixture
def shared_farm(shared_farms: SharedFarms) -> Farm:
    """The shared farm on SQLite (see SharedFarms): for tests where the database is not what is tested."""
    return shared_farms.get("sqlite")


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_farm_on_both(request: pytest.FixtureRequest, shared_farms: SharedFarms) -> Farm:
    """The shared farm on SQLite, then on PostgreSQL: for tests of what the database decides."""
    return shared_farms.get(request.param)


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], T]) -> T:
    """What ``build`` writes into a folder, built once per test run: pytest-xdist's processes
    share the run's base folder, and the first to take the lock builds for all of them."""
    from farm.core.locks import file_lock

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the base folder all of this run's processes share
    folder, done = root / f"built-{name}", root / f"built-{name}.json"
    with file_lock(root / f"built-{name}.lock"):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            done.write_text(json.dumps(_as_json(build(folder))))
    return _from_json(json.loads(done.read_text()))


def _as_json(built: Any) -> Any:
    return {key: str(value) for key, value in built.items()} if isinstance(built, dict) else str(built)


def _from_json(data: Any) -> Any:
    return {key: Path(value) for key, value in data.items()} if isinstance(data, dict) else Path(data)


@pytest.fixture(scope="session")
def sample_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sample classifier in every TensorFlow format farm reads, plus an ONNX export."""
    from farm.samples import write_all_formats

    return built_once(tmp_path_factory, "models", write_all_formats)


@pytest.fixture(scope="session")
def digits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CNN trained on scikit-learn's digits (real images), with labelled calib and eval files."""
    from farm.samples import write_digits_classifier

    return built_once(tmp_path_factory, "digits", write_digits_classifier)


def write_token_model(target: Path) -> Path:
    """An ONNX model whose input is integer token ids (int64, shape (batch, 6)): their mean."""
    import onnx
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("Cast", ["ids"], ["as_float"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["as_float"], ["mean"], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "tokens",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", 6])],
        [helper.make_tensor_value_info("mean", TensorProto.FLOAT, [])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(target))
    return target


@pytest.fixture
def junk_files(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "junk"
    folder.mkdir()
    corrupt = folder / "corrupt.pb"
    corrupt.write_bytes(bytes(range(256)) * 4)
    text = folder / "notes.txt"
    text.write_text("not a model\n")
    text_pb = folder / "text.pb"
    text_pb.write_text("hello, I am not a graph\n")
    folder_model = folder / "empty_dir"
    folder_model.mkdir()
    return {"corrupt_pb": corrupt, "text_file": text, "text_pb": text_pb, "empty_dir": folder_model}


# --- refusals: bad input, and the README table generated from the tests that cause it ---------

README = Path(__file__).resolve().parents[1] / "README.md"
REFUSALS_BEGIN, REFUSALS_END = "<!-- refusals: begin -->", "<!-- refusals: end -->"
_refusals: dict[str, tuple[int, str]] = {}


def assert_refused(
    result: subprocess.CompletedProcess[str], exit_code: int, *fragments: str, shown_as: str = ""
) -> None:
    """A refusal as the farm promises it: exactly one `error:` line on stderr holding each of
    ``fragments``, the exit code, no traceback. Recorded for the README's table of refusals."""
    assert result.returncode == exit_code, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    command = shown_as or _short(" ".join(str(word) for word in ["farm", *result.args[3:]]))
    _refusals[command] = (exit_code, _short(lines[0]))


def _short(text: str) -> str:
    """Temporary paths as the file names a user would type; job ids and free ports as names."""
    text = re.sub(r"/tmp/[^\s'\"]*/", "", text)
    text = re.sub(r"\b[0-9a-f]{12}\b", "JOB", text)
    return re.sub(r"(--port |127\.0\.0\.1:)\d{4,5}\b", r"\1PORT", text)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With FARM_WRITE_REFUSALS=1 (`make refusals-table`), write the refusals the tests caused
    into the README, between its markers."""
    if os.environ.get("FARM_WRITE_REFUSALS") != "1" or not _refusals or exitstatus != 0:
        return
    rows = ["| command | exit | message |", "|---|---|---|"]
    for command, (code, message) in sorted(_refusals.items(), key=lambda item: (item[1][0], item[0])):
        rows.append(f"| `{command}` | {code} | {message.replace('|', '/')} |")
    text = README.read_text()
    head, _, rest = text.partition(REFUSALS_BEGIN)
    _, _, tail = rest.partition(REFUSALS_END)
    README.write_text(f"{head}{REFUSALS_BEGIN}\n" + "\n".join(rows) + f"\n{REFUSALS_END}{tail}")
