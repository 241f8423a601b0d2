"""Write docs/reliability.md (and the README's reliability block) from measured runs.

    python bench/reliability_report.py [--soak-seconds 600] [--load-json PATH] [--no-readme]

1. runs the fault, hostile-input and mock-under-pressure suites (tests/test_faults.py,
   tests/test_hostile.py, tests/test_serve_safety.py) with
   ``WSREPLAY_FIGURES`` set, so each test writes the figures it measured, and a JUnit file for
   the outcomes;
2. runs bench/load.py (concurrent connections, churn, soak) — or reads a JSON it wrote before
   (``--load-json``);
3. writes docs/reliability.md: every figure with the date and the machine it was measured on,
   each target beside what was measured, and the known gaps (strict xfails) with their reasons;
   and rewrites the block between ``<!-- reliability:start -->`` and ``<!-- reliability:end -->``
   in README.md with the summary.

Nothing in the document is typed by hand: rerun the script to refresh it. Exit code 1 when a
test failed or a target was missed (the document is written anyway and says so).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve()
REPO = HERE.parent.parent
SUITES = ["tests/test_faults.py", "tests/test_hostile.py", "tests/test_secrets.py",
          "tests/test_record_safety.py", "tests/test_serve_safety.py"]
README_START, README_END = "<!-- reliability:start -->", "<!-- reliability:end -->"


# --- running ---------------------------------------------------------------------------------

def run_suites(folder: Path) -> tuple[list[dict], list[dict]]:
    """Outcomes (one dict per test) and figures (one dict per ``figure()`` call)."""
    figures, junit = folder / "figures.jsonl", folder / "junit.xml"
    env = {**os.environ, "WSREPLAY_FIGURES": str(figures)}
    subprocess.run([sys.executable, "-m", "pytest", *SUITES, "-q", "-p", "no:cacheprovider",
                    f"--junitxml={junit}"], cwd=REPO, env=env, check=False)
    outcomes = []
    for case in ET.parse(junit).iter("testcase"):
        outcome, detail = "passed", ""
        for child in case:
            if child.tag in ("failure", "error"):
                outcome, detail = "FAILED", (child.get("message") or "")[:300]
            elif child.tag == "skipped":
                kind = "xfail" if child.get("type") == "pytest.xfail" else "skipped"
                outcome, detail = kind, child.get("message") or ""
        outcomes.append({"file": case.get("classname", "").rsplit(".", 1)[-1],
                         "name": case.get("name"), "seconds": float(case.get("time", 0)),
                         "outcome": outcome, "detail": detail})
    rows = [json.loads(line) for line in figures.read_text().splitlines()] \
        if figures.exists() else []
    return outcomes, rows


def run_load(folder: Path, soak_seconds: float) -> dict:
    out = folder / "load.json"
    subprocess.run([sys.executable, str(REPO / "bench" / "load.py"), "--soak-seconds",
                    str(soak_seconds), "--json", str(out)], cwd=REPO, check=True)
    return json.loads(out.read_text())


# --- targets ---------------------------------------------------------------------------------

def _fig(figures: list[dict], name: str) -> dict:
    return next((f for f in figures if f["figure"] == name), {})


def targets(figures: list[dict], load: dict) -> list[tuple[str, str, str, bool]]:
    """(what, target, measured, met) rows; a figure that was not measured is not met."""
    rows = []
    up = _fig(figures, "upstream killed")
    rows.append(("upstream SIGKILLed mid-stream: the client is told", "1011/1014 within 1 s",
                 f"{up.get('close_code')} after {up.get('seconds')} s" if up else "not measured",
                 bool(up) and up["seconds"] < 1 and up["close_code"] in (1011, 1014)))
    for how in ("reset", "process killed"):
        cv = _fig(figures, f"client vanished ({how})")
        rows.append((f"client vanishes ({how}): upstream leg closed", "within 1 s",
                     f"{cv.get('upstream_closed_after')} s" if cv else "not measured",
                     bool(cv) and cv["upstream_closed_after"] < 1))
    st = _fig(figures, "client stopped reading")
    rows.append(("client stops reading: proxy memory bounded (50 MiB offered)",
                 "RSS growth < 24 MiB",
                 f"+{st.get('proxy_rss_growth_mib')} MiB; upstream held at "
                 f"{st.get('upstream_sent_mib')} MiB sent" if st else "not measured",
                 bool(st) and st["proxy_rss_growth_mib"] < 24))
    kill = _fig(figures, "recorder SIGKILLed")
    rows.append(("recorder SIGKILLed during traffic: every file parses, holds what clients got",
                 "20 of 20 runs", f"{kill.get('runs')} of 20 runs, {kill.get('client_messages')}"
                 f" client messages all found, {kill.get('seconds')} s" if kill else "not measured",
                 kill.get("runs") == 20))
    for full in ("tmpfs", "file size limit"):
        df = _fig(figures, f"disk full ({full})")
        rows.append((f"disk full ({full}): forwarding goes on", "200 of 200 forwarded",
                     f"{df.get('forwarded')} forwarded, the first {df.get('recorded')} recorded"
                     if df else "not measured", df.get("forwarded") == 200))
    return rows + safety_targets(figures) + serve_targets(figures) + load_targets(load)


def safety_targets(figures: list[dict]) -> list[tuple[str, str, str, bool]]:
    """Issue 12's rows: secrets, hostile clients, descriptors."""
    rows = []
    sec = _fig(figures, "secrets in every shape")
    rows.append(("secrets of every kind (headers, query, path, subprotocol pair, JSON fields, "
                 "text frames, issued tokens): in any output", "0; replay and serve pass with "
                 "the environment",
                 f"{sec.get('leaked')} in {sec.get('outputs')} outputs ({sec.get('kinds')} kinds); "
                 f"replay {'passed' if sec.get('replay_passed') else 'FAILED'}, serve "
                 f"{'passed' if sec.get('serve_passed') else 'FAILED'}" if sec else "not measured",
                 bool(sec) and sec["leaked"] == 0 and sec["replay_passed"]
                 and sec["serve_passed"]))
    sl = _fig(figures, "record: slowloris")
    rows.append(("slowloris: 1,100 handshakes at one byte a second, soft and hard limit 1,024: "
                 "a normal client served", "within 2 s",
                 f"{max(sl['normal_client_seconds'])} s at worst ({sl['closed_503']} slow ones "
                 f"closed with 503 to make room, {sl['closed_408']} with 408 at the deadline)"
                 if sl else "not measured", bool(sl) and max(sl["normal_client_seconds"]) < 2))
    k = _fig(figures, "record: 1,000 connections at 1,024 descriptors")
    rows.append(("1,000 real connections through record, soft limit 1,024 (raised to the hard "
                 "limit)", "1,000 echo", f"{k.get('echoed')} echo (limit raised to "
                 f"{k.get('raised_to'):,}, {k.get('record_fds'):,} descriptors)" if k
                 else "not measured", k.get("echoed") == 1000))
    hard = _fig(figures, "record: connections at a hard limit of 1,024 descriptors")
    rows.append(("... with the hard limit at 1,024 too: served, then 503", "about 480, then 503",
                 f"{hard.get('served')} served, the next refused with 503" if hard
                 else "not measured", hard.get("served", 0) >= 450))
    return rows


