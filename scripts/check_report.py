#!/usr/bin/env python3
"""Opens a clipflow report in headless Chromium and checks it renders cleanly.

Usage: check_report.py REPORT.html SCREENSHOT.png

Checks: no console errors or warnings, no uncaught page errors, no request other than the
report file itself (images must be data: URIs; nothing may touch the network), every <img>
decoded (naturalWidth > 0), and the click-to-sort script runs. Takes a full-page screenshot,
prints a JSON summary on stdout, and exits 1 if anything is wrong, 3 if Chromium or
playwright is missing (run scripts/setup), 2 on bad usage.

Chromium is the Debian package (/usr/bin/chromium, or $CLIPFLOW_CHROMIUM); playwright never
downloads a browser here.
"""

import json
import os
import sys
from pathlib import Path

CHROMIUM = os.environ.get("CLIPFLOW_CHROMIUM", "/usr/bin/chromium")


def missing(what):
    print(f"check_report: {what}; run scripts/setup", file=sys.stderr)
    sys.exit(3)


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        sys.exit(2)
    report = Path(sys.argv[1]).resolve()
    screenshot = Path(sys.argv[2])
    if not report.is_file():
        print(f"check_report: {report}: no such file", file=sys.stderr)
        sys.exit(2)
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing(f"the Python package playwright is not installed for {sys.executable}")
    if not os.access(CHROMIUM, os.X_OK):
        missing(f"Chromium not found at {CHROMIUM}")

    report_url = report.as_uri()
    console, page_errors, failed, foreign = [], [], [], []

    def on_request(request):
        url = request.url
        if url != report_url and not url.startswith("data:"):
            foreign.append(url)

    def on_request_failed(request):
        failed.append({"url": request.url[:200], "error": request.failure})

    def on_page_error(error):
        page_errors.append(str(error))

    def on_console(message):
        if message.type in ("error", "warning"):
            console.append({"type": message.type, "text": message.text})

    with sync_playwright() as p:
        try:
            browser = p.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
            )
        except PlaywrightError as e:
            missing(f"Chromium at {CHROMIUM} does not start ({e})")
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        page.on("console", on_console)
        page.on("pageerror", on_page_error)
        page.on("requestfailed", on_request_failed)
        page.on("request", on_request)
        # Whatever slips through is refused, so a bad report never reaches the network.
        page.route(
            "**/*",
            lambda route: route.continue_()
            if route.request.url == report_url or route.request.url.startswith("data:")
            else route.abort(),
        )
        page.goto(report_url, wait_until="load")
        page.wait_for_function(
            "Array.from(document.images).every(img => img.complete)", timeout=30_000
        )
        images = page.evaluate(
            """() => Array.from(document.images).map((img, index) => ({
                index, alt: img.alt, naturalWidth: img.naturalWidth,
                naturalHeight: img.naturalHeight, data_uri: img.src.startsWith("data:")}))"""
        )
        # The sort script must run without error: sort the first numeric column both ways.
        sorted_ok = page.evaluate(
            """() => {
                const th = document.querySelector("table.data th.num");
                if (!th) return null;
                th.click();
                const first = th.getAttribute("aria-sort");
                th.click();
                return first === "ascending" && th.getAttribute("aria-sort") === "descending";
            }"""
        )
        # Restore the original order for the screenshot; the reload would only report the
        # same messages again.
        page.remove_listener("console", on_console)
        page.remove_listener("pageerror", on_page_error)
        page.remove_listener("request", on_request)
        page.remove_listener("requestfailed", on_request_failed)
        page.reload(wait_until="load")
        page.wait_for_function(
            "Array.from(document.images).every(img => img.complete)", timeout=30_000
        )
        height = page.evaluate("document.documentElement.scrollHeight")
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshot), full_page=True)
        browser.close()

    broken = [i for i in images if i["naturalWidth"] <= 0]
    not_inline = [i for i in images if not i["data_uri"]]
    problems = []
    if console:
        problems.append(f"{len(console)} console error(s)/warning(s)")
    if page_errors:
        problems.append(f"{len(page_errors)} page error(s)")
    if failed:
        problems.append(f"{len(failed)} failed request(s)")
    if foreign:
        problems.append(f"{len(foreign)} request(s) other than the report and data: URIs")
    if broken:
        problems.append(f"{len(broken)} image(s) did not decode")
    if not_inline:
        problems.append(f"{len(not_inline)} image(s) not embedded as data: URIs")
    if sorted_ok is False:
        problems.append("clicking a column header did not sort the table")
    summary = {
        "report": str(report),
        "screenshot": str(screenshot),
        "ok": not problems,
        "problems": problems,
        "page_height": height,
        "images": {"count": len(images), "broken": broken, "not_inline": not_inline},
        "console": console,
        "page_errors": page_errors,
        "failed_requests": failed,
        "foreign_requests": foreign[:50],
        "sort_works": sorted_ok,
    }
    print(json.dumps(summary, indent=2))
    sys.exit(0 if not problems else 1)


if __name__ == "__main__":
    main()
