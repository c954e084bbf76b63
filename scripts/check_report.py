#!/usr/bin/env python3
"""Opens a clipflow report in headless Chromium and checks it renders cleanly.

Usage: check_report.py REPORT.html SCREENSHOT.png [--expect EXPECT.json] [--timing N] [--bench] [--map-shot PNG]

Checks: no console errors or warnings, no uncaught page errors, no request other than the
report file itself (images must be data: URIs; nothing may touch the network), every <img>
decoded (naturalWidth > 0) once the lazy figures are loaded, and the click-to-sort script runs.

Interactive maps, when the page has any: every map initialises; on each, hovering a point
shows a tooltip naming that point, switching every "colour by" option works, the wheel zooms,
a drag pans, and a box over the whole map selects every point. With --expect, a JSON file
written by the test that made the report: {"hover": [{"map", "id", "label", "caption",
"zero_shot", "thumb_rgb"}], "box": [{"map", "rect": [x0, y0, x1, y1] in data units, "ids"}]}:
the hovered point's tooltip must show that id, label, caption and zero-shot call and a
thumbnail whose centre has that colour (within 40 levels); a box drag over that rectangle
must list exactly those ids in the copyable selection.

--map-shot PNG [--map-shot-index K]: a picture of map K (default the first) with the tooltip
of a point in a busy spot of it (for the README).

--timing N: loads the page N more times in fresh tabs and reports the median time to
DOMContentLoaded, load and first contentful paint. --bench: times 30 redraws of every map
(forcing the raster each time) and reports the mean and worst milliseconds.

Takes a full-page screenshot (everything loaded), prints a JSON summary on stdout, and exits 1
if anything is wrong, 3 if Chromium or playwright is missing (run scripts/setup), 2 on bad
usage.

Chromium is the Debian package (/usr/bin/chromium, or $CLIPFLOW_CHROMIUM); playwright never
downloads a browser here.
"""

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

CHROMIUM = os.environ.get("CLIPFLOW_CHROMIUM", "/usr/bin/chromium")


def missing(what):
    print(f"check_report: {what}; run scripts/setup", file=sys.stderr)
    sys.exit(3)


def parse_args():
    p = argparse.ArgumentParser(add_help=True, usage=__doc__.strip().splitlines()[2][7:])
    p.add_argument("report")
    p.add_argument("screenshot")
    p.add_argument("--expect")
    p.add_argument("--timing", type=int, default=0)
    p.add_argument("--bench", action="store_true")
    p.add_argument("--map-shot")
    p.add_argument("--map-shot-index", type=int, default=0)
    try:
        return p.parse_args()
    except SystemExit:
        sys.exit(2)


LOAD_ALL = """() => {
    const api = window.clipflowReport;
    if (api && api.loadAll) api.loadAll();
    return api && api.maps ? api.maps.filter(Boolean).length : 0;
}"""

IMAGES_DONE = "Array.from(document.images).every(img => img.complete)"