def serve_targets(figures: list[dict]) -> list[tuple[str, str, str, bool]]:
    """The mock server's rows (tests/test_serve_safety.py)."""
    rows = []
    st = _fig(figures, "serve: client stopped reading")
    rows.append((f"serve: a client that never reads, {st.get('offered_mib', 300)} MiB sent to "
                 "it: mock memory bounded, client closed 1008", "RSS growth < 16 MiB",
                 f"+{st.get('serve_rss_growth_mib')} MiB; closed after "
                 f"{st.get('closed_after_s')} s (stall limit {st.get('stall_timeout_s')} s)"
                 if st else "not measured", bool(st) and st["serve_rss_growth_mib"] < 16))
    sl = _fig(figures, "serve: slow handshakes")
    rows.append(("serve: 1,000 slow handshakes under a 1,024 descriptor limit: a normal client "
                 "served", "within 2 s", f"{sl.get('normal_client_served_s')} s; slow ones closed "
                 f"after {sl.get('closed_after_s')} s (timeout {sl.get('handshake_timeout_s')} s)"
                 if sl else "not measured", bool(sl) and sl["normal_client_served_s"] < 2))
    fd = _fig(figures, "serve: out of descriptors")
    rows.append(("serve: out of descriptors: a fresh client refused, no busy loop",
                 "503; CPU < 10% meanwhile", f"503 after {fd.get('fresh_client_refused_s')} s; "
                 f"{fd.get('cpu_while_full_s')} s CPU in 2.5 s; served again after "
                 f"{fd.get('served_again_s')} s" if fd else "not measured",
                 bool(fd) and fd["cpu_while_full_s"] < 0.25))
    return rows


