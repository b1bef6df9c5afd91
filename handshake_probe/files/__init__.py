"""The capture-file edge: flow records from capture files (the engine reads them), and pcap files written.

  flowsource.py  records, a kept flow's rows and the analysis' summary from one file, in flow order
  parallel.py    many files at once: one process per file, results in the order of the files
  pcapwriter.py  RawFrame (a frame with its timestamp and linktype) and the pcap writer

Nothing is imported here: each edge imports only what it uses.
"""