def check_maps(page, expect, problems, mouse):
    """The interactive checks; returns a summary."""
    figures = page.evaluate("document.querySelectorAll('figure.imap script.imap-data').length")
    ready = page.evaluate(LOAD_ALL)
    summary = {"figures": figures, "initialised": ready, "hover": [], "box": []}
    if figures != ready:
        problems.append(f"{ready} of {figures} maps initialised")
    for index in range(ready):
        generic = page.evaluate(
            """(i) => {
                const m = window.clipflowReport.maps[i];
                m.figure.scrollIntoView({block: "center", behavior: "instant"});
                return {n: m.n, colourings: m.colourings.map(c => c.name)};
            }""",
            index,
        )
        # Every colouring applies without error.
        for k in range(len(generic["colourings"])):
            page.evaluate(
                "([i, k]) => { const m = window.clipflowReport.maps[i];"
                " m.select.value = String(k); m.select.dispatchEvent(new Event('change')); }",
                [index, k],
            )
        page.evaluate(
            "(i) => { const m = window.clipflowReport.maps[i]; m.setColouring(0); }", index
        )
        # Hover the first point: the tooltip names a point within reach of the cursor.
        target = page.evaluate(
            """(i) => { const m = window.clipflowReport.maps[i];
                const s = m.toScreen(m.xs[0], m.ys[0]);
                const r = m.overlay.getBoundingClientRect();
                return {x: r.left + s[0], y: r.top + s[1]}; }""",
            index,
        )
        mouse.move(target["x"], target["y"])
        shown = page.evaluate(
            """(i) => { const m = window.clipflowReport.maps[i], tip = m.tip;
                if (tip.hidden) return null;
                const p = +tip.dataset.point, s = m.toScreen(m.xs[p], m.ys[p]),
                      q = m.toScreen(m.xs[0], m.ys[0]);
                return {id: tip.dataset.id, dist: Math.hypot(s[0] - q[0], s[1] - q[1])}; }""",
            index,
        )
        if shown is None or shown["dist"] > 8.5:
            problems.append(f"map {index}: hovering a point shows no tooltip for it ({shown})")
        # Wheel zooms, drag pans, Reset fits again.
        view0 = page.evaluate("(i) => ({...window.clipflowReport.maps[i].view})", index)
        # Scrolling over a map that was not clicked leaves it alone (the page scrolls) ...
        mouse.wheel(0, -240)
        # (the page's own scroll animation must end before the map is put back in place)
        page.wait_for_timeout(600)
        if page.evaluate("(i) => window.clipflowReport.maps[i].view.k", index) != view0["k"]:
            problems.append(f"map {index}: the wheel zoomed a map that was not clicked")
        target = page.evaluate(
            """(i) => { const m = window.clipflowReport.maps[i];
                m.figure.scrollIntoView({block: "center", behavior: "instant"});
                const s = m.toScreen(m.xs[0], m.ys[0]);
                const r = m.overlay.getBoundingClientRect();
                return {x: r.left + s[0], y: r.top + s[1]}; }""",
            index,
        )
        # ... once clicked, the wheel zooms.
        mouse.click(target["x"], target["y"])
        mouse.wheel(0, -240)
        page.wait_for_timeout(50)
        view1 = page.evaluate("(i) => ({...window.clipflowReport.maps[i].view})", index)
        mouse.move(target["x"] + 5, target["y"] + 5)
        mouse.down()
        mouse.move(target["x"] + 65, target["y"] + 45, steps=4)
        mouse.up()
        view2 = page.evaluate("(i) => ({...window.clipflowReport.maps[i].view})", index)
        if not view1["k"] > view0["k"]:
            problems.append(f"map {index}: the wheel did not zoom in")
        if view2["cx"] == view1["cx"] and view2["cy"] == view1["cy"]:
            problems.append(f"map {index}: dragging did not pan")
        page.evaluate(
            "(i) => { const m = window.clipflowReport.maps[i]; m.fit(); m.draw(); }", index
        )
        # A box over the whole stage selects every point.
        count = box_select(page, mouse, index, None)
        if count["selected"] != generic["n"]:
            problems.append(
                f"map {index}: a box over the whole map selected {count['selected']} "
                f"of {generic['n']} points"
            )
        page.evaluate("(i) => window.clipflowReport.maps[i].setSelection(null)", index)

    for h in (expect or {}).get("hover", []):
        summary["hover"].append(check_hover(page, mouse, h, problems))
    for b in (expect or {}).get("box", []):
        got = box_select(page, mouse, b["map"], b["rect"])
        want = sorted(b["ids"])
        ok = sorted(got["ids"]) == want
        if not ok:
            problems.append(
                f"map {b['map']}: box {b['rect']} selected {len(got['ids'])} ids, expected "
                f"{len(want)}: extra {sorted(set(got['ids']) - set(want))[:5]}, missing "
                f"{sorted(set(want) - set(got['ids']))[:5]}"
            )
        summary["box"].append({"map": b["map"], "selected": len(got["ids"]), "ok": ok})
        page.evaluate("(i) => window.clipflowReport.maps[i].setSelection(null)", b["map"])
    return summary