def load_targets(load: dict) -> list[tuple[str, str, str, bool]]:
    rows = []
    cc = load.get("concurrent", {})
    ws, relay = cc.get("wsreplay"), cc.get("relay")
    if ws:
        rec = ws["recording"]
        rows.append((f"{ws['conns']:,} connections x {ws['messages']} messages: lost, "
                     "duplicated, reordered", "0 / 0 / 0",
                     f"{ws['lost']} / {ws['duplicated']} / {ws['reordered_connections']}",
                     ws["lost"] == ws["duplicated"] == ws["reordered_connections"] == 0))
        want = 2 * ws["conns"] * ws["messages"]
        rows.append(("... the recording holds every message event, in order",
                     f"{want:,} events", f"{rec['message_events']:,} events, "
                     f"{rec['connections_not_matching']} connections out of order",
                     rec["message_events"] == want and rec["connections_not_matching"] == 0))
        ratio = ws["peak_kib_per_conn"] / relay["peak_kib_per_conn"] if relay else None
        rows.append(("... peak memory per connection, against a plain relay", "< 2x",
                     f"{ws['peak_kib_per_conn']:.0f} KiB vs {relay['peak_kib_per_conn']:.0f} KiB"
                     f" ({ratio:.2f}x)" if relay else "no relay run",
                     bool(relay) and ratio < 2))
    ch = load.get("churn", {}).get("wsreplay")
    if ch:
        second = (ch["rss_after_2_kib"] - ch["rss_after_1_kib"]) / 1024
        rows.append((f"churn of {ch['connections'] // 2:,} connections, twice: descriptors",
                     "back to before", f"{ch['fds_before']} before, {ch['fds_after_1']} / "
                     f"{ch['fds_after_2']} after", ch["fds_after_1"] == ch["fds_after_2"]
                     == ch["fds_before"]))
        rows.append(("... memory added by the second round", "< 1 MiB", f"{second:+.2f} MiB",
                     second < 1))
    so = load.get("soak", {}).get("wsreplay")
    if so and "rss_slope_kib_per_min" in so:
        rows.append((f"soak {so['seconds']:.0f} s: memory flat", "slope < 100 KiB/min",
                     f"{so['rss_slope_kib_per_min']:+.1f} KiB/min "
                     f"({so['rss_first_kib'] / 1024:.1f} -> {so['rss_last_kib'] / 1024:.1f} MiB)",
                     so["rss_slope_kib_per_min"] < 100))
        rows.append(("... event-loop lag not growing (median p99, first vs last tenth)",
                     "last <= 1.5x first + 1 ms", f"{so['lag_p99_first_ms']:.2f} ms -> "
                     f"{so['lag_p99_last_ms']:.2f} ms",
                     so["lag_p99_last_ms"] <= 1.5 * so["lag_p99_first_ms"] + 1))
    return rows


# --- the document ----------------------------------------------------------------------------

def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _name(test: str) -> str:
    return test.removeprefix("test_").replace("_", " ")


def _figures_for(test: str, figures: list[dict]) -> str:
    """The figures test ``test`` wrote (each figure names its test)."""
    skip = ("figure", "test")
    return "; ".join(", ".join(f"{k.replace('_', ' ')} {v}" for k, v in f.items()
                               if k not in skip)
                     for f in figures if f.get("test") == test)


def suite_section(title: str, file: str, outcomes: list[dict], figures: list[dict]) -> str:
    rows = [[_name(o["name"]), o["outcome"], f"{o['seconds']:.1f}",
             _figures_for(o["name"], figures)]
            for o in outcomes if o["file"] == file]
    return f"## {title} (`tests/{file}.py`)\n\n" + _table(
        ["test", "outcome", "s", "measured"], rows) + "\n"


def _mib(kib) -> str:
    return f"{kib / 1024:.1f}"


