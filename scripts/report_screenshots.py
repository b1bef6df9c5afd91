"""The README's pictures of the HTML report: headless Chromium screenshots of each view into docs/.

    python scripts/report_screenshots.py            # needs chromium, chromium-driver, selenium

Writes docs/report-summary.png (the summary charts), docs/report-table.png (the flow table, filtered),
docs/report-flow.png (a flow: ladder, segments, transitions). The report is of bundled captures.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CAPTURES = ["echo-client-close.pcap", "closed-port.pcap", "echo-rst-abort.pcap", "simultaneous-close.pcap",
            "syn-no-answer.pcap", "rst-out-of-window.pcap", "mid-stream.pcap", "echo-port-reuse-3000.pcap",
            "anomalies/zero-window.pcap", "anomalies/retransmission-syn.pcap"]


def main() -> int:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "report.html"
        subprocess.run([sys.executable, "-m", "handshake_probe", "report", *[f"captures/{c}" for c in CAPTURES],
                        "-o", str(page), "--title", "handshake-probe: bundled captures"], check=True, cwd=ROOT)
        options = Options()
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900",
                    "--hide-scrollbars", "--force-device-scale-factor=1"):
            options.add_argument(arg)
        options.binary_location = shutil.which("chromium") or "chromium"
        driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "chromedriver"), options=options)
        try:
            # The summary of a busy server's traffic (bench/gen_capture.py: FIN and RST closes, refused and
            # unanswered connections, retransmissions): the bundled captures are a flow or two each.
            subprocess.run([sys.executable, "bench/gen_capture.py", f"{tmp}/busy.pcap", "--flows", "5000"], check=True,
                           cwd=ROOT, stdout=subprocess.DEVNULL)
            subprocess.run([sys.executable, "-m", "handshake_probe", "report", f"{tmp}/busy.pcap", "-o", f"{tmp}/busy.html",
                            "--title", "handshake-probe: bench/gen_capture.py --flows 5000"], check=True, cwd=ROOT)
            driver.set_window_size(1280, 1500)
            driver.get(Path(f"{tmp}/busy.html").as_uri())
            time.sleep(0.2)
            driver.find_element(By.ID, "summary").screenshot(str(ROOT / "docs" / "report-summary.png"))
            driver.set_window_size(1280, 900)
            driver.get(page.as_uri())
            Select(driver.find_element(By.ID, "f-close")).select_by_value("fin")
            driver.find_element(By.ID, "f-anomaly")
            Select(driver.find_element(By.ID, "p-size")).select_by_visible_text("25")
            driver.find_element(By.CSS_SELECTOR, "#flow-head th[data-key=pk] button").click()
            driver.find_element(By.CSS_SELECTOR, "#flow-head th[data-key=pk] button").click()
            driver.execute_script("document.querySelector('#flow-body tr').focus()")
            driver.set_window_size(1900, 1400)
            driver.execute_script("document.getElementById('flows').scrollIntoView()")
            time.sleep(0.2)
            driver.find_element(By.ID, "flows").screenshot(str(ROOT / "docs" / "report-table.png"))
            driver.find_element(By.ID, "f-reset").click()
            driver.execute_script("window.hpReport.open(window.hpReport.indexOf(0, 1))")
            height = driver.execute_script("return document.getElementById('flow-view').scrollHeight")
            driver.set_window_size(1280, height + 200)
            time.sleep(0.2)
            driver.find_element(By.ID, "flow-view").screenshot(str(ROOT / "docs" / "report-flow.png"))
        finally:
            driver.quit()
    for name in ("report-summary.png", "report-table.png", "report-flow.png"):
        print(f"wrote docs/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
