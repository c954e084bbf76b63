#!/usr/bin/env python3
"""Compares how fast two reports open in headless Debian Chromium (playwright, no download).

Usage: compare_report_load.py A.html B.html [--runs N]

Opens A and B alternately N times each (default 15) in fresh tabs of one browser, so both see
the same machine load, and prints per report: the file size, and the medians of
DOMContentLoaded, load, first contentful paint (wall milliseconds from navigation start), and
the renderer main thread's busy time until load + 300 ms (CDP Performance.getMetrics
TaskDuration: CPU work, less sensitive than wall time to other processes). Network requests
other than the file itself are refused.
"""

import argparse
import json
import os
import statistics
from pathlib import Path

CHROMIUM = os.environ.get("CLIPFLOW_CHROMIUM", "/usr/bin/chromium")


def measure(browser, path):
    url = Path(path).resolve().as_uri()
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    page.route("**/*", lambda r: r.continue_()
               if r.request.url == url or r.request.url.startswith("data:") else r.abort())
    cdp = page.context.new_cdp_session(page)
    cdp.send("Performance.enable")
    page.goto(url, wait_until="load")
    page.wait_for_timeout(300)
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    t = page.evaluate(
        """() => { const n = performance.getEntriesByType('navigation')[0];
            const f = performance.getEntriesByName('first-contentful-paint')[0];
            return {dcl: n.domContentLoadedEventEnd, load: n.loadEventEnd, fcp: f ? f.startTime : null}; }"""
    )
    page.close()
    t["task"] = metrics.get("TaskDuration", 0.0) * 1000.0
    return t


def main():
    p = argparse.ArgumentParser()
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--runs", type=int, default=15)
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    samples = {args.a: [], args.b: []}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        for f in (args.a, args.b):  # warm-up, not counted
            measure(browser, f)
        for _ in range(args.runs):
            for f in (args.a, args.b):
                samples[f].append(measure(browser, f))
        browser.close()
    out = {}
    for f, runs in samples.items():
        med = lambda k: round(statistics.median(r[k] for r in runs if r[k] is not None), 1)
        out[f] = {
            "bytes": Path(f).stat().st_size,
            "dom_content_loaded_ms": med("dcl"),
            "load_ms": med("load"),
            "first_contentful_paint_ms": med("fcp"),
            "main_thread_busy_ms": med("task"),
            "runs": len(runs),
        }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
