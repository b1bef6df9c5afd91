"""Views: flow records (and a kept flow's rows) turned into something a person or a program reads.

  table.py       the flow table (fitted to the terminal), the summary line, `--flow N`'s segment listing,
                 and the JSON Lines / JSON / CSV writers
  ladder.py      a flow as a client/server ladder diagram, in text
  ladder_svg.py  the same ladder as SVG (and the HTML report)

Nothing is imported here: each command imports only the view it shows.
"""