def box_select(page, mouse, index, rect):
    """Drags a box (data rectangle, or the whole stage) with the Box tool; returns the ids."""
    corners = page.evaluate(
        """([i, rect]) => {
            const m = window.clipflowReport.maps[i];
            m.figure.scrollIntoView({block: "center", behavior: "instant"});
            m.setMode("box");
            if (rect) return m.clientRectOf(rect[0], rect[1], rect[2], rect[3]);
            const r = m.overlay.getBoundingClientRect();
            return {left: r.left + 1, top: r.top + 1, right: r.right - 1, bottom: r.bottom - 1};
        }""",
        [index, rect],
    )
    mouse.move(corners["left"], corners["top"])
    mouse.down()
    mouse.move((corners["left"] + corners["right"]) / 2, (corners["top"] + corners["bottom"]) / 2,
               steps=3)
    mouse.move(corners["right"], corners["bottom"], steps=3)
    mouse.up()
    got = page.evaluate(
        """(i) => { const m = window.clipflowReport.maps[i];
            const box = m.selectionBox;
            const ids = m.selectedIds();
            m.setMode("pan");
            return {ids: ids, shown: !box.hidden, selected: m.selectedCount}; }""",
        index,
    )
    return got


def check_hover(page, mouse, h, problems):
    index = h["map"]
    point = page.evaluate(
        """([i, id]) => { const m = window.clipflowReport.maps[i];
            m.figure.scrollIntoView({block: "center", behavior: "instant"});
            m.fit(); m.draw();
            return m.clientPointOf(id); }""",
        [index, h["id"]],
    )
    if point is None:
        problems.append(f"map {index}: no point {h['id']}")
        return {"id": h["id"], "ok": False}
    mouse.move(point["x"] + 40, point["y"] + 40)
    mouse.move(point["x"], point["y"], steps=3)
    if "thumb_rgb" in h:
        try:
            page.wait_for_function(
                """(i) => { const c = window.clipflowReport.maps[i].tip.querySelector('canvas');
                    return c && c.dataset.painted === '1'; }""",
                arg=index,
                timeout=10_000,
            )
        except Exception:  # noqa: BLE001 - reported below
            pass
    tip = page.evaluate(
        """(i) => { const m = window.clipflowReport.maps[i], tip = m.tip;
            const text = sel => { const e = tip.querySelector(sel); return e ? e.textContent : null; };
            const c = tip.querySelector('canvas.imap-thumb');
            let rgb = null;
            if (c && c.dataset.painted === '1') {
                const w = c.width, h = c.height, ctx = c.getContext('2d');
                const d = ctx.getImageData(Math.floor(w / 4), Math.floor(h / 4),
                                           Math.max(1, Math.floor(w / 2)), Math.max(1, Math.floor(h / 2))).data;
                const s = [0, 0, 0];
                for (let k = 0; k < d.length; k += 4) { s[0] += d[k]; s[1] += d[k + 1]; s[2] += d[k + 2]; }
                const n = d.length / 4;
                rgb = s.map(v => Math.round(v / n));
            }
            return {hidden: tip.hidden, id: tip.dataset.id, thumb: tip.dataset.thumb,
                    label: text('.imap-tip-label'), caption: text('.imap-tip-caption'),
                    zero_shot: text('.imap-tip-zs'), rgb: rgb}; }""",
        index,
    )
    ok = not tip["hidden"] and tip["id"] == h["id"]
    for key in ("label", "caption", "zero_shot"):
        if key in h and tip.get(key) != h[key]:
            ok = False
    if "thumb_rgb" in h:
        if tip["rgb"] is None or any(abs(a - b) > 40 for a, b in zip(tip["rgb"], h["thumb_rgb"])):
            ok = False
    if not ok:
        problems.append(f"map {index}: hovering {h['id']} shows {tip}, expected {h}")
    return {"id": h["id"], "ok": ok, "shown": tip}


def map_shot(page, path, index):
    """Hovers the point with the most neighbours within 20 px on map `index` (a busy spot, so
    the tooltip sits over the picture) and photographs the map's figure."""
    target = page.evaluate(
        """(index) => { const m = window.clipflowReport.maps[index];
            m.figure.scrollIntoView({block: "center", behavior: "instant"});
            let best = 0, most = -1;
            const step = Math.max(1, Math.floor(m.n / 400));
            for (let i = 0; i < m.n; i += step) {
                const a = m.toScreen(m.xs[i], m.ys[i]);
                let c = 0;
                for (let j = 0; j < m.n; j += step) {
                    const b = m.toScreen(m.xs[j], m.ys[j]);
                    if (Math.abs(a[0] - b[0]) < 20 && Math.abs(a[1] - b[1]) < 20) c++;
                }
                if (c > most && a[0] < m.size.w * 0.6 && a[1] < m.size.h * 0.6) { most = c; best = i; }
            }
            const s = m.toScreen(m.xs[best], m.ys[best]), r = m.overlay.getBoundingClientRect();
            return {x: r.left + s[0], y: r.top + s[1]}; }""",
        index,
    )
    page.mouse.move(target["x"] + 30, target["y"] + 30)
    page.mouse.move(target["x"], target["y"], steps=4)
    page.wait_for_timeout(400)
    path.parent.mkdir(parents=True, exist_ok=True)
    page.locator("figure.imap").nth(index).screenshot(path=str(path))


