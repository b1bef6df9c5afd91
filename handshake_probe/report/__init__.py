"""The HTML report: one self-contained file (inline CSS, JS and SVG; nothing fetched) that shows a whole
capture: summary charts, the flow table (sortable, filterable, paginated) and, for a clicked flow, its
ladder, its segments with both endpoints' states and its transitions with their causes.

It reads only the public boundary: flow records and per-segment rows (handshake_probe.analyze, its
rows()). `data.py` packs them once into compact JSON; `page.py` writes the page around it; the page's
script (`assets/report.js`) renders everything from that JSON, the ladder with a port of
views/ladder_svg.py that tests hold equal to the Python SVG, byte for byte.
"""

from handshake_probe.report.data import Source, source_from_file
from handshake_probe.report.page import report_html, write_report, write_report_from

__all__ = ["Source", "source_from_file", "report_html", "write_report", "write_report_from"]
