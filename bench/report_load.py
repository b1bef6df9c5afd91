"""How long the HTML report takes to open in headless Chromium, and to answer once open.

    python bench/gen_capture.py /tmp/hp-100k.pcap --flows 100000
    python bench/report_load.py /tmp/hp-100k.pcap            # writes /tmp/hp-100k.html, then opens it 5 times

Figures (each a median over --runs fresh page loads, in a fresh tab):
- *ready*: from the start of navigation (performance.timeOrigin) to the end of the page's script: the file
  read, the HTML parsed, the head's JSON parsed, the charts drawn and the first table page in the DOM;
- *load event* and *wall*: the browser's load event, and what selenium's get() took around it;
- then, on the open page: a filter (close kind), a sort (packets), opening the last flow (its details
  chunk parsed and its ladder drawn).
Needs chromium, chromium-driver and selenium (the test extra). Not a test: it prints, never fails on speed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("capture", help="a capture (its report is written beside it as .html) or a report .html")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    path = Path(args.capture).resolve()
    if path.suffix != ".html":
        html = path.with_suffix(".html")
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "handshake_probe", "report", str(path), "-o", str(html)], check=True)
        print(f"report written in {time.perf_counter() - t:.1f} s")
        path = html
    print(f"{path}: {os.path.getsize(path) / 1e6:.1f} MB")

    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select
    options = Options()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    options.binary_location = shutil.which("chromium") or "chromium"
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "chromedriver"), options=options)
    ready, load, wall = [], [], []
    try:
        version = driver.capabilities.get("browserVersion", "?")
        for _ in range(args.runs):
            driver.switch_to.new_window("tab")
            t = time.perf_counter()
            driver.get(path.as_uri())
            wall.append((time.perf_counter() - t) * 1000)
            ready.append(driver.execute_script("return window.hpReport.ready"))
            load.append(driver.execute_script(
                "const n = performance.getEntriesByType('navigation')[0]; return n.loadEventEnd"))
            flows = driver.execute_script("return window.hpReport.flows")
            old = driver.current_window_handle
            for handle in driver.window_handles:
                if handle != old:
                    driver.switch_to.window(handle)
                    driver.close()
            driver.switch_to.window(old)

        def timed(action) -> float:
            t = time.perf_counter()
            action()
            driver.execute_script("return document.getElementById('count').textContent")
            return (time.perf_counter() - t) * 1000
        close = Select(driver.find_element(By.ID, "f-close"))
        filter_ms = timed(lambda: close.select_by_value(close.options[-1].get_attribute("value")))
        close.select_by_value("")
        sort_ms = timed(lambda: driver.find_element(By.CSS_SELECTOR, "#flow-head th[data-key=pk] button").click())
        open_ms = driver.execute_script(
            "const t = performance.now(); window.hpReport.open(window.hpReport.flows - 1); return performance.now() - t")
    finally:
        driver.quit()
    print(f"Chromium {version}, {flows:,} flows, {args.runs} loads")
    print(f"ready (navigation start -> table and charts drawn): median {statistics.median(ready):.0f} ms "
          f"(min {min(ready):.0f}, max {max(ready):.0f})")
    print(f"load event: median {statistics.median(load):.0f} ms; selenium get(): median {statistics.median(wall):.0f} ms")
    print(f"filter by close kind: {filter_ms:.0f} ms; sort by packets: {sort_ms:.0f} ms; "
          f"open the last flow (chunk parse + ladder): {open_ms:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
