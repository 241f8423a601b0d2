"""``wsreplay record``: put a recording proxy between an app and its WebSocket server.

Runs :class:`wsreplay.proxy.RecordingProxy` until Ctrl-C or SIGTERM, then closes every
connection with 1001, completes the scenario file, generalizes it (unless ``--no-infer``: see
:mod:`wsreplay.infer`) and prints a summary. Exit code 0 after a
clean stop, 2 on a usage error (bad option, output file exists, address in use) or when the
recording could not be written completely (disk full, folder unwritable: the error is printed
when it happens and forwarding goes on regardless). Errors go to stderr, ``-q`` or not; ``-q``
silences the rest.

At its start it raises its open-file limit as far as the system lets it
(:mod:`wsreplay.fdlimit`: each connection takes two descriptors) and says so when that leaves
room for fewer connections than promised.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import datetime as _dt
import os
import platform
import re
import signal
import sys
from pathlib import Path

from .. import fdlimit
from ..errors import ScenarioError, UsageError
from ..guard import HostPolicy
from ..proxy import ProxyConfig, RecordingProxy, parse_target
from ..recorder import Recorder, Redaction
from . import size_option
from .generalize import generalize_file, summarize
from .replay import duration_option

EXIT_OK, EXIT_USAGE = 0, 2


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "record", help="record WebSocket traffic through a transparent proxy",
        description="Forward every WebSocket connection (and plain HTTP request) made to the "
                    "listen address to the target, recording the WebSocket traffic as a "
                    "scenario. Stop with Ctrl-C.")
    p.add_argument("--target", required=True, metavar="ws[s]://HOST:PORT[/PREFIX]",
                   help="the real server; request paths and queries are appended")
    p.add_argument("--listen", default="127.0.0.1:8765", metavar="HOST:PORT",
                   help="address to listen on (default 127.0.0.1:8765; port 0 picks one)")
    p.add_argument("--out", default="scenarios/", metavar="PATH",
                   help="a .wsr file, or a folder (ending in /) for a file named from the date "
                        "and time (default scenarios/)")
    p.add_argument("--split", action="store_true", help="one file per connection")
    noise = p.add_mutually_exclusive_group()
    noise.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    noise.add_argument("-v", "--verbose", action="store_true",
                       help="print every recorded line as it is written")
    p.add_argument("--max-size", type=size_option, default=4 * 1024 ** 2, metavar="SIZE",
                   help="largest message accepted on either leg (default 4MiB; a larger one "
                        "gets close 1009)")
    p.add_argument("--ca-file", metavar="PEM", help="also trust these CA certificates (wss)")
    p.add_argument("--insecure", action="store_true",
                   help="do not verify the target's TLS certificate")
    p.add_argument("--trust-env", action="store_true",
                   help="use HTTP(S)_PROXY / NO_PROXY from the environment upstream")
    p.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                   help="refuse upgrades from other Origins (repeatable)")
    p.add_argument("--allow-host", action="append", default=[], metavar="HOST[:PORT]",
                   help="also answer requests for this Host (any port unless one is given; "
                        "'*' for any Host); by default only the listen address's own names "
                        "are answered (127.0.0.1:PORT, localhost:PORT...), others get 403, so "
                        "that a web page cannot reach the target through its own DNS name "
                        "(DNS rebinding). Repeatable")
    p.add_argument("--handshake-timeout", type=duration_option, default=5.0,
                   metavar="DURATION",
                   help="close a client that has not sent its whole request head this long "
                        "after connecting (408), and a kept-alive connection idle this long "
                        "(default 5s)")
    p.add_argument("--redact-header", action="append", default=[], metavar="NAME",
                   help="also redact this header (Authorization, Cookie, Set-Cookie, X-Api-Key, "
                        "X-Auth-Token... always are: docs/record.md)")
    p.add_argument("--redact-query", action="append", default=[], metavar="KEY",
                   help="also redact this query parameter (token, access_token, auth, jwt, sig, "
                        "key, password... always are: docs/record.md)")
    p.add_argument("--redact-field", action="append", default=[], metavar="KEY",
                   help="also redact the string value of this JSON object key, at any depth "
                        "(password, token, accessToken, apiKey... always are: docs/record.md)")
    p.add_argument("--keep-field", action="append", default=[], metavar="KEY",
                   help="do not redact this JSON object key (and KEY=VALUE in text) although "
                        "it is on the default list")
    p.add_argument("--redact-protocol", action="append", default=[], metavar="PREFIX",
                   help="redact what follows this prefix in an offered subprotocol (those "
                        "holding bearer, token, authorization... always are)")
    p.add_argument("--no-redact", action="store_true",
                   help="write secrets as seen (by default every secret, by name or by shape "
                        "-- JWTs, bearer tokens, API keys -- becomes a variable)")
    p.add_argument("--no-infer", action="store_true",
                   help="keep the raw recording: do not generalize it when stopping (values "
                        "that change between runs into captures and markers, heartbeats into "
                        "rules; see `wsreplay generalize`)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        config = _config(args)
        recorder = _recorder(args)
    except UsageError as exc:
        print(f"wsreplay record: {exc}", file=sys.stderr)
        return EXIT_USAGE
    keep_freed_memory()
    runner_kwargs = {}
    try:
        import uvloop  # a dependency except on Windows, where asyncio's loop is used
        runner_kwargs["loop_factory"] = uvloop.new_event_loop
    except ImportError:
        pass
    with asyncio.Runner(**runner_kwargs) as runner:
        return runner.run(_serve(args, config, recorder))


# glibc's malloc, left to itself, gives freed memory back to the system as soon as a little
# lies free at the top of the heap, and serves big blocks by mmap. Recording a big message
# allocates and frees a few big blocks (the payload, its unmasked copy, its base64 line, the
# batch written), so every message paid for fresh pages: page faults and zeroing, about 100 µs
# of a 64 KiB round trip's 250 (bench/proxy.py, untuned and tuned runs back to back). Kept: up
# to 32 MiB freed, blocks up to 4 MiB from the heap.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_KEEP_FREED, _HEAP_BLOCKS_UP_TO = 32 * 1024 * 1024, 4 * 1024 * 1024


def keep_freed_memory() -> bool:
    """Tune glibc's malloc as above; True if it was. Nothing happens under another C library,
    or when the environment holds ``GLIBC_TUNABLES`` or any ``MALLOC_*`` variable: the user's
    own settings rule."""
    if platform.libc_ver()[0] != "glibc" or any(
            name.startswith(("MALLOC_", "GLIBC_TUNABLES")) for name in os.environ):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_TRIM_THRESHOLD, _KEEP_FREED)
                and mallopt(_M_MMAP_THRESHOLD, _HEAP_BLOCKS_UP_TO))


def _config(args) -> ProxyConfig:
    try:
        parse_target(args.target)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    host, port = _listen(args.listen)
    if args.ca_file and not Path(args.ca_file).is_file():
        raise UsageError(f"--ca-file {args.ca_file}: no such file")
    try:
        HostPolicy.build(host, port, tuple(args.allow_host))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.handshake_timeout <= 0:
        raise UsageError("--handshake-timeout must be more than 0")
    return ProxyConfig(target=args.target, host=host, port=port, max_size=args.max_size,
                       ca_file=args.ca_file, insecure=args.insecure, trust_env=args.trust_env,
                       allow_origins=tuple(args.allow_origin),
                       allow_hosts=tuple(args.allow_host),
                       handshake_timeout=args.handshake_timeout)


def _echo(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _warn(line: str) -> None:
    """An error or warning: on stderr, ``-q`` or not."""
    print(f"wsreplay record: {line}", file=sys.stderr, flush=True)


def _recorder(args) -> Recorder:
    redaction = Redaction.build(args.redact_header, args.redact_query, args.redact_field,
                                enabled=not args.no_redact, protocols=args.redact_protocol,
                                keep=args.keep_field)
    recorder = Recorder(output_path(args.out, args.split), split=args.split,
                        redaction=redaction, source=args.target,
                        echo=_echo if args.verbose else None,
                        on_error=lambda why: print(f"wsreplay record: error: {why}",
                                                   file=sys.stderr, flush=True))
    try:
        recorder.start()
    except OSError as exc:
        raise UsageError(f"cannot write {recorder.path}: {exc.strerror}") from None
    return recorder


def output_path(out: str, split: bool, now: _dt.datetime | None = None) -> Path:
    """The file to write (with ``split``, the stem of the per-connection files).

    ``out`` ending in a separator, or naming an existing folder, gets a fresh name from the
    date and time inside it. A named file must not exist yet. Missing folders are created
    (0700). Raises UsageError.
    """
    path = Path(out)
    folder = path if out.endswith(("/", os.sep)) or path.is_dir() else path.parent
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create folder {folder}: {exc.strerror}") from None
    if folder == path:
        stamp = (now or _dt.datetime.now()).strftime("%Y%m%d-%H%M%S")
        for n in range(1, 1000):
            candidate = path / (f"record-{stamp}" + (f"-{n}" if n > 1 else "") + ".wsr")
            if not candidate.exists() and not _split_files(candidate):
                return candidate
        raise UsageError(f"too many recordings named record-{stamp}* in {out}")
    if (path.exists() and not split) or _split_files(path):
        raise UsageError(f"--out {out}: already exists; choose another name")
    return path


def _split_files(path: Path) -> list[Path]:
    return list(path.parent.glob(f"{path.stem}-c[0-9]*{path.suffix or '.wsr'}"))


def _infer(files, say) -> None:
    """Generalize each finished file in place (what was forwarded is in it as recorded until
    the generalized form replaces it whole) and say what was inferred and why."""
    for path in files:
        try:
            notes = generalize_file(path)
        except KeyboardInterrupt:
            say(f"wsreplay record: {path}: interrupted; the raw recording is kept")
            return
        except (ScenarioError, OSError) as exc:
            why = exc.render() if isinstance(exc, ScenarioError) else (exc.strerror or str(exc))
            print(f"wsreplay record: {path}: not generalized, the raw recording is kept: {why}",
                  file=sys.stderr)
            continue
        if not notes:
            say(f"wsreplay record: {path}: nothing to generalize")
            continue
        say(f"wsreplay record: generalized {len(notes)} value{'s' * (len(notes) != 1)} in "
            f"{path} so it replays against a fresh server and serves an unchanged client "
            f"(--no-infer keeps it raw):")
        for line in summarize(notes):
            say(f"  {line}")


def _listen(text: str) -> tuple[str, int]:
    match = re.fullmatch(r"(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:]*)):(?P<port>\d+)|(?P<only>\d+)",
                         text)
    if not match:
        raise UsageError(f"--listen {text}: expected HOST:PORT")
    host = match["v6"] or match["host"] or "127.0.0.1"
    port = int(match["port"] or match["only"])
    if port > 65535:
        raise UsageError(f"--listen {text}: no such port")
    return host, port


async def _serve(args, config: ProxyConfig, recorder: Recorder) -> int:
    say = (lambda line: None) if args.quiet else (lambda line: print(line, flush=True))
    fdlimit.prepare("wsreplay record", per_connection=2)
    proxy = RecordingProxy(config, recorder, log=say, warn=_warn)
    try:
        await proxy.start()
    except OSError as exc:
        recorder.close(footer=False)
        print(f"wsreplay record: cannot listen on {args.listen}: {exc.strerror or exc}",
              file=sys.stderr)
        return EXIT_USAGE
    where = f"{recorder.path.parent}/ (one file per connection)" if args.split else recorder.path
    say(f"wsreplay record: listening on {proxy.port} ({config.host}), forwarding to "
        f"{config.target}, recording to {where}; Ctrl-C stops")
    if config.host not in ("127.0.0.1", "localhost", "::1"):
        say("wsreplay record: warning: listening beyond this machine; anyone who can reach it "
            f"can use the proxy. It answers requests for {proxy.hosts.describe()}; add the "
            "names clients use with --allow-host")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        summary = await proxy.stop()
    if not args.no_infer:
        _infer(summary.files, say)
    files = ", ".join(str(f) for f in summary.files) or "(no file: nothing recorded)"
    say(f"wsreplay record: stopped. {summary.connections} connections, {summary.messages} "
        f"messages, {summary.bytes} bytes -> {files}")
    if summary.incomplete:
        print(f"wsreplay record: the recording is INCOMPLETE: {summary.incomplete}",
              file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK
