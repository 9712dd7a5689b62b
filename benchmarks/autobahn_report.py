"""Print gws's Autobahn TestSuite conformance, one row per case group.

python benchmarks/autobahn_report.py            # gws as the client: run all 517 cases, print
python benchmarks/autobahn_report.py --server   # gws.serve as the server (kosoku fuzzingclient)
python benchmarks/autobahn_report.py --from DIR # print an earlier run's DIR/index.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Dict

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

VERDICTS = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"]


def table(results: Dict[str, Any]) -> str:
    """A reStructuredText-compatible grid of verdict counts per group."""
    groups: Dict[int, Counter] = {}
    for case_id, result in results.items():
        group = int(case_id.split(".")[0])
        verdict = result.get("behavior", "FAILED")
        if verdict == "OK" and result.get("behaviorClose") not in ("OK", "INFORMATIONAL"):
            verdict = "FAILED"
        groups.setdefault(group, Counter())[verdict if verdict in VERDICTS else "FAILED"] += 1
    header = ["group", "cases", *VERDICTS]
    rows = [header]
    total: Counter = Counter()
    for group in sorted(groups):
        counts = groups[group]
        total.update(counts)
        rows.append([str(group), str(sum(counts.values())), *(str(counts[v]) for v in VERDICTS)])
    rows.append(["all", str(sum(total.values())), *(str(total[v]) for v in VERDICTS)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    lines = [rule]
    for i, row in enumerate(rows):
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")
        lines.append(rule.replace("-", "=") if i == 0 else rule)
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--from", dest="source", help="directory holding an earlier run's index.json"
    )
    parser.add_argument(
        "--out", default="reports/autobahn", help="where a new run writes its reports"
    )
    parser.add_argument(
        "--server",
        action="store_true",
        help="test gws.serve (echo, permessage-deflate) with kosoku's fuzzing client",
    )
    args = parser.parse_args()
    if args.source:
        data = json.loads((Path(args.source) / "index.json").read_text())
        results = data.get("gws", data)
        if len(results) == 1 and not any("." in k for k in results):
            results = next(iter(results.values()))  # one agent, whatever its name
        wall = None
    elif args.server:
        from autobahn_driver import run_client_suite

        import gws

        server = gws.serve(gws.echo, "127.0.0.1", 0, headers=[("Server", "gws.serve")])
        started = time.monotonic()
        try:
            url = f"ws://127.0.0.1:{server.server_port}/"
            results = run_client_suite(url, "gws.serve", Path(args.out))
        finally:
            server.stop()
        wall = time.monotonic() - started
    else:
        from autobahn_driver import run_suite

        started = time.monotonic()
        results, _ = run_suite(Path(args.out))
        wall = time.monotonic() - started
    import importlib.metadata as md

    side = "server (gws.serve)" if args.server else "client"
    print(
        f"gws Autobahn conformance as the {side}, kosoku {md.version('kosoku')},"
        f" {time.strftime('%Y-%m-%d')}"
    )
    if wall is not None:
        print(f"{len(results)} cases in {wall:.0f} s")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