def load_section(load: dict) -> str:
    out = ["## Load, churn and soak (`bench/load.py`)\n"]
    cc = load.get("concurrent")
    if cc:
        keys = [("connect all (s)", "connect_s", "{:.2f}"), ("traffic (s)", "traffic_s", "{:.2f}"),
                ("messages/s (both ways)", "msgs_per_s", "{:,.0f}"),
                ("RSS before (MiB)", "rss_base_kib", _mib), ("RSS all open, idle (MiB)",
                                                             "rss_idle_kib", _mib),
                ("RSS peak (MiB)", "rss_peak_kib", _mib), ("KiB per connection, idle",
                                                           "idle_kib_per_conn", "{:.0f}"),
                ("KiB per connection, peak", "peak_kib_per_conn", "{:.0f}"),
                ("event-loop lag, max (ms)", "lag_max_ms", "{:.0f}"),
                ("lost / duplicated", None, None), ("connections reordered",
                                                    "reordered_connections", "{}")]
        ws = cc["wsreplay"]
        out.append(f"### {ws['conns']:,} concurrent connections x {ws['messages']} messages "
                   f"of {ws['size']} bytes\n\nAll connections open first, then every one "
                   "pipelines its messages at once and reads the echoes. `relay` is a plain "
                   "aiohttp relay without recording, run the same way.\n")
        out.append(_table(["", "relay", "wsreplay record", "ratio"],
                          [_load_row(label, key, fmt, cc) for label, key, fmt in keys]))
        rec = ws["recording"]
        out.append(f"\nThe recording: {rec['file_mib']:.1f} MiB, {rec['message_events']:,} "
                   f"message events on {rec['connections']:,} connections, "
                   f"{rec['connections_not_matching']} connections whose recorded messages "
                   f"differ from what was sent and received; parsed in {rec['parse_s']:.1f} s.\n")
    out.append(churn_section(load.get("churn")))
    out.append(soak_section(load.get("soak")))
    return "\n".join(o for o in out if o)


def _load_row(label, key, fmt, cc) -> list:
    if key is None:
        return [label] + [f"{cc[m]['lost']} / {cc[m]['duplicated']}" for m in ("relay",
                                                                              "wsreplay")] + [""]
    vals = [cc[m].get(key) for m in ("relay", "wsreplay")]
    show = [(fmt(v) if callable(fmt) else fmt.format(v)) if v is not None else "-" for v in vals]
    ratio = f"{vals[1] / vals[0]:.2f}" if all(isinstance(v, (int, float)) for v in vals) \
        and vals[0] else ""
    return [label, *show, ratio]


def churn_section(churn: dict | None) -> str:
    if not churn:
        return ""
    rows = []
    for label, key, fmt in [("connections/s", "conns_per_s", "{:,.0f}"),
                            ("descriptors: before / after round 1 / after round 2", None, None),
                            ("RSS before (MiB)", "rss_before_kib", _mib),
                            ("RSS after round 1 (MiB)", "rss_after_1_kib", _mib),
                            ("RSS after round 2 (MiB)", "rss_after_2_kib", _mib),
                            ("RSS peak (MiB)", "rss_peak_kib", _mib)]:
        if key is None:
            rows.append([label] + [f"{churn[m]['fds_before']} / {churn[m]['fds_after_1']} / "
                                   f"{churn[m]['fds_after_2']}" for m in ("relay", "wsreplay")])
        else:
            rows.append([label] + [fmt(churn[m][key]) if callable(fmt) else
                                   fmt.format(churn[m][key]) for m in ("relay", "wsreplay")])
    n = churn["wsreplay"]["connections"] // 2
    return (f"\n### Churn: {n:,} connections opened, used once and closed, twice\n\n"
            "50 at a time, after a warm-up of 500. Memory a process has used is often kept by "
            "the allocator; what matters is that the second round adds (almost) nothing.\n\n"
            + _table(["", "relay", "wsreplay record"], rows))


def soak_section(soak: dict | None) -> str:
    so = (soak or {}).get("wsreplay")
    if not so or "rss_slope_kib_per_min" not in so:
        return ""
    return (f"\n### Soak: {so['seconds']:.0f} s of steady load\n\n{so['conns']} connections, "
            f"10 messages/s each, echoed ({so['messages']:,} round trips; recording "
            f"{so['file_mib']:.1f} MiB; load average {so['load_average_before']:.1f} before, "
            f"{so['load_average_after']:.1f} after). The proxy's own probe (a 10 ms sleep, how "
            f"late it wakes) and its RSS, once a second ({so['samples']} samples): medians of "
            "the first tenth of the run against the last:\n\n"
            + _table(["", "first tenth", "last tenth"], [
                ["RSS (MiB)", _mib(so["rss_first_kib"]), _mib(so["rss_last_kib"])],
                ["event-loop lag p99 (ms)", f"{so['lag_p99_first_ms']:.2f}",
                 f"{so['lag_p99_last_ms']:.2f}"]])
            + f"\nSlopes over the whole run: RSS {so['rss_slope_kib_per_min']:+.1f} KiB/min, lag "
            f"p99 {so['lag_p99_slope_ms_per_min']:+.3f} ms/min; worst lag seen: "
            f"{so['lag_max_ms']:.1f} ms.\n")


def gaps_section(outcomes: list[dict]) -> str:
    rows = [[_name(o["name"]), o["outcome"], o["detail"]] for o in outcomes
            if o["outcome"] in ("xfail", "skipped", "FAILED")]
    if not rows:
        return "## Known gaps\n\nNone: every test passed.\n"
    return ("## Known gaps\n\nTests that do not pass today, with the reason they give "
            "(a strict xfail turns into a failure once its bug is fixed):\n\n"
            + _table(["test", "outcome", "reason"], rows))


def header(load: dict, soak_seconds: float) -> str:
    mach = load.get("machine", {})
    where = (f"{mach.get('cpus')} cores ({mach.get('cpu')}), {mach.get('system')}, Python "
             f"{mach.get('python')}, aiohttp {mach.get('aiohttp')}, uvloop "
             f"{'on' if mach.get('uvloop') else 'off'}; load average {mach.get('load_average'):.1f}"
             f" at the start of the load run") if mach else "machine unknown"
    return ("# Reliability\n\n<!-- Generated by bench/reliability_report.py: do not edit by hand. "
            "-->\n\nWhat the recording proxy (and the mock, `wsreplay serve`) does under "
            "faults, hostile input and load, as measured on "
            f"{mach.get('date', '?')} on {where}. Regenerate with "
            f"`python bench/reliability_report.py` (this run: `--soak-seconds "
            f"{soak_seconds:g}`). The protocol compliance table is "
            "[docs/compliance.md](compliance.md); the parser's fuzz tests are "
            "`tests/test_parse_fuzz.py`.\n")


def render(outcomes, figures, load, soak_seconds) -> tuple[str, str, bool]:
    rows = targets(figures, load)
    summary = _table(["what", "target", "measured", "met"],
                     [[w, t, m, "yes" if ok else "**NO**"] for w, t, m, ok in rows])
    doc = "\n".join([
        header(load, soak_seconds), "## Targets\n", summary,
        suite_section("Faults", "test_faults", outcomes, figures),
        suite_section("Hostile input", "test_hostile", outcomes, figures),
        suite_section("Secrets", "test_secrets", outcomes, figures),
        suite_section("Safe by default", "test_record_safety", outcomes, figures),
        suite_section("The mock under pressure", "test_serve_safety", outcomes, figures),
        load_section(load), gaps_section(outcomes)])
    ok = all(r[3] for r in rows) and not any(o["outcome"] == "FAILED" for o in outcomes)
    return doc, summary, ok


def update_readme(summary: str, date: str) -> bool:
    readme = REPO / "README.md"
    text = readme.read_text(encoding="utf-8")
    if README_START not in text or README_END not in text:
        return False
    before, rest = text.split(README_START, 1)
    after = rest.split(README_END, 1)[1]
    block = (f"{README_START}\nMeasured {date} (2-core machine; details, machine and every "
             f"figure in [docs/reliability.md](docs/reliability.md)):\n\n{summary}{README_END}")
    readme.write_text(before + block + after, encoding="utf-8")
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--soak-seconds", type=float, default=600.0)
    parser.add_argument("--load-json", help="use this bench/load.py --json output, not a new run")
    parser.add_argument("--keep-load", metavar="PATH",
                        help="also save the load run's figures here (for --load-json later)")
    parser.add_argument("--out", default=str(REPO / "docs" / "reliability.md"))
    parser.add_argument("--no-readme", action="store_true", help="leave README.md alone")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wsreplay-reliability-") as tmp:
        outcomes, figures = run_suites(Path(tmp))
        if args.load_json:
            load = json.loads(Path(args.load_json).read_text())
            args.soak_seconds = load.get("soak", {}).get("wsreplay", {}).get("seconds", 0)
        else:
            load = run_load(Path(tmp), args.soak_seconds)
            if args.keep_load:
                Path(args.keep_load).write_text(json.dumps(load, indent=1) + "\n")
    doc, summary, ok = render(outcomes, figures, load, args.soak_seconds)
    Path(args.out).write_text(doc, encoding="utf-8")
    print(f"wrote {args.out}" + ("" if ok else " (a test failed or a target was missed)"))
    if not args.no_readme and update_readme(summary, load.get("machine", {}).get("date", "?")):
        print("updated the reliability block in README.md")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