def timing(browser, report_url, runs):
    samples = []
    for _ in range(runs):
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        page.route("**/*", lambda route: route.continue_()
                   if route.request.url == report_url or route.request.url.startswith("data:")
                   else route.abort())
        page.goto(report_url, wait_until="load")
        page.wait_for_timeout(300)
        samples.append(page.evaluate(
            """() => { const n = performance.getEntriesByType('navigation')[0];
                const fcp = performance.getEntriesByName('first-contentful-paint')[0];
                return {dom_content_loaded_ms: n.domContentLoadedEventEnd, load_ms: n.loadEventEnd,
                        first_contentful_paint_ms: fcp ? fcp.startTime : null}; }"""
        ))
        page.close()
    keys = samples[0].keys()
    return {k: round(statistics.median(s[k] for s in samples if s[k] is not None), 1)
            for k in keys if any(s[k] is not None for s in samples)} | {"runs": runs}


def main():
    args = parse_args()
    report = Path(args.report).resolve()
    screenshot = Path(args.screenshot)
    if not report.is_file():
        print(f"check_report: {report}: no such file", file=sys.stderr)
        sys.exit(2)
    expect = json.loads(Path(args.expect).read_text()) if args.expect else None
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing(f"the Python package playwright is not installed for {sys.executable}")
    if not os.access(CHROMIUM, os.X_OK):
        missing(f"Chromium not found at {CHROMIUM}")

    report_url = report.as_uri()
    console, page_errors, failed, foreign = [], [], [], []
    problems = []

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
        # Lazy figures and maps, all of them, before looking at the images.
        page.evaluate(LOAD_ALL)
        page.wait_for_function(IMAGES_DONE, timeout=30_000)
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
        maps = check_maps(page, expect, problems, page.mouse)
        if args.map_shot:
            map_shot(page, Path(args.map_shot), args.map_shot_index)
        bench = None
        if args.bench:
            bench = page.evaluate(
                "() => window.clipflowReport.maps.filter(Boolean).map(m => m.bench(30))"
            )
        # Restore the original state for the screenshot; the reload would only report the
        # same messages again.
        page.remove_listener("console", on_console)
        page.remove_listener("pageerror", on_page_error)
        page.remove_listener("request", on_request)
        page.remove_listener("requestfailed", on_request_failed)
        page.reload(wait_until="load")
        page.evaluate(LOAD_ALL)
        page.wait_for_function(IMAGES_DONE, timeout=30_000)
        page.wait_for_timeout(200)
        height = page.evaluate("document.documentElement.scrollHeight")
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        # A tall report takes 10-15 s to capture on a busy 2-core machine, and a ~400 MB
        # capture can fail once under memory pressure ("Unable to capture screenshot").
        try:
            page.screenshot(path=str(screenshot), full_page=True, timeout=180_000)
        except PlaywrightError:
            page.wait_for_timeout(2000)
            page.screenshot(path=str(screenshot), full_page=True, timeout=180_000)
        timings = timing(browser, report_url, args.timing) if args.timing > 0 else None
        browser.close()

    broken = [i for i in images if i["naturalWidth"] <= 0]
    not_inline = [i for i in images if not i["data_uri"]]
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
        "bytes": report.stat().st_size,
        "screenshot": str(screenshot),
        "ok": not problems,
        "problems": problems,
        "page_height": height,
        "images": {"count": len(images), "broken": broken, "not_inline": not_inline},
        "maps": maps,
        "console": console,
        "page_errors": page_errors,
        "failed_requests": failed,
        "foreign_requests": foreign[:50],
        "sort_works": sorted_ok,
    }
    if timings is not None:
        summary["timing"] = timings
    if bench is not None:
        summary["bench"] = bench
    print(json.dumps(summary, indent=2))
    sys.exit(0 if not problems else 1)


if __name__ == "__main__":
    main()
